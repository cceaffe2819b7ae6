"""ClickHouse DDL of the window results (modern ClickHouse: chDB and servers >= 23.x).

Design:
- time first in every sort key (queries are nearly always "this time range, then ..."), then
  `source` (the capture file or collector the window came from), then the entity;
- partitions on window time sized from the table's retention (at least 12 of them: days under a
  year's retention, months under 12 years, years beyond), TTL on insertion time (an old capture
  analysed today is kept as long as live data) with ttl_only_drop_parts: expiry drops whole
  parts, it never rewrites them;
- roll-ups (ROLLUPS): the flow records summed per minute, hour and day, without the source port
  (flows_*), without ports (hosts_*: the answers of client/server traffic, each to its own
  ephemeral port, fold into their host pair), without addresses (traffic_*: a spoofed flood,
  every record its own address pair, still rolls up small), with protocol and VLAN only
  (protocols_*: totals and time series, a few rows a minute), and without the source address,
  sorted by destination (dst_ports_*: "this destination network, by port" reads only its
  addresses' rows), and that with the destination cut to its network (dst_nets_*, NET_PREFIXES:
  answers to a network's clients go to ephemeral ports, each host's fold into one row per port),
  kept longer than the records (sinks/rollups.py keeps them exact; api/ reads the smallest ones
  that answer a request exactly, piece by piece of its range);
  the sketch tables' results per hour and day too (heavy_hitters_*, spreaders_*);
- LowCardinality for short repeated strings, IPv6 for addresses (IPv4 as ::ffff:a.b.c.d);
- idempotent writes: every table is a ReplacingMergeTree whose sort key is (window, source,
  entity), so writing a window again (a re-run, or a replay after a crash) replaces its rows
  instead of adding to them. Read with FINAL (or argMax on inserted_at) for exact results
  before background merges have run.

Debian's clickhouse-server 18.16 lacks IPv6, LowCardinality (without a setting), DateTime64
and TTL; see docs/analysis.md (the paragraph on 18.16).
"""
from __future__ import annotations

import re
from typing import NamedTuple

DATABASE = "netspectra"
RETENTION_DAYS = 90           # the per-window tables (flow records, totals, sketches, alerts)
ROLLUP_DIMENSIONS = ("src", "dst", "dport", "proto", "vlan")      # what a roll-up keeps of a record
HOSTS_DIMENSIONS = ("src", "dst", "proto", "vlan")                 # ... the port-free ones
SRC_DIMENSIONS = ("src", "proto", "vlan")                          # ... and the dst-free of those
TRAFFIC_DIMENSIONS = ("dport", "proto", "vlan")                    # ... and the address-free ones
PROTOCOL_DIMENSIONS = ("proto", "vlan")                            # ... and the port-free of those
DST_PORT_DIMENSIONS = ("dst", "dport", "proto", "vlan")            # the source-free ones, dst first
HH_DIMENSIONS = ("dimension", "metric", "item")                    # a heavy hitter (its columns follow from it)
SPREAD_DIMENSIONS = ("kind", "addr")                               # a spreader
NET_PREFIXES = (24, 64)         # the network a dst_nets_* level keeps of an IPv4, an IPv6 destination


class Rollup(NamedTuple):
    res: int                    # resolution, seconds
    keep_days: int              # retention
    dims: tuple[str, ...]       # the record's columns kept (the others are summed over)
    base: str = "flows"         # the per-window table rolled up
    dst_net: bool = False       # dst cut to its network (NET_PREFIXES): "dst_net" in keeps()

    def keeps(self) -> set[str]:
        """What a query may use of this level: its dimensions, where a network-cut dst answers
        only filters on networks at least that wide ("dst_net": api/queries.py used_columns),
        which a level with whole addresses answers too."""
        dims = set(self.dims)
        if "dst" in dims:
            dims = (dims - {"dst"} if self.dst_net else dims) | {"dst_net"}
        return dims


