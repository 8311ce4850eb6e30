"""Start-up: garbage collection is off while the command starts, and back on for the agent;
pydantic is asked for no plugins unless the environment says otherwise."""

from __future__ import annotations

import gc
import os
import subprocess
import sys

from logship.cli import _started


def test_the_command_module_turns_garbage_collection_off_while_starting() -> None:
    probe = "import gc, logship.__main__; print(gc.isenabled())"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"]


def test_pydantic_plugins_are_off_unless_the_environment_sets_the_variable() -> None:
    probe = "import os, logship.__main__; print(repr(os.environ['PYDANTIC_DISABLE_PLUGINS']))"
    env = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "'__all__'", out.stderr
    env["PYDANTIC_DISABLE_PLUGINS"] = ""
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "''", out.stderr


def test_started_freezes_what_start_up_allocated_and_turns_collection_back_on() -> None:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        _started()
        assert gc.isenabled()
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        if not was_enabled:
            gc.disable()
