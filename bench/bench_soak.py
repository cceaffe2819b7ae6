"""Soak: a live-like stream with a spoofed SYN flood in it, for minutes, through the whole pipeline
on this machine (collect -> Tansu -> engine as bench_pipeline runs it -> ClickHouse 18.16 + Redis).

The capture (generated: `--flood` of its packets are one-SYN flows from spoofed sources) is
replayed at `--rate` packets/s, stamped with the send time, looped for `--seconds`. Every
`--every` seconds the engines' resident and anonymous memory is sampled: after warm-up it must
stay flat (closed windows released; reported as each half's band and the slope). Also reported:
how long after its end each window was first written (the engine's lag). At the end: the
packets and bytes of all windows in ClickHouse equal what the collector published (nothing
lost, nothing twice; a retimed replay has no offline per-flow reference, so exactness is
checked on totals), Redis's per-window totals equal ClickHouse's, no window is incomplete and
no packet was dropped as late.

With --rollups the engines keep the roll-ups too (engine --rollups), and over the span each
level says it covers (rollup_marks) it must equal its base table: the flow levels' sums the
records', the sketch levels' rows what the sketch tables' windows give.

    python bench/bench_soak.py [--seconds 600] [--rate 200000] [--packets 2000000] [--flood 0.5] [--window 10]
                               [--rollups]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import bench_pipeline  # noqa: E402
from bench.bench_pipeline import collector, collector_report, start_engines, stop, warm_up  # noqa: E402
from bench.common import bench_capture  # noqa: E402
from stack import local as stack  # noqa: E402
from collectors.publish import ensure_topic  # noqa: E402


def memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, RssAnon) of a process, MB."""
    vals = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "RssAnon"):
                vals[k] = int(v.split()[0]) / 1024
    return vals.get("VmRSS", 0.0), vals.get("RssAnon", 0.0)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--rate", type=float, default=200_000)
    ap.add_argument("--packets", type=int, default=2_000_000)
    ap.add_argument("--flood", type=float, default=0.5, help="share of the capture that is the SYN flood")
    ap.add_argument("--window", type=float, default=10)
    ap.add_argument("--every", type=float, default=15, help="seconds between memory samples")
    ap.add_argument("--dir", default=str(ROOT / "bench" / "out"))
    ap.add_argument("--rollups", action="store_true", help="the engines keep the roll-ups too (engine --rollups)")
    args = ap.parse_args()
    if args.rollups:
        bench_pipeline.ENGINE_EXTRA.append("--rollups")
    from schemas.credentials import redis_client
    from schemas.credentials import clickhouse_client

    os.makedirs(args.dir, exist_ok=True)
    pcap = bench_capture(args.dir, args.packets, flood=args.flood)
    logdir = tempfile.mkdtemp(prefix="bench-soak-")
    d = Path(logdir) / "stack"
    ports = dict(zip(["kafka", "redis", "clickhouse", "clickhouse_http"], stack.free_ports(4)))
    stack.up(d, ports=ports)
    topic = "soak"
    curve = []
    try:
        boot = f"127.0.0.1:{ports['kafka']}"
        ensure_topic(boot, topic, 4)
        engines = start_engines(boot, topic, ports, args.window, logdir)
        try:
            warm_up(engines, boot, topic)
            loops = int(args.rate * args.seconds // args.packets) + 1
            col = collector(boot, topic, pcap, "--rate", str(args.rate), "--retime", "--loop", str(loops),
                            "--duration", str(args.seconds))
            t0 = time.monotonic()
            while col.poll() is None:
                time.sleep(args.every)
                mem = [memory_mb(p.pid) for p in engines]
                curve.append({"t_s": round(time.monotonic() - t0), "rss_mb": [round(m[0]) for m in mem],
                              "anon_mb": [round(m[1]) for m in mem]})
                print(json.dumps(curve[-1]), file=sys.stderr, flush=True)
            rep, _ = collector_report(col)
            sent_pk, sent_by = rep["decoded"]["ip_packets"], rep["decoded"]["ip_bytes"]
            ch = clickhouse_client(f"127.0.0.1:{ports['clickhouse']}")
            q = ("SELECT toUInt64(window_start), packets, bytes, late_packets, complete FROM netspectra.window_totals "
                 "FINAL WHERE source = %(s)s")
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                rows = ch.execute(q, {"s": topic})
                if sum(r[1] for r in rows) >= sent_pk:
                    break
                time.sleep(1)
            time.sleep(3)                                   # revisions and the Redis sink settle
            rows = ch.execute(q, {"s": topic})
        finally:
            stop(engines)
        r = redis_client(f"127.0.0.1:{ports['redis']}", decode_responses=True)
        in_redis = {int(ms) * 10**6: int(r.hget(f"ns:{topic}:window:{ms}", "packets") or -1)
                    for ms in r.zrange(f"ns:{topic}:windows", 0, -1)}
        ch_windows = {w * 10**9: pk for w, pk, *_ in rows}
        warm = [c for c in curve if c["t_s"] >= min(120, args.seconds / 3)]
        firsts = dict(ch.execute("SELECT toUInt64(window_start), toUInt64(min(inserted_at)) FROM netspectra.window_totals "
                                 "WHERE source = %(s)s GROUP BY window_start", {"s": topic}))
        lags = [firsts[w] - w - args.window for w, *_ in sorted(rows)]
        out = {"seconds": args.seconds, "rate_pps": args.rate, "flood_share": args.flood,
               "published_packets": sent_pk, "published_bytes": sent_by,
               "clickhouse_packets": sum(x[1] for x in rows), "clickhouse_bytes": sum(x[2] for x in rows),
               "windows": len(rows), "incomplete_windows": sum(1 for x in rows if not x[4]),
               "late_dropped_packets": sum(x[3] for x in rows),
               "redis_windows_equal_clickhouse": all(in_redis.get(w) == pk for w, pk in ch_windows.items()),
               "anon_mb_after_warmup": [memory_trend(warm, i) for i in range(len(engines))],
               "window_written_after_end_s": {"first": lags[:3], "last": lags[-3:], "max": max(lags, default=None)},
               "memory_curve": curve}
        out["exact_totals"] = (out["clickhouse_packets"], out["clickhouse_bytes"]) == (sent_pk, sent_by)
        if args.rollups:
            out["rollups"] = rollups_exact(ch, topic)
        print(json.dumps(out, indent=1))
        print(f"logs: {logdir}", file=sys.stderr)
    finally:
        stack.down(d)
    return 0


def memory_trend(samples: list[dict], engine: int) -> dict | None:
    """An engine's anonymous memory after warm-up: the band (lowest, highest) of each half and
    the least-squares slope. The engine's memory is a sawtooth (windows allocated, then freed
    and trimmed every few seconds): one sample against another says little, the band and the
    slope say whether it grows."""
    if len(samples) < 4:
        return None
    t = np.array([c["t_s"] for c in samples], float)
    mb = np.array([c["anon_mb"][engine] for c in samples], float)
    half = len(mb) // 2
    return {"first_half_mb": [int(mb[:half].min()), int(mb[:half].max())],
            "second_half_mb": [int(mb[half:].min()), int(mb[half:].max())],
            "slope_mb_per_min": round(float(np.polyfit(t, mb, 1)[0]) * 60, 1)}


def rollups_exact(ch, source: str) -> dict:
    """Per roll-up level: the span it covers (seconds) and whether it equals its base table there:
    a flow level's packets and bytes the records', a sketch level's rows what its table's windows
    give per bucket (estimates summed, the largest spread kept: schemas/clickhouse.py ROLLUP_VALUES)."""
    from schemas.clickhouse import ROLLUP_VALUES, ROLLUPS
    out = {}
    for level, r in ROLLUPS.items():
        span = ch.execute("SELECT toUInt32(since), toUInt32(until) FROM netspectra.rollup_marks FINAL "
                          "WHERE level = %(l)s AND source = %(s)s", {"l": level, "s": source})
        if not span:
            out[level] = {"covered_s": 0}
            continue
        a, b = span[0]
        where = "WHERE source = %(s)s AND window_start >= toDateTime(%(a)s) AND window_start < toDateTime(%(b)s)"
        p = {"s": source, "a": a, "b": b}
        if r.base == "flows":
            sums = [ch.execute(f"SELECT sum(packets), sum(bytes) FROM netspectra.{t} FINAL {where}", p)[0]
                    for t in (level, "flows")]
            out[level] = {"covered_s": b - a, "packets": int(sums[0][0] or 0), "exact": sums[0] == sums[1]}
            continue
        dims = ", ".join(r.dims)
        mine = ch.execute(f"SELECT toUInt32(window_start), {dims}, {', '.join(c for c, *_ in ROLLUP_VALUES[r.base])} "
                          f"FROM netspectra.{level} FINAL {where}", p)
        windows = ch.execute(f"SELECT intDiv(toUInt32(window_start), {r.res}) * {r.res} AS b, {dims}, "
                             f"{', '.join(agg for _c, _t, agg, _ in ROLLUP_VALUES[r.base])} FROM netspectra.{r.base} "
                             f"FINAL {where} GROUP BY b, {dims}", p)
        out[level] = {"covered_s": b - a, "rows": len(mine), "exact": sorted(mine) == sorted(windows)}
    return out


if __name__ == "__main__":
    sys.exit(main())