# Roll-ups of the flow records; each is computed from an earlier one (rollup_source).
ROLLUPS = {"flows_1m": Rollup(60, 90, ROLLUP_DIMENSIONS), "flows_1h": Rollup(3600, 400, ROLLUP_DIMENSIONS),
           "flows_1d": Rollup(86400, 1830, ROLLUP_DIMENSIONS),
           "hosts_1m": Rollup(60, 90, HOSTS_DIMENSIONS), "hosts_1h": Rollup(3600, 400, HOSTS_DIMENSIONS),
           "hosts_1d": Rollup(86400, 1830, HOSTS_DIMENSIONS),
           "sources_1m": Rollup(60, 90, SRC_DIMENSIONS), "sources_1h": Rollup(3600, 400, SRC_DIMENSIONS),
           "sources_1d": Rollup(86400, 1830, SRC_DIMENSIONS),
           "traffic_1m": Rollup(60, 90, TRAFFIC_DIMENSIONS), "traffic_1h": Rollup(3600, 400, TRAFFIC_DIMENSIONS),
           "traffic_1d": Rollup(86400, 1830, TRAFFIC_DIMENSIONS),
           "protocols_1m": Rollup(60, 90, PROTOCOL_DIMENSIONS), "protocols_1h": Rollup(3600, 400, PROTOCOL_DIMENSIONS),
           "protocols_1d": Rollup(86400, 1830, PROTOCOL_DIMENSIONS),
           "dst_ports_1h": Rollup(3600, 400, DST_PORT_DIMENSIONS), "dst_ports_1d": Rollup(86400, 1830, DST_PORT_DIMENSIONS),
           "dst_nets_1m": Rollup(60, 90, DST_PORT_DIMENSIONS, dst_net=True),
           "dst_nets_1h": Rollup(3600, 400, DST_PORT_DIMENSIONS, dst_net=True),
           "dst_nets_1d": Rollup(86400, 1830, DST_PORT_DIMENSIONS, dst_net=True),
           # weeks (from the epoch: Thursdays): a network's answers go to ~60k ephemeral ports a
           # day, which do not fold into days; a month of days would be 1.8M rows, of weeks 260k
           "dst_nets_1w": Rollup(7 * 86400, 1830, DST_PORT_DIMENSIONS, dst_net=True),
           # the sketches' per-window results (their estimates summed, their largest spread kept)
           "heavy_hitters_1h": Rollup(3600, 400, HH_DIMENSIONS, "heavy_hitters"),
           "heavy_hitters_1d": Rollup(86400, 1830, HH_DIMENSIONS, "heavy_hitters"),
           "spreaders_1h": Rollup(3600, 400, SPREAD_DIMENSIONS, "spreaders"),
           "spreaders_1d": Rollup(86400, 1830, SPREAD_DIMENSIONS, "spreaders")}
FLOW_ROLLUPS = [t for t, r in ROLLUPS.items() if r.base == "flows"]
# Per table rolled up, a level's other columns: (name, type, from the table, from a finer level).
# Heavy hitters: a window's estimates (and bounds) summed over the bucket, as the API sums them
# over a range; spreaders: the largest estimate of a window in the bucket, with its bounds.
ROLLUP_VALUES = {
    "flows": [("packets", "UInt64", "sum(packets)", "sum(packets)"), ("bytes", "UInt64", "sum(bytes)", "sum(bytes)"),
              ("flows", "UInt64", "count()", "sum(flows)")],
    "heavy_hitters": [(c, t, f"any({c})", f"any({c})") for c, t in
                      (("src", "IPv6"), ("dst", "IPv6"), ("sport", "UInt16"), ("dport", "UInt16"), ("proto", "UInt8"))]
    + [(c, "UInt64", f"sum({c})", f"sum({c})") for c in ("estimate", "lower_bound", "upper_bound")],
    "spreaders": [("estimate", "Float64", "max(estimate)", "max(estimate)")]
    + [(c, "Float64", f"argMax({c}, estimate)", f"argMax({c}, estimate)") for c in ("lower_bound", "upper_bound")],
}
MARKS = "rollup_marks"

_COMMON = """    window_start DateTime64(3, 'UTC'),
    source LowCardinality(String),"""
_INSERTED = "    inserted_at DateTime DEFAULT now()"

