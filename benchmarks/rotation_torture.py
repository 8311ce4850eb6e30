"""Rotation torture: a fast writer rotating by rename while ``logship tail`` follows the live name.

What it does (defaults in brackets, all options shorten it):

* A writer process appends unique numbered lines to ``app.log`` at ``--rate`` lines/s [20,000]
  in 10 ms bursts, and every ``--rotate-every`` seconds [2] renames ``app.log`` to
  ``app.log.<n>`` and reopens a new ``app.log``, like a RotatingFileHandler; rotated files are
  kept. It runs for ``--duration`` seconds [60].
* The real agent runs as a subprocess, exactly as a user would start it:
  ``logship tail --state-dir DIR --to loki:URL DIR/app.log`` (the live name only: rotated files
  must be read to their end through the open descriptor, or found beside it).
* The receiver is the tests' fake Loki (``tests/fakes/loki.py``), decoding every request with
  the protobuf runtime and cramjam; a hook counts each line by its sequence number and answers
  204 without storing, so a minute of lines costs a few MiB.
* After the writer ends, the harness waits (bounded, ``--settle`` s [120]) until every written
  line has arrived, stops the agent with SIGTERM and reports written, delivered (distinct),
  missing and duplicate deliveries. The exit status is 0 only when delivered == written and
  there are no duplicates (and the agent exited 0).

    python benchmarks/rotation_torture.py                  # the full minute
    python benchmarks/rotation_torture.py --duration 6 --rate 2000 --rotate-every 1
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from fakes.loki import FakeLoki, IncomingRequest, Reply, decode_push  # noqa: E402

PREFIX = "torture seq="


def writer(
    path: str, rate: int, rotate_every: float, duration: float, written: Any, rotations: Any
) -> None:
    """Append numbered lines in 10 ms bursts; rename-rotate on schedule; count what was written."""
    seq = 0
    n_rot = 0
    pad = "x" * 60
    f = open(path, "ab", buffering=0)  # noqa: SIM115 - reopened on every rotation
    start = time.monotonic()
    next_rotation = start + rotate_every
    tick = 0.01
    try:
        while True:
            now = time.monotonic()
            if now - start >= duration:
                break
            if now >= next_rotation:
                f.close()
                n_rot += 1
                os.rename(path, f"{path}.{n_rot}")
                f = open(path, "ab", buffering=0)  # noqa: SIM115
                next_rotation += rotate_every
            # As many lines as the schedule says by now: the rate holds even when a burst is late.
            due = int((now - start) * rate)
            if due > seq:
                lines = [f"{PREFIX}{i:010d} {pad}\n" for i in range(seq, due)]
                f.write("".join(lines).encode())
                seq = due
            time.sleep(tick)
    finally:
        f.close()
        written.value = seq
        rotations.value = n_rot


class Counter:
    """Counts deliveries per sequence number; unknown lines are counted as such."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen = bytearray()
        self.deliveries = 0
        self.distinct = 0
        self.duplicates = 0
        self.unknown = 0
        self.errors = 0

    def hook(self, req: IncomingRequest) -> Reply:
        try:
            streams = decode_push(
                req.body, req.headers.get("content-type"), req.headers.get("content-encoding")
            )
        except ValueError as e:
            self.errors += 1
            return Reply(400, str(e))
        with self.lock:
            for _labels, entries in streams:
                for _ts, line in entries:
                    self.deliveries += 1
                    if not line.startswith(PREFIX):
                        self.unknown += 1
                        continue
                    i = int(line[len(PREFIX) : len(PREFIX) + 10])
                    if i >= len(self.seen):
                        self.seen.extend(bytes(i + 1 - len(self.seen) + 65536))
                    if self.seen[i]:
                        self.duplicates += 1
                    else:
                        self.seen[i] = 1
                        self.distinct += 1
        return Reply(204)


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="logship-torture-"))
    log = work / "logs" / "app.log"
    log.parent.mkdir()
    log.touch()
    state = work / "state"
    counter = Counter()
    result: dict[str, Any] = {
        "duration_s": args.duration,
        "rate": args.rate,
        "rotate_every_s": args.rotate_every,
    }
    with FakeLoki(hook=counter.hook) as loki:
        err_path = work / "agent.err"
        with open(err_path, "wb") as err:
            cmd = [
                *args.logship,
                "tail",
                "--log-level",
                "info",
                "--state-dir",
                str(state),
                "--to",
                f"loki:{loki.url}",
                str(log),
            ]
            env = {**os.environ, "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}
            agent = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env)
            try:
                _wait(lambda: b"agent started" in err_path.read_bytes(), 60, "agent start")
                written, rotations = mp.Value("q", 0), mp.Value("q", 0)
                w = mp.Process(
                    target=writer,
                    args=(
                        str(log),
                        args.rate,
                        args.rotate_every,
                        args.duration,
                        written,
                        rotations,
                    ),
                )
                t0 = time.monotonic()
                w.start()
                w.join(args.duration + 60)
                if w.is_alive():
                    w.kill()
                    raise SystemExit("writer did not finish")
                result["written"] = written.value
                result["rotations"] = rotations.value
                result["writer_s"] = round(time.monotonic() - t0, 2)
                settled = _wait(
                    lambda: counter.distinct >= written.value or agent.poll() is not None,
                    args.settle,
                    "delivery",
                    fail=False,
                )
                result["settle_s"] = round(time.monotonic() - t0 - result["writer_s"], 2)
                result["settled"] = settled
            finally:
                if agent.poll() is None:
                    agent.send_signal(signal.SIGTERM)
                    try:
                        agent.wait(60)
                    except subprocess.TimeoutExpired:
                        agent.kill()
                        agent.wait()
        result["agent_exit"] = agent.returncode
    with counter.lock:
        result["delivered"] = counter.distinct
        result["deliveries"] = counter.deliveries
        result["duplicates"] = counter.duplicates
        result["unknown"] = counter.unknown
        result["missing"] = result["written"] - counter.distinct
    result["ok"] = (
        result["missing"] == 0
        and result["duplicates"] == 0
        and result["unknown"] == 0
        and counter.errors == 0
        and result["agent_exit"] == 0
    )
    if not result["ok"]:
        tail = err_path.read_text(errors="replace").splitlines()[-20:]
        result["agent_log_tail"] = tail
        result["work_dir"] = str(work)
    else:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return result


