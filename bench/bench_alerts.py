"""Alert latency on the live pipeline: from a window's close to its alert at a webhook receiver.

A capture of friendly background traffic with one new port scanner in each 2 s window (its own
source, 300 ports, so each window brings one new alert) is replayed by `collect --rate R
--retime`, which stamps each packet with its due time: event time runs with the wall clock. The
engine (1 process x 2 workers, ClickHouse and Redis sinks, --alert-webhook) tails the topic; a
webhook receiver in this process notes when each alert arrives. Per alert:

- window end -> delivered: arrival minus the window's end (event time = wall time here);
- close -> delivered: the same minus the lateness (0.5 s): a window closes when the event-time
  clock passes its end plus the lateness. What remains is the collector's batching, Kafka, the
  engine's window close, detection, the lifecycle step and the webhook POST.

    python bench/bench_alerts.py [--rate 20000] [--windows 30]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_pipeline import LATENESS_S, collector, collector_report, start_engines, stop, warm_up  # noqa: E402
from collectors import synth  # noqa: E402
from stack import local as stack  # noqa: E402
from collectors.publish import ensure_topic  # noqa: E402

WINDOW_S = 2.0
SCAN_PORTS = 300


def scan_capture(path: str, rate: float, windows: int) -> int:
    """Background packets, with scanner k's probes in the middle of the k-th window's worth of
    packets (after --retime, packet i is due at i / rate)."""
    per = int(rate * WINDOW_S)
    n = per * windows
    g = synth.generate(synth.SynthConfig(packets=n, hosts=2000, spreaders=0, scans=0, heavy_hitters=5, seed=7))
    cols = g["cols"]
    parts, prev = [], 0
    for k in range(windows):
        mid = k * per + per // 2
        parts.append({c: v[prev:mid] for c, v in cols.items()})
        probe = synth._packets(synth._ip4(198, 51, 100, 1 + k % 250) + (k // 250 << 8), synth._ip4(10, 0, 0, 2), 40000,
                               np.arange(1, SCAN_PORTS + 1), 6, synth.TCP_SYN, 40, np.full(SCAN_PORTS, cols["ts_ns"][mid]))
        parts.append(probe)
        prev = mid
    parts.append({c: v[prev:] for c, v in cols.items()})
    allc = {c: np.concatenate([p[c] for p in parts]) for c in cols}
    with open(path, "wb") as f:
        f.write(synth.build_pcap(allc))
    return len(allc["src"])


class Receiver:
    def __init__(self):
        self.arrivals: dict[str, tuple[float, dict]] = {}
        arrivals = self.arrivals

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                now = time.time()
                if body["change"] == "firing":
                    arrivals.setdefault(body["alert"]["id"], (now, body["alert"]))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.port = stack.free_ports(1)[0]
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=20_000)
    ap.add_argument("--windows", type=int, default=30)
    args = ap.parse_args()
    logdir = tempfile.mkdtemp(prefix="bench-alerts-")
    pcap = str(Path(logdir) / "scans.pcap")
    packets = scan_capture(pcap, args.rate, args.windows)
    d = Path(logdir) / "stack"
    ports = dict(zip(["kafka", "redis", "clickhouse", "clickhouse_http"], stack.free_ports(4)))
    stack.up(d, ports=ports)
    rx = Receiver()
    try:
        boot, topic = f"127.0.0.1:{ports['kafka']}", "bench-alerts"
        ensure_topic(boot, topic, 4)
        engines = start_engines(boot, topic, ports, WINDOW_S, logdir, ["--alert-webhook", f"http://127.0.0.1:{rx.port}/"])
        try:
            warm_up(engines, boot, topic)
            col = collector(boot, topic, pcap, "--rate", str(args.rate), "--retime")
            collector_report(col)
            deadline = time.time() + 60
            while len(rx.arrivals) < args.windows and time.time() < deadline:
                time.sleep(0.2)
            time.sleep(3)
        finally:
            stop(engines)
        end = [at - a["window_end"] / 1e9 for at, a in rx.arrivals.values() if a["rule"] == "port_scan"]
        close = [x - LATENESS_S for x in end]
        scans = sum(1 for _, a in rx.arrivals.values() if a["rule"] == "port_scan")
        pct = lambda xs, q: round(float(np.percentile(xs, q)), 3) if xs else None
        out = {"packets": packets, "rate_pps": args.rate, "window_s": WINDOW_S, "planted_scanners": args.windows,
               "port_scan_alerts_delivered": scans,
               "other_alerts": sorted({a["rule"] for _, a in rx.arrivals.values()} - {"port_scan"}),
               "close_to_delivered_p50_s": pct(close, 50), "close_to_delivered_p99_s": pct(close, 99),
               "close_to_delivered_max_s": round(max(close), 3) if close else None,
               "window_end_to_delivered_p50_s": pct(end, 50), "window_end_to_delivered_p99_s": pct(end, 99)}
        print(json.dumps(out, indent=1))
        print(f"logs: {logdir}", file=sys.stderr)
    finally:
        rx.server.shutdown()
        stack.down(d)
    return 0


if __name__ == "__main__":
    sys.exit(main())
