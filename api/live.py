"""What the live console shows: a source's newest window and the windows before it, from Redis
(what the engine wrote a moment ago: schemas/redis_keys.py) or, when the API has no Redis, from
the store's history (the same answer, `live: false`). And the change feed: one event per window
written, from Redis pub/sub (LIVE_CHANNEL), so nothing polls keys.
"""
from __future__ import annotations

import json

from api import models as m
from api.queries import address
from schemas.clickhouse import DATABASE
from collectors.protocols import PROTOCOL_NAMES
from schemas.redis_keys import LIVE_CHANNEL, prefix

TOP_N = 10
_SERIES_FIELDS = ("seconds", "packets", "bytes", "flows", "late_packets")


def redis_series(r, source: str, last_ms: int) -> list[m.WindowPoint]:
    p = prefix(source)
    newest = r.zrevrange(f"{p}windows", 0, 0, withscores=True)
    if not newest:
        return []
    starts = [int(x) for x in r.zrangebyscore(f"{p}windows", newest[0][1] - last_ms, "+inf")]
    pipe = r.pipeline(transaction=False)
    for s in starts:
        pipe.hmget(f"{p}window:{s}", _SERIES_FIELDS)
    out = []
    for s, vals in zip(starts, pipe.execute()):
        if vals[1] is not None:        # expired since the index was read
            sec, pk, by, fl, late = vals
            out.append(m.WindowPoint(start_ms=s, seconds=float(sec or 0), packets=int(pk), bytes=int(by),
                                     flows=int(fl), late_packets=int(late or 0)))
    return out


def read_latest(r, source: str, n: int) -> tuple[dict, list, list]:
    """A source's newest window in Redis (its hash), and its top `n` talkers and flows, in one
    consistent view (a transaction: the engine replaces them in one MULTI/EXEC)."""
    p = prefix(source)
    pipe = r.pipeline(transaction=True)
    pipe.hgetall(f"{p}latest")
    if n:
        pipe.zrevrange(f"{p}talkers", 0, n - 1, withscores=True)
        pipe.zrevrange(f"{p}flows", 0, n - 1, withscores=True)
    latest, *tops = pipe.execute()
    talkers, flows = tops or ([], [])
    return latest, talkers, flows


def redis_window(r, source: str) -> m.LiveWindowResponse | None:
    latest, talkers, flows = read_latest(r, source, TOP_N)
    if not latest:
        return None
    d = json.loads(latest.get("detail") or "{}")
    return m.LiveWindowResponse(
        source=source, live=True, window_start_ms=int(latest["window_start_ms"]), seconds=float(d.get("seconds", 0)),
        packets=int(latest.get("packets", 0)), bytes=int(latest.get("bytes", 0)), flows=int(latest.get("flows", 0)),
        hosts=int(latest.get("hosts", 0)), frames=int(latest.get("frames", 0)),
        late_packets=int(latest.get("late_packets", 0)), complete=latest.get("complete", "1") == "1",
        talkers=[m.Ranked(key=k, value=v) for k, v in talkers], flows_top=[m.Ranked(key=k, value=v) for k, v in flows],
        protocols=[m.ProtocolShare(proto=p, name=n, packets=pk, bytes=by) for p, n, pk, by in d.get("protocols", [])],
        ports=[m.PortShare(port=n, packets=pk, bytes=by) for n, pk, by in d.get("ports", [])[:TOP_N]],
        spreaders=[m.Ranked(key=a, value=v) for a, v in d.get("spreaders", [])[:TOP_N]],
        fan_in=[m.Ranked(key=a, value=v) for a, v in d.get("fan_in", [])[:TOP_N]],
        status={k: int(v) for k, v in d.get("status", {}).items()})


def events(r, alive, timeout_s: float = 1.0):
    """{"source", "window_start_ms"} per window written, or None each `timeout_s` without one."""
    sub = r.pubsub(ignore_subscribe_messages=True)
    sub.subscribe(LIVE_CHANNEL)
    try:
        while alive():
            msg = sub.get_message(timeout=timeout_s)
            yield json.loads(msg["data"]) if msg and msg["type"] == "message" else None
    finally:
        sub.close()