def _wait(pred: Any, timeout: float, what: str, fail: bool = True) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    if fail:
        raise SystemExit(f"timed out after {timeout}s waiting for {what}")
    return False


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=60.0, help="writer run time, s [60]")
    p.add_argument("--rate", type=int, default=20_000, help="lines per second [20000]")
    p.add_argument("--rotate-every", type=float, default=2.0, help="rename period, s [2]")
    p.add_argument("--settle", type=float, default=120.0, help="bound on the final wait, s")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument(
        "--logship",
        nargs="+",
        default=[sys.executable, "-m", "logship"],
        help="how to start the agent [python -m logship]",
    )
    args = p.parse_args(argv)
    r = run(args)
    if args.json:
        print(json.dumps(r))
    else:
        print(
            f"rotation torture: {r['written']:,} lines written at {args.rate:,}/s for "
            f"{args.duration:g} s, {r['rotations']} rename rotations every {args.rotate_every:g} s"
        )
        print(
            f"  delivered {r['delivered']:,} distinct, missing {r['missing']:,}, "
            f"duplicates {r['duplicates']:,}, unknown {r['unknown']:,}; "
            f"all delivered {r['settle_s']} s after the writer stopped; "
            f"agent exit {r['agent_exit']}"
        )
        print("  OK" if r["ok"] else f"  FAILED: {json.dumps(r, indent=1)}")
    return 0 if r["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
