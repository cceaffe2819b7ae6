"""The answer cache (api/cache.py): one computation for concurrent askers, nothing kept across a
write, nothing cached for a store written elsewhere. Invalidation on the real chDB store is
checked by the API tests that delete and ingest (tests/api/test_http_contract.py)."""
from __future__ import annotations

import threading

import pytest

from api.cache import ResultCache


class Counter:
    def __init__(self):
        self.calls = 0

    def __call__(self, value="answer"):
        self.calls += 1
        return value


def test_same_question_same_version_computed_once():
    version = [1]
    cache, compute = ResultCache(lambda: version[0]), Counter()
    assert [cache.get(("m", "q"), compute) for _ in range(5)] == ["answer"] * 5
    assert compute.calls == 1 and (cache.hits, cache.misses) == (4, 1)
    assert cache.get(("m", "other"), compute) == "answer" and compute.calls == 2
    version[0] = 2                          # a write: every answer is computed again
    cache.get(("m", "q"), compute)
    assert compute.calls == 3


def test_concurrent_askers_wait_for_one_computation():
    cache, release, started = ResultCache(lambda: 0), threading.Event(), threading.Event()
    calls = []

    def slow():
        calls.append(1)
        started.set()
        release.wait(10)
        return "slow answer"

    out = []
    threads = [threading.Thread(target=lambda: out.append(cache.get(("k",), slow))) for _ in range(8)]
    threads[0].start()
    started.wait(10)
    for t in threads[1:]:
        t.start()
    release.set()
    for t in threads:
        t.join(10)
    assert out == ["slow answer"] * 8 and len(calls) == 1


def test_an_answer_computed_across_a_write_is_not_kept():
    version = [1]
    cache = ResultCache(lambda: version[0])

    def racing():
        version[0] += 1                      # the data changed while this answer was being computed
        return "maybe stale"

    assert cache.get(("k",), racing) == "maybe stale"
    compute = Counter()
    cache.get(("k",), compute)
    cache.get(("k",), compute)
    assert compute.calls == 1                # the second computation was kept, the first was not


def test_errors_are_not_cached_and_reach_every_waiter():
    cache = ResultCache(lambda: 0)

    def fail():
        raise ValueError("bad query")

    with pytest.raises(ValueError):
        cache.get(("k",), fail)
    assert cache.get(("k",), Counter()) == "answer"


def test_bounded_and_off_switches():
    cache, compute = ResultCache(lambda: 0, max_entries=3), Counter()
    for i in range(5):
        cache.get((i,), compute)
    cache.get((0,), compute)                  # evicted (least recently used): computed again
    assert compute.calls == 6 and len(cache._done) == 3
    for cache in (ResultCache(lambda: None), ResultCache(lambda: 0, max_entries=0)):
        compute = Counter()
        cache.get(("k",), compute)
        cache.get(("k",), compute)
        assert compute.calls == 2            # a store written elsewhere, or the cache turned off
