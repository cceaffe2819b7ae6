"""Redis live state: key layout, TTLs, late windows, and Redis going away."""
from __future__ import annotations

from schemas.credentials import redis_client

from sinks.redis_state import RedisState
from tests.conftest import _free_ports
from tests.support import rows_of, window_results


def _results() -> list:
    return rows_of(window_results(), "unit", 10)


def test_windows_latest_and_ttl(local_stack):
    _, ports, _ = local_stack
    url = f"127.0.0.1:{ports['redis']}"
    w0, w1 = _results()
    st = RedisState(url, "unit", ttl_s=120)
    st.write([w1])
    st.write([w0])                      # an older window arriving later does not move "latest" back
    r = redis_client(f"127.0.0.1:{ports['redis']}", decode_responses=True)
    p = "ns:unit:"
    assert int(r.hget(p + "latest", "window_start_ms")) == w1.start // 1_000_000
    assert int(r.hget(p + "latest", "packets")) == 2
    assert int(r.hget(f"{p}window:{w0.start // 1_000_000}", "packets")) == 3
    assert r.zrange(p + "talkers", 0, -1) == ["0.0.0.9"]
    assert r.zcard(p + "windows") == 2
    for key in (p + "latest", p + "talkers", p + "hosts", f"{p}window:{w0.start // 1_000_000}"):
        assert 0 < r.ttl(key) <= 120
    assert st.written == 2 and st.dropped == 0


def test_windows_wait_for_redis_and_are_written_when_it_is_back(tmp_path):
    """Redis away: windows wait in a bounded backlog (the newest version of each), the oldest
    beyond it dropped and counted; once Redis is back the backlog is written with no further
    write (a stream may end during the outage)."""
    from prometheus_client import REGISTRY

    from schemas import metrics
    from stack import local as stack
    metrics.enable("engine")                           # the counts the engine's /metrics shows
    sample = lambda name: REGISTRY.get_sample_value(name, {"sink": "redis"}) or 0  # noqa: E731
    retries, dropped = sample("netspectra_sink_retries_total"), sample("netspectra_sink_dropped_total")
    port = _free_ports(1)[0]
    w0, w1 = _results()
    st = RedisState(f"127.0.0.1:{port}", "gone", max_backlog=1)
    st.write([w0])
    assert st.written == 0 and st.dropped == 0 and list(st.backlog) == [w0.start]
    st.write([w1])                                     # backlog of one: w0 dropped and counted
    assert st.dropped == 1 and list(st.backlog) == [w1.start]
    assert sample("netspectra_sink_dropped_total") == dropped + 1 and sample("netspectra_sink_retries_total") > retries
    d = tmp_path / "stack"
    stack.up(d, ports={"redis": port, "kafka": _free_ports(1)[0]}, clickhouse=False)
    try:
        from tests.support import wait_for
        wait_for(lambda: st.written == 1 and not st.backlog, 30, "the backlog to be written")
        r = redis_client(f"127.0.0.1:{port}", decode_responses=True)
        assert int(r.hget(f"ns:gone:window:{w1.start // 1_000_000}", "packets")) == w1.live.totals["packets"]
    finally:
        stack.down(d)
