"""The command line: ``logship tail``, ``logship run``, ``logship check-config``.

Heavy imports happen inside the commands, so ``--help`` is instant and the
benchmark's CPU-seconds measure the pipeline, not the import of unused modules.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

SAMPLE_LOG = Path(__file__).parent / "samples" / "app.log"


def _parse_to(values: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    sinks: dict[str, dict[str, Any]] = {}
    for i, spec in enumerate(values or ("stdout",)):
        kind, _, url = spec.partition(":")
        kind = kind.strip().lower()
        name = kind if kind not in sinks else f"{kind}{i}"
        if kind == "stdout":
            sinks[name] = {"type": "stdout"}
        elif kind in ("loki", "otlp", "elasticsearch"):
            if not url:
                raise click.BadParameter(f"{spec!r}: expected {kind}:URL", param_hint="--to")
            sinks[name] = {"type": kind, "url": url}
        else:
            raise click.BadParameter(
                f"{spec!r}: unknown sink type {kind!r}; expected stdout, loki:URL, "
                "elasticsearch:URL or otlp:URL",
                param_hint="--to",
            )
    return sinks


def _parse_labels(values: tuple[str, ...]) -> dict[str, str]:
    labels = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r}: expected KEY=VALUE", param_hint="--label")
        labels[key.strip()] = value
    return labels


def _parse_multiline(spec: str | None) -> dict[str, Any] | None:
    """``java``/``python``/``go``, or ``MODE:REGEX`` with MODE start, continue or end."""
    if spec is None:
        return None
    mode, sep, pattern = spec.partition(":")
    if not sep:
        return {"preset": spec}
    if mode not in ("start", "continue", "end"):
        raise click.BadParameter(
            f"{spec!r}: expected java, python, go or start|continue|end:REGEX",
            param_hint="--multiline",
        )
    return {"mode": mode, "pattern": pattern}


# The names of logship.parsing.formats.FORMATS, spelled out so that --help imports nothing.
FORMAT_NAMES = [
    "auto",
    "json",
    "logfmt",
    "regex",
    "syslog",
    "nginx",
    "apache",
    "raw",
    "cri",
    "docker",
]


def _source_flags(
    fmt: str | None, regex: str | None, labels: tuple[str, ...], multiline: str | None
) -> dict[str, Any]:
    """A source's parsing settings from the flags ``tail`` and ``parse`` share."""
    source: dict[str, Any] = {
        "format": fmt or ("regex" if regex is not None else "auto"),
        "labels": _parse_labels(labels),
    }
    if regex is not None:
        source["regex"] = regex
    ml = _parse_multiline(multiline)
    if ml is not None:
        source["multiline"] = ml
    return source


def _run_agent(
    cfg: Any,
    once: bool,
    config_path: Path | None = None,
    adjust: Any = None,
    status: bool = False,
) -> None:
    """Run to the end; with a config file (and not ``--once``), SIGHUP reloads it."""
    import asyncio

    from logship.agent import Agent

    try:
        import uvloop  # type: ignore[import-not-found]

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    agent: Any
    if config_path is not None and not once:
        from logship.reload import Supervisor

        _started()
        agent = Supervisor(cfg, config_path, adjust=adjust)
    else:
        _started()
        agent = Agent(cfg, once=once)
    metrics = endpoints = None
    if cfg.http.listen is not None or cfg.otlp_metrics is not None:
        # Only now: metrics pull in the OpenTelemetry SDK and prometheus_client.
        from logship.http_server import Endpoints
        from logship.metrics import AgentMetrics, MetricsSetupError

        try:
            metrics = AgentMetrics(agent, cfg.otlp_metrics)
        except MetricsSetupError as e:
            click.echo(f"logship: {e}", err=True)
            sys.exit(2)
        if cfg.http.listen is not None:
            try:
                endpoints = Endpoints(cfg.http, agent, metrics)
            except OSError as e:
                metrics.shutdown()
                click.echo(f"logship: http.listen {cfg.http.listen}: {e.strerror or e}", err=True)
                sys.exit(2)

    async def main() -> Any:
        if not status:
            return await agent.run()
        from logship.status import show

        line = asyncio.create_task(show(agent), name="status line")
        try:
            return await agent.run()
        finally:
            line.cancel()
            await asyncio.gather(line, return_exceptions=True)

    try:
        result = runner(main())
    finally:
        if endpoints is not None:
            endpoints.close()
        if metrics is not None:
            metrics.shutdown()  # a last OTLP push of the final counts
    if result.exit_code != 0:
        click.echo(f"logship: {result.reason}", err=True)
    _exit_now(result.exit_code)


