"""The driver's resident memory over a sweep: at the start of the trials, at the end, its peak,
and the growth per member trial, so that what a sweep of thousands of trials costs the driver
is on record (summary.json and the parent run) rather than only in a benchmark."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass


def resident_mb() -> float | None:
    """This process's resident memory now, in MB (None where /proc does not tell)."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mb() -> float | None:
    """This process's peak resident memory so far (its high-water mark), in MB."""
    try:
        import resource
    except ImportError:  # not on Unix
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes there, KB here


def release_freed(collect: bool = True) -> bool:
    """Collect garbage (with ``collect``) and hand the heap's free pages back to the OS
    (glibc's malloc_trim): the many small objects of thousands of trials leave memory free but
    mapped, which the ensemble stage's large arrays would stack on; False where the C library
    has no malloc_trim."""
    if collect:
        gc.collect()
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, looked up once (find_library runs ldconfig); None without it."""
    name = ctypes.util.find_library("c") if sys.platform.startswith("linux") else None
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return None


@dataclass(frozen=True)
class MemoryWatch:
    """Resident memory when the trials start; ``report`` compares the end with it."""

    start_mb: float | None

    @classmethod
    def start(cls) -> MemoryWatch:
        return cls(resident_mb())

    def report(self, trials: int) -> dict[str, float | int]:
        """Start, end and peak in MB and the growth per trial in KB (over ``trials`` trials);
        what this platform cannot tell is left out."""
        end, peak = resident_mb(), peak_mb()
        out: dict[str, float | int] = {"trials": trials}
        if peak is not None:
            out["peak_rss_mb"] = round(max(peak, end or 0.0), 1)
        if self.start_mb is not None and end is not None:
            out["rss_start_mb"] = round(self.start_mb, 1)
            out["rss_end_mb"] = round(end, 1)
            if trials:
                out["rss_growth_kb_per_trial"] = round(1024 * (end - self.start_mb) / trials, 1)
        return out
