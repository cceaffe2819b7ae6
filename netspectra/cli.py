"""The `netspectra` command line: one entry point, one subcommand per job."""
from __future__ import annotations

import argparse
import csv
import importlib
import json
import sys
import time

from collectors import synth
from flows.defaults import LIVE_GRACE_S, MAX_FLOWS
from netspectra.stack import DEFAULT_PORTS

DECODE_FIELDS = ["ts", "iface", "link", "vlan", "src", "dst", "proto", "sport", "dport", "ip_len", "tcp_flags",
                 "frag", "icmp_type", "icmp_code", "dns_qname", "dns_qtype", "dns_rcode", "http_method",
                 "http_host", "http_path", "http_status", "status"]


# Subcommand -> "module:function", imported only when that subcommand runs (keeps start-up small).
COMMANDS = {
    "synth": "netspectra.cli:cmd_synth",
    "decode": "netspectra.cli:cmd_decode",
    "analyze": "netspectra.analyze:cmd_analyze",
    "sql": "netspectra.analyze:cmd_sql",
    "collect": "netspectra.collect:cmd_collect",
    "engine": "netspectra.engine:cmd_engine",
    "stack": "netspectra.stack:cmd_stack",
    "api": "api.server:cmd_api",
    "rules": "netspectra.cli:cmd_rules",
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="netspectra", description="Network-traffic analytics at line rate.")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("synth", help="write a synthetic capture with planted heavy hitters, spreaders, scans, floods")
    s.add_argument("out")
    for name, field in synth.SynthConfig.__dataclass_fields__.items():
        s.add_argument("--" + name.replace("_", "-"), type=type(field.default), default=field.default,
                       dest=name, help=f"(default {field.default})")

    d = sub.add_parser("decode", help="print one row per packet of a capture")
    d.add_argument("pcap")
    d.add_argument("--format", choices=["csv", "jsonl"], default="csv")
    d.add_argument("--limit", type=int, default=0, help="stop after N packets (0 = all)")
    d.add_argument("--summary", action="store_true", help="print only totals and error counts (JSON)")

    a = sub.add_parser("analyze", help="windowed flow, heavy-hitter and spread analysis of a capture (Bytewax + chDB)")
    a.add_argument("pcap")
    a.add_argument("--window", type=float, default=60.0, help="window length in seconds; 0 = one window (default 60)")
    a.add_argument("--lateness", type=float, default=5.0, help="seconds a window waits for late packets (default 5)")
    a.add_argument("--store", help="keep the chDB store in this directory (default: a temporary one)")
    a.add_argument("--top", type=int, default=10, help="rows per report list (default 10)")
    a.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    a.add_argument("--export", metavar="DIR", help="write every result table as CSV into DIR")
    a.add_argument("--workers", "-w", type=int, default=1, help="Bytewax worker threads (default 1)")
    a.add_argument("--shards", type=int, default=4, help="state shards (default 4; results do not depend on workers)")
    a.add_argument("--max-flows", type=int, default=MAX_FLOWS, help="exact flow records kept per window; "
                   f"beyond, the heaviest are kept and the rest counted and sketched (default {MAX_FLOWS:,}, 0 = no limit)")
    a.add_argument("--rules", metavar="FILE", help="detection rules (YAML or JSON; default: the built-in rules)")

    r = sub.add_parser("rules", help="check a detection rules file and print the rules in effect")
    r.add_argument("action", choices=["check"])
    r.add_argument("file", nargs="?", help="rules file (YAML or JSON); without it, the built-in rules")

    api = sub.add_parser("api", help="serve the query API: gRPC and HTTP/JSON (with Grafana endpoints)")
    api.add_argument("--config", help="JSON configuration (tokens, TLS, ports; see api/config.py)")
    api.add_argument("--store", help="chDB directory, or clickhouse://host:port (default out/store)")
    api.add_argument("--redis", help="Redis host:port or URL for live state")
    api.add_argument("--host", help="listen address (default 127.0.0.1)")
    api.add_argument("--grpc-port", type=int, help="default 50051")
    api.add_argument("--http-port", type=int, help="default 8080")
    api.add_argument("--allow-anonymous", action="store_true", help="no tokens: everyone may read (trials only)")

    q = sub.add_parser("sql", help="run a query against a store written by analyze --store")
    q.add_argument("--store", required=True)
    q.add_argument("--format", default="PrettyCompact", help="ClickHouse output format (default PrettyCompact)")
    q.add_argument("query")

    c = sub.add_parser("collect", help="decode packets and publish them to Kafka, partitioned by flow")
    src = c.add_argument_group("source (one of)")
    src.add_argument("--interface", "-I", help="capture live from this interface")
    src.add_argument("--pcap", help="replay this capture file")
    live = c.add_argument_group("live capture")
    live.add_argument("--method", choices=["pcap", "afpacket"], default="afpacket",
                      help="libpcap (pcapy-ng next_batch) or an AF_PACKET TPACKET_V3 ring (default)")
    live.add_argument("--bpf", default="", help="BPF filter expression (tcpdump syntax)")
    live.add_argument("--snaplen", type=int, default=262144, help="bytes kept per packet (default 262144)")
    live.add_argument("--buffer-mb", type=int, default=64, help="kernel ring/buffer size in MiB (default 64)")
    live.add_argument("--fanout", type=int, help="PACKET_FANOUT group id: collectors sharing it split the "
                      "interface's traffic by flow hash")
    live.add_argument("--no-promisc", action="store_true", help="do not put the interface in promiscuous mode")
    rep = c.add_argument_group("replay")
    rep.add_argument("--speed", type=float, default=0.0, help="replay at recorded pace times X (default: as fast as possible)")
    rep.add_argument("--rate", type=float, default=0.0, help="replay at this many packets per second")
    rep.add_argument("--retime", action="store_true", help="stamp replayed packets with the time they are sent")
    rep.add_argument("--loop", type=int, default=1, help="replay the file N times (0 = until stopped); "
                     "use with --retime, else repeated times arrive late")
    c.add_argument("--count", type=int, default=0, help="stop after N packets")
    c.add_argument("--duration", type=float, default=0.0, help="stop after S seconds")
    c.add_argument("--dry-run", action="store_true", help="capture and decode only; no Kafka")
    c.add_argument("--no-l7", action="store_true", help="skip DNS/HTTP field decoding")
    c.add_argument("--kafka", default="127.0.0.1:19092", help="bootstrap servers (default: the local stack)")
    c.add_argument("--topic", default="netspectra.packets")
    c.add_argument("--partitions", type=int, default=0, help="create the topic with N partitions if missing")
    c.add_argument("--connect-timeout", type=float, default=15.0, help="seconds to reach the broker (default 15)")
    c.add_argument("--flush-timeout", type=float, default=60.0, help="seconds to wait for deliveries at the end")

    e = sub.add_parser("engine", help="run the window dataflow on a Kafka topic (wraps python -m bytewax.run)")
    e.add_argument("--kafka", default="127.0.0.1:19092", help="bootstrap servers (default: the local stack)")
    e.add_argument("--topic", default="netspectra.packets")
    e.add_argument("--store", help="chDB store directory for the window results")
    e.add_argument("--clickhouse", help="ClickHouse server host:port, native protocol (local stack: 127.0.0.1:19000)")
    e.add_argument("--redis", help="Redis for live state, host:port or redis:// URL (local stack: 127.0.0.1:16379)")
    e.add_argument("--dead-letter-topic", default="netspectra.dead-letter")
    e.add_argument("--window", type=float, default=60.0)
    e.add_argument("--lateness", type=float, default=5.0, help="event-time seconds a window waits for late packets")
    e.add_argument("--idle", type=float, default=10.0, help="seconds a partition must be quiet, with the broker "
                   "confirming it is read to its end, before it stops holding windows open; when all are, open "
                   "windows close (default 10)")
    e.add_argument("--grace", type=float, default=LIVE_GRACE_S, help="event-time seconds a closed window is kept: "
                   f"packets arriving for it meanwhile update it and it is written again (default {LIVE_GRACE_S:g})")
    e.add_argument("--max-flows", type=int, default=MAX_FLOWS, help="exact flow records kept per window; "
                   f"beyond, the heaviest are kept and the rest counted and sketched (default {MAX_FLOWS:,}, 0 = no limit)")
    e.add_argument("--stop-at-end", action="store_true", help="stop at the end of the topic instead of tailing it")
    e.add_argument("--rules", metavar="FILE", help="detection rules and notifiers (YAML or JSON; default: built-in rules)")
    e.add_argument("--alert-webhook", metavar="URL", help="POST every alert change to this URL (JSON)")
    e.add_argument("--alertmanager", metavar="URL", help="send alerts to this Prometheus Alertmanager (API v2)")
    e.add_argument("--alert-state", metavar="DIR", help="where notifiers log what they delivered, so a resumed "
                   "engine does not notify twice (default: <recovery dir>/alerts)")
    e.add_argument("--no-detect", action="store_true", help="no detection or alerts, windows only")
    e.add_argument("--workers", "-w", type=int, default=1, help="worker threads per process")
    e.add_argument("--process-id", "-i", type=int, help="this process's index (with --addresses)")
    e.add_argument("--addresses", "-a", help="host:port of every engine process, separated by ';'")
    e.add_argument("--recovery-dir", "-r", help="Bytewax recovery directory: state snapshots to resume from "
                   "after a crash (created on first use; see docs/live.md)")
    e.add_argument("--snapshot-interval", "-s", type=int, default=5,
                   help="whole seconds between recovery snapshots (default 5; a resume replays at most this much)")
    e.add_argument("--backup-interval", "-b", type=int, default=0,
                   help="seconds of older snapshots to keep, when the recovery directory is backed up (default 0)")
    e.add_argument("--recovery-partitions", type=int, default=4,
                   help="recovery partitions to create in a new recovery directory (default 4)")
    e.add_argument("--recovery-min-free-mb", type=float, default=64,
                   help="refuse to start with less free space than this for the recovery directory (default 64)")

    k = sub.add_parser("stack", help="start/stop a local Kafka (Tansu), Redis and ClickHouse on 127.0.0.1")
    k.add_argument("action", choices=["up", "down", "status"])
    k.add_argument("--dir", default=".stack", help="pid files, data and logs (default .stack)")
    k.add_argument("--no-clickhouse", action="store_true", help="leave out the ClickHouse server")
    for svc, port in DEFAULT_PORTS.items():
        k.add_argument(f"--{svc.replace('_', '-')}-port", type=int, help=f"port of {svc} on 127.0.0.1 (default {port})")

    args = p.parse_args(argv)
    module, func = COMMANDS[args.cmd].split(":")
    try:
        return getattr(importlib.import_module(module), func)(args)
    except BrokenPipeError:   # `netspectra decode x.pcap | head` is normal use
        sys.stderr.close()
        return 0


