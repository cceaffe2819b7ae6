"""Query API latency on a 10M-row flow table (chDB, this machine): p50/p99 per method.

Fills a fresh chDB store with generated window results by INSERT ... SELECT from numbers():
10M flow records over 1,000 one-minute windows (10k flows a window, 5k hosts; --traffic: uniformly
random pairs, or clients and servers, TRAFFIC below), 1M heavy-hitter rows and 200k spreader rows,
and the roll-ups of the records (sinks/rollups.py); then times the records' INSERT alone into fresh tables with flow_keys'
materialized view and without it (ingest_rates). Then each method runs --repeat times over gRPC (a real channel to
the API served in this process) after one uncounted warm-up call, for a one-hour range (60 windows, 600k flow records) and for
the whole table, with the answer cache off (api/cache.py: every call computed). Then --clients
parallel clients (threads of a separate process, each with its own channel) call hour-scale
AggregateFlows for --seconds each: requests/s, p50, p99 for
  - dashboard: the same four panels over one hour, as viewers of one dashboard ask them, cache on;
  - the same with the cache off (every call computed);
  - every request a different hour (800 distinct questions), cache on: what computing costs.

With --server the same runs go to a ClickHouse server instead (Debian's 18.16, started by the
local stack in a temporary directory, down-level schema): the API holds one connection per
serving thread there, so queries run in parallel, and it cannot cache (writes do not pass
through it), so "cache on" computes every call too.

At the end, each table's rows and bytes on disk, and per billion flow records (chDB).

    python bench/bench_api.py [--rows 10000000] [--repeat 30] [--clients 20] [--seconds 20] [--server]
                              [--traffic uniform|clients] [--dashboards]

--dashboards also times every Grafana panel's SQL over the newest hour, day and everything.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

T0_S = 1_749_945_600          # first window, epoch seconds (a day's start: ranges align with the roll-ups)
WINDOW_S = 60
SERIES = 1000                   # a chart's points: the time series' buckets over any range


class Sql:
    """The fill's expressions for modern ClickHouse (chDB) or the down-level 18.16 schema."""

    def __init__(self, legacy: bool):
        self.legacy = legacy

    def window(self, secs: str) -> str:
        return f"toDateTime({secs})" if self.legacy else f"toDateTime64({secs}, 3, 'UTC')"

    def ns(self, secs: str) -> str:
        return f"toUInt64({secs}) * 1000000000" if self.legacy else f"toDateTime64({secs}, 9, 'UTC')"

    def ipv4(self, u32: str) -> str:
        """An IPv4 address (as an integer expression) in the tables' address column type."""
        if self.legacy:       # hex of a 10.x.x.x UInt32 is always 8 digits
            return f"toFixedString(unhex(concat('00000000000000000000FFFF', hex(toUInt32({u32})))), 16)"
        return f"toIPv6(IPv4NumToString(toUInt32({u32})))"

    def zero_addr(self) -> str:
        return "toFixedString(unhex('00000000000000000000000000000000'), 16)" if self.legacy else "toIPv6('::')"


# The records' columns per traffic shape (expressions of `number`, the record's index):
#  - uniform: every record a uniformly random pair of 5,000 hosts, random source port, one of 5
#    service ports: no two records of a minute share an address pair and port (nothing rolls up);
#  - clients: 5,000 clients talking to 200 servers over 20,000 conversations (client, server,
#    service port) drawn with a skew (the busiest few carry most records), half the records the
#    requests (ephemeral source port), half the answers (ephemeral destination port): requests of
#    one conversation in a minute roll up into one row, answers do not (their port differs).
#    One window a minute, so records of a long flow never repeat within a minute: a roll-up
#    reduces less than on 10 s windows.
_SERVICE = "arrayElement([443, 80, 53, 22, 3306], 1 + conv % 5)"
TRAFFIC = {
    "uniform": {"src": "167772160 + cityHash64(number, 1) % 5000", "dst": "167772160 + cityHash64(number, 2) % 5000",
                "sport": "1024 + cityHash64(number, 3) % 60000", "dport": "arrayElement([80, 443, 53, 22, 3306], 1 + number % 5)",
                "proto": "if(number % 7 = 0, 17, 6)"},
    "clients": {"src": "if(number % 2 = 0, client, server)", "dst": "if(number % 2 = 0, server, client)",
                "sport": f"if(number % 2 = 0, ephemeral, {_SERVICE})", "dport": f"if(number % 2 = 0, {_SERVICE}, ephemeral)",
                "proto": f"if({_SERVICE} = 53, 17, 6)"},
}
_CLIENTS = ("toUInt32(pow((cityHash64(number, 5) % 1000000) / 1000000, 3) * 20000) AS conv, "
            "167772160 + conv % 5000 AS client, 167837696 + (conv * 7919) % 200 AS server, "
            "1024 + cityHash64(number, 3) % 60000 AS ephemeral")