TABLES = {
    # Exact per-window flow records, one per unidirectional 5-tuple, VLAN (outermost id, 0 untagged) and
    # tunnel (the innermost one its packets came out of: kind, '' for none, and id; schemas/packet_batch.py),
    # with their connection's first ClientHello's server name, JA4 and offered ALPN ('' without; flows/tls.py).
    "flows": (f"""{_COMMON}
    src IPv6,
    dst IPv6,
    sport UInt16,
    dport UInt16,
    proto UInt8,
    vlan UInt16,
    packets UInt64,
    bytes UInt64,
    first_seen DateTime64(9, 'UTC'),
    last_seen DateTime64(9, 'UTC'),
    tcp_flags UInt16,
    tls_sni LowCardinality(String),
    tls_ja4 LowCardinality(String),
    tls_alpn LowCardinality(String),
    tunnel LowCardinality(String),
    tunnel_id UInt32,
{_INSERTED}""", "window_start, source, src, dst, sport, dport, proto, vlan, tunnel, tunnel_id"),
    # One row per window: totals and whether every shard reported.
    "window_totals": (f"""{_COMMON}
    window_seconds Float64,
    first_seen DateTime64(9, 'UTC'),
    last_seen DateTime64(9, 'UTC'),
    frames UInt64,
    packets UInt64,
    bytes UInt64,
    flows UInt64,
    late_packets UInt64,
    late_bytes UInt64,
    complete UInt8,
{_INSERTED}""", "window_start, source"),
    # Exact small breakdowns: kind 'protocol' (name = number), 'port' (name = proto/port, top N),
    # 'status' (frames by decode status and other counters, bytes 0).
    "window_counters": (f"""{_COMMON}
    kind LowCardinality(String),
    name LowCardinality(String),
    packets UInt64,
    bytes UInt64,
{_INSERTED}""", "window_start, source, kind, name"),
    # Frequent-items estimates: dimension src|dst|flow|dport|proto ranked by metric bytes|packets.
    "heavy_hitters": (f"""{_COMMON}
    dimension LowCardinality(String),
    metric LowCardinality(String),
    item String,
    rank UInt16,
    src IPv6,
    dst IPv6,
    sport UInt16,
    dport UInt16,
    proto UInt8,
    estimate UInt64,
    lower_bound UInt64,
    upper_bound UInt64,
{_INSERTED}""", "window_start, source, dimension, metric, item"),
    # HLL estimates: kind src_spread (distinct dsts per src) or dst_fan_in (distinct srcs per dst).
    "spreaders": (f"""{_COMMON}
    kind LowCardinality(String),
    addr IPv6,
    rank UInt16,
    estimate Float64,
    lower_bound Float64,
    upper_bound Float64,
{_INSERTED}""", "window_start, source, kind, addr"),
    # Names DNS responses gave addresses in the window (flows/dns.py): per address, the A or AAAA
    # record's owner and the response's question (a CNAME chain's start), the records that said so.
    "dns_names": (f"""{_COMMON}
    addr IPv6,
    name String,
    query String,
    answers UInt64,
{_INSERTED}""", "window_start, source, addr, name, query"),
    # SIP calls of the window (flows/sip.py): per Call-ID, its first message's From, To and
    # addresses, its first request's method, its last final response (0: none), messages counted;
    # method_seen and status_seen (0: none) let a range join its windows' rows.
    "sip_calls": (f"""{_COMMON}
    call_id String,
    method LowCardinality(String),
    from_uri String,
    to_uri String,
    src IPv6,
    dst IPv6,
    first_seen DateTime64(9, 'UTC'),
    last_seen DateTime64(9, 'UTC'),
    requests UInt64,
    responses UInt64,
    status UInt16,
    method_seen DateTime64(9, 'UTC'),
    status_seen DateTime64(9, 'UTC'),
{_INSERTED}""", "window_start, source, call_id"),
    # Alerts (flows/alerts.py): one row per alert, rewritten as it changes; `version` grows with
    # every change, so the newest state wins however rows arrive (a replay re-sends older ones).
    # window_start is the alert's first window (first_seen), fixed for its life; the entity's
    # addresses are text ('' when not part of it). entity and evidence are JSON text.
    "alerts": (f"""{_COMMON}
    id String,
    rule LowCardinality(String),
    detector LowCardinality(String),
    severity LowCardinality(String),
    state LowCardinality(String),
    src String,
    dst String,
    port UInt16,
    entity String,
    value Float64,
    threshold Float64,
    last_window DateTime64(3, 'UTC'),
    last_seen DateTime64(3, 'UTC'),
    resolved_at DateTime64(3, 'UTC'),
    windows UInt32,
    evidence String,
    version UInt32,
{_INSERTED}""", "window_start, source, id", "version"),
}
_DIM_TYPES = {"src": "IPv6", "dst": "IPv6", "dport": "UInt16", "proto": "UInt8", "vlan": "UInt16",
              "dimension": "LowCardinality(String)", "metric": "LowCardinality(String)", "item": "String",
              "kind": "LowCardinality(String)", "addr": "IPv6"}
