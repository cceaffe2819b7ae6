"""Answers kept until the data changes: many viewers of one dashboard ask the same questions.

A query over an hour of flow records costs 15-30 ms of both cores on chDB, so 20 clients
refreshing the same panels would queue behind each other (55 requests/s, p99 420 ms on this
machine when chDB took one statement at a time; ~200 with parallel sessions). The answer only
changes when the data does: the cache keys an answer by (method, request) and by the store's
write version, and concurrent callers of the same key wait for one computation instead of
repeating it.

Only a store whose every write passes through this process has a version (chDB: the API owns
its directory). A ClickHouse server is fed by engines elsewhere, so its answers are never cached.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future
from typing import Callable, Optional, TypeVar

T = TypeVar("T")

MAX_ENTRIES = 512


class ResultCache:
    def __init__(self, version: Callable[[], Optional[int]], max_entries: int = MAX_ENTRIES):
        self._version = version
        self._max = max_entries
        self._done: OrderedDict = OrderedDict()     # key -> answer, least recently used first
        self._running: dict = {}                    # key -> Future of the computation under way
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: tuple, compute: Callable[[], T]) -> T:
        version = self._version()
        if version is None or not self._max:
            return compute()
        key = (version, *key)
        with self._lock:
            if key in self._done:
                self.hits += 1
                self._done.move_to_end(key)
                return self._done[key]
            running = self._running.get(key)
            if running is None:
                self.misses += 1
                running = self._running[key] = Future()
                mine = True
            else:
                self.hits += 1
                mine = False
        if not mine:
            return running.result()
        try:
            answer = compute()
        except BaseException as e:
            with self._lock:
                self._running.pop(key, None)
            running.set_exception(e)
            raise
        with self._lock:
            self._running.pop(key, None)
            if self._version() == version:          # no write while computing: the answer is current
                self._done[key] = answer
                while len(self._done) > self._max:
                    self._done.popitem(last=False)
        running.set_result(answer)
        return answer
