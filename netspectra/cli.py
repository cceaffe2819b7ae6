"""The `netspectra` command line: one entry point, one subcommand per job."""
from __future__ import annotations

import argparse
import csv
import functools
import importlib
import json
import sys
import time

from flows.defaults import IDLE_S, LATENESS_S, LIVE_GRACE_S, MAX_FLOWS, SHARDS, WINDOW_S
from schemas.credentials import STACK_DIR as DEFAULT_DIR
from stack.defaults import DEFAULT_PORTS, PROMETHEUS_URL
from schemas.topics import LOCAL_KAFKA



# Subcommand -> "module:function", imported only when that subcommand runs (keeps start-up small).
COMMANDS = {
    "synth": "netspectra.cli:cmd_synth",
    "decode": "netspectra.cli:cmd_decode",
    "analyze": "netspectra.analyze:cmd_analyze",
    "sql": "netspectra.analyze:cmd_sql",
    "collect": "netspectra.collect:cmd_collect",
    "engine": "netspectra.engine:cmd_engine",
    "stack": "netspectra.stackctl:cmd_stack",
    "api": "netspectra.serve:cmd_api",
    "ask": "netspectra.ask:cmd_ask",
    "ai": "netspectra.serve:cmd_ai",
    "rules": "netspectra.cli:cmd_rules",
    "grafana": "netspectra.cli:cmd_grafana",
}


# Service subcommand -> its settings model: flags' defaults in --help come from it (one place).
MODELS = {"collect": "collectors.service:CollectorConfig", "engine": "flows.engine_config:EngineConfig",
          "api": "api.config:ApiConfig", "ai": "api.config:AiServerConfig"}


class ServiceHelp(argparse.HelpFormatter):
    """Adds "(default X)" from the service's settings model to every flag's help that lacks one.
    The model is imported only when help is printed (start-up of every other run stays small:
    argparse makes a formatter for every add_argument, so not in __init__)."""

    def __init__(self, prog, model: str = "", **kw):
        super().__init__(prog, **kw)
        self.model = model

    @functools.cached_property
    def fields(self) -> dict:
        module, name = self.model.split(":")
        return getattr(importlib.import_module(module), name).model_fields

    def _get_help_string(self, action):
        text = action.help or ""
        f = self.fields.get(FLAG_FIELDS.get(action.dest, action.dest))
        if f is None or "default" in text or action.nargs == 0 or f.default_factory is not None:   # not for switches
            return text
        return f"{text} (default {f.default if f.default is not None else 'none'})".strip()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = parser(argv[0] if argv and argv[0] in COMMANDS else None)
    args, extra = p.parse_known_args(argv)
    if extra:       # a mistyped option: the subcommand's usage, not the top level's
        p.subcommands[args.cmd].error(f"unrecognized arguments: {' '.join(extra)}")
    module, func = COMMANDS[args.cmd].split(":")
    try:
        return getattr(importlib.import_module(module), func)(args)
    except BrokenPipeError:   # `netspectra decode x.pcap | head` is normal use
        sys.stderr.close()
        return 0


def parser(only: str | None = None) -> argparse.ArgumentParser:
    """The command line; `only`: just that subcommand's options (start-up: building all of them
    costs ~12 ms, importing what their defaults come from more)."""
    p = argparse.ArgumentParser(prog="netspectra", description="Network-traffic analytics at line rate.")
    sub = p.add_subparsers(dest="cmd", required=True)
    p.subcommands = sub.choices
    for name, add in SUBCOMMANDS.items():
        if only in (None, name):
            add(sub)
    return p


def _add_synth(sub) -> None:
    from collectors import synth
    s = sub.add_parser("synth", help="write a synthetic capture with planted heavy hitters, spreaders, scans, floods")
    s.add_argument("out", help="capture file to write (pcap)")
    for name, field in synth.SynthConfig.__dataclass_fields__.items():
        s.add_argument("--" + name.replace("_", "-"), type=type(field.default), default=field.default,
                       dest=name, help=f"(default {field.default})",
                       choices=list(synth.FRAME_SIZES) if name == "sizes" else None)


def _add_decode(sub) -> None:
    d = sub.add_parser("decode", help="print one row per packet of a capture")
    d.add_argument("pcap", help="capture file (pcap or pcapng)")
    d.add_argument("--format", choices=["csv", "jsonl"], default="csv", help="row format (default csv)")
    d.add_argument("--limit", type=int, default=0, help="stop after N packets (0 = all)")
    d.add_argument("--summary", action="store_true", help="print only totals and error counts (JSON)")
    _add_decap(d)


