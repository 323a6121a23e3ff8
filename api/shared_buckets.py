"""Token buckets shared by the worker processes of one `exchange serve --workers N`: a small
file that every worker maps into memory, each update under an exclusive flock, so that a
department's rate limit holds for the server as a whole, not once per worker.

A slot is (16-byte BLAKE2b of the key, tokens, time of the last take); a key's slot is found by
linear probing from its hash. A slot whose bucket would have refilled completely is as good as
empty and is reused, so the table does not fill up with stale keys; if every probed slot is
live, the one idle longest is taken over (that key's bucket starts full again)."""
from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import struct
from pathlib import Path

SLOT = struct.Struct("16sdd")
SLOTS = 4096
PROBES = 64
EMPTY = bytes(16)


def create(path: Path) -> Path:
    """A zeroed table file (the parent process makes it before the workers start)."""
    with open(path, "wb") as f:
        f.truncate(SLOT.size * SLOTS)
    return path


class SharedBuckets:
    def __init__(self, path: str | os.PathLike):
        self._fd = os.open(path, os.O_RDWR)
        self._map = mmap.mmap(self._fd, SLOT.size * SLOTS)

    def exchange(self, key: str, now: float, refill_s: float, update):
        """Under the lock: `update(tokens, last)` (None, None for a new key) returns
        ((tokens, last) to store, result); the result is returned."""
        digest = hashlib.blake2b(key.encode(), digest_size=16).digest()
        start = int.from_bytes(digest[:8], "little") % SLOTS
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            at, tokens, last = self._slot(digest, start, now, refill_s)
            (tokens, last), result = update(tokens, last)
            SLOT.pack_into(self._map, at, digest, tokens, last)
            return result
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _slot(self, digest: bytes, start: int, now: float, refill_s: float):
        """(offset, tokens, last) of the key's slot, or (offset of a slot to take, None, None)."""
        free = oldest = None
        for i in range(PROBES):
            at = (start + i) % SLOTS * SLOT.size
            h, tokens, last = SLOT.unpack_from(self._map, at)
            if h == digest:
                return at, tokens, last
            if h == EMPTY or now - last >= refill_s:
                free = at if free is None else free
                if h == EMPTY:
                    break
            elif oldest is None or last < oldest[1]:
                oldest = (at, last)
        return (free if free is not None else oldest[0]), None, None