def cmd_synth(args) -> int:
    cfg = synth.SynthConfig(**{k: getattr(args, k) for k in synth.SynthConfig.__dataclass_fields__})
    t = time.perf_counter()
    truth = synth.write(args.out, cfg)
    print(f"wrote {args.out}: {truth['packets']} packets in {time.perf_counter() - t:.1f} s "
          f"(planted truth in {args.out}.truth.json)", file=sys.stderr)
    return 0


def rules_or_report(path: str | None, command: str):
    """The rule set of a rules file (the built-ins without one), or None after one line per
    problem on stderr (the caller exits 2)."""
    from flows.rules import RulesError, load_rules
    try:
        return load_rules(path)
    except RulesError as e:
        for line in e.lines:
            print(f"netspectra {command}: {line}", file=sys.stderr)
        return None


def cmd_rules(args) -> int:
    rs = rules_or_report(args.file, "rules")
    if rs is None:
        return 2
    json.dump({"source": rs.source, "rules": [r.describe() for r in rs.rules], "notifiers": sorted(rs.notifiers)},
              sys.stdout, indent=1)
    print()
    return 0


def open_capture(path: str, command: str):
    """The CaptureFile, or None after a one-line error on stderr (missing file, not a capture)."""
    from collectors.capture_file import CaptureFile, CaptureFormatError
    try:
        return CaptureFile(path)
    except (CaptureFormatError, OSError) as e:
        print(f"netspectra {command}: {e}", file=sys.stderr)
        return None