def records_sql(sql: Sql, rows: int, per: int, traffic: str, database: str = "netspectra") -> str:
    """The INSERT of `rows` flow records, `per` a window."""
    w = f"{T0_S} + intDiv(number, {per}) * {WINDOW_S}"
    c = TRAFFIC[traffic]
    return f"""INSERT INTO {database}.flows (window_start, source, src, dst, sport, dport, proto, packets,
        bytes, first_seen, last_seen, tcp_flags)
        SELECT {sql.window(w)}, 'bench', {sql.ipv4(c["src"])}, {sql.ipv4(c["dst"])},
               toUInt16({c["sport"]}), toUInt16({c["dport"]}), toUInt8({c["proto"]}),
               1 + cityHash64(number, 4) % 100, (1 + cityHash64(number, 4) % 100) * 700,
               {sql.ns(w)}, {sql.ns(w + " + 59")}, 24
        FROM (SELECT number{", " + _CLIENTS if traffic == "clients" else ""} FROM numbers({rows}))"""


def fill(execute, sql: Sql, rows: int, windows: int, traffic: str = "uniform") -> float:
    per = rows // windows
    t = time.perf_counter()
    execute(records_sql(sql, rows, per, traffic))
    execute(f"""INSERT INTO netspectra.window_totals (window_start, source, window_seconds, first_seen, last_seen,
        frames, packets, bytes, flows, late_packets, late_bytes, complete)
        SELECT {sql.window(f"{T0_S} + number * {WINDOW_S}")}, 'bench', {WINDOW_S}, {sql.ns(f"{T0_S} + number * {WINDOW_S}")},
               {sql.ns(f"{T0_S} + number * {WINDOW_S} + 59")}, 0, 0, 0, {per}, 0, 0, 1
        FROM numbers({windows})""")      # the windows there are (the dashboards' panels look for sources in them)
    w = f"{T0_S} + intDiv(number, 100) * {WINDOW_S}"
    for dim in ("src", "dst", "flow", "dport", "proto"):
        for metric in ("bytes", "packets"):
            execute(f"""INSERT INTO netspectra.heavy_hitters (window_start, source, dimension, metric, item,
                rank, src, dst, sport, dport, proto, estimate, lower_bound, upper_bound)
                SELECT {sql.window(w)}, 'bench', '{dim}', '{metric}',
                       toString(cityHash64(number % 500)), toUInt16(1 + number % 100),
                       {sql.ipv4("167772160 + number % 500")}, {sql.zero_addr()}, 0, 0, 0,
                       1000000 - number % 100, 990000 - number % 100, 1000000 - number % 100
                FROM numbers({windows * 100})""")
    for kind in ("src_spread", "dst_fan_in"):
        execute(f"""INSERT INTO netspectra.spreaders (window_start, source, kind, addr, rank, estimate,
            lower_bound, upper_bound)
            SELECT {sql.window(w)}, 'bench', '{kind}',
                   {sql.ipv4("167772160 + number % 500")}, toUInt16(1 + number % 100),
                   toFloat64(5000 - number % 100), toFloat64(4900 - number % 100), toFloat64(5100 - number % 100)
            FROM numbers({windows * 100})""")
    execute("OPTIMIZE TABLE netspectra.flows FINAL")
    return time.perf_counter() - t


INGEST_ROWS = 5_000_000       # records a timed INSERT of ingest_rates writes