def _add_decap(p) -> None:
    from collectors.decode.tunnels import KINDS

    def kinds(text):
        return [k.strip() for k in text.split(",") if k.strip()]

    def ports(text):
        return [int(x) for x in text.split(",") if x.strip()]
    p.add_argument("--no-decap", dest="decap_off", type=kinds, metavar="KINDS",
                   help=f"leave these tunnels' packets in their carrier (comma list of {', '.join(KINDS)}, "
                   "or all; default: all taken out)")
    p.add_argument("--vxlan-ports", type=ports, metavar="PORTS", help="VXLAN's UDP ports (comma list; default 4789)")


def decap_of(args, command: str):
    """The tunnels --no-decap and --vxlan-ports leave taken out; None after one line on stderr."""
    from collectors.decode.tunnels import Decap
    try:
        return Decap(off=frozenset(args.decap_off or ()), vxlan_ports=tuple(args.vxlan_ports or Decap().vxlan_ports))
    except ValueError as e:
        print(f"netspectra {command}: {e}", file=sys.stderr)
        return None


def _add_analyze(sub) -> None:
    a = sub.add_parser("analyze", help="windowed flow, heavy-hitter and spread analysis of a capture (Bytewax + chDB)")
    a.add_argument("pcap", help="capture file (pcap or pcapng)")
    a.add_argument("--window", type=float, default=WINDOW_S,
                   help=f"window length in seconds; 0 = one window (default {WINDOW_S:g})")
    a.add_argument("--lateness", type=float, default=LATENESS_S,
                   help=f"seconds a window waits for late packets (default {LATENESS_S:g})")
    a.add_argument("--store", help="keep the chDB store in this directory (default: a temporary one)")
    a.add_argument("--top", type=int, default=10, help="rows per report list (default 10)")
    a.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    a.add_argument("--export", metavar="DIR", help="write every result table as CSV into DIR")
    a.add_argument("--rollups", action="store_true",
                   help="also keep the store's minute/hour/day roll-ups (default off: a capture's range is short)")
    a.add_argument("--workers", "-w", type=int, default=1, help="Bytewax worker threads (default 1)")
    _add_decap(a)
    a.add_argument("--shards", type=int, default=SHARDS,
                   help=f"state shards (default {SHARDS}; results do not depend on workers)")
    a.add_argument("--max-flows", type=int, default=MAX_FLOWS, help="exact flow records kept per window; "
                   f"beyond, the heaviest are kept and the rest counted and sketched (default {MAX_FLOWS:,}, 0 = no limit)")
    a.add_argument("--rules", metavar="FILE", help="detection rules (YAML or JSON; default: the built-in rules)")


def _add_rules(sub) -> None:
    r = sub.add_parser("rules", help="check a detection rules file and print the rules in effect")
    r.add_argument("action", choices=["check"], help="check: validate the file (exit 2 on errors) and print the rules")
    r.add_argument("file", nargs="?", help="rules file (YAML or JSON); without it, the built-in rules")


def _add_api(sub) -> None:
    api = sub.add_parser("api", help="serve the query API: gRPC and HTTP/JSON (with Grafana endpoints)",
                          formatter_class=functools.partial(ServiceHelp, model=MODELS["api"]))
    service_options(api, "api")
    api.add_argument("--store", help="what to serve (required): a chDB directory (as written by "
                     "`analyze --store`), or clickhouse://host:port (the stack's: clickhouse://127.0.0.1:19000)")
    api.add_argument("--redis", help="Redis host:port or URL for live state (local stack: 127.0.0.1:16379)")
    _served_options(api)


def _served_options(p: argparse.ArgumentParser) -> None:
    """The flags of a served process (api.config ServedConfig): the API's and the AI gateway's."""
    p.add_argument("--host", help="listen address")
    p.add_argument("--grpc-port", type=int, help="gRPC port")
    p.add_argument("--http-port", type=int, help="HTTP/JSON port")
    p.add_argument("--allow-anonymous", action="store_true", default=None,
                   help="no tokens: everyone may read (trials only)")
    p.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port (default 0: none)")


def _add_ai(sub) -> None:
    from schemas.settings import API_TOKEN_ENV
    a = sub.add_parser("ai", help="serve the AI gateway alone: AnalyzeAlert and Ask over gRPC and HTTP, reading "
                       f"through the query API (docs/ai.md; its read token from {API_TOKEN_ENV})",
                       formatter_class=functools.partial(ServiceHelp, model=MODELS["ai"]))
    service_options(a, "ai")
    a.add_argument("--query-api", help="the query API's HTTP address (`netspectra api`)")
    _served_options(a)


