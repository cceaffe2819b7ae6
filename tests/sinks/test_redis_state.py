"""Redis live state: key layout, TTLs, late windows, and Redis going away."""
from __future__ import annotations

import redis

from flows.config import WindowConfig
from sinks.redis_state import RedisState
from tests.conftest import _free_ports
from tests.flows.test_window import batch, feed, flush
from flows.window import ShardState


def _results():
    cfg = WindowConfig(window_s=10, lateness_s=0, shards=2)
    states, mergers = [ShardState(i, cfg) for i in range(2)], {}
    out = feed(states, mergers, cfg, batch([1, 2, 3], src_last=7))
    out += feed(states, mergers, cfg, batch([12, 13], src_last=9))
    out += flush(states, mergers)
    return out


def test_windows_latest_and_ttl(local_stack):
    _, ports, _ = local_stack
    url = f"127.0.0.1:{ports['redis']}"
    w0, w1 = _results()
    st = RedisState(url, "unit", top_n=10, ttl_s=120)
    st.write([w1])
    st.write([w0])                      # an older window arriving later does not move "latest" back
    r = redis.Redis(host="127.0.0.1", port=ports["redis"], decode_responses=True)
    p = "ns:unit:"
    assert int(r.hget(p + "latest", "window_start_ms")) == w1.start // 1_000_000
    assert int(r.hget(p + "latest", "packets")) == 2
    assert int(r.hget(f"{p}window:{w0.start // 1_000_000}", "packets")) == 3
    assert r.zrange(p + "talkers", 0, -1) == ["0.0.0.9"]
    assert r.zcard(p + "windows") == 2
    for key in (p + "latest", p + "talkers", p + "hosts", f"{p}window:{w0.start // 1_000_000}"):
        assert 0 < r.ttl(key) <= 120
    assert st.written == 2 and st.dropped == 0


def test_redis_away_is_counted_not_raised():
    st = RedisState(f"127.0.0.1:{_free_ports(1)[0]}", "gone", retries=1)
    st.write(_results())
    assert st.written == 0 and st.dropped == 2
