"""Per-stage cost of the engine's pure core, in one process, on attack-shaped and friendly traffic.

For each capture (generated: the 2M-packet IMIX mix, and the same with 90% of its packets a
spoofed SYN flood, one packet per flow) the stages run one after the other over all batches, as
the live engine runs them, and each is timed alone:

  decode      pcap -> PacketBatch (the collector's work, for scale)
  wire_out    PacketBatch -> Kafka message (collector)       wire_in  message -> PacketBatch (engine)
  split       exact per-batch flow rows, per shard
  shard       open windows: rows kept and re-aggregated      close    a window's partial: sketches
              (a shard's table of <= DEFER_SUMMARY_ROWS records is summarised at the merge instead)
  exchange    pickling chunks and partials (what crosses between engine processes)
  merge       per-window merge of the shards' partials (and the summaries of the small ones)
  sink_rows   result rows for ClickHouse (client-side encoding, numpy mode; no I/O)
  redis_rows  the Redis pipeline of a window (encoded, not sent)
  detect      the built-in detectors over each closed window, and the alert lifecycle

Printed per stage: µs per packet and per distinct flow (flow-windows). Then the per-window fixed
cost (a capture of 200 one-second windows of ~100 packets each: total time / windows), import
times of what `analyze` loads, and peak RSS.

    python bench/bench_engine.py [--packets 2000000] [--window 10]
"""
from __future__ import annotations

import argparse
import json
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import bench_capture  # noqa: E402


class Timer:
    def __init__(self):
        self.s: dict[str, float] = {}

    def __call__(self, name: str, fn, *a, **kw):
        t = time.perf_counter()
        out = fn(*a, **kw)
        self.s[name] = self.s.get(name, 0.0) + time.perf_counter() - t
        return out


def stages(path: str, window_s: float) -> dict:
    import flows.window as fw
    from collectors.capture_file import CaptureFile
    from collectors.decode.decoder import Decoder
    from flows.config import WindowConfig
    from flows.window import ShardState, WindowMerger, split_batch
    from schemas.clickhouse import column_types
    from schemas.packet_batch import PacketBatch
    from sinks.clickhouse_native import _values
    from flows.rows import live_window, result_tables

    cfg = WindowConfig(window_s=window_s, lateness_s=0.0)
    tm = Timer()
    make_partial = fw.make_partial
    fw.make_partial = lambda *a, **kw: tm("close", make_partial, *a, **kw)     # timed inside shard.add
    dec = Decoder(l7=False)
    states = [ShardState(i, cfg) for i in range(cfg.shards)]
    mergers: dict[int, WindowMerger] = {}
    results, packets = [], 0

    def merge(items):
        for p in items:
            m = mergers.setdefault(p.start, WindowMerger(cfg))
            m.add(p)
            res = m.result()
            if res is not None:
                results.append(res)

    def shard_all(chunks):
        out = []
        for c in chunks:
            out += states[c.shard].add(c)
        return out

    for raw in CaptureFile(path).batches():
        batch = tm("decode", dec.decode, raw)
        packets += len(batch)
        msg = tm("wire_out", batch.to_bytes)
        batch = tm("wire_in", PacketBatch.from_bytes, msg)
        chunks = tm("split", split_batch, batch, cfg)
        chunks = tm("exchange", lambda c: pickle.loads(pickle.dumps(c, protocol=5)), chunks)
        partials = tm("shard", shard_all, chunks)
        partials = tm("exchange", lambda p: pickle.loads(pickle.dumps(p, protocol=5)), partials)
        tm("merge", merge, partials)
    partials = tm("shard", lambda: [x for s in states for x in s.flush()])
    partials = tm("exchange", lambda p: pickle.loads(pickle.dumps(p, protocol=5)), partials)
    tm("merge", merge, partials)
    for w in list(mergers):
        res = mergers.pop(w).result(force=True)
        if res is not None:
            results.append(res)
    fw.make_partial = make_partial
    tm.s["shard"] -= tm.s.get("close", 0.0)
    flows = sum(len(r.flows) for r in results)
    from flows.alerts import AlertBook
    from flows.detect import detect
    from flows.rules import load_rules
    rules = load_rules(None)
    book = AlertBook(rules, window_s)
    for r in sorted(results, key=lambda r: r.start):
        wf = tm("detect", detect, r, rules.rules, window_s)
        tm("detect", book.observe, wf)
        tables = tm("sink_rows", result_tables, r, "bench", cfg.top_n)
        tm("sink_rows", lambda: {t: _values(c, column_types(t, True)) for t, c in tables.items()})
        tm("redis_rows", live_window, r, cfg.top_n)
    total = sum(tm.s.values())
    engine = total - tm.s["decode"] - tm.s["wire_out"]
    out = {"packets": packets, "flows": flows, "windows": len(results),
           "us_per_packet": {k: round(v / packets * 1e6, 3) for k, v in tm.s.items()},
           "us_per_flow": {k: round(v / max(flows, 1) * 1e6, 3) for k, v in tm.s.items()},
           "engine_us_per_packet": round(engine / packets * 1e6, 3),
           "engine_us_per_flow": round(engine / max(flows, 1) * 1e6, 3)}
    return out