def _add_sql(sub) -> None:
    q = sub.add_parser("sql", help="run a query against a store: a chDB directory or a ClickHouse server "
                       "(the *_text views show addresses as text)")
    q.add_argument("--store", required=True, help="chDB directory written by analyze --store, or "
                   "clickhouse://host:port (the stack's: clickhouse://127.0.0.1:19000)")
    q.add_argument("--format", default="PrettyCompact", help="ClickHouse output format (default PrettyCompact; "
                   "on a server one of PrettyCompact, TSV, CSV, JSONEachRow)")
    q.add_argument("query", help="SQL, e.g. \"SELECT count() FROM netspectra.flows\"")


def _add_ask(sub) -> None:
    from schemas.settings import API_TOKEN_ENV
    a = sub.add_parser("ask", help="ask a question about the traffic: the API's AI gateway answers it with its "
                       f"queries, streamed (docs/ai.md); the token from {API_TOKEN_ENV}")
    a.add_argument("question", help='e.g. "who talked to 10.0.0.5 on port 445 today?"')
    a.add_argument("--url", default="http://127.0.0.1:8080", help="the API's HTTP address (default %(default)s)")
    a.add_argument("--last", default="24h", help="the span before now used when the question names none "
                   "(default %(default)s)")


def _add_grafana(sub) -> None:
    g = sub.add_parser("grafana", help="write Grafana provisioning: the ClickHouse and Prometheus datasources "
                       "and the NetSpectra dashboards")
    g.add_argument("--out", default="grafana", help="directory to write (default grafana)")
    g.add_argument("--clickhouse", default=f"127.0.0.1:{DEFAULT_PORTS['clickhouse']}",
                   help="the ClickHouse server's native host:port (default the local stack's, "
                        f"127.0.0.1:{DEFAULT_PORTS['clickhouse']}); user and password from the stack's credentials")
    g.add_argument("--user", help="ClickHouse user (default: from the credentials, else default)")
    g.add_argument("--password", help="ClickHouse password (default: from the credentials)")
    g.add_argument("--prometheus", default=PROMETHEUS_URL, help=f"Prometheus URL (default {PROMETHEUS_URL})")


def _add_collect(sub) -> None:
    c = sub.add_parser("collect", help="decode packets and publish them to Kafka, partitioned by flow",
                        formatter_class=functools.partial(ServiceHelp, model=MODELS["collect"]))
    service_options(c, "collect")
    src = c.add_argument_group("source (one of)")
    src.add_argument("--interface", "-I", help="capture live from this interface (--list-interfaces lists them)")
    src.add_argument("--pcap", help="replay this capture file")
    src.add_argument("--list-interfaces", action="store_true",
                     help="list the interfaces to capture (name, state, link type, MTU, addresses) and exit")
    live = c.add_argument_group("live capture")
    live.add_argument("--method", choices=["pcap", "afpacket"],
                      help="libpcap (pcapy-ng next_batch) or an AF_PACKET TPACKET_V3 ring (default afpacket)")
    live.add_argument("--bpf", help="BPF filter expression (tcpdump syntax)")
    live.add_argument("--snaplen", type=int, help="bytes kept per packet")
    live.add_argument("--buffer-mb", type=int, help="kernel ring/buffer size in MiB")
    live.add_argument("--fanout", type=int, help="PACKET_FANOUT group id: collectors sharing it split the "
                      "interface's traffic by flow hash")
    live.add_argument("--no-promisc", action="store_true", default=None,
                      help="do not put the interface in promiscuous mode")
    rep = c.add_argument_group("replay")
    rep.add_argument("--speed", type=float, help="replay at recorded pace times X (default: as fast as possible)")
    rep.add_argument("--rate", type=float, help="replay at this many packets per second")
    rep.add_argument("--retime", action="store_true", default=None,
                     help="stamp replayed packets with the time they are sent")
    rep.add_argument("--loop", type=int, help="replay the file N times (0 = until stopped; default 1); "
                     "use with --retime, else repeated times arrive late")
    c.add_argument("--count", type=int, help="stop after N packets; 0: no limit")
    c.add_argument("--duration", type=float, help="stop after S seconds of capture; 0: no limit")
    c.add_argument("--dry-run", action="store_true", default=None, help="capture and decode only; no Kafka")
    c.add_argument("--no-l7", action="store_true", default=None, help="skip DNS/HTTP/TLS field decoding")
    _add_decap(c)
    c.add_argument("--kafka", help=f"bootstrap servers (default: the local stack, {LOCAL_KAFKA})")
    c.add_argument("--topic", help="the topic to publish to")
    c.add_argument("--partitions", type=int, help="create the topic with N partitions if missing; 0: it must exist")
    c.add_argument("--connect-timeout", type=float, help="seconds to reach the broker")
    c.add_argument("--flush-timeout", type=float, help="seconds to wait for deliveries at the end")
    c.add_argument("--delivery-timeout-s", type=float, help="seconds a message may wait for the broker's "
                   "acknowledgement before it counts as failed")
    c.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port (default 0: none)")
    c.add_argument("--metrics-hold-s", type=float, help="serve the final metrics this long after the capture "
                   "ends, for a last scrape")


