"""Process memory: what the agent holds, read from the kernel's own accounting.

The agent leaves glibc's allocator at its defaults. It once pinned the mmap
threshold at 128 KiB so that large freed buffers went back to the kernel;
that made every decoded frame and float temporary a fresh mmap (about 1,000
minor page faults a frame) and cost far more time than the few MB of peak RSS
it saved. ``benchmarks/overhead.py`` still measures the pinned setting (via
glibc's ``MALLOC_MMAP_THRESHOLD_`` tunable) next to the default, so the trade
stays visible.
"""

from __future__ import annotations

import resource


def current_rss_mb() -> float:
    """Resident memory now (not the peak), from /proc/self/statm; falls back to the peak elsewhere."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            pages = int(f.read().split()[1])
        return pages * resource.getpagesize() / 2**20
    except (OSError, ValueError, IndexError):
        return peak_rss_mb()


def peak_rss_mb(pid: int | None = None) -> float:
    """Peak resident memory of this process (or of ``pid``: the SDK reports its application's), from VmHWM.

    ``getrusage``'s ``ru_maxrss`` survives ``exec``: a process started by a
    big parent (a test runner, a benchmark) reports the parent's peak, which
    once made the agent look 70 MB heavier than it was. VmHWM belongs to the
    process's own address space.
    """
    try:
        with open(f"/proc/{pid or 'self'}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    if pid is not None:
        return 0.0  # another process we cannot read: unknown, not ours
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
