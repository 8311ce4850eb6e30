"""Durable checkpoints: one small JSON file, replaced atomically (DESIGN rule 2).

Written as temp file, fsync, rename, fsync of the folder, so a crash at any
instant leaves either the old or the new complete file. Only the ack tracker's
committed offsets are written here; nothing else decides what is delivered.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

FORMAT_VERSION = 1
FILE_NAME = "checkpoints.json"
log = logging.getLogger("logship.checkpoints")

# Checkpoints of files not seen for this long are forgotten (the file is gone).
FORGET_AFTER_S = 7 * 24 * 3600


@dataclass
class Checkpoint:
    path: str
    offset: int
    fingerprint: str
    partial: bool = False
    updated: float = 0.0
    # Fingerprints of content this identity had before it was truncated: a copytruncate
    # copy starts with those bytes, and must not be taken for a rotated file to read.
    previous: tuple[str, ...] = ()


class CheckpointStore:
    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self.entries: dict[str, Checkpoint] = {}
        self.saves = 0
        # When a previous run last saved (the file's mtime), None on a first run. A file the
        # previous run did not know and that changed since then is new, not "present at start".
        self.saved_at: float | None = None
        # When the previous run last scanned for files before that save. A file that came
        # (a rotation) or changed after its last scan was not seen by it, even if it changed
        # before the save (a stop can take a drain timeout): what a start looks at anew.
        self.scanned_at: float | None = None
        # The watched names (path -> source) the previous run's scans found: a name with no
        # file now was rotated away while nobody looked, and its rotated files lie beside it
        # (even when no checkpoint knows the name: a file made and rotated between scans).
        self.watched: dict[str, str] = {}
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            self._load()

    @property
    def path(self) -> Path | None:
        return None if self.directory is None else self.directory / FILE_NAME

    def _load(self) -> None:
        path = self.path
        assert path is not None
        try:
            raw = path.read_bytes()
            saved_at = path.stat().st_mtime
        except FileNotFoundError:
            return
        try:
            data = orjson.loads(raw)
            if data.get("version") != FORMAT_VERSION:
                raise ValueError(f"unsupported checkpoint version {data.get('version')!r}")
            for key, e in data["files"].items():
                self.entries[key] = Checkpoint(
                    path=e["path"],
                    offset=int(e["offset"]),
                    fingerprint=e["fingerprint"],
                    partial=bool(e.get("partial", False)),
                    updated=float(e.get("updated", 0.0)),
                    previous=tuple(e.get("previous", ())),
                )
            self.saved_at = saved_at
            scanned = data.get("scanned_at")
            self.scanned_at = float(scanned) if scanned is not None else None
            self.watched = {str(k): str(v) for k, v in data.get("watched", {}).items()}
        except (ValueError, KeyError, TypeError, orjson.JSONDecodeError) as e:
            # Never start from a guess silently: keep the bad file for inspection.
            bad = path.with_suffix(f".corrupt-{int(time.time())}")
            os.replace(path, bad)
            log.error("checkpoint file %s unreadable (%s); moved to %s", path, e, bad)
            self.entries.clear()

    @property
    def unseen_since(self) -> float | None:
        """Since when the previous run may have missed files: its last scan before its last
        save (the save itself when the file does not say); None on a first run."""
        if self.saved_at is None:
            return None
        if self.scanned_at is None:
            return self.saved_at
        return min(self.saved_at, self.scanned_at)

    def get(self, key: str) -> Checkpoint | None:
        return self.entries.get(key)

    def update(self, key: str, cp: Checkpoint) -> None:
        self.entries[key] = cp

    def forget(self, key: str) -> None:
        self.entries.pop(key, None)

    def save(self) -> None:
        path = self.path
        if path is None:
            return
        now = time.time()
        files: dict[str, Any] = {}
        for key, e in list(self.entries.items()):
            if now - e.updated > FORGET_AFTER_S:
                del self.entries[key]
                continue
            files[key] = {
                "path": e.path,
                "offset": e.offset,
                "fingerprint": e.fingerprint,
                "partial": e.partial,
                "updated": e.updated,
            }
            if e.previous:
                files[key]["previous"] = list(e.previous)
        doc: dict[str, Any] = {"version": FORMAT_VERSION, "files": files}
        if self.scanned_at is not None:
            doc["scanned_at"] = self.scanned_at
        if self.watched:
            doc["watched"] = self.watched
        body = orjson.dumps(doc, option=orjson.OPT_INDENT_2)
        tmp = path.with_name(f".{FILE_NAME}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, body)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        self.saves += 1