def _add_engine(sub) -> None:
    e = sub.add_parser("engine", help="run the window dataflow on a Kafka topic (a Bytewax process of the engine cluster)",
                        formatter_class=functools.partial(ServiceHelp, model=MODELS["engine"]))
    service_options(e, "engine")
    e.add_argument("--kafka", help=f"bootstrap servers (default: the local stack, {LOCAL_KAFKA})")
    e.add_argument("--topic", help="the topic to read")
    e.add_argument("--store", help="chDB store directory for the window results")
    e.add_argument("--clickhouse", help="ClickHouse server host:port, native protocol (local stack: 127.0.0.1:19000)")
    e.add_argument("--redis", help="Redis for live state, host:port or redis:// URL (local stack: 127.0.0.1:16379)")
    e.add_argument("--redis-backlog", type=int, help="windows held while Redis is away; beyond, the oldest is "
                   "dropped and counted")
    e.add_argument("--rollups", action="store_true", default=None,
                   help="keep the ClickHouse/chDB minute, hour and day roll-ups (long ranges answered fast; "
                        "costs about one more write of a flood's records per minute)")
    e.add_argument("--retention", metavar="TABLE=DAYS,...",
                   help=f"days each table keeps, over the defaults ({retention_defaults()}): e.g. "
                        "flows=30,flows_1m=14; changes the TTL of tables made before")
    e.add_argument("--dead-letter-topic", help="where messages that cannot be read go, with the error")
    e.add_argument("--window", type=float, help=f"window length in seconds (default {WINDOW_S:g})")
    e.add_argument("--lateness", type=float,
                   help=f"event-time seconds a window waits for late packets (default {LATENESS_S:g})")
    e.add_argument("--idle", type=float, help="seconds a partition must be quiet, with the broker "
                   "confirming it is read to its end, before it stops holding windows open; when all are, open "
                   f"windows close (default {IDLE_S:g})")
    e.add_argument("--grace", type=float, help="event-time seconds a closed window is kept: "
                   f"packets arriving for it meanwhile update it and it is written again (default {LIVE_GRACE_S:g})")
    e.add_argument("--max-flows", type=int, help="exact flow records kept per window; "
                   f"beyond, the heaviest are kept and the rest counted and sketched (default {MAX_FLOWS:,}, 0 = no limit)")
    e.add_argument("--stop-at-end", action="store_true", default=None,
                   help="stop at the end of the topic instead of tailing it")
    e.add_argument("--rules", metavar="FILE", help="detection rules and notifiers (YAML or JSON; default: built-in rules)")
    e.add_argument("--alert-webhook", metavar="URL", help="POST every alert change to this URL (JSON)")
    e.add_argument("--alertmanager", metavar="URL", help="send alerts to this Prometheus Alertmanager (API v2)")
    e.add_argument("--alert-state", metavar="DIR", help="where notifiers log what they delivered, so a resumed "
                   "engine does not notify twice (default: <recovery dir>/alerts)")
    e.add_argument("--no-detect", action="store_true", default=None, help="no detection or alerts, windows only")
    e.add_argument("--workers", "-w", type=int, help="worker threads per process")
    e.add_argument("--process-id", "-i", type=int, help="this process's index (with --addresses; "
                   "none: from BYTEWAX_PROCESS_ID or the pod name, else a single process)")
    e.add_argument("--addresses", "-a", help="host:port of every engine process, separated by ';'")
    e.add_argument("--recovery-dir", "-r", help="Bytewax recovery directory: state snapshots to resume from "
                   "after a crash (created on first use; see docs/live.md)")
    e.add_argument("--snapshot-interval", "-s", type=int,
                   help="whole seconds between recovery snapshots (default 5; a resume replays at most this much)")
    e.add_argument("--backup-interval", "-b", type=int,
                   help="seconds of older snapshots to keep, when the recovery directory is backed up")
    e.add_argument("--recovery-partitions", type=int,
                   help="recovery partitions to create in a new recovery directory")
    e.add_argument("--recovery-min-free-mb", type=float,
                   help="refuse to start with less free space than this for the recovery directory")
    e.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port; process i of a "
                   "cluster on one host uses port + i (default 0: none)")