def cmd_decode(args) -> int:
    from collectors.decode.decoder import Decoder
    from collectors.decode.rows import batch_rows

    cap = open_capture(args.pcap, "decode")
    if cap is None:
        return 2
    dec = Decoder()
    out = sys.stdout
    writer = None
    if not args.summary and args.format == "csv":
        writer = csv.DictWriter(out, fieldnames=DECODE_FIELDS, lineterminator="\n")
        writer.writeheader()
    emitted = ip_packets = ip_bytes = 0
    for raw in cap.batches():
        batch = dec.decode(raw)
        ok = batch.status == 0
        ip_packets += int(ok.sum())
        ip_bytes += int(batch.ip_len[ok].sum())
        if args.summary:
            continue
        for row in batch_rows(batch, limit=(args.limit - emitted) if args.limit else 0):
            if writer:
                writer.writerow(row)
            else:
                out.write(json.dumps(row) + "\n")
            emitted += 1
        if args.limit and emitted >= args.limit:
            break
    summary = {"packets": cap.stats.packets, "ip_packets": ip_packets, "ip_bytes": ip_bytes,
               "reader": cap.stats.as_dict(), "decode": dict(dec.stats)}
    if args.summary:
        print(json.dumps(summary, indent=1))
    else:
        print(json.dumps(summary), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