# ---- the same from the store (no Redis) ------------------------------------------------------------
def store_sources(rows) -> list[str]:
    return [s for (s,) in rows(f"SELECT DISTINCT source FROM {DATABASE}.window_totals ORDER BY source", {})]


def _newest(rows, d, source: str) -> int | None:
    got = rows(f"SELECT {d.ms('max(window_start)')}, count() FROM {DATABASE}.window_totals "
               f"WHERE source = {{s:String}}", {"s": source})
    return int(got[0][0]) if got and got[0][1] else None


def store_series(rows, d, source: str, last_ms: int) -> list[m.WindowPoint]:
    newest = _newest(rows, d, source)
    if newest is None:
        return []
    params = {"s": source}
    since = d.time_param(newest - last_ms, params, "t0", up=True)
    got = rows(f"SELECT {d.window_ms()} AS w, max(window_seconds), sum(packets), sum(bytes), sum(flows), "
               f"sum(late_packets) FROM {DATABASE}.window_totals FINAL WHERE source = {{s:String}} "
               f"AND window_start >= {since} GROUP BY w ORDER BY w", params)
    return [m.WindowPoint(start_ms=int(w), seconds=float(sec), packets=int(pk), bytes=int(by), flows=int(fl),
                          late_packets=int(late)) for w, sec, pk, by, fl, late in got]


def store_window(rows, d, source: str) -> m.LiveWindowResponse | None:
    newest = _newest(rows, d, source)
    if newest is None:
        return None
    params = {"s": source}
    at = f"source = {{s:String}} AND window_start = {d.time_param(newest, params, 'w', up=False)}"
    (sec, frames, pk, by, fl, late, complete), = rows(
        f"SELECT max(window_seconds), sum(frames), sum(packets), sum(bytes), sum(flows), sum(late_packets), "
        f"min(complete) FROM {DATABASE}.window_totals FINAL WHERE {at}", params)
    talkers = rows(f"SELECT {d.addr_text('src')} AS a, sum(bytes) AS b FROM {DATABASE}.flows FINAL WHERE {at} "
                   f"GROUP BY src ORDER BY b DESC, a LIMIT {TOP_N}", params)
    flows = rows(f"SELECT {d.addr_text('src')}, sport, {d.addr_text('dst')}, dport, proto, sum(bytes) AS b "
                 f"FROM {DATABASE}.flows FINAL WHERE {at} GROUP BY src, sport, dst, dport, proto "
                 f"ORDER BY b DESC LIMIT {TOP_N}", params)
    counters = rows(f"SELECT kind, name, sum(packets), sum(bytes) FROM {DATABASE}.window_counters FINAL "
                    f"WHERE {at} GROUP BY kind, name ORDER BY kind, sum(bytes) DESC, name", params)
    spread = rows(f"SELECT kind, {d.addr_text('addr')}, max(estimate) AS e FROM {DATABASE}.spreaders FINAL "
                  f"WHERE {at} GROUP BY kind, addr ORDER BY e DESC LIMIT {TOP_N} BY kind", params)
    return m.LiveWindowResponse(
        source=source, live=False, window_start_ms=newest, seconds=float(sec), packets=int(pk), bytes=int(by),
        flows=int(fl), hosts=0, frames=int(frames), late_packets=int(late), complete=bool(complete),
        talkers=[m.Ranked(key=address(a), value=b) for a, b in talkers],
        flows_top=[m.Ranked(key=f"{address(s)} {sp} {address(t)} {dp} {pr}", value=b) for s, sp, t, dp, pr, b in flows],
        protocols=[m.ProtocolShare(proto=int(n), name=PROTOCOL_NAMES.get(int(n), n), packets=int(p), bytes=int(b))
                   for k, n, p, b in counters if k == "protocol"],
        ports=[m.PortShare(port=n, packets=int(p), bytes=int(b)) for k, n, p, b in counters if k == "port"][:TOP_N],
        spreaders=[m.Ranked(key=address(a), value=e) for k, a, e in spread if k == "src_spread"],
        fan_in=[m.Ranked(key=address(a), value=e) for k, a, e in spread if k == "dst_fan_in"],
        status={n: int(p) for k, n, p, _b in counters if k == "status"})
