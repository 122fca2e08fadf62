"""Keep freed NumPy buffers in the heap instead of returning them to the OS.

Every forward and backward pass allocates dozens of short-lived arrays of
0.1-10 MB. glibc serves blocks that large with a fresh ``mmap`` and trims the
heap back after each ``free``, so each new array pays a page fault per 4 kB
page it touches. On the development machine that made a BatchNorm forward pass
20x slower than its arithmetic (1 ms instead of 50 us). Raising the two
thresholds below lets glibc reuse the same memory pass after pass; the cost is
that the process keeps its peak heap (tens of MB here) until it exits.

This is process-wide tuning, so the library never applies it on import: the
programs that own their process do (``python -m minireptile`` and its worker
processes), only on Linux with glibc; set MINIREPTILE_NO_MALLOPT=1 to leave the
allocator alone there too. A notebook or script may call ``tune_malloc()`` itself.
"""
import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def tune_malloc(mmap_threshold=32 << 20, trim_threshold=512 << 20):
    """Raise glibc's mmap and trim thresholds; returns True if both were set."""
    if not sys.platform.startswith("linux") or os.environ.get("MINIREPTILE_NO_MALLOPT"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):          # musl and other C libraries have no mallopt
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(
        mallopt(_M_TRIM_THRESHOLD, trim_threshold))
