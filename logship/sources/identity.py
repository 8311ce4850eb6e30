"""File identity: device + inode, confirmed by a fingerprint of the first bytes (DESIGN rule 2).

Inodes are reused as soon as a file is deleted, and a file recreated under the
same name is a different file; the fingerprint tells those apart from "the same
file, grown", which is what a checkpoint may be resumed on.
"""

from __future__ import annotations

import hashlib
import os

FINGERPRINT_BYTES = 1024


def identity_key(source: str, st: os.stat_result) -> str:
    return f"{source}:{st.st_dev}:{st.st_ino}"


def fingerprint(fd: int, limit: int = FINGERPRINT_BYTES) -> str:
    """``<length>:<sha256 prefix>`` of the first ``limit`` bytes (fewer while the file is short)."""
    head = os.pread(fd, limit, 0)
    return f"{len(head)}:{hashlib.sha256(head).hexdigest()[:32]}"


def fingerprint_matches(fd: int, stored: str, offset: int = 0) -> bool:
    """True when the file still starts with the bytes the stored fingerprint saw.

    With ``offset`` (a checkpoint's), the fingerprint must also have seen what a tailer had
    read by then: a tailer takes it again while it has read past it, so it covers at least
    the offset's first :data:`FINGERPRINT_BYTES`. A checkpoint that does not (an offset
    saved with the fingerprint of an empty file matches every file) is not trusted: the
    file is read from its start, a duplicate at worst.
    """
    try:
        length = int(stored.split(":", 1)[0])
    except ValueError:
        return False
    if length < min(offset, FINGERPRINT_BYTES):
        return False
    head = os.pread(fd, length, 0)
    if len(head) < length:
        return False
    return f"{length}:{hashlib.sha256(head).hexdigest()[:32]}" == stored