def per_window(tmp: str) -> dict:
    """Fixed cost per window: 200 one-second windows of ~100 packets each, the whole engine core."""
    from collectors import synth
    path = str(Path(tmp) / "windows.pcap")
    synth.write(path, synth.SynthConfig(packets=20_000, duration=200.0, hosts=50, seed=4))
    r = stages(path, 1.0)
    t = sum(v for k, v in r["us_per_packet"].items() if k not in ("decode", "wire_out")) * r["packets"] / 1e6
    return {"windows": r["windows"], "ms_per_window": round(t / r["windows"] * 1e3, 2)}


def import_times() -> dict:
    """Wall time of `python -c 'import X'` for what analyze loads (each in a fresh interpreter, best of 3)."""
    out = {}
    for mod in ("numpy", "numba", "pyarrow", "datasketches", "bytewax.operators", "collectors.decode.decoder",
                "flows.dataflow", "flows.analysis", "chdb"):
        best = min(_timed([sys.executable, "-c", f"import {mod}"]) for _ in range(3))
        out[mod] = round(best * 1e3)
    out["python -c pass"] = round(min(_timed([sys.executable, "-c", "pass"]) for _ in range(3)) * 1e3)
    return {"ms": out}


def metrics_cost(n: int = 200_000) -> dict:
    """A labelled counter increment and a histogram observation, served and not (schemas/metrics.py).
    Services count per batch or message, never per packet."""
    import timeit

    from schemas import metrics as M
    inc = lambda: M.inc("netspectra_engine_messages_total", 3, partition="1")  # noqa: E731
    off = timeit.timeit(inc, number=n) / n * 1e6
    M.enable("engine")
    on = timeit.timeit(inc, number=n) / n * 1e6
    obs = timeit.timeit(lambda: M.observe("netspectra_sink_write_seconds", 0.01, sink="redis"), number=n) / n * 1e6
    return {"inc_us_not_served": round(off, 2), "inc_us": round(on, 2), "observe_us": round(obs, 2)}


def _timed(cmd) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--packets", type=int, default=2_000_000)
    ap.add_argument("--window", type=float, default=10.0)
    ap.add_argument("--dir", default=str(ROOT / "bench" / "out"))
    args = ap.parse_args()
    out = {}
    for name, flood in (("imix", 0.0), ("flood_90pct", 0.9)):
        out[name] = stages(bench_capture(args.dir, args.packets, "imix", flood), args.window)
    with tempfile.TemporaryDirectory() as tmp:
        out["per_window_fixed_cost"] = per_window(tmp)
    out["imports"] = import_times()
    out["metrics"] = metrics_cost()
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
