"""The live pipeline on this machine: collect -> Kafka (Tansu) -> engine (Bytewax, 2 processes)
-> ClickHouse server + Redis, everything on the same 2 cores.

1. Throughput, twice, while the engine tails the topic: (a) the generated capture replayed once
   as fast as possible with its recorded times (`collect --pcap`; ~30 s of traffic, so several
   windows of ~40k flows each for 2M packets, and fixed costs weigh heavily), and (b) the capture
   replayed `--loops` times as fast as possible, stamped with the time each packet is sent
   (`--retime --loop N`: one long live-like stream, few windows). Reported: packets/s from the collector's start until
   every window is queryable in ClickHouse (less the idle wait that closes the last window once
   traffic stops; start-ups and the last window's close are inside the figure),
   collector and engine CPU microseconds per packet (engine start-up excluded), Tansu's CPU,
   peak RSS. Beside it, for scale, the peer nfpcapd reading the same file into flow files.
2. Latency: the capture replayed at a fixed rate with live timestamps (`--rate R --retime`),
   looped; ClickHouse is polled every 50 ms for new windows. Reported per full window: when it
   became queryable after its end (p50, p99), and per packet: capture to queryable (p50, p99).

    python bench/bench_pipeline.py [--packets 2000000] [--loops 5] [--rate 300000] [--seconds 40] [--window 10]
                                   [--flood 0.9] [--engine 1x2] [--rollups]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import bench_capture, nfdump_run, warm_page_cache  # noqa: E402
from flows.kafka_source import PROGRESS_EVERY_S  # noqa: E402
from stack import local as stack  # noqa: E402
from collectors.publish import ensure_topic  # noqa: E402

LATENESS_S = 0.5
IDLE_S = 2.0
PARTITIONS = 4


def cpu_seconds(pid: int) -> float:
    """utime + stime of a running process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


ENGINE_PROCESSES, ENGINE_WORKERS = 1, 2      # one machine: one process, two worker threads (see docs/live.md)
ENGINE_EXTRA: list[str] = []                  # more engine options (--rollups)


def start_engines(boot: str, topic: str, ports: dict, window: float, logdir: str, extra=()) -> list[subprocess.Popen]:
    n = ENGINE_PROCESSES
    addrs = ";".join(f"127.0.0.1:{p}" for p in stack.free_ports(n))
    procs, extra = [], [*ENGINE_EXTRA, *extra]
    for i in range(n):
        log = open(os.path.join(logdir, f"engine-{topic}-{i}.log"), "w")
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "netspectra.cli", "engine", "--kafka", boot, "--topic", topic, "--window", str(window),
             "--lateness", str(LATENESS_S), "--idle", str(IDLE_S), "-w", str(ENGINE_WORKERS), "-i", str(i), "-a", addrs,
             "--clickhouse", f"127.0.0.1:{ports['clickhouse']}", "--redis", f"127.0.0.1:{ports['redis']}",
             "--dead-letter-topic", f"{topic}-dlq", *extra],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT))
    return procs


def collector(boot: str, topic: str, pcap: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "netspectra.cli", "collect", "--pcap", pcap, "--kafka", boot,
                             "--topic", topic, *extra], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)


def collector_report(p: subprocess.Popen) -> tuple[dict, float]:
    """The collector's JSON report and its peak RSS (MB)."""
    rss = 0.0
    if p.returncode is None:         # not reaped yet (poll() reaps)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode, rss = os.waitstatus_to_exitcode(status), ru.ru_maxrss / 1024
    err = p.stderr.read()
    if p.returncode != 0:
        raise RuntimeError(f"collect failed: {err[-2000:]}")
    return json.loads(err.strip().splitlines()[-1]), rss


def windows(client, topic: str) -> dict[int, int]:
    try:
        rows = client.execute("SELECT toUInt64(window_start), sum(packets) FROM netspectra.window_totals FINAL "
                              "WHERE source = %(s)s GROUP BY window_start", {"s": topic})
    except Exception:           # table not there yet
        return {}
    return dict(rows)


