"""A semaphore that admits threads in the order they asked. threading.Lock and Semaphore are
not fair: under load a thread can lose the race again and again, and a request's latency then
depends on luck (bench_api, 20 clients: p99 262 ms with a Lock around the chDB session,
208-237 with this)."""
from __future__ import annotations

import threading


class FifoSemaphore:
    def __init__(self, slots: int = 1):
        self._cond = threading.Condition(threading.Lock())
        self._next = 0                      # the next ticket handed out
        self._admitted = slots              # tickets below this one may enter
        self._gave_up: set[int] = set()     # tickets whose thread stopped waiting (an exception)

    def __enter__(self):
        with self._cond:
            ticket, self._next = self._next, self._next + 1
            try:
                while ticket >= self._admitted:
                    self._cond.wait()
            except BaseException:           # interrupted while waiting: its turn must not block the others
                if ticket < self._admitted:
                    self._release()         # admitted meanwhile: give the slot back
                else:
                    self._gave_up.add(ticket)
                raise

    def __exit__(self, *exc):
        with self._cond:
            self._release()

    def _release(self) -> None:
        self._admitted += 1
        while self._admitted - 1 in self._gave_up:      # that ticket will not come: the next one may
            self._gave_up.remove(self._admitted - 1)
            self._admitted += 1
        self._cond.notify_all()