for _table, _r in ROLLUPS.items():
    # window_start: the bucket's start. The bucket's rows of the base table per the dimensions
    # (ROLLUP_VALUES): for the flow records `flows` counts the records summed (one per window and
    # 5-tuple). A bucket is recomputed whole, its rows replacing the older ones (`version`: when, in ns).
    _cols = "".join(f"    {d} {_DIM_TYPES[d]},\n" for d in _r.dims)
    _cols += "".join(f"    {c} {t},\n" for c, t, *_ in ROLLUP_VALUES[_r.base])
    TABLES[_table] = (f"""{_COMMON}
{_cols}    version UInt64,
{_INSERTED}""", "window_start, source, " + ", ".join(_r.dims), "version")
# Which window starts each roll-up covers exactly, per source: [since, until) (sinks/rollups.py).
TABLES[MARKS] = ("""    level LowCardinality(String),
    source LowCardinality(String),
    since DateTime64(3, 'UTC'),
    until DateTime64(3, 'UTC'),
    version UInt64,
    inserted_at DateTime DEFAULT now()""", "level, source", "version")
# Where each 5-tuple's records are (TraceFlow's index): a row per record's window, keyed by the low
# 32 bits of its hash (flow_key_sql), written by a materialized view of the records (flow_keys_sql).
# Sorted by the key, "one flow over a month" reads a granule a day here, then only its windows'
# records; a bloom filter on the records read its whole index (125 MB for 100M records) instead.
# A superset is harmless (a hash shared by two flows: a window read more), a row missing is not:
# it lives as long as the records (RETENTION_TABLE), is deleted with them (TABLES), and is made
# from the records of a store written before it (flow_keys_sql backfill).
FLOW_KEYS = "flow_keys"
TABLES[FLOW_KEYS] = ("""    window_start DateTime('UTC') CODEC(T64, ZSTD(1)),
    source LowCardinality(String),
    key_hash UInt32 CODEC(Delta, ZSTD(1)),
    inserted_at DateTime DEFAULT now()""", "key_hash, window_start, source")
RETENTION_TABLE = {FLOW_KEYS: "flows"}      # a table kept as long as another
WINDOW_TABLES = [t for t in TABLES if t not in ("alerts", MARKS, FLOW_KEYS, *ROLLUPS)]  # the tables every window writes
RESULT_TABLES = [t for t in TABLES if t != FLOW_KEYS]        # what a store holds of the windows (export)


def marks_sql(database: str = DATABASE) -> str:
    """The roll-ups' spans: (level, source, since s, until s) rows (sinks/rollups.py writes them)."""
    return (f"SELECT level, source, toUInt32(toDateTime(since)), toUInt32(toDateTime(until)) "
            f"FROM {database}.{MARKS} FINAL")


def retention_s(table: str) -> int:
    return (ROLLUPS[table].keep_days if table in ROLLUPS else RETENTION_DAYS) * 86400


TTL_TABLES = [t for t in TABLES if t not in (MARKS, *RETENTION_TABLE)]       # the tables with a retention set


def _kept(retention: dict[str, int]) -> dict[str, int]:
    """A retention setting with the tables kept as long as another (RETENTION_TABLE) added."""
    return {**retention, **{t: retention[o] for t, o in RETENTION_TABLE.items() if o in retention}}


def retention_setting(days: dict[str, float]) -> dict[str, int]:
    """A retention setting (table -> days, over the defaults) as table -> seconds; ValueError
    naming what is wrong and the tables there are."""
    bad = sorted(set(days) - set(TTL_TABLES))
    if bad:
        raise ValueError(f"no table {', '.join(bad)} keeps data for a time: retention is for {', '.join(TTL_TABLES)}")
    small = sorted(t for t, d in days.items() if not d > 0)
    if small:
        raise ValueError(f"retention of {', '.join(small)} must be more than 0 days")
    return {t: max(1, round(d * 86400)) for t, d in days.items()}


