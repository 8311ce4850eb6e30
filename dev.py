#!/usr/bin/env python3
"""One command for working on logship: ``python3 dev.py demo | test | bench``.

It needs nothing but Python 3.11+ (standard library only), so a fresh clone works with one
command: the first run creates ``.venv`` and installs the project with its dev extras; later runs
skip the install while ``pyproject.toml`` is unchanged (a stamp file named after its SHA-256 hash),
so they start immediately. It works from any directory: paths are relative to this file.

    python3 dev.py demo [ARGS...]      logship tail ARGS (no ARGS: print the bundled sample log)
    python3 dev.py test [PYTEST ARGS]  ruff check, ruff format --check, mypy, pytest
    python3 dev.py bench [ARGS...]     benchmarks/run.py ARGS (see: dev.py bench --help)
    python3 dev.py lock [UV ARGS]      regenerate requirements.lock and requirements-build.lock
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP_PREFIX = ".installed-"


def say(message: str) -> None:
    """Progress goes to stderr, so ``dev.py demo``'s stdout is only the agent's output."""
    print(f"dev.py: {message}", file=sys.stderr, flush=True)


def run(argv: Sequence[str | Path]) -> int:
    """Run a command from the repo root with the venv first on PATH; return its exit code."""
    env = dict(os.environ)
    env["VIRTUAL_ENV"] = str(VENV)
    env["PATH"] = str(BIN) + os.pathsep + env.get("PATH", "")
    env.pop("PYTHONHOME", None)
    return subprocess.call([str(a) for a in argv], cwd=ROOT, env=env)


def check(argv: Sequence[str | Path], what: str) -> None:
    """Run a setup command; stop dev.py with its exit code if it fails."""
    code = run(argv)
    if code != 0:
        say(f"{what} failed (exit {code})")
        raise SystemExit(code)


def ensure_venv() -> None:
    """Create ``.venv`` if missing and install ``-e .[dev]`` unless this pyproject is installed.

    The stamp is written only after a successful install, so an interrupted or failed install is
    retried next time; a changed pyproject.toml (new dependency) triggers a reinstall.
    """
    if not PYTHON.exists():
        version = sys.version.split()[0]
        say(f"creating {VENV.relative_to(ROOT)} with {sys.executable} (Python {version})")
        check([sys.executable, "-m", "venv", VENV], "creating the virtualenv")
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    stamp = VENV / f"{STAMP_PREFIX}{digest}"
    if stamp.exists():
        return
    say("upgrading pip")
    check([PYTHON, "-m", "pip", "install", "--quiet", "--upgrade", "pip"], "upgrading pip")
    say("installing logship and its dev dependencies: pip install -e '.[dev]'")
    check([PYTHON, "-m", "pip", "install", "-e", ".[dev]"], "pip install -e '.[dev]'")
    for old in VENV.glob(f"{STAMP_PREFIX}*"):
        old.unlink()
    stamp.write_text("pip install -e '.[dev]' succeeded for this pyproject.toml hash\n")
    say(f"dependencies installed (stamp {stamp.relative_to(ROOT)})")


def cmd_demo(args: list[str]) -> int:
    """``logship tail ARGS``; with no ARGS it prints the records of the bundled sample log."""
    ensure_venv()
    return run([BIN / "logship", "tail", *args])


def cmd_test(args: list[str]) -> int:
    """Lint, format check, type check, then tests; stop at the first failing step.

    The cheap static checks go first so a typo fails in seconds, not after the test suite.
    """
    ensure_venv()
    steps: list[tuple[str, list[str | Path]]] = [
        ("ruff check .", [BIN / "ruff", "check", "."]),
        ("ruff format --check .", [BIN / "ruff", "format", "--check", "."]),
        ("mypy", [BIN / "mypy"]),
        (
            " ".join(["python -m pytest", *args]),
            [PYTHON, "-m", "pytest", *args],
        ),
    ]
    for i, (title, argv) in enumerate(steps, 1):
        print(f"\n=== [{i}/{len(steps)}] {title} ===", flush=True)
        code = run(argv)
        if code != 0:
            print(f"\n=== FAILED: {title} (exit {code}) ===", flush=True)
            return code
    print("\n=== all checks passed ===", flush=True)
    return 0


def cmd_bench(args: list[str]) -> int:
    """``benchmarks/run.py ARGS`` with the venv's Python, so it measures the venv's logship."""
    ensure_venv()
    return run([PYTHON, ROOT / "benchmarks" / "run.py", *args])


# The container image runs this Python; the locks are resolved for it on every platform.
LOCK_PYTHON = "3.11"


def cmd_lock(args: list[str]) -> int:
    """Pin, with hashes, what the container image installs: the runtime dependencies from
    pyproject.toml (``requirements.lock``) and the build backend from its ``[build-system]``
    (``requirements-build.lock``). Existing pins are kept unless ``--upgrade`` is passed, so a
    lock changes only when pyproject.toml does; tests/test_deploy_artifacts.py checks they agree.
    """
    ensure_venv()
    common: list[str | Path] = [
        BIN / "uv",
        "pip",
        "compile",
        "--quiet",
        "--universal",
        "--python-version",
        LOCK_PYTHON,
        "--generate-hashes",
        "--custom-compile-command",
        "python3 dev.py lock",
        *args,
    ]
    code = run([*common, "pyproject.toml", "-o", "requirements.lock"])
    if code != 0:
        return code
    build_requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]
    build_in = VENV / "build-system-requires.in"
    build_in.write_text("".join(f"{r}\n" for r in build_requires["requires"]))
    return run([*common, build_in, "-o", "requirements-build.lock"])


COMMANDS: dict[str, tuple[Callable[[list[str]], int], str]] = {
    "demo": (cmd_demo, "run `logship tail ARGS` (no ARGS: print the bundled sample log)"),
    "test": (cmd_test, "ruff check, ruff format --check, mypy, then pytest with PYTEST ARGS"),
    "bench": (cmd_bench, "run benchmarks/run.py ARGS (try: dev.py bench --help)"),
    "lock": (cmd_lock, "regenerate the hash-pinned locks the container image installs"),
}


def build_parser() -> argparse.ArgumentParser:
    """Only for ``--help`` and errors: a command's ARGS are passed through untouched."""
    parser = argparse.ArgumentParser(
        prog="dev.py",
        description="Set up the venv on first use, then demo, test or benchmark logship.",
        epilog="Arguments after the command go to the underlying tool unchanged, "
        "e.g. `dev.py test -k rotation -x`, `dev.py bench --scenario loki --write`.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``COMMAND ARGS...``; ARGS are not parsed here, so options like ``-k`` pass on."""
    argv = sys.argv[1:] if argv is None else argv
    # This file parses on older Pythons precisely so that it can say this instead of a traceback.
    if sys.version_info < (3, 11):  # noqa: UP036
        say(f"Python 3.11+ is required, this is {sys.version.split()[0]}")
        return 2
    if argv and argv[0] in COMMANDS:
        try:
            return COMMANDS[argv[0]][0](argv[1:])
        except KeyboardInterrupt:
            return 130
    build_parser().parse_args(argv)  # prints help, or an error for an unknown command
    return 2


if __name__ == "__main__":
    sys.exit(main())
