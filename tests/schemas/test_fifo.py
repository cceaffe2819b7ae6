"""schemas/fifo.py FifoSemaphore: threads enter in the order they asked (the chDB session's
statements, the API's queries), and a waiter that gives up (an exception while waiting) does
not block the ones after it."""
from __future__ import annotations

import threading
import time

import pytest

from schemas.fifo import FifoSemaphore


def _waiting(lock: FifoSemaphore, n: int) -> None:
    """Until n tickets are out (no timing: the ticket counter says a thread is queued)."""
    while lock._next < n:
        time.sleep(0.001)


@pytest.mark.parametrize("slots", [1, 2, 3])
def test_threads_enter_in_the_order_they_asked(slots):
    """`slots` holders; then 8 threads queue, each after the one before: each holder's release
    admits the oldest waiter (the holders go first, in their order too)."""
    lock, order = FifoSemaphore(slots), []
    for _ in range(slots):
        lock.__enter__()

    def take(i: int) -> None:
        with lock:
            order.append(i)
    threads = []
    for i in range(8):
        threads.append(threading.Thread(target=take, args=(i,)))
        threads[-1].start()
        _waiting(lock, slots + i + 1)
    for _ in range(slots):
        lock.__exit__(None, None, None)
    for t in threads:
        t.join(10)
    assert sorted(order) == list(range(8)) and lock._admitted == lock._next + slots
    if slots == 1:
        assert order == list(range(8))


def test_a_waiter_that_gives_up_does_not_block_the_next():
    lock, done = FifoSemaphore(), threading.Event()
    lock.__enter__()                                    # ticket 0
    wait = lock._cond.wait
    lock._cond.wait = lambda *a: (_ for _ in ()).throw(KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        lock.__enter__()                                # ticket 1: interrupted while waiting
    lock._cond.wait = wait

    def take() -> None:
        with lock:                                      # ticket 2
            done.set()
    t = threading.Thread(target=take)
    t.start()
    _waiting(lock, 3)
    lock.__exit__(None, None, None)
    t.join(10)
    assert done.is_set() and lock._admitted == lock._next + 1 == 4