def parse_retention(text: str) -> dict[str, float]:
    """'flows=30,flows_1m=7.5' -> {table: days} (the command line's form)."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        table, eq, days = part.partition("=")
        try:
            out[table.strip()] = float(days)
        except ValueError:
            raise ValueError(f"retention {part!r}: write TABLE=DAYS[,TABLE=DAYS...], e.g. flows=30") from None
        if not eq:
            raise ValueError(f"retention {part!r}: write TABLE=DAYS[,TABLE=DAYS...], e.g. flows=30")
    return out


def ttl_changes(database: str, engines: list[tuple[str, str]], retention: dict[str, int]) -> list[str]:
    """ALTERs for the tables whose TTL is not the retention set (`engines`: system.tables' name,
    engine_full of the database): tables made before keep theirs otherwise (CREATE IF NOT
    EXISTS). The partitions stay as they were made. Modern servers only (18.16 has no TTL)."""
    retention = _kept(retention)
    now = {name: int(m.group(1)) for name, full in engines
           if (m := re.search(r"TTL inserted_at \+ toIntervalSecond\((\d+)\)", full))}
    return [f"ALTER TABLE {database}.{t} MODIFY TTL inserted_at + INTERVAL {sec} SECOND"
            for t, sec in sorted(retention.items()) if now.get(t) != sec]


def engines_sql(database: str = DATABASE) -> str:
    return f"SELECT name, engine_full FROM system.tables WHERE database = {sql_string(database)}"


def rollup_source(level: str) -> str:
    """The table a roll-up is computed from: the smallest earlier level of its base that keeps its
    dimensions at a resolution dividing its own (fewest dimensions, then coarsest), else its base."""
    r = ROLLUPS[level]
    names = list(ROLLUPS)
    finer = [(len(ROLLUPS[n].dims), -ROLLUPS[n].res, n) for n in names[:names.index(level)]
             if ROLLUPS[n].base == r.base and set(r.dims) <= set(ROLLUPS[n].dims) and r.res % ROLLUPS[n].res == 0
             and ROLLUPS[n].dst_net <= r.dst_net]
    return min(finer)[2] if finer else r.base


def net_sql(col: str, legacy: bool) -> str:
    """An address column cut to its network (NET_PREFIXES), in the column's type."""
    v4, v6 = NET_PREFIXES
    cut = f"cutIPv6({col}, {16 - v6 // 8}, {4 - v4 // 8})"
    return f"IPv6StringToNum({cut})" if legacy else f"toIPv6({cut})"


def rollup_dim_sql(level: str, dim: str, legacy: bool) -> str:
    """A record column (or a finer level's) as `level` keeps it: dst cut to its network on the
    dst_nets_* levels, the others as they are."""
    return net_sql(dim, legacy) if dim == "dst" and ROLLUPS[level].dst_net else dim


MIN_PARTITIONS = 12
# An INSERT may span more than the default 100 partitions: an old capture of months, written
# at once, into daily ones (modern servers; 18.16 has no such limit).
INSERT_SETTINGS = {"max_partitions_per_insert_block": 0}


def insert_settings_sql() -> str:
    return " SETTINGS " + ", ".join(f"{k} = {v}" for k, v in INSERT_SETTINGS.items())


def _partition(seconds: int) -> str:
    """Partitions sized from the retention: the coarsest of day, month and year that cuts it into
    at least MIN_PARTITIONS. Expiry drops whole parts, so a table keeps at most a partition's
    time past its retention; and a long range reads parts in parallel (on 100M records over 30
    days, TraceFlow's skip index took 65 ms over 2 monthly parts, 18 ms over 31 daily ones)."""
    days = seconds / 86400
    if days >= MIN_PARTITIONS * 365:
        return "toYear(window_start)"
    return "toYYYYMM(window_start)" if days >= MIN_PARTITIONS * 365 / 12 else "toYYYYMMDD(window_start)"


def _engine(table: str, order: str, version: str, legacy: bool, retention: dict) -> str:
    engine = f"ENGINE = ReplacingMergeTree({version})\n"
    if table == MARKS:          # a handful of rows, kept
        return engine + f"ORDER BY ({order})"
    keep = _kept(retention).get(table, retention_s(table))
    engine += f"PARTITION BY {_partition(keep)}\nORDER BY ({order})"
    if legacy:                  # 18.16: no TTL
        return engine
    return engine + f"\nTTL inserted_at + INTERVAL {keep} SECOND\nSETTINGS ttl_only_drop_parts = 1"


def flow_key_sql(src: str = "src", dst: str = "dst", sport: str = "sport", dport: str = "dport",
                 proto: str = "proto") -> str:
    """flow_keys' key_hash of a 5-tuple: of the records' columns, or of values of their types."""
    return f"toUInt32(bitAnd(cityHash64({src}, {dst}, {sport}, {dport}, {proto}), 4294967295))"