def ingest_rates(execute, sql: Sql, rows: int, windows: int, traffic: str, rounds: int = 3) -> dict:
    """Rows/s of the records' INSERT into fresh tables with the materialized view that writes
    flow_keys (TraceFlow's index) and without it, alternated, the best of `rounds` each (the
    roll-ups are computed apart by the writer: rollup_rows_per_s)."""
    from schemas.clickhouse import ddl, flow_keys_sql
    n, db = min(rows, INGEST_ROWS), "bench_ingest"
    took: dict[str, list[float]] = {"with the flow_keys view": [], "without": []}
    for _ in range(rounds):
        for mode, times in took.items():
            for stmt in ddl(db, legacy=sql.legacy):
                execute(stmt)
            if mode != "without":
                execute(flow_keys_sql(db)[0])
            t = time.perf_counter()
            execute(records_sql(sql, n, rows // windows, traffic, db))
            times.append(time.perf_counter() - t)
            execute(f"DROP DATABASE {db}")
    return {mode: round(n / min(times)) for mode, times in took.items()}


def roll_up(execute, rows, legacy: bool, windows: int) -> float:
    """The roll-ups of every window filled (sinks/rollups.py, as a writer computes them)."""
    from schemas.clickhouse import ROLLUPS
    from sinks.rollups import Rollups
    t = time.perf_counter()
    r = Rollups(execute, rows, legacy)
    r.before_write([("bench", T0_S + i * WINDOW_S, WINDOW_S) for i in range(windows)])
    r.roll(everything=True)
    took = time.perf_counter() - t
    for table in ROLLUPS:        # merged as the records are (fill): FINAL costs the same on both
        execute(f"OPTIMIZE TABLE netspectra.{table} FINAL")
    return took


def dashboards(rows, windows: int, repeat: int) -> dict:
    """p50/p99 of each Grafana panel's SQL (macros expanded as the plugin does, no variable set)
    over the newest hour, day and everything, ends at odd seconds as Grafana's "now" has them;
    the roll-up panels also from the records alone ("... (records)")."""
    from dashboards import build
    end = T0_S + windows * WINDOW_S - 7
    out = {}
    variables = {"source": "", "address": "", "protocol": "", "vlan": ""}
    records = {title: sql for title, _kind, sql in build.panels(records_only=True)}
    for name, start in (("1 h", end - 3600), ("1 day", end - 86400), ("all", T0_S)):
        if start < T0_S:
            continue
        res = out[name] = {}
        for title, _kind, sql in build.PANELS:
            runs = [(title, sql)] + ([(f"{title} (records)", records[title])] if records[title] != sql else [])
            for label, text in runs:
                q = build.expand(text, start, end, variables, interval_s=max(1, (end - start) // 1000))
                rows(q)                     # warm-up, not counted
                times = []
                for _ in range(repeat):
                    t = time.perf_counter()
                    rows(q)
                    times.append((time.perf_counter() - t) * 1000)
                res[label] = {"p50": round(float(np.percentile(times, 50)), 1),
                              "p99": round(float(np.percentile(times, 99)), 1)}
    return out


def disk(rows) -> dict:
    """Per table: rows, bytes on disk, and what a billion flow records would take (GB)."""
    got = rows("SELECT table, sum(rows), sum(bytes_on_disk) FROM system.parts WHERE database = 'netspectra' "
               "AND active GROUP BY table", {})
    by = {t: (int(n), int(b)) for t, n, b in got}
    records = by.get("flows", (0, 0))[0] or 1
    return {t: {"rows": n, "rows_per_record": round(n / records, 3), "mb": round(b / 1e6, 1),
                "gb_per_billion_records": round(b / records, 1)} for t, (n, b) in sorted(by.items())}


def _client_load(port: int, token: str, bodies: list[bytes], clients: int, seconds: float, out) -> None:
    """Runs in a child process (its own GIL): `clients` threads calling AggregateFlows for `seconds`."""
    import threading

    import grpc

    from schemas.v1 import query_pb2 as pb
    from schemas.v1 import query_pb2_grpc as pb_grpc

    md = [("authorization", f"Bearer {token}")]
    reqs = [pb.AggregateFlowsRequest.FromString(b) for b in bodies]
    times: list[float] = []
    errors = [0]
    start = threading.Barrier(clients + 1)

    def one(i: int) -> None:
        stub = pb_grpc.QueryStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
        stub.AggregateFlows(reqs[i % len(reqs)], metadata=md, timeout=30)      # connect, not counted
        start.wait()
        k = i * max(1, len(reqs) // clients)       # spread: clients do not ask what another just did
        while time.perf_counter() < end[0]:
            t = time.perf_counter()
            try:
                stub.AggregateFlows(reqs[k % len(reqs)], metadata=md, timeout=30)
                times.append(time.perf_counter() - t)
            except grpc.RpcError:
                errors[0] += 1
            k += 1

    end = [0.0]
    threads = [threading.Thread(target=one, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    end[0] = time.perf_counter() + 3600
    start.wait()
    t0 = time.perf_counter()
    end[0] = t0 + seconds
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ms = np.array(times) * 1000
    out.put({"clients": clients, "seconds": round(wall, 1), "requests": len(times), "errors": errors[0],
             "requests_per_s": round(len(times) / wall, 1), "p50_ms": round(float(np.percentile(ms, 50)), 1),
             "p99_ms": round(float(np.percentile(ms, 99)), 1)})


def concurrent(port: int, token: str, reqs: list, clients: int, seconds: float) -> dict:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    p = ctx.Process(target=_client_load, args=(port, token, [r.SerializeToString() for r in reqs], clients,
                                               seconds, out))
    p.start()
    res = out.get(timeout=seconds + 120)
    p.join()
    return res


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--windows", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--server", action="store_true", help="query a ClickHouse server (the local stack's 18.16), not chDB")
    ap.add_argument("--store", help="a chDB store an earlier run of the same --rows, --windows and --traffic left "
                                    "(its path is printed): query it again, without filling it")
    ap.add_argument("--traffic", choices=sorted(TRAFFIC), default="uniform", help="the records' shape (TRAFFIC above)")
    ap.add_argument("--dashboards", action="store_true",
                    help="also time every Grafana panel's SQL (dashboards/build.py), and the roll-up panels from the records alone")
    args = ap.parse_args()
    import grpc
    from google.protobuf import json_format

    from api.cache import ResultCache
    from api.config import ApiConfig
    from api.server import build
    from schemas.v1 import query_pb2 as pb
    from schemas.v1 import query_pb2_grpc as pb_grpc

    if args.store and args.server:
        ap.error("--store is a chDB store: drop --server")
    d = args.store or tempfile.mkdtemp(prefix="bench-api-")
    token = "bench-token-0123456789abcdef"
    if args.server:
        from sinks.clickhouse_native import ClickHouseNative
        from stack import local as stack

        ports = dict(zip(["kafka", "redis", "clickhouse", "clickhouse_http"], stack.free_ports(4)))
        stack.up(Path(d) / "stack", ports=ports)
        store = f"clickhouse://127.0.0.1:{ports['clickhouse']}"
        sink = ClickHouseNative(store[len("clickhouse://"):])
        sink._setup()
        execute = sink.client.execute
    else:
        store = d
    service, server, port, _app = build(ApiConfig(store=store, grpc_port=0, tokens=[{"token": token}]))
    if not args.server:
        execute = service.backend.store.sess.query
    sql = Sql(service.backend.dialect.legacy)
    rows_fn = (lambda q: execute(q)) if args.server else (lambda q: service.backend.rows(q, {}))
    if args.store:
        if not int(rows_fn("SELECT count() FROM netspectra.flows")[0][0]):
            ap.error(f"--store {d} holds no flow records: fill one with a run without --store")
    else:
        fill_s = fill(execute, sql, args.rows, args.windows, args.traffic)
        rollup_s = roll_up(execute, rows_fn, sql.legacy, args.windows)
        ingest = ingest_rates(execute, sql, args.rows, args.windows, args.traffic)
    server.start()
    stub = pb_grpc.QueryStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
    md = [("authorization", f"Bearer {token}")]
    hour = {"start_ms": (T0_S + 300 * WINDOW_S) * 1000, "end_ms": (T0_S + 360 * WINDOW_S) * 1000}
    full = {"start_ms": T0_S * 1000, "end_ms": (T0_S + args.windows * WINDOW_S) * 1000}
    text = service.backend.dialect.addr_text
    flow = service.backend.rows(f"SELECT {text('src')}, {text('dst')}, sport, dport, proto FROM netspectra.flows "
                                f"WHERE window_start = {sql.window('{t:UInt32}')} LIMIT 1", {"t": T0_S + 300 * WINDOW_S})[0]
    src, dst = (a.replace("::ffff:", "") for a in flow[:2])

    def series(rng: dict) -> int:
        """A chart's buckets over the range: whole minutes, at most SERIES of them."""
        return 60 * -(-(rng["end_ms"] - rng["start_ms"]) // (SERIES * 60_000))

    def calls(rng: dict) -> dict:
        return {
            "AggregateFlows totals": ("AggregateFlows", {}),
            "AggregateFlows by src, top 10": ("AggregateFlows", {"group_by": ["DIMENSION_SRC"], "limit": 10}),
            f"AggregateFlows time series (<= {SERIES} buckets)": ("AggregateFlows", {"bucket_seconds": series(rng)}),
            "AggregateFlows dst 10.0.0.0/24, tcp, by dport": ("AggregateFlows", {"filter": {"dst": ["10.0.0.0/24"],
                                                               "proto": [6]}, "group_by": ["DIMENSION_DPORT"]}),
            "TraceFlow": ("TraceFlow", {"src": src, "dst": dst, "sport": flow[2], "dport": flow[3], "proto": flow[4]}),
            "QueryHeavyHitters sketch src": ("QueryHeavyHitters", {"dimension": "HH_SRC", "limit": 10}),
            "QueryHeavyHitters exact 5-tuple": ("QueryHeavyHitters", {"dimension": "HH_FLOW", "limit": 10, "exact": True}),
            "QueryHeavyHitters exact src": ("QueryHeavyHitters", {"dimension": "HH_SRC", "limit": 10, "exact": True}),
            "QuerySpreaders sketch": ("QuerySpreaders", {"limit": 10}),
            "QuerySpreaders exact": ("QuerySpreaders", {"limit": 10, "exact": True}),
        }
    out = {"rows": args.rows, "windows": args.windows, "traffic": args.traffic}
    if not args.store:
        out.update({"fill_seconds": round(fill_s, 1), "fill_rows_per_s": round(args.rows / fill_s),
                    "rollup_seconds": round(rollup_s, 1), "rollup_rows_per_s": round(args.rows / rollup_s),
                    "records_insert_rows_per_s": ingest})
    out.update({"latency_ms": {}, "table": {}})
    cached = service.cache
    if args.clients:
        panels = [body for method, body in calls(hour).values() if method == "AggregateFlows"]
        same = [json_format.ParseDict({"range": hour, **b}, pb.AggregateFlowsRequest()) for b in panels]
        hours = [{"start_ms": (T0_S + h * WINDOW_S) * 1000, "end_ms": (T0_S + (h + 60) * WINDOW_S) * 1000}
                 for h in range(0, args.windows - 60, max(1, (args.windows - 60) // 200))][:200]
        distinct = [json_format.ParseDict({"range": r, **b}, pb.AggregateFlowsRequest()) for r in hours for b in panels]
        runs = out["concurrent_1h_aggregate_flows"] = {}
        runs["dashboard, cache on"] = concurrent(port, token, same, args.clients, args.seconds)
        service.cache = ResultCache(service.backend.version, 0)
        runs["dashboard, cache off"] = concurrent(port, token, same, args.clients, args.seconds)
        service.cache = cached
        runs[f"{len(distinct)} distinct hours, cache on"] = concurrent(port, token, distinct, args.clients, args.seconds)
    service.cache = ResultCache(service.backend.version, 0)
    per_hour = args.rows // args.windows * (3600 // WINDOW_S)
    ranges = [(f"1 h ({per_hour / 1000:g}k rows)", hour)]
    if args.windows * WINDOW_S >= 9 * 86400:     # a week of whole hours, not of whole days: the hour levels
        week = T0_S + 86400 + 5 * 3600
        ranges.append(("7 days from 05:00", {"start_ms": week * 1000, "end_ms": (week + 7 * 86400) * 1000}))
    ranges.append((f"all ({args.windows * WINDOW_S / 86400:g} days, {args.rows / 1e6:g}M rows)", full))
    if args.windows * WINDOW_S >= 2 * 86400:    # whole buckets of no level at either end: every level's pieces
        a, b = T0_S + 17 * 60 + 25, T0_S + args.windows * WINDOW_S - 86400 + 13 * 3600 + 42 * 60 + 5
        ranges.append((f"{(b - a) / 86400:.1f} days from 00:17:25 to 13:42:05", {"start_ms": a * 1000, "end_ms": b * 1000}))
    for rng_name, rng in ranges:
        res = {}
        for name, (method, body) in calls(rng).items():
            req = json_format.ParseDict({"range": rng, **body}, getattr(pb, f"{method}Request")())
            first = getattr(stub, method)(req, metadata=md, timeout=120)     # warm-up call, not counted
            if getattr(first, "table", ""):          # what answered (the records or a roll-up)
                out["table"][f"{rng_name}: {name}"] = first.table
            times = []
            for _ in range(args.repeat):
                t = time.perf_counter()
                getattr(stub, method)(req, metadata=md, timeout=120)
                times.append((time.perf_counter() - t) * 1000)
            res[name] = {"p50": round(float(np.percentile(times, 50)), 1), "p99": round(float(np.percentile(times, 99)), 1),
                         "calls": len(times)}
        out["latency_ms"][rng_name] = res
    server.stop(0)
    if args.dashboards:
        out["dashboards_ms"] = dashboards(rows_fn, args.windows, args.repeat)
    out["store"] = f"{service.backend.name} {d}"
    if not args.server:
        out["disk"] = disk(service.backend.rows)
    if args.server:
        stack.down(Path(d) / "stack")
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