def _started() -> None:
    """Start-up is over: turn garbage collection back on (``logship/__main__.py`` turned it off).

    What the imports and the config allocated lives as long as the process; frozen, it is left
    out of every later collection. Frozen before any agent exists, so that nothing a reload
    replaces is kept.
    """
    import gc

    from logship.heap import keep_heap_slack

    gc.freeze()
    gc.enable()
    keep_heap_slack()


def _exit_now(code: int) -> None:
    """Exit without tearing the interpreter down: the agent has stopped its threads and
    saved (and fsynced) its checkpoints, so what is left is freeing caches and modules,
    ~0.08 G instructions that buy nothing. Output streams are flushed first."""
    import logging

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said there
            code = code or 1
    os._exit(code)


def _config_error(err: Exception) -> None:
    click.echo(str(err), err=True)
    sys.exit(2)


def _with_http_listen(cfg: Any, listen: str | None) -> Any:
    """``--http-listen`` overrides the file's ``http.listen``, validated like it."""
    if listen is None:
        return cfg
    from pydantic import ValidationError

    from logship.config import ConfigError
    from logship.config.loader import format_validation_error

    try:
        http = type(cfg.http)(**{**cfg.http.model_dump(), "listen": listen})
    except ValidationError as e:
        problems = [p.replace("listen:", "http.listen:", 1) for p in format_validation_error(e)]
        _config_error(ConfigError("--http-listen", problems))
    return cfg.model_copy(update={"http": http})


HTTP_LISTEN_HELP = "Serve /metrics, /healthz and /ready on HOST:PORT (e.g. 127.0.0.1:8686)."


F = TypeVar("F", bound=Callable[..., Any])


def _log_level_option(default: str) -> Callable[[F], F]:
    """The agent's own log level, the same choice for every command."""
    return click.option(
        "--log-level",
        default=default,
        show_default=True,
        type=click.Choice(["debug", "info", "warning", "error"]),
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="logship")
def main() -> None:
    """logship: tail log files, normalize each line, ship batches without losing a line."""


@main.command()
@click.argument("paths", nargs=-1)
@click.option(
    "--to",
    "to",
    multiple=True,
    metavar="SINK",
    help="stdout (default), loki:URL, elasticsearch:URL or otlp:URL (base URLs). Repeat to "
    "fan out to several sinks.",
)
@click.option(
    "--from-beginning",
    is_flag=True,
    help="Read files present at start from their beginning (default: their end).",
)
@click.option(
    "--once",
    is_flag=True,
    help="Read every file to its current end, deliver everything, then exit.",
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep checkpoints here so the next run continues where this one stopped.",
)
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="A static label.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMAT_NAMES),
    default=None,
    help="How lines are parsed [default: auto, or regex with --regex]; cri and docker read "
    "container runtime log files.",
)
@click.option(
    "--regex",
    metavar="PATTERN",
    help="Parse lines with this pattern; its named groups (?P<name>...) become fields.",
)
@click.option(
    "--multiline",
    metavar="PRESET|MODE:REGEX",
    help="Group lines into records: java, python, go, or start|continue|end:REGEX.",
)
@click.option("--http-listen", metavar="HOST:PORT", help=HTTP_LISTEN_HELP)
@click.option(
    "--status/--no-status",
    default=None,
    help="A live status line on stderr (default: when stderr is a terminal and records are "
    "shipped, not printed).",
)
@_log_level_option("warning")
def tail(
    paths: tuple[str, ...],
    to: tuple[str, ...],
    from_beginning: bool,
    once: bool,
    state_dir: Path | None,
    labels: tuple[str, ...],
    fmt: str | None,
    regex: str | None,
    http_listen: str | None,
    status: bool | None,
    multiline: str | None,
    log_level: str,
) -> None:
    """Follow PATH_OR_GLOB files like tail -F and print or ship normalized records.

    With no paths, prints the records of a bundled sample log and exits.
    """
    from logship.config import ConfigError, build_config
    from logship.logs import setup_logging

    setup_logging(log_level)
    if not paths:
        paths = (str(SAMPLE_LOG),)
        from_beginning = once = True
    sinks = _parse_to(to)
    data: dict[str, Any] = {
        "sources": {
            "tail": {
                **_source_flags(fmt, regex, labels, multiline),
                "include": [str(Path(p).expanduser()) for p in paths],
                "start_at": "beginning" if from_beginning else "end",
            }
        },
        "sinks": sinks,
    }
    if state_dir is not None:
        data["checkpoint_dir"] = str(state_dir)
    if http_listen is not None:
        data["http"] = {"listen": http_listen}
    if once:
        # Bounded patience: --once must end, with an error when a sink stays down.
        for s in sinks.values():
            if s["type"] != "stdout":
                s.setdefault("retry", {"max_attempts": 8})
                s.setdefault("batch", {"linger": 0.05})
    try:
        cfg = build_config(data, "command line")
    except ConfigError as e:
        _config_error(e)
    if status is None:
        from logship.status import wanted

        status = wanted([s["type"] for s in sinks.values()])
    _run_agent(cfg, once, status=status)