# A call over several windows (the sip_calls rows of a range, flows/sip.py): each field joined
# as one expression, read by the API (ListSipCalls) and the dashboards alike.
SIP_CALL_SQL = {"method": "argMinIf(method, method_seen, method != '')", "from_uri": "argMin(from_uri, first_seen)",
                "to_uri": "argMin(to_uri, first_seen)", "src": "argMin(src, first_seen)",
                "dst": "argMin(dst, first_seen)", "status": "argMaxIf(status, status_seen, status > 0)"}


# Down-level types for ClickHouse servers before 19.x (Debian's 18.16), derived from the one DDL
# above: addresses as their 16 bytes, times as integer ns / whole seconds, no TTL.
LEGACY_TYPES = {"IPv6": "FixedString(16)", "DateTime64(9, 'UTC')": "UInt64",
                "DateTime64(3, 'UTC')": "DateTime('UTC')", "LowCardinality(String)": "String"}


def addr_text_sql(col: str, legacy: bool) -> str:
    """An address column as text (IPv4 as ::ffff:a.b.c.d), on either schema."""
    return f"IPv6NumToString({col})" if legacy else f"toString({col})"


def sql_string(s: str) -> str:
    """A ClickHouse string literal of `s` (backslash escapes, both schemas)."""
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def addr_display_sql(col: str) -> str:
    """An address column as people write it (IPv4 as a.b.c.d, IPv6 as text): one expression for
    both schemas (IPv6NumToString takes IPv6 and FixedString(16) alike); views and dashboards."""
    text = f"IPv6NumToString({col})"
    return f"if(startsWith({text}, '::ffff:'), substring({text}, 8), {text})"


def addr_match_sql(col: str, text: str) -> str:
    """`col` equals the address written in the SQL string literal `text` (IPv4 or IPv6), on both
    schemas: compared as the hex of their 16 bytes (an IPv6 column against IPv6StringToNum's
    FixedString makes modern servers' key analysis parse the bytes as text, and fail). An empty
    `text` matches nothing (and raises nothing)."""
    mapped = f"if({text} = '', '::', if(position({text}, ':') = 0, concat('::ffff:', {text}), {text}))"
    return f"({text} != '' AND hex({col}) = hex(IPv6StringToNum({mapped})))"


def _readable_view(database: str, table: str) -> str:
    """`<table>_text`: the table with its addresses as text (IPv4 as a.b.c.d), for people and
    `netspectra sql` (18.16 stores them as 16 raw bytes). FINAL: a window written twice (a
    revision, a replay) counts once, as in the API's queries."""
    cols = [f"{addr_display_sql(name)} AS {name}" if typ == "IPv6" else name
            for name, typ in column_types(table).items()]
    return (f"CREATE VIEW IF NOT EXISTS {database}.{table}_text AS SELECT {', '.join(cols)} "
            f"FROM {database}.{table} FINAL")


def ddl(database: str = DATABASE, legacy: bool = False, retention: dict | None = None) -> list[str]:
    """CREATE statements; `retention`: table -> seconds, over the defaults (tests use seconds)."""
    stmts = [f"CREATE DATABASE IF NOT EXISTS {database}"]
    for name, (cols, order, *version) in TABLES.items():
        engine = _engine(name, order, version[0] if version else "inserted_at", legacy, retention or {})
        if legacy:
            for modern, old in LEGACY_TYPES.items():
                cols = cols.replace(f" {modern},", f" {old},")
            cols = _CODEC.sub("", cols)         # 18.16 has no column codecs
        stmts.append(f"CREATE TABLE IF NOT EXISTS {database}.{name} (\n{cols}\n)\n{engine}")
    return stmts


_CODEC = re.compile(r" CODEC\((?:[^()]|\([^()]*\))*\)")


def views(database: str = DATABASE) -> list[str]:
    """The readable views, and flow_keys' materialized view; created once the tables are known to
    be this DDL's (check_existing)."""
    return [_readable_view(database, t) for t in TABLES if "IPv6" in column_types(t).values()] + \
        flow_keys_sql(database)[:1]


