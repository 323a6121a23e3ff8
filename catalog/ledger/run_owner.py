"""Who runs a run outside Airflow, and whether that process is still there.

`exchange run` and `exchange approve` drive a run in their own process, `with owning():`; every
`Ledger.start_run` inside records this process as the run's owner: host, pid, and the pid's
start (Linux: the boot id and the start time in clock ticks from /proc, so a reboot or a pid
reused by another process does not pass as the owner). Outside `owning()` (Airflow's tasks) the
owner is cleared: Airflow's failure callback answers for those runs. A run whose owner on this
host is gone is failed by `Ledger.reap_orphans` (`exchange status`, `exchange runs`, the next
start of the source). An owner on another host is left to that host's commands.
"""
from __future__ import annotations

import contextlib
import os
import socket
from contextvars import ContextVar
from pathlib import Path

_OWNING: ContextVar[bool] = ContextVar("owning_runs", default=False)


def _start_of(pid: int) -> str:
    """'<boot id>:<start time in ticks>' of a live pid; '' where /proc cannot tell."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        stat = Path(f"/proc/{pid}/stat").read_text()
        return f"{boot}:{stat.rsplit(')', 1)[1].split()[19]}"    # field 22, after "(comm)"
    except (OSError, IndexError):
        return ""


def this_process() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "start": _start_of(os.getpid())}


@contextlib.contextmanager
def owning():
    """Runs started or restarted in this block are owned by this process."""
    token = _OWNING.set(True)
    try:
        yield
    finally:
        _OWNING.reset(token)


def current() -> dict | None:
    """The owner to record on a run started now: this process inside `owning()`, else None."""
    return this_process() if _OWNING.get() else None


def gone(owner: dict) -> bool | None:
    """True if the owner process no longer exists (or its pid now belongs to another process);
    False if it is alive; None if it ran on another host (nothing to tell from here)."""
    if owner["host"] != socket.gethostname():
        return None
    try:
        os.kill(owner["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:          # alive, another user's: only the start time can tell
        pass
    now = _start_of(owner["pid"])
    return bool(owner.get("start")) and bool(now) and now != owner["start"]
