"""Process memory from /proc: VmHWM is the peak since exec (ru_maxrss would count a forking
parent's peak: a benchmark child spawned after the silo was generated reported its size)."""
from __future__ import annotations


def rss_mb(field: str = "VmRSS:") -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_mb() -> float:
    return rss_mb("VmHWM:")


def reset_peak() -> bool:
    """Start VmHWM again from the current RSS (Linux: clear_refs 5), so a stage's own peak can
    be read; False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False