def flow_keys_sql(database: str = DATABASE) -> list[str]:
    """flow_keys' materialized view (every INSERT into the records writes their keys), and the
    backfill of a store written before it (run when backfill_sql says so)."""
    select = (f"SELECT toDateTime(window_start) AS window_start, source, {flow_key_sql()} AS key_hash, "
              f"inserted_at FROM {database}.flows")         # inserted_at: expires with its records
    return [f"CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.{FLOW_KEYS}_mv TO {database}.{FLOW_KEYS} AS {select}",
            f"INSERT INTO {database}.{FLOW_KEYS} (window_start, source, key_hash, inserted_at) {select}"]


def backfill_sql(database: str = DATABASE) -> str:
    """1 when flow_keys is to be made from the records (they hold rows, it none: a store written
    before it), else 0."""
    return (f"SELECT (SELECT count() FROM {database}.flows) > 0 "
            f"AND (SELECT count() FROM {database}.{FLOW_KEYS}) = 0")


def column_types(table: str, legacy: bool = False) -> dict[str, str]:
    """Column name -> type as written in the DDL (legacy: the down-level type)."""
    out = {}
    for line in TABLES[table][0].splitlines():
        if line.strip():
            name, typ = _CODEC.sub("", line.strip().rstrip(",")).split(" ", 1)
            out[name] = LEGACY_TYPES.get(typ, typ) if legacy else typ
    return out


EXISTING_COLUMNS_SQL = (f"SELECT table, name FROM system.columns WHERE database = '{DATABASE}' "
                        f"AND table IN ({', '.join(repr(t) for t in TABLES)})")


# Columns added to a table after it was released: a writer adds them to an older table
# (ALTER TABLE ... ADD COLUMN: its rows read the type's default, '' or 0), where any other missing
# column stops it (check_existing). Those of them in the table's sorting key join an older table's
# key in the same statement (MODIFY ORDER BY; not on 18.16, which cannot: there records of one
# 5-tuple in two tunnels in one window may be merged into one).
ADDED_COLUMNS = {"flows": ("tls_sni", "tls_ja4", "tls_alpn", "tunnel", "tunnel_id")}


def add_columns_sql(rows, legacy: bool = False) -> list[str]:
    """ALTER statements adding ADDED_COLUMNS to existing tables that lack them. `rows`: (table,
    column) pairs from EXISTING_COLUMNS_SQL."""
    have: dict[str, set[str]] = {}
    for table, name in rows:
        have.setdefault(table, set()).add(name)
    out = []
    for t, added in ADDED_COLUMNS.items():
        missing = [c for c in added if t in have and c not in have[t]]
        if not missing:
            continue
        types = column_types(t, legacy)
        changes = [f"ADD COLUMN {c} {types[c]}" for c in missing]
        order = [c.strip() for c in TABLES[t][1].split(",")]
        if not legacy and set(missing) & set(order) and set(order) - set(missing) <= have[t]:
            changes.append(f"MODIFY ORDER BY ({TABLES[t][1]})")
        out.append(f"ALTER TABLE {DATABASE}.{t} " + ", ".join(changes))
    return out


def check_existing(rows) -> None:
    """Raise when tables that already exist lack columns of this DDL (CREATE TABLE IF NOT EXISTS
    leaves an older table as it was). `rows`: (table, column) pairs from EXISTING_COLUMNS_SQL."""
    have: dict[str, set[str]] = {}
    for table, name in rows:
        have.setdefault(table, set()).add(name)
    missing = [f"{t}.{c}" for t in TABLES if t in have for c in column_types(t) if c not in have[t]]
    if missing:
        raise SchemaMismatch(f"database {DATABASE} was written by an older NetSpectra (missing {', '.join(missing)}); "
                             f"write to a new store, or drop the database {DATABASE} and write again")


class SchemaMismatch(RuntimeError):
    pass


def columns(table: str) -> list[str]:
    """Column names a writer supplies (everything but inserted_at)."""
    names = [line.split()[0] for line in TABLES[table][0].splitlines() if line.strip()]
    return [n for n in names if n != "inserted_at"]


def table_columns(table: str, n: int, window_start: int, source: str, cols: dict) -> dict:
    """`n` rows of `table` as columns in its order: the window start and source filled in, the
    other columns from `cols` (every one must be there)."""
    import numpy as np
    out = {"window_start": np.full(n, window_start, np.int64), "source": [source] * n}
    out.update(cols)
    missing = set(columns(table)) - set(out)
    if missing:
        raise KeyError(f"{table}: no values for {sorted(missing)}")
    return {c: out[c] for c in columns(table)}
