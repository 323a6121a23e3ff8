"""Scratch directories that a killed process cannot leave behind for good.

`Scratch.make(near, prefix)` makes a directory and holds an exclusive lock (flock) on a file in
it for as long as the Scratch is open; the kernel drops the lock when its process dies, however
it dies. Each new Scratch first sweeps the directories with the same prefix whose lock nobody
holds and that are older than GRACE seconds (a directory is locked within microseconds of its
making; the grace covers that moment)."""
from __future__ import annotations

import fcntl
import logging
import os
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger("exchange.catalog")
LOCK = ".lock"
GRACE = 60.0


class Scratch:
    def __init__(self, path: Path, fd: int):
        self.path, self._fd = path, fd

    @classmethod
    def make(cls, near: Path | None, prefix: str) -> Scratch:
        base = Path(near) if near is not None else Path(tempfile.gettempdir())
        sweep(base, prefix)
        path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
        fd = os.open(path / LOCK, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return cls(path, fd)

    def remove(self) -> None:
        if self._fd is None:
            return
        shutil.rmtree(self.path, ignore_errors=True)
        os.close(self._fd)        # the lock goes last: no sweeper takes a directory still in use
        self._fd = None


def fs_now(base: Path) -> float:
    """Now on the clock that stamps files in `base`: ages are file time against file time, so a
    network share's clock (or this host's, moved) never makes a live directory look old."""
    with tempfile.NamedTemporaryFile(dir=base, prefix=".clock-") as probe:
        return os.fstat(probe.fileno()).st_mtime


def sweep(base: Path, prefix: str, grace: float = GRACE) -> list[Path]:
    """Remove `base/prefix*` directories left by processes that died; returns them."""
    gone, now = [], None
    for path in base.glob(f"{prefix}*"):
        try:
            now = fs_now(base) if now is None else now
            if not path.is_dir() or now - path.stat().st_mtime < grace:
                continue
            fd = os.open(path / LOCK, os.O_RDWR) if (path / LOCK).exists() else None
        except OSError:
            continue
        try:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)    # taken: its owner is alive
            shutil.rmtree(path, ignore_errors=True)
            gone.append(path)
            log.info("removed %s, left by a process that died", path)
        except BlockingIOError:
            pass
        finally:
            if fd is not None:
                os.close(fd)
    return gone
