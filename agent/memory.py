"""Process memory: what the agent holds, and keeping it small on boards with little RAM.

glibc raises its mmap threshold dynamically (up to 32 MB on 64-bit) once a
large block is freed; from then on large buffers (ONNX Runtime's
session-creation temporaries, full-resolution float frames in the prober)
come from the heap and stay resident after they are freed. Pinning the
threshold makes such buffers mmapped and returned to the kernel on free. On
the demo model this cut resident memory after model load by about 20 MB and
the run's peak by about 8 MB (benchmarks/overhead.py measures it).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import resource
import sys

#: mallopt parameter numbers from glibc's malloc.h
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: blocks above this are mmapped (glibc's own starting value, kept fixed instead of growing)
MMAP_THRESHOLD = 128 * 1024

_tuned = False


def tune_malloc() -> bool:
    """Pin glibc's mmap/trim thresholds; True when applied (False on musl, macOS, Windows)."""
    global _tuned
    if _tuned:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, 2 * MMAP_THRESHOLD))
    _tuned = ok
    return ok


def current_rss_mb() -> float:
    """Resident memory now (not the peak), from /proc/self/statm; falls back to the peak elsewhere."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            pages = int(f.read().split()[1])
        return pages * resource.getpagesize() / 2**20
    except (OSError, ValueError, IndexError):
        return peak_rss_mb()


def peak_rss_mb() -> float:
    """Peak resident memory of this process, from VmHWM.

    ``getrusage``'s ``ru_maxrss`` survives ``exec``: a process started by a
    big parent (a test runner, a benchmark) reports the parent's peak, which
    once made the agent look 70 MB heavier than it was. VmHWM belongs to the
    process's own address space.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
