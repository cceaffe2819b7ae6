"""flows/heap.py: freed window arrays go back to the system (the soak's memory, issue 11)."""
import json
import subprocess
import sys
import threading

import pytest

from flows.heap import HeapTrimmer

# In a fresh interpreter, the engine's case: one big array freed lifts glibc's mmap threshold,
# then window-sized arrays come from the heap, each followed by a small block that stays (a
# dict entry, a row); freed, the arrays' pages stay in the process until malloc_trim.
FRAGMENT = r"""
import json, sys
import numpy as np
from flows.heap import HeapTrimmer

def anon_mb():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon"):
            return int(line.split()[1]) / 1024

big = np.ones(30 << 20, np.uint8); del big
arrays, kept = [], []
for i in range(40):
    arrays.append(np.ones(8 << 20, np.uint8))
    kept.append(bytearray(4096))
held = anon_mb()
del arrays
freed = anon_mb()
HeapTrimmer().trim_now()
print(json.dumps({"held": held, "freed": freed, "trimmed": anon_mb()}))
"""


def test_freed_heap_pages_stay_until_trimmed_then_go_back():
    t = HeapTrimmer()
    if t.trim is None:
        pytest.skip("no glibc malloc_trim in this C library")
    out = subprocess.run([sys.executable, "-c", FRAGMENT], capture_output=True, text=True, check=True)
    mb = json.loads(out.stdout)
    assert mb["held"] > 300
    assert mb["freed"] > mb["held"] - 50, mb           # what the engine's memory did: freed, not returned
    assert mb["trimmed"] < mb["held"] - 250, mb        # returned by one trim


def test_trimmer_thread_calls_until_stopped():
    calls, twice = [], threading.Event()

    def seen(seconds):
        calls.append(seconds)
        if len(calls) >= 2:
            twice.set()

    t = HeapTrimmer(0.01, on_trim=seen)
    if t.trim is None:
        pytest.skip("no glibc malloc_trim in this C library")
    assert t.start()
    assert twice.wait(30)
    t.stop()
    n = len(calls)
    assert all(s >= 0 for s in calls)
    assert not t._thread.is_alive() and len(calls) == n


def test_trimmer_off():
    assert not HeapTrimmer(0).start()
