"""``logship parse``: stdin through a source's framing, parsing and transforms, records out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def parse(*args: str, stdin: bytes) -> tuple[int, list[dict[str, Any]], str]:
    r = subprocess.run(
        [sys.executable, "-m", "logship", "parse", *args],
        input=stdin,
        capture_output=True,
        timeout=60,
    )
    records = [json.loads(line) for line in r.stdout.splitlines()]
    return r.returncode, records, r.stderr.decode()


def test_json_lines_with_redaction() -> None:
    line = {
        "ts": "2026-11-29T10:00:00.5Z",
        "level": "WARNING",
        "msg": "paid with 4111 1111 1111 1111",
    }
    code, recs, _ = parse(
        "--redact", "card_number", stdin=(json.dumps(line) + "\nplain ERROR here\n").encode()
    )
    assert code == 0
    first, second = recs
    assert first["timestamp"] == "2026-11-29T10:00:00.500000000Z"
    assert first["level"] == "warn" and first["severity_number"] == 13
    assert first["message"] == "paid with [REDACTED]"
    assert "4111" not in json.dumps(first)
    assert second["message"] == "plain ERROR here" and second["level"] == "error"
    assert second["source"] == {"path": "-", "offset": len(json.dumps(line)) + 1}


def test_cri_partials_and_multiline_like_tailing() -> None:
    cri = (
        b'2026-11-29T10:00:00.1Z stdout P Exception in thread "main" java.lang.Illegal\n'
        b"2026-11-29T10:00:00.1Z stdout F StateException: boom\n"
        b"2026-11-29T10:00:00.2Z stdout F \tat com.example.App.run(App.java:10)\n"
        b"2026-11-29T10:00:00.2Z stderr F unrelated stderr line\n"
        b"2026-11-29T10:00:00.3Z stdout F next record\n"
    )
    path = "/var/log/pods/shop_web-1_0123/app/0.log"
    code, recs, _ = parse("--format", "cri", "--multiline", "java", "--path", path, stdin=cri)
    assert code == 0
    by_message = {r["message"]: r for r in recs}
    trace = by_message[
        'Exception in thread "main" java.lang.IllegalStateException: boom\n'
        "\tat com.example.App.run(App.java:10)"
    ]
    assert trace["timestamp"] == "2026-11-29T10:00:00.100000000Z"
    assert trace["labels"] == {
        "namespace": "shop",
        "pod": "web-1",
        "container": "app",
        "stream": "stdout",
    }
    assert trace["attributes"]["pod_uid"] == "0123"
    assert by_message["unrelated stderr line"]["labels"]["stream"] == "stderr"
    assert "next record" in by_message  # flushed at the end of input, not lost
    assert len(recs) == 3


def test_a_source_of_a_config_file(tmp_path: Path) -> None:
    cfg = tmp_path / "logship.yaml"
    cfg.write_text(
        """
sources:
  app:
    include: ["/var/log/app/*.log"]
    format: logfmt
    labels: {team: a}
    transforms:
      - {type: drop, level: [debug]}
sinks:
  out: {type: stdout}
"""
    )
    lines = b'level=debug msg="noise"\nlevel=info msg="kept" user=ann\n'
    code, recs, _ = parse("--config", str(cfg), stdin=lines)
    assert code == 0
    (rec,) = recs
    assert (
        rec["message"] == "kept"
        and rec["fields"]["user"] == "ann"
        and rec["labels"] == {"team": "a"}
    )


def test_config_and_flags_do_not_mix(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("sources: {a: {include: [x]}}\nsinks: {o: {type: stdout}}\n")
    code, _, err = parse("--config", str(cfg), "--format", "json", stdin=b"")
    assert code == 2 and "--config takes the source's settings" in err


def test_bad_flags_name_the_problem() -> None:
    code, _, err = parse("--format", "regex", "--regex", "(unclosed", stdin=b"x\n")
    assert code == 2 and "regex" in err


def test_garbage_is_kept_and_counted_never_a_crash() -> None:
    junk = os.urandom(20_000) + b'\n{"broken": \n\xff\xfe\n'
    code, recs, err = parse("--format", "json", stdin=junk)
    assert code == 0
    assert recs and all(r.get("malformed") for r in recs)
    assert "malformed" in err
    assert sum(1 for _ in recs) == junk.count(b"\n")  # one record per line, none dropped