def stop(procs) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()


def warm_up(procs, boot: str, topic: str, timeout: float = 120) -> None:
    """Until every engine worker reads its partitions (imported, compiled, connected): one probe
    message per partition, each of which the engine copies to the dead-letter topic."""
    from confluent_kafka import Consumer, Producer, TopicPartition
    ensure_topic(boot, f"{topic}-dlq", 1)
    p = Producer({"bootstrap.servers": boot})
    for part in range(PARTITIONS):
        p.produce(topic, b"readiness probe, not a packet batch", partition=part)
    p.flush(30)
    c = Consumer({"bootstrap.servers": boot, "group.id": "bench-ready", "enable.auto.commit": False})
    c.assign([TopicPartition(f"{topic}-dlq", 0, 0)])
    seen, deadline = 0, time.monotonic() + timeout
    try:
        while seen < PARTITIONS:
            if any(e.poll() is not None for e in procs):
                raise RuntimeError("an engine process exited at start-up; see its log")
            if time.monotonic() > deadline:
                raise RuntimeError(f"engines not consuming after {timeout:.0f} s")
            m = c.poll(0.5)
            seen += m is not None and not m.error()
    finally:
        c.close()


def reference_totals(pcap: str, window: float) -> dict[int, tuple[int, int, int]]:
    """Per window start (s): packets, bytes, distinct flows, from the decoded capture with numpy
    (an aggregation independent of the engine's; the tests check against dpkt)."""
    from collectors.capture_file import CaptureFile
    from collectors.decode.decoder import Decoder
    from schemas.packet_batch import STATUS_OK
    dec, parts = Decoder(l7=False), []
    for raw in CaptureFile(pcap).batches():
        b = dec.decode(raw)
        ok = b.status == STATUS_OK
        w = (b.ts_ns[ok] // int(window * 1e9)) * int(window)
        key = np.concatenate([w[:, None].astype(np.uint64).view(np.uint8).reshape(-1, 8), b.src[ok], b.dst[ok],
                              np.stack([b.sport[ok], b.dport[ok], b.proto[ok], b.vlan[ok]], 1).astype(np.uint16)
                              .view(np.uint8).reshape(-1, 8)], 1)
        parts.append((w, b.ip_len[ok].astype(np.int64), key))
    w = np.concatenate([x[0] for x in parts])
    ln = np.concatenate([x[1] for x in parts])
    keys = np.unique(np.concatenate([x[2] for x in parts]).view(f"V{8 + 32 + 8}").ravel())
    flow_w = keys.view(np.uint8).reshape(-1, 48)[:, :8].copy().view(np.uint64).ravel().astype(np.int64)
    out = {}
    for start in np.unique(w).tolist():
        m = w == start
        out[start] = (int(m.sum()), int(ln[m].sum()), int((flow_w == start).sum()))
    return out


def exact_windows(client, ports: dict, topic: str, ref: dict) -> dict:
    """Whether every window's packets, bytes and flows equal the reference in ClickHouse and in Redis."""
    from schemas.credentials import redis_client
    rows = client.execute("SELECT toUInt64(window_start), packets, bytes, flows FROM netspectra.window_totals FINAL "
                          "WHERE source = %(s)s", {"s": topic})
    ch = {w: (pk, by, fl) for w, pk, by, fl in rows}
    r = redis_client(f"127.0.0.1:{ports['redis']}", decode_responses=True)
    rd = {}
    for w in ref:
        h = r.hgetall(f"ns:{topic}:window:{w * 1000}")
        rd[w] = (int(h["packets"]), int(h["bytes"]), int(h["flows"])) if h else None
    return {"windows": len(ref), "clickhouse_exact": ch == ref, "redis_exact": rd == ref}


def throughput(boot: str, ports: dict, client, pcap: str, loops: int, window: float, logdir: str,
               ref: dict | None = None) -> dict:
    topic = f"bench-throughput-{loops}"
    ensure_topic(boot, topic, PARTITIONS)
    engines = start_engines(boot, topic, ports, window, logdir)
    tansu = stack.status(Path(logdir) / "stack")["kafka"].pid
    try:
        warm_up(engines, boot, topic)
        cpu0 = [cpu_seconds(p.pid) for p in engines]
        tansu0 = cpu_seconds(tansu)
        t0 = time.perf_counter()
        col = collector(boot, topic, pcap, *(("--retime", "--loop", str(loops)) if loops > 1 else ()))
        rep, col_rss = collector_report(col)
        t_col = time.perf_counter() - t0
        while sum(windows(client, topic).values()) < rep["decoded"]["ip_packets"]:
            time.sleep(0.05)
            if time.perf_counter() - t0 > 600:
                raise RuntimeError("engine did not finish within 600 s")
        t_all = time.perf_counter() - t0
        engine_cpu = sum(cpu_seconds(p.pid) - c for p, c in zip(engines, cpu0))
        tansu_cpu = cpu_seconds(tansu) - tansu0
        engine_rss = [peak_rss_mb(p.pid) for p in engines]
        exact = exact_windows(client, ports, topic, ref) if ref is not None else None
        if exact is not None and not exact["redis_exact"]:     # Redis is written just after ClickHouse
            time.sleep(2)
            exact = exact_windows(client, ports, topic, ref)
    finally:
        stop(engines)
    n = rep["capture"]["packets"]
    sustained = t_all - IDLE_S - PROGRESS_EVERY_S     # the idle close: quiet for IDLE_S, then the next report
    return {"packets": n, "collector_seconds": round(t_col, 2), "collector_pps": round(n / t_col),
            "all_queryable_seconds": round(t_all, 2), "end_to_end_pps": round(n / sustained),
            "end_to_end_pps_with_idle_wait": round(n / t_all),
            "collector_cpu_us_per_packet": round(rep["cpu_seconds"] / n * 1e6, 3),
            "engine_cpu_us_per_packet": round(engine_cpu / n * 1e6, 3),
            "tansu_cpu_us_per_packet": round(tansu_cpu / n * 1e6, 3),
            "collector_peak_rss_mb": round(col_rss), "engine_peak_rss_mb": [round(r) for r in engine_rss],
            "kafka_message_bytes_per_packet": round(rep["published"]["bytes"] / n, 1),
            **({"exact": exact} if exact is not None else {})}


def latency(boot: str, ports: dict, client, pcap: str, packets: int, rate: float, seconds: float, window: float,
            logdir: str) -> dict:
    topic = "bench-latency"
    ensure_topic(boot, topic, PARTITIONS)
    engines = start_engines(boot, topic, ports, window, logdir)
    first_seen: dict[int, float] = {}
    try:
        warm_up(engines, boot, topic)
        loops = int(rate * seconds // packets) + 1
        col = collector(boot, topic, pcap, "--rate", str(rate), "--retime", "--loop", str(loops),
                        "--duration", str(seconds))
        deadline = time.time() + seconds + window + 30
        while time.time() < deadline:
            now = time.time()
            for w, n in windows(client, topic).items():
                first_seen.setdefault(w, now)
            if col.poll() is not None and len(first_seen) and now > max(first_seen) + window + IDLE_S + 5:
                break
            time.sleep(0.05)
        rep, _ = collector_report(col)
        counts = windows(client, topic)
    finally:
        stop(engines)
    wins = sorted(first_seen)[1:-1]          # the first and last windows are partial
    beyond = np.array([first_seen[w] - (w + window) for w in wins])
    # Per packet: queryable time minus its capture time. With `--rate R --retime` each packet is
    # stamped with its own due time, R per second evenly (collectors/replay.py), so the capture
    # times inside a full window are exactly evenly spaced: checked below from the window's
    # packet count (rate x window), not assumed.
    per_packet = np.concatenate([first_seen[w] - (w + np.linspace(0, window, 1000, endpoint=False))
                                 for w in wins]) if wins else np.zeros(1)
    even = all(abs(counts[w] - rate * window) <= rate * 0.01 * window for w in wins)
    return {"rate_pps": rate, "seconds": seconds, "window_s": window, "lateness_s": LATENESS_S,
            "full_windows_hold_rate_x_window_packets": even,
            "full_windows": len(wins), "packets_per_full_window": [counts[w] for w in wins],
            "collector_sent": rep["capture"]["packets"],
            "beyond_window_end_p50_s": round(float(np.percentile(beyond, 50)), 3) if wins else None,
            "beyond_window_end_p99_s": round(float(np.percentile(beyond, 99)), 3) if wins else None,
            "beyond_window_end_max_s": round(float(beyond.max()), 3) if wins else None,
            "packet_to_queryable_p50_s": round(float(np.percentile(per_packet, 50)), 3),
            "packet_to_queryable_p99_s": round(float(np.percentile(per_packet, 99)), 3)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--packets", type=int, default=2_000_000)
    ap.add_argument("--loops", type=int, default=5,
                    help="throughput: replay the capture this many times, re-stamped (1: no such run)")
    ap.add_argument("--rate", type=float, default=300_000)
    ap.add_argument("--seconds", type=float, default=40)
    ap.add_argument("--window", type=float, default=10)
    ap.add_argument("--dir", default=str(ROOT / "bench" / "out"))
    ap.add_argument("--skip-latency", action="store_true")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--flood", type=float, default=0.0,
                    help="share of the capture that is a spoofed SYN flood (one packet per flow), e.g. 0.9")
    ap.add_argument("--engine", default="1x2", help="engine processes x workers each (default 1x2)")
    ap.add_argument("--rollups", action="store_true", help="the engine keeps the roll-ups too (engine --rollups)")
    args = ap.parse_args()
    global ENGINE_PROCESSES, ENGINE_WORKERS
    if args.rollups:
        ENGINE_EXTRA.append("--rollups")
    ENGINE_PROCESSES, ENGINE_WORKERS = (int(x) for x in args.engine.split("x"))
    from schemas.credentials import clickhouse_client
    pcap = bench_capture(args.dir, args.packets, "imix", args.flood)
    logdir = tempfile.mkdtemp(prefix="bench-pipeline-")
    d = Path(logdir) / "stack"
    ports = dict(zip(["kafka", "redis", "clickhouse", "clickhouse_http"], stack.free_ports(4)))
    stack.up(d, ports=ports)
    try:
        boot = f"127.0.0.1:{ports['kafka']}"
        client = clickhouse_client(f"127.0.0.1:{ports['clickhouse']}")
        out = {}
        if not args.skip_throughput:
            warm_page_cache(pcap)       # the collector maps the capture: time the pipeline, not the disk
            ref = reference_totals(pcap, args.window)
            out["throughput_recorded_times"] = throughput(boot, ports, client, pcap, 1, args.window, logdir, ref)
            if args.loops > 1:          # one loop is the run above again
                out["throughput_retimed_loops"] = throughput(boot, ports, client, pcap, args.loops, args.window,
                                                             logdir)
        if not shutil.which("nfpcapd"):
            print("peer nfpcapd: not installed, no row", file=sys.stderr)
        elif not args.skip_throughput:
            wall, cpu, rss = nfdump_run(pcap)
            out["peer_nfpcapd_file_to_flows"] = {"wall_s": round(wall, 2), "pps": round(args.packets / wall),
                                                 "cpu_us_per_packet": round(cpu / args.packets * 1e6, 3)}
        if not args.skip_latency:
            out["latency"] = latency(boot, ports, client, pcap, args.packets, args.rate, args.seconds, args.window,
                                     logdir)
        print(json.dumps(out, indent=1))
        print(f"logs: {logdir}", file=sys.stderr)
    finally:
        stack.down(d)
    return 0


if __name__ == "__main__":
    sys.exit(main())
