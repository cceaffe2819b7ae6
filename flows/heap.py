"""Giving the heap's free pages back to the system: glibc's malloc_trim, every few seconds.

Why: a window's arrays (a million flow records: tens of MB each) come from glibc's arenas, not
from mmap, once its dynamic mmap threshold has risen to its ceiling (32 MB), which the first
windows do. Freed, their pages stay in the arena, cut up by the smaller blocks allocated since,
and the engine's resident memory grew with every window: +400-700 MB over 7 minutes of a flood
soak with roll-ups (bench/bench_soak.py), while what it held stayed near 1 GB (mallinfo2).
malloc_trim(0) hands the whole free pages inside every arena back (madvise), not only the top of
the heap: that growth goes. (An engine that falls behind holds more in flight; docs/live.md, Soak.)
It takes 3-280 ms a call there and holds each arena's lock meanwhile: a few seconds apart, not
after every allocation.

Elsewhere than glibc (musl, macOS) there is no malloc_trim: `HeapTrimmer.start` does nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import threading
import time

from flows.defaults import HEAP_TRIM_S


def _malloc_trim():
    """glibc's malloc_trim, or None where the C library has none."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


class HeapTrimmer:
    """A daemon thread that calls malloc_trim(0) every `every_s` seconds until stop()."""

    def __init__(self, every_s: float = HEAP_TRIM_S, on_trim=None):
        self.every_s, self.on_trim = every_s, on_trim      # on_trim(seconds the call took)
        self.trim = _malloc_trim()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def trim_now(self) -> float:
        """One malloc_trim(0); the seconds it took."""
        t = time.perf_counter()
        self.trim(0)
        took = time.perf_counter() - t
        if self.on_trim is not None:
            self.on_trim(took)
        return took

    def start(self) -> bool:
        """Whether it runs (not without malloc_trim, nor with every_s <= 0)."""
        if self.trim is None or self.every_s <= 0:
            return False
        self._thread = threading.Thread(target=self._loop, name="heap-trim", daemon=True)
        self._thread.start()
        return True

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            self.trim_now()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