def _add_stack(sub) -> None:
    k = sub.add_parser("stack", help="start/stop a local Kafka (Tansu), Redis and ClickHouse on 127.0.0.1")
    k.add_argument("action", choices=["up", "down", "status"], help="start, stop, or list the services")
    k.add_argument("--dir", default=str(DEFAULT_DIR),
                   help=f"pid files, data and logs (default {DEFAULT_DIR}; $NETSPECTRA_STACK_DIR)")
    k.add_argument("--no-clickhouse", action="store_true", help="leave out the ClickHouse server")
    for svc, port in DEFAULT_PORTS.items():
        k.add_argument(f"--{svc.replace('_', '-')}-port", type=int, help=f"port of {svc} on 127.0.0.1 (default {port})")


# Subcommand -> what adds its options, in the order --help lists them.
SUBCOMMANDS = {"synth": _add_synth, "decode": _add_decode, "analyze": _add_analyze, "rules": _add_rules, "api": _add_api,
               "sql": _add_sql, "grafana": _add_grafana, "collect": _add_collect, "engine": _add_engine,
               "stack": _add_stack, "ask": _add_ask, "ai": _add_ai}


# flag -> config field, where they differ; a flag left out (None) keeps the file's value
FLAG_FIELDS = {"no_detect": "detect", "no_promisc": "promisc", "no_l7": "l7"}


def retention_defaults() -> str:
    """The tables' default retention in days, for --retention's help (schemas/clickhouse.py)."""
    from schemas.clickhouse import RETENTION_DAYS, ROLLUPS
    levels = {r.res: r.keep_days for r in ROLLUPS.values()}
    return (f"records and per-window tables {RETENTION_DAYS}, minute roll-ups {levels[60]}, "
            f"hour {levels[3600]}, day {levels[86400]}")


def overrides(args, fields) -> dict:
    """The config fields that flags set (argparse defaults are None: not given)."""
    out = {}
    for name, value in vars(args).items():
        field = FLAG_FIELDS.get(name, name)
        if field in fields and value is not None:
            out[field] = (not value) if name.startswith("no_") else value
    return out


def service_config(model, service: str, args):
    """The service's effective config; or its exit code, when the config is bad (one line per
    problem on stderr: 2) or was only to be printed (--print-config: 0)."""
    from schemas.settings import ConfigError, dump, load_settings
    try:
        cfg = load_settings(model, service, args.config, overrides(args, model.model_fields))
    except ConfigError as e:
        return problems(service, e.lines)
    if args.print_config:
        print(dump(cfg))
        return 0
    return cfg


def log_to_stderr(level: int) -> None:
    """The services' log lines (and librdkafka's, schemas/kafka_logging.py) on stderr, timed."""
    import logging
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(max(level, logging.WARNING))      # not a line per request (AI gateway)


def problems(command: str, lines: list[str]) -> int:
    """Print one line per problem, naming the command; the exit code of a misconfiguration."""
    for line in lines:
        print(f"netspectra {command}: {line}", file=sys.stderr)
    return 2


def service_options(p: argparse.ArgumentParser, service: str) -> None:
    p.add_argument("--config", metavar="FILE", help=f"{service} settings, YAML or JSON (schemas/settings.py); "
                   f"environment NETSPECTRA_{service.upper()}_<SETTING> and flags override them")
    p.add_argument("--print-config", action="store_true", help="print the effective settings as JSON and exit")


def cmd_synth(args) -> int:
    from collectors import synth
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
        problems(command, e.lines)
        return None


def cmd_grafana(args) -> int:
    from pathlib import Path

    from dashboards import provision
    try:
        files = provision.write(Path(args.out), args.clickhouse, args.prometheus, args.user, args.password)
    except (ValueError, OSError) as e:
        print(f"netspectra grafana: {e}", file=sys.stderr)
        return 2
    print(f"wrote {len(files)} files under {Path(args.out).resolve()} (datasources: ClickHouse {args.clickhouse}, "
          f"Prometheus {args.prometheus})")
    print(provision.how_to_run(Path(args.out)))
    return 0


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
    from schemas.jit import choose_for
    choose_for(args.pcap)           # before the kernels are imported: a small capture skips numba
    from collectors.decode.decoder import Decoder
    from collectors.decode.rows import DECODE_FIELDS, batch_rows

    cap = open_capture(args.pcap, "decode")
    if cap is None:
        return 2
    decap = decap_of(args, "decode")
    if decap is None:
        return 2
    dec = Decoder(decap=decap)
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
