"""Checks of the deployment artifacts: Dockerfile, k8s/, docker-compose.yml, configs/, locks.

There is no container engine or cluster in the test environment, so each artifact is checked by
the tool its ecosystem uses to lint or validate it (hadolint, the Kubernetes OpenAPI schemas via
kubernetes-validate, the compose-spec schema via check-jsonschema, ``logship check-config``),
plus structural assertions for the promises the tools cannot see (non-root, read-only root
filesystem, probes on the health port, the shared log volume). Every tool also gets a broken copy
to reject, so a check that silently passes everything would fail here.
"""

from __future__ import annotations

import copy
import fnmatch
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "k8s"
HEALTH_PORT = 8686
# The image's numeric user; k8s runs the pod as the same one.
IMAGE_UID = 10001
# Kubernetes versions: native sidecars need 1.29 (on by default); the classic variant must work
# on the oldest version kubernetes-validate ships schemas for.
NATIVE_SIDECAR_K8S = "1.29"
OLDEST_K8S = "1.25"


def tool(name: str) -> str:
    """A dev-extras tool from this interpreter's environment (it must be installed, not skipped)."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name} is not installed: pip install -e '.[dev]'"
    return found


def run_tool(
    *argv: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )


def load_yaml_docs(path: Path) -> list[Any]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


# --------------------------------------------------------------------------------------------
# Dockerfile
# --------------------------------------------------------------------------------------------


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    out = []
    for item in logical:
        word, _, rest = item.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    starts = [i for i, (word, _) in enumerate(instructions) if word == "FROM"]
    return instructions[starts[-1] :]


DOCKERFILE = ROOT / "Dockerfile"


def test_hadolint_accepts_the_dockerfile() -> None:
    r = run_tool(tool("hadolint"), DOCKERFILE)
    assert r.returncode == 0, r.stdout + r.stderr


def test_hadolint_rejects_unpinned_images_and_packages(tmp_path: Path) -> None:
    broken = DOCKERFILE.read_text().replace(
        "ARG PYTHON_IMAGE=python:3.11.15-slim-bookworm", "ARG PYTHON_IMAGE=python:3.11-slim"
    )
    broken += "\nFROM python:latest\nRUN pip install requests\n"
    path = tmp_path / "Dockerfile"
    path.write_text(broken)
    r = run_tool(tool("hadolint"), path)
    assert r.returncode != 0
    assert "DL3007" in r.stdout  # FROM ...:latest
    assert "DL3013" in r.stdout  # pip install without a version


def test_dockerfile_final_stage_is_slim_nonroot_and_runs_the_agent() -> None:
    instructions = dockerfile_instructions(DOCKERFILE.read_text())
    assert sum(1 for word, _ in instructions if word == "FROM") >= 2, "multi-stage build"
    (image,) = (
        args.partition("=")[2]
        for word, args in instructions
        if word == "ARG" and args.startswith("PYTHON_IMAGE=")
    )
    assert re.fullmatch(r"python:3\.\d+\.\d+-slim-\w+", image), f"pin the tag by version: {image}"
    last = final_stage(instructions)
    by_word: dict[str, list[str]] = {}
    for word, args in last:
        by_word.setdefault(word, []).append(args)
    user = by_word["USER"][-1]
    assert re.fullmatch(r"\d+:\d+", user), "numeric user:group, so runAsNonRoot can check it"
    assert int(user.partition(":")[0]) == IMAGE_UID != 0
    assert any("PYTHONDONTWRITEBYTECODE=1" in e for e in by_word["ENV"])
    assert json.loads(by_word["ENTRYPOINT"][-1]) == ["logship"]
    assert json.loads(by_word["CMD"][-1]) == ["run", "--config", "/etc/logship/logship.yaml"]
    assert json.loads(by_word["VOLUME"][-1]) == ["/var/lib/logship"]
    assert str(HEALTH_PORT) in by_word["EXPOSE"][-1].split()


def test_dockerfile_installs_only_from_the_hash_pinned_locks() -> None:
    runs = [args for word, args in dockerfile_instructions(DOCKERFILE.read_text()) if word == "RUN"]
    installs = [
        part.strip()
        for args in runs
        for part in args.split("&&")
        if re.search(r"\bpip (install|wheel)\b", part)
    ]
    assert any("--require-hashes -r requirements.lock" in p for p in installs)
    assert any("--require-hashes -r requirements-build.lock" in p for p in installs)
    for p in installs:
        assert "--require-hashes" in p or "--no-deps" in p, f"unpinned install: {p}"


def healthcheck_argv() -> list[str]:
    for word, args in dockerfile_instructions(DOCKERFILE.read_text()):
        if word == "HEALTHCHECK":
            return list(json.loads(args[args.index("CMD") + 3 :].strip()))
    raise AssertionError("no HEALTHCHECK")


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        code = self.status if self.path == "/healthz" else 404
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[tuple[http.server.HTTPServer, type[_Health]]]:
    handler = type("Handler", (_Health,), {"status": 200})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, handler
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_healthcheck_needs_no_curl_and_follows_healthz(
    health_server: tuple[http.server.HTTPServer, type[_Health]], status: int, healthy: bool
) -> None:
    server, handler = health_server
    handler.status = status
    argv = healthcheck_argv()
    assert argv[0] == "python", "a slim image has python, not curl"
    port = server.server_address[1]
    code = argv[-1]
    assert f"http://127.0.0.1:{HEALTH_PORT}/healthz" in code
    r = run_tool(sys.executable, *argv[1:-1], code.replace(str(HEALTH_PORT), str(port)))
    assert (r.returncode == 0) is healthy, r.stderr


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule, enough for these patterns: a match on the path or on a parent folder."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(
        fnmatch.fnmatch(prefix, pat.removeprefix("**/")) or fnmatch.fnmatch(prefix, pat)
        for pat in patterns
        for prefix in prefixes
    )


def test_dockerignore_keeps_the_build_inputs_and_drops_local_state() -> None:
    patterns = dockerignore_patterns()
    for local in (".venv/bin/python", ".git/HEAD", "benchmarks/out/run.json", "tests/x.py"):
        assert ignored(local, patterns), local
    copied = [
        src
        for word, args in dockerfile_instructions(DOCKERFILE.read_text())
        if word == "COPY" and not args.startswith("--from")
        for src in args.split()[:-1]
    ]
    assert copied
    for src in copied:
        assert (ROOT / src).exists(), f"COPY {src}: no such file"
        assert not ignored(src, patterns), f"COPY {src} is excluded by .dockerignore"


# --------------------------------------------------------------------------------------------
# requirements.lock / requirements-build.lock
# --------------------------------------------------------------------------------------------

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


def parse_lock(text: str) -> dict[str, dict[str, Any]]:
    """name -> {version, hashes, via} from a pip-compile/uv style lock."""
    pins: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    for line in text.splitlines():
        m = _PIN.match(line)
        if m:
            current = {"version": m.group(2), "hashes": 0, "via": []}
            pins[canonicalize_name(m.group(1))] = current
        elif current is not None and "--hash=sha256:" in line:
            current["hashes"] += 1
        elif current is not None and line.strip().startswith("#"):
            via = line.strip().lstrip("#").strip().removeprefix("via").strip()
            if via:
                current["via"].append(via)
    return pins


def lock_problems(requirements: list[str], lock_text: str, direct_marker: str | None) -> list[str]:
    """What makes a lock disagree with the requirements it should have been compiled from."""
    pins = parse_lock(lock_text)
    problems = []
    wanted = {canonicalize_name(Requirement(r).name): Requirement(r) for r in requirements}
    for name, req in wanted.items():
        if name not in pins:
            problems.append(f"{name}: in pyproject.toml, not in the lock")
        elif not req.specifier.contains(pins[name]["version"], prereleases=True):
            problems.append(f"{name}=={pins[name]['version']} does not satisfy {req.specifier}")
    for name, pin in pins.items():
        if pin["hashes"] == 0:
            problems.append(f"{name}: no hash")
        if direct_marker and direct_marker in pin["via"] and name not in wanted:
            problems.append(f"{name}: locked as a direct dependency, not in pyproject.toml")
    return problems


PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_requirements_lock_matches_pyproject_dependencies() -> None:
    text = (ROOT / "requirements.lock").read_text()
    assert (
        lock_problems(PYPROJECT["project"]["dependencies"], text, "logship (pyproject.toml)") == []
    )


def test_build_lock_matches_build_system_requires() -> None:
    text = (ROOT / "requirements-build.lock").read_text()
    assert lock_problems(PYPROJECT["build-system"]["requires"], text, None) == []


def test_lock_check_notices_added_removed_and_unhashed_dependencies() -> None:
    text = (ROOT / "requirements.lock").read_text()
    deps = list(PYPROJECT["project"]["dependencies"])
    assert lock_problems([*deps, "no-such-dependency>=1"], text, "logship (pyproject.toml)") == [
        "no-such-dependency: in pyproject.toml, not in the lock"
    ]
    removed = [d for d in deps if not d.startswith("click")]
    assert lock_problems(removed, text, "logship (pyproject.toml)") == [
        "click: locked as a direct dependency, not in pyproject.toml"
    ]
    too_new = [d if not d.startswith("httpx") else "httpx>=99" for d in deps]
    assert any("httpx==" in p for p in lock_problems(too_new, text, "logship (pyproject.toml)"))
    unhashed = re.sub(r"(orjson==\S+) \\\n(\s+--hash=\S+ \\\n)*\s+--hash=\S+", r"\1", text)
    assert "orjson: no hash" in lock_problems(deps, unhashed, "logship (pyproject.toml)")


def test_locks_are_resolved_for_the_image_python() -> None:
    image = re.search(r"python:(\d+\.\d+)\.\d+-slim", DOCKERFILE.read_text())
    assert image
    dev = (ROOT / "dev.py").read_text()
    assert f'LOCK_PYTHON = "{image.group(1)}"' in dev
    for lock in ("requirements.lock", "requirements-build.lock"):
        assert "python3 dev.py lock" in (ROOT / lock).read_text()


# --------------------------------------------------------------------------------------------
# k8s/
# --------------------------------------------------------------------------------------------

BASE_DEPLOYMENT = K8S / "base" / "deployment.yaml"
CLASSIC_PATCH = K8S / "classic-sidecar" / "move-logship-to-containers.yaml"


def kubernetes_validate(version: str, *files: Path) -> subprocess.CompletedProcess[str]:
    return run_tool(tool("kubernetes-validate"), "--strict", "-k", version, *files)


def kustomization_resources(folder: Path) -> list[Path]:
    data = yaml.safe_load((folder / "kustomization.yaml").read_text())
    return [folder / r for r in data.get("resources", [])]


def test_base_manifests_validate_against_kubernetes_with_native_sidecars() -> None:
    files = [p for p in kustomization_resources(K8S / "base") if p.is_file()]
    assert BASE_DEPLOYMENT in files
    for version in (NATIVE_SIDECAR_K8S, "1.37"):
        r = kubernetes_validate(version, *files)
        assert r.returncode == 0, r.stdout + r.stderr


def test_kubernetes_validate_rejects_a_misspelled_field_and_a_pre_sidecar_cluster(
    tmp_path: Path,
) -> None:
    broken = tmp_path / "deployment.yaml"
    broken.write_text(
        BASE_DEPLOYMENT.read_text().replace("readOnlyRootFilesystem", "readOnlyRootFs")
    )
    r = kubernetes_validate(NATIVE_SIDECAR_K8S, broken)
    assert r.returncode != 0 and "readOnlyRootFs" in r.stdout + r.stderr
    # restartPolicy on an init container (a native sidecar) does not exist before 1.28.
    r = kubernetes_validate("1.27", BASE_DEPLOYMENT)
    assert r.returncode != 0 and "restartPolicy" in r.stdout + r.stderr


def _pointer(doc: Any, path: str) -> tuple[Any, str | int]:
    *parents, last = path.lstrip("/").split("/")
    for part in parents:
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    return doc, (int(last) if isinstance(doc, list) and last != "-" else last)


def apply_json_patch(doc: Any, ops: list[dict[str, Any]]) -> Any:
    """RFC 6902 add/remove/move, enough for the classic-sidecar patch."""
    doc = copy.deepcopy(doc)
    for op in ops:
        if op["op"] == "move":
            parent, key = _pointer(doc, op["from"])
            value = parent.pop(key)
            op = {"op": "add", "path": op["path"], "value": value}
        parent, key = _pointer(doc, op["path"])
        if op["op"] == "remove":
            parent.pop(key)
        elif op["op"] == "add":
            if isinstance(parent, list):
                parent.insert(len(parent) if key == "-" else int(key), op["value"])
            else:
                parent[key] = op["value"]
        else:
            raise AssertionError(f"unsupported op {op['op']}")
    return doc


def pod_spec(deployment: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return spec


def containers_by_name(spec: dict[str, Any], key: str) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in spec.get(key, [])}


def classic_deployment() -> dict[str, Any]:
    base = yaml.safe_load(BASE_DEPLOYMENT.read_text())
    result: dict[str, Any] = apply_json_patch(base, yaml.safe_load(CLASSIC_PATCH.read_text()))
    return result


def test_classic_variant_is_the_same_logship_as_an_ordinary_container(tmp_path: Path) -> None:
    native = pod_spec(yaml.safe_load(BASE_DEPLOYMENT.read_text()))
    classic = pod_spec(classic_deployment())
    assert "initContainers" not in classic
    sidecar = containers_by_name(native, "initContainers")["logship"]
    moved = containers_by_name(classic, "containers")["logship"]
    assert sidecar.pop("restartPolicy") == "Always"
    assert moved.pop("lifecycle")["preStop"]["exec"]["command"][0] == "sleep"
    assert moved == sidecar
    path = tmp_path / "classic.yaml"
    path.write_text(yaml.safe_dump(classic_deployment()))
    r = kubernetes_validate(OLDEST_K8S, path)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize(
    ("folder", "version"),
    [(K8S, NATIVE_SIDECAR_K8S), (K8S / "classic-sidecar", OLDEST_K8S)],
    ids=["native-sidecar", "classic-sidecar"],
)
def test_kustomize_builds_validate(folder: Path, version: str, tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (with kustomize) is not installed; the manifests are checked above")
    r = run_tool(kubectl, "kustomize", folder)
    assert r.returncode == 0, r.stderr
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(r.stdout)
    docs = load_yaml_docs(rendered)
    assert sorted(d["kind"] for d in docs) == ["ConfigMap", "Deployment", "Secret"]
    v = kubernetes_validate(version, rendered)
    assert v.returncode == 0, v.stdout + v.stderr
    if folder.name == "classic-sidecar":
        (deployment,) = (d for d in docs if d["kind"] == "Deployment")
        ours = containers_by_name(pod_spec(classic_deployment()), "containers")
        assert containers_by_name(pod_spec(deployment), "containers") == ours


def test_pod_shares_the_log_volume_and_runs_logship_locked_down() -> None:
    deployment = yaml.safe_load(BASE_DEPLOYMENT.read_text())
    spec = pod_spec(deployment)
    logship = containers_by_name(spec, "initContainers")["logship"]
    (app,) = spec["containers"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    app_mounts = {m["name"]: m for m in app["volumeMounts"]}
    ours = {m["name"]: m for m in logship["volumeMounts"]}
    shared = [n for n in app_mounts if n in ours and "emptyDir" in volumes[n]]
    assert shared, "an emptyDir mounted in both containers"
    for name in shared:
        assert app_mounts[name]["mountPath"] == ours[name]["mountPath"] == "/var/log/app"
        assert ours[name].get("readOnly") is True
    state = next(m for m in ours.values() if m["mountPath"] == "/var/lib/logship")
    assert "emptyDir" in volumes[state["name"]]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == IMAGE_UID
    sc = logship["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(logship["resources"][kind])
    port = {p["name"]: p["containerPort"] for p in logship["ports"]}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/ready")):
        get = logship[probe]["httpGet"]
        assert get["path"] == path and port[get["port"]] == HEALTH_PORT
    downward = {
        e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"]
        for e in logship["env"]
        if "fieldRef" in e.get("valueFrom", {})
    }
    assert downward["POD_NAMESPACE"] == "metadata.namespace"
    assert downward["POD_NAME"] == "metadata.name"


def k8s_config_env() -> dict[str, str]:
    """The environment the k8s pod gives logship: what the downward API would fill in."""
    return {"APP_NAME": "myapp", "POD_NAME": "myapp-abc", "POD_NAMESPACE": "default"}


def test_k8s_config_uses_the_mounted_secret_and_drains_within_the_grace_period() -> None:
    spec = pod_spec(yaml.safe_load(BASE_DEPLOYMENT.read_text()))
    logship = containers_by_name(spec, "initContainers")["logship"]
    r = run_tool(
        sys.executable,
        "-m",
        "logship",
        "check-config",
        K8S / "base" / "logship.yaml",
        env=k8s_config_env(),
    )
    assert r.returncode == 0, r.stderr
    effective = yaml.safe_load(r.stdout)
    password_file = Path(effective["sinks"]["loki"]["basic_auth"]["password_file"])
    secret = yaml.safe_load((K8S / "base" / "secret.yaml").read_text())
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = [
        m
        for m in logship["volumeMounts"]
        if volumes[m["name"]].get("secret", {}).get("secretName") == secret["metadata"]["name"]
    ]
    assert any(password_file.parent == Path(m["mountPath"]) for m in mounts)
    assert password_file.name in secret["stringData"]
    assert effective["drain_timeout"] < spec["terminationGracePeriodSeconds"]
    assert effective["checkpoint_dir"] == "/var/lib/logship"


# --------------------------------------------------------------------------------------------
# docker-compose.yml and its Grafana / Prometheus files
# --------------------------------------------------------------------------------------------

COMPOSE = ROOT / "docker-compose.yml"


def check_compose(path: Path) -> subprocess.CompletedProcess[str]:
    return run_tool(tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", path)


def test_compose_file_follows_the_compose_specification() -> None:
    r = check_compose(COMPOSE)
    assert r.returncode == 0, r.stdout + r.stderr


def test_compose_schema_check_rejects_a_misspelled_key(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text().replace("stop_grace_period:", "stop_grace_periode:"))
    r = check_compose(broken)
    assert r.returncode != 0 and "stop_grace_periode" in r.stdout + r.stderr


def test_compose_runs_logship_read_only_beside_the_app_loki_prometheus_grafana() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    assert {"app", "logship", "loki", "prometheus", "grafana"} <= set(services)
    logship = services["logship"]
    assert logship["build"] == "." and logship["read_only"] is True
    assert logship["user"] == f"{IMAGE_UID}:{IMAGE_UID}"
    assert "app-logs:/var/log/app" in services["app"]["volumes"]
    assert "app-logs:/var/log/app:ro" in logship["volumes"]
    assert any(v.startswith("logship-state:/var/lib/logship") for v in logship["volumes"])
    for name, service in services.items():
        if "image" in service and name != "logship":
            repo, _, tag = service["image"].partition(":")
            assert re.search(r"\d", tag) and tag != "latest", f"{name}: pin {repo} by version"
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"bind mount {source} does not exist"


def test_compose_config_for_logship_is_valid() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    logship = compose["services"]["logship"]
    (config,) = (v.split(":")[0] for v in logship["volumes"] if "/etc/logship/" in v)
    r = run_tool(
        sys.executable, "-m", "logship", "check-config", ROOT / config, env=logship["environment"]
    )
    assert r.returncode == 0, r.stderr
    effective = yaml.safe_load(r.stdout)
    assert effective["sinks"]["loki"]["url"] == logship["environment"]["LOKI_URL"]


GRAFANA = ROOT / "deploy" / "grafana"


def test_grafana_datasources_are_the_ones_the_dashboard_uses() -> None:
    provisioned = yaml.safe_load(
        (GRAFANA / "provisioning/datasources/datasources.yaml").read_text()
    )
    assert provisioned["apiVersion"] == 1
    uids = {d["uid"]: d for d in provisioned["datasources"]}
    compose = yaml.safe_load(COMPOSE.read_text())["services"]
    for source in uids.values():
        host = re.match(r"http://([^:/]+):\d+", source["url"])
        assert host and host.group(1) in compose, f"{source['name']}: no such compose service"
    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/dashboards.yaml").read_text())
    assert providers["apiVersion"] == 1
    (provider,) = providers["providers"]
    mounted = [v for v in compose["grafana"]["volumes"] if v.startswith("./deploy/grafana/dash")]
    assert mounted and mounted[0].split(":")[1] == provider["options"]["path"]
    dashboards = list((GRAFANA / "dashboards").glob("*.json"))
    assert dashboards
    for path in dashboards:
        dashboard = json.loads(path.read_text())
        used = {
            t["datasource"]["uid"]
            for p in dashboard["panels"]
            for t in [p, *p.get("targets", [])]
            if "datasource" in t
        }
        assert used <= set(uids), f"{path.name}: unknown data source uid {used - set(uids)}"


def test_dashboard_queries_logship_metrics_that_prometheus_scrapes() -> None:
    dashboard = json.loads((GRAFANA / "dashboards" / "logship.json").read_text())
    exprs = [
        t["expr"]
        for p in dashboard["panels"]
        for t in p.get("targets", [])
        if t["datasource"]["uid"] == "prometheus"
    ]
    assert exprs
    from logship.metrics import CATALOGUE

    # Counters are exposed with the Prometheus `_total` suffix (docs/metrics.md).
    counters = {f"{m.name}_total" for m in CATALOGUE if m.kind == "counter"}
    for expr in exprs:
        metrics = re.findall(r"\b([a-z_]+_total)\b", expr)
        assert metrics and all(m in counters for m in metrics), (expr, sorted(counters))
    prometheus = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    (job,) = (j for j in prometheus["scrape_configs"] if j["job_name"] == "logship")
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == [f"logship:{HEALTH_PORT}"]


# --------------------------------------------------------------------------------------------
# configs/
# --------------------------------------------------------------------------------------------

CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


def check_config(path: Path) -> subprocess.CompletedProcess[str]:
    # Only variables without a default need a value; clear LOGSHIP_ overrides of the caller.
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGSHIP_")}
    return subprocess.run(
        [sys.executable, "-m", "logship", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=ROOT,
    )


def test_there_is_an_example_per_common_setup() -> None:
    names = {p.name for p in CONFIGS}
    assert {"sidecar-loki.yaml", "local-stdout.yaml"} <= names
    assert {"sidecar-elasticsearch.yaml", "sidecar-otlp.yaml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_example_config_passes_check_config(path: Path) -> None:
    r = check_config(path)
    assert r.returncode == 0, r.stderr
    assert f"{path}: OK" in r.stderr


def test_check_config_rejects_a_broken_example(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        (ROOT / "configs" / "sidecar-loki.yaml").read_text().replace("type: loki", "type: lokki")
    )
    r = check_config(broken)
    assert r.returncode == 2
    assert "lokki" in r.stderr
