"""`netspectra analyze` and `netspectra sql`: the command line of flows/analysis.py: the report
(or JSON) on stdout, a progress bar on a terminal, CSV export."""
from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path


class _Progress:
    """packets, packets/s and ETA (from the share of the file read) on stderr."""

    def __init__(self):
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.p = Progress(TextColumn("[bold]analyze"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                          TextColumn("{task.fields[packets]:,} packets"), TextColumn("{task.fields[rate]}"),
                          TimeRemainingColumn(), transient=True, console=_stderr_console())
        self.task = None
        self.t0 = time.perf_counter()
        self.p.start()

    def update(self, st) -> None:
        if self.task is None:
            self.task = self.p.add_task("analyze", total=max(st.file_bytes, 1), packets=0, rate="")
        rate = st.packets / max(time.perf_counter() - self.t0, 1e-9)
        self.p.update(self.task, completed=st.position, packets=st.packets, rate=f"{rate / 1e6:.2f} Mpps")

    def stop(self) -> None:
        self.p.stop()


def _stderr_console():
    from rich.console import Console
    return Console(stderr=True)


def _ts(ns: int | None) -> str:
    if ns is None:
        return "-"
    return datetime.fromtimestamp(ns / 1e9, timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"


RIGHT = ("packets", "bytes", "share", "distinct dsts", "distinct srcs", "distinct ports", "port", "value")


def text_table(title: str, cols: list[str], rows: list[tuple]) -> str:
    """A titled table in plain text, numbers right-aligned (the report's; rich costs ~30 ms of a
    small capture's 0.2 s to import and render)."""
    cells = [cols] + [[str(x) for x in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(cols))]
    lines = [title]
    for k, r in enumerate(cells):
        lines.append("  " + "  ".join(c.rjust(w) if cols[i] in RIGHT else c.ljust(w)
                                      for i, (c, w) in enumerate(zip(r, widths))).rstrip())
        if k == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def print_report(rep: dict, top: int) -> None:
    from flows.summary import proto_name

    out = []
    dur = ((rep["last_seen_ns"] or 0) - (rep["first_seen_ns"] or 0)) / 1e9
    win = "one window" if not rep["window_seconds"] else f"{rep['windows']} windows of {rep['window_seconds']:g} s"
    out.append(f"{rep['source']} ({rep['capture_format']}): {_ts(rep['first_seen_ns'])} to "
               f"{_ts(rep['last_seen_ns'])} UTC, {dur:.1f} s, {win}")
    out.append(f"{rep['frames']:,} frames, {rep['packets']:,} IP packets, {_size(rep['bytes'])} IP bytes, "
               f"{rep['flows']:,} flow records; analysed in {rep['seconds']:.2f} s "
               f"({rep['frames'] / max(rep['seconds'], 1e-9) / 1e6:.2f} M packets/s)")

    def table(title, cols, rows):
        if rows:
            out.extend(("", text_table(title, cols, rows)))

    total = max(rep["bytes"], 1)
    table("Protocols", ["protocol", "packets", "bytes", "share"],
          [(p["name"], f"{p['packets']:,}", _size(p["bytes"]), f"{100 * p['bytes'] / total:.1f}%") for p in rep["protocols"]])
    table("Top ports", ["protocol", "port", "packets", "bytes"],
          [(p["proto"], p["port"], f"{p['packets']:,}", _size(p["bytes"])) for p in rep["top_ports"][:top]])
    table("Top talkers (by bytes)", ["source", "packets", "bytes", "share"],
          [(t["src"], f"{t['packets']:,}", _size(t["bytes"]), f"{100 * t['bytes'] / total:.1f}%") for t in rep["top_talkers"]])
    table("Top flows (heavy hitters by bytes)", ["flow", "packets", "bytes"],
          [(f"{f['src']}:{f['sport']} -> {f['dst']}:{f['dport']} {proto_name(f['proto'])}", f"{f['packets']:,}", _size(f["bytes"]))
           for f in rep["heavy_hitters"]])
    table("Super-spreaders (most distinct destinations in one window)", ["source", "distinct dsts"],
          [(s["src"], f"{s['distinct_dsts']:,}") for s in rep["super_spreaders"]])
    table("Fan-in (most distinct sources in one window: DDoS victims)", ["destination", "distinct srcs"],
          [(s["dst"], f"{s['distinct_srcs']:,}") for s in rep["fan_in"]])
    table("Port scanners (most distinct destination ports in one window, exact)", ["source", "distinct ports"],
          [(s["src"], f"{s['distinct_ports']:,}") for s in rep["port_scanners"]])
    out.append("")
    if rep["alerts"]:
        out.append("Alerts")
        for a in rep["alerts"]:        # one line each: readable at any terminal width, and greppable
            entity = " ".join(f"{k}={v}" for k, v in a["entity"].items())
            out.append(f"  {a['severity']:<8} {a['rule']} {entity}: {a['value']:,} (threshold {a['threshold']:,}), "
                       f"{_ts(a['first_seen'])} to {_ts(a['last_seen'])} UTC, {a['state']}")
    else:
        out.append("Alerts: none")
    if rep["capped"]:
        table("Beyond --max-flows (counted and sketched only)", ["", "value"],
              [(k, f"{v:,}") for k, v in rep["capped"].items()])
    if rep["errors"]:
        table("Errors and non-IP frames", ["reason", "packets"], [(k, f"{v:,}") for k, v in rep["errors"].items()])
    if rep["incomplete_windows"]:
        out.append(f"{rep['incomplete_windows']} windows incomplete (not every shard reported)")
    print("\n".join(out))


def cmd_analyze(args) -> int:
    from schemas.jit import choose_for
    choose_for(args.pcap)           # before the kernels are imported: a small capture skips numba
    from collectors.capture_file import CaptureFormatError
    from flows.analysis import run_analysis
    from flows.config import WindowConfig
    from flows.sketches import SketchConfig
    from netspectra.cli import decap_of, rules_or_report

    rules = rules_or_report(args.rules, "analyze")
    decap = decap_of(args, "analyze")
    if rules is None or decap is None:
        return 2

    cfg = WindowConfig(window_s=args.window, lateness_s=args.lateness, shards=args.shards, top_n=max(100, args.top),
                       max_flows=args.max_flows, sketches=SketchConfig())
    # a store only when one is kept or exported from (chDB costs ~0.7 s to import and start)
    store = args.store
    if args.export and not store:
        import tempfile     # here: 5 ms of start-up with what it imports
        store = tempfile.mkdtemp(prefix="netspectra-store-")
    bar = _Progress() if not args.json and sys.stderr.isatty() else None
    try:
        run = run_analysis(args.pcap, cfg, store, workers=args.workers, top=args.top, export=args.export,
                           on_progress=bar.update if bar else None, rules=rules, rollups=args.rollups, decap=decap)
    except (CaptureFormatError, OSError) as e:
        print(f"netspectra analyze: {e}", file=sys.stderr)
        return 1
    finally:
        if bar:
            bar.stop()
        if store and not args.store:
            from sinks.chdb_store import ChdbStore
            ChdbStore(store).close()
            import shutil
            shutil.rmtree(store, ignore_errors=True)
    if args.json:
        json.dump(run.report, sys.stdout)
        print()
    else:
        print_report(run.report, args.top)
        if args.export:
            print(f"tables written as CSV to {args.export}/")
        if args.store:
            print(f'store kept in {args.store}: netspectra sql --store {args.store} "SELECT ..."')
    return 0


SERVER_FORMATS = ("PrettyCompact", "TabSeparated", "TSV", "CSV", "JSONEachRow")


def cmd_sql(args) -> int:
    from sinks.chdb_store import ChdbStore

    if args.store.startswith("clickhouse://"):
        return _sql_on_server(args.store[len("clickhouse://"):], args.query, args.format)
    if not Path(args.store).is_dir():
        print(f"netspectra sql: no store at {args.store}", file=sys.stderr)
        return 1
    try:
        out = ChdbStore(args.store).query(args.query, args.format)
    except Exception as e:   # chDB raises plain RuntimeErrors for SQL errors
        print(f"netspectra sql: {e}", file=sys.stderr)
        return 1
    sys.stdout.write(out)
    return 0


def _sql_on_server(address: str, query: str, fmt: str) -> int:
    """A query on a ClickHouse server (native protocol), printed in one of SERVER_FORMATS."""
    import csv
    import json

    from schemas.credentials import clickhouse_client
    from schemas.probes import clickhouse_problem
    if fmt not in SERVER_FORMATS:
        print(f"netspectra sql: on a server, --format is one of {', '.join(SERVER_FORMATS)}", file=sys.stderr)
        return 2
    problem = clickhouse_problem(address)
    if problem:
        print(f"netspectra sql: {problem}", file=sys.stderr)
        return 2
    try:
        rows, types = clickhouse_client(address).execute(query, with_column_types=True)
    except Exception as e:      # the server's message, one line
        text = " ".join(str(e).split("Stack trace:")[0].split())      # the server's message on one line
        print(f"netspectra sql: {text[:400]}", file=sys.stderr)
        return 1
    names = [n for n, _ in types]
    cells = [[_cell(v) for v in r] for r in rows]
    if fmt == "JSONEachRow":
        for r in rows:
            print(json.dumps(dict(zip(names, [v if isinstance(v, (int, float)) else _cell(v) for v in r]))))
    elif fmt == "CSV":
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerows(cells)
    elif fmt in ("TSV", "TabSeparated"):
        for r in cells:
            print("\t".join(r))
    else:
        widths = [max([len(n)] + [len(r[i]) for r in cells]) for i, n in enumerate(names)]
        print("  ".join(n.ljust(w) for n, w in zip(names, widths)))
        for r in cells:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    return 0


def _cell(v) -> str:
    """A value as text; 16 raw address bytes (an 18.16 address column) as the address."""
    if isinstance(v, (bytes, str)) and len(v) == 16 and not (isinstance(v, str) and v.isprintable()):
        from schemas.addresses import to_text
        return to_text(v.encode("latin-1") if isinstance(v, str) else v)
    return str(v)