@main.command()
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="YAML config file.",
)
@click.option("--once", is_flag=True, help="Read to the current end, deliver, exit.")
@click.option(
    "--http-listen", metavar="HOST:PORT", help=HTTP_LISTEN_HELP + " Overrides http.listen."
)
@_log_level_option("info")
def run(config_path: Path, once: bool, http_listen: str | None, log_level: str) -> None:
    """Run the agent from a config file (what the sidecar container runs)."""
    from logship.config import ConfigError, load_config
    from logship.logs import setup_logging

    setup_logging(log_level)
    try:
        cfg = load_config(config_path)
    except ConfigError as e:
        _config_error(e)

    def adjust(c: Any) -> Any:  # flags override every config a reload reads, too
        return _with_http_listen(c, http_listen)

    _run_agent(adjust(cfg), once, config_path, adjust)


@main.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMAT_NAMES),
    default=None,
    help="How lines are parsed [default: auto, or regex with --regex].",
)
@click.option("--regex", metavar="PATTERN", help="Parse with this pattern's named groups.")
@click.option(
    "--multiline",
    metavar="PRESET|MODE:REGEX",
    help="Group lines into records: java, python, go, or start|continue|end:REGEX.",
)
@click.option(
    "--redact",
    "redact",
    multiple=True,
    metavar="RULE",
    help="Redact secrets: all, or a built-in rule (bearer, url_password, aws_access_key, "
    "aws_secret_key, card_number, email). Repeatable.",
)
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="A static label.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Use a source of this config file (format, multiline, transforms) instead of flags.",
)
@click.option("--source", "source_name", metavar="NAME", help="The source of --config to use.")
@click.option(
    "--path",
    default="-",
    show_default=True,
    help="The file name the lines are from, as records show it (a /var/log/pods/... path also "
    "gives the pod labels).",
)
@_log_level_option("warning")
def parse(
    fmt: str | None,
    regex: str | None,
    multiline: str | None,
    redact: tuple[str, ...],
    labels: tuple[str, ...],
    config_path: Path | None,
    source_name: str | None,
    path: str,
    log_level: str,
) -> None:
    """Read lines on stdin and print the records they become, as JSON lines.

    The same framing (container partial lines, multiline), parsing and transforms as
    tailing: what it prints is what would be shipped.
    """
    from logship.config import ConfigError, build_config, load_config
    from logship.logs import setup_logging
    from logship.preview import SOURCE, Preview

    setup_logging(log_level)
    try:
        if config_path is not None:
            if fmt or regex or multiline or redact or labels:
                raise click.UsageError(
                    "--config takes the source's settings; leave out --format, --regex, "
                    "--multiline, --redact and --label"
                )
            cfg = load_config(config_path)
            names = list(cfg.sources)
            if source_name is None and len(names) == 1:
                source_name = names[0]
            if source_name not in cfg.sources:
                raise click.BadParameter(
                    f"{source_name!r}: expected one of {', '.join(names)}", param_hint="--source"
                )
        else:
            source = {**_source_flags(fmt, regex, labels, multiline), "include": ["/dev/stdin"]}
            if redact:
                rules = [r for r in redact if r != "all"]
                source["transforms"] = [
                    {"type": "redact", **({} if "all" in redact else {"rules": rules})}
                ]
            data = {"sources": {SOURCE: source}, "sinks": {"stdout": {"type": "stdout"}}}
            cfg = build_config(data, "command line")
            source_name = SOURCE
    except ConfigError as e:
        _config_error(e)
    assert source_name is not None
    _started()
    preview = Preview(cfg, source_name, sys.stdout.buffer, path)
    try:
        stats = preview.run(sys.stdin.buffer)
    except BrokenPipeError:  # | head: the reader has what it wanted
        _exit_now(0)
    tel = preview.telemetry.sources.get(source_name)
    malformed = tel.malformed if tel is not None else 0
    if sys.stderr.isatty() or malformed:
        click.echo(
            f"logship parse: {stats.lines:,} lines, {stats.records:,} records, "
            f"{malformed:,} malformed (kept as raw text)",
            err=True,
        )
    _exit_now(0)


@main.command("check-config")
@click.argument("config_path", type=click.Path(dir_okay=False, path_type=Path))
def check_config(config_path: Path) -> None:
    """Validate a config file and print the effective config with secrets masked."""
    import yaml

    from logship.config import ConfigError, effective_config, load_config

    try:
        cfg = load_config(config_path)
    except ConfigError as e:
        _config_error(e)
    click.echo(yaml.safe_dump(effective_config(cfg), sort_keys=False).rstrip())
    click.echo(f"# {config_path}: OK", err=True)
