"""The API's queries: validated requests (api/models.py) -> parameterised SQL -> answers.

Every value from a request travels as a query parameter (`{name:Type}` placeholders; chDB binds
them server-side, clickhouse-driver escapes them client-side), never as SQL text. Only names
chosen from fixed tables (columns, dimensions) and validated integers shape the SQL itself.

Every query filters on the window range first: window_start leads every table's sort key, so
ClickHouse reads only the granules of that range. Reads use FINAL (the tables are
ReplacingMergeTrees: a window written twice must count once).

One SQL text serves both schemas of schemas/clickhouse.py: the modern one (chDB, servers >= 19)
and the down-level one of Debian's 18.16 server (addresses as FixedString(16), window_start as
DateTime, times as UInt64 ns); `Dialect` holds the few expressions that differ.
"""
from __future__ import annotations

import bisect
import functools
import ipaddress
import math
from dataclasses import dataclass, field
from typing import NamedTuple

from api import models as m
from schemas.addresses import V4_PREFIX, from_text, to_text
from schemas.clickhouse import (DATABASE, FLOW_KEYS, NET_PREFIXES, ROLLUP_VALUES, ROLLUPS, SIP_CALL_SQL,
                                addr_text_sql, flow_key_sql, marks_sql)

FILTER_COLUMNS = ("src", "dst", "sport", "dport", "proto", "vlan", "tls_sni", "tls_ja4", "tls_alpn", "tunnel",
                  "tunnel_id")   # m.Filter's
TEXT_DIMENSIONS = ("src", "dst", "tls_sni", "tls_ja4", "tls_alpn", "tunnel")       # grouped by as text ('' when not)
HH_DIMENSION_NAMES = {"src": "src", "dst": "dst", "flow": "flow", "port": "dport", "proto": "proto"}
# Columns a heavy-hitter row of each dimension carries (a filter on any other is meaningless there).
HH_COLUMNS = {"src": {"src"}, "dst": {"dst"}, "flow": {"src", "dst", "sport", "dport", "proto"},
              "port": {"dport", "proto"}, "proto": {"proto"}}
HH_GROUP = {"src": ["src"], "dst": ["dst"], "flow": ["src", "dst", "sport", "dport", "proto"],
            "port": ["proto", "dport"], "proto": ["proto"]}


class QueryError(ValueError):
    """A request that is valid in form but cannot be answered as asked (-> 400 / INVALID_ARGUMENT)."""


@dataclass(frozen=True)
class Dialect:
    legacy: bool = False        # Debian's 18.16: down-level column types

    def addr(self, param: str) -> str:
        return f"unhex({{{param}:String}})" if self.legacy else f"toIPv6({{{param}:String}})"

    def addr_bytes(self, param: str) -> str:
        """An address parameter in the address columns' own type (what a hash of them takes)."""
        return f"toFixedString({self.addr(param)}, 16)" if self.legacy else self.addr(param)

    def addr_value(self, addr16: bytes) -> str:
        return addr16.hex() if self.legacy else str(ipaddress.IPv6Address(addr16))

    def addr_text(self, col: str) -> str:
        """An address column as text (IPv4 as ::ffff:a.b.c.d; `address` turns that into a.b.c.d)."""
        return addr_text_sql(col, self.legacy)

    def window_ms(self) -> str:
        return self.ms("window_start")

    def ms(self, col: str) -> str:
        """A DateTime64(3) column (DateTime in 18.16) as epoch ms."""
        return f"toUInt64({col}) * 1000" if self.legacy else f"toUnixTimestamp64Milli({col})"

    def time_param(self, ms: int, params: dict, name: str, up: bool) -> str:
        """A time parameter comparable with such a column (18.16: whole seconds, rounded up or down)."""
        if self.legacy:
            params[name] = -(-ms // 1000) if up else ms // 1000
            return f"toDateTime({{{name}:UInt32}}, 'UTC')"
        params[name] = ms
        return f"fromUnixTimestamp64Milli({{{name}:Int64}}, 'UTC')"

    def ns(self, col: str) -> str:
        return col if self.legacy else f"toUnixTimestamp64Nano({col})"

    def range_sql(self, r: m.TimeRange, params: dict) -> str:
        if self.legacy:     # whole seconds: start >= a/1000 <=> start >= ceil(a/1000)
            params["t0"], params["t1"] = math.ceil(r.start_ms / 1000), math.ceil(r.end_ms / 1000)
            return "window_start >= toDateTime({t0:UInt32}, 'UTC') AND window_start < toDateTime({t1:UInt32}, 'UTC')"
        params["t0"], params["t1"] = r.start_ms, r.end_ms
        return ("window_start >= fromUnixTimestamp64Milli({t0:Int64}, 'UTC') "
                "AND window_start < fromUnixTimestamp64Milli({t1:Int64}, 'UTC')")


@functools.lru_cache(maxsize=65536)      # answers repeat hosts: parsing each again costs ~3 µs
def address(text: str) -> str:
    """ClickHouse's IPv6 text of an address as we print it: IPv4-mapped as a dotted quad."""
    return to_text(ipaddress.IPv6Address(text).packed) if text else ""


def _bounds(net) -> tuple[bytes, bytes]:
    lo, hi = net.network_address.packed, net.broadcast_address.packed
    if net.version == 4:
        lo, hi = V4_PREFIX + lo, V4_PREFIX + hi
    return lo, hi


@dataclass
class Sql:
    """A query under construction: WHERE terms and their parameters."""
    dialect: Dialect
    params: dict = field(default_factory=dict)
    where: list[str] = field(default_factory=list)

    def name(self, value) -> str:
        """A new parameter holding value; its name."""
        name = f"p{len(self.params)}"
        self.params[name] = value
        return name

    def param(self, value, typ: str) -> str:
        return f"{{{self.name(value)}:{typ}}}"

    def addr_in(self, col: str, nets: list[str]) -> None:
        if not nets:
            return
        terms = []
        for text in nets:
            lo, hi = _bounds(m.network(text))
            a = self.dialect.addr(self.name(self.dialect.addr_value(lo)))
            if lo == hi:
                terms.append(f"{col} = {a}")
            else:
                b = self.dialect.addr(self.name(self.dialect.addr_value(hi)))
                terms.append(f"({col} >= {a} AND {col} <= {b})")
        self.where.append("(" + " OR ".join(terms) + ")")

    def int_in(self, col: str, values: list[int], typ: str) -> None:
        if values:
            self.where.append(f"has({self.param(sorted(set(values)), f'Array({typ})')}, {col})")

    def equals(self, col: str, value, typ: str) -> None:
        self.where.append(f"{col} = {self.param(value, typ)}")

    def filters(self, r: m.TimeRange, f: m.Filter, columns: set[str] | None = None) -> None:
        """The time range (first: where_sql may leave it out), then the filter; `columns` limits
        which filter fields may be used."""
        self.where.append(self.dialect.range_sql(r, self.params))
        if f.source:
            self.equals("source", f.source, "String")
        used = {k for k in FILTER_COLUMNS if getattr(f, k)}
        if columns is not None and used - columns:
            raise QueryError(f"filter on {', '.join(sorted(used - columns))} does not apply here "
                             f"(it can on: {', '.join(sorted(columns)) or 'nothing'}); use exact=true")
        self.addr_in("src", f.src)
        self.addr_in("dst", f.dst)
        self.int_in("sport", f.sport, "UInt16")
        self.int_in("dport", f.dport, "UInt16")
        self.int_in("proto", f.proto, "UInt8")
        self.int_in("vlan", f.vlan, "UInt16")
        self.names_in("tls_sni", f.tls_sni)
        self.names_in("tls_ja4", f.tls_ja4, wildcards=False)
        self.names_in("tls_alpn", f.tls_alpn, wildcards=False)
        self.names_in("tunnel", f.tunnel, wildcards=False)
        self.int_in("tunnel_id", f.tunnel_id, "UInt32")

    def names_in(self, col: str, names: list[str], wildcards: bool = True) -> None:
        """`col` one of `names`, where (`wildcards`) "*.example.com" stands for every name ending in ".example.com"."""
        exact = sorted({n for n in names if not (wildcards and n.startswith("*."))})
        under = sorted({n[1:] for n in names if wildcards and n.startswith("*.")})
        # one parameter a name: an Array(String) parameter's text would need quoting of its own
        alts = [f"{col} IN ({', '.join(self.param(n, 'String') for n in exact)})"] if exact else []
        alts += [f"endsWith({col}, {self.param(s, 'String')})" for s in under]
        if alts:
            self.where.append(f"({' OR '.join(alts)})")

    def where_sql(self, without_range: bool = False) -> str:
        """The conditions; `without_range`: all but the time range (pieces that bound themselves)."""
        return " AND ".join(self.where[1:] if without_range else self.where) or "1"


# ---- roll-ups: the coarsest table that answers exactly (sinks/rollups.py keeps them) ----------
MARKS_SQL = marks_sql()


def used_columns(f: m.Filter, *more) -> set[str]:
    """The record columns a request needs: those it filters on, and `more`; "dst_net" for dst
    when it is only filtered on, with networks no narrower than a dst_nets_* level keeps."""
    asked = set().union(*more)
    used = {c for c in FILTER_COLUMNS if getattr(f, c)} | asked
    if "dst" in used and "dst" not in asked and all(_wide(m.network(n)) for n in f.dst):
        used = used - {"dst"} | {"dst_net"}
    return used


def _wide(net) -> bool:
    return net.prefixlen <= NET_PREFIXES[0 if net.version == 4 else 1]


def rollup_candidates(used: set[str], bucket_seconds: int = 0, base: str = "flows") -> list[tuple[str, int]]:
    """Roll-ups of `base` that could answer, the likely smallest first (coarsest, then fewest
    dimensions, then network-cut): they keep every record column `used` (none for the sketch
    tables, whose levels keep every column a query reads), and the time buckets are whole
    multiples of their resolution."""
    out = []
    for table, r in sorted(ROLLUPS.items(), key=lambda kv: (-kv[1].res, len(kv[1].dims), not kv[1].dst_net)):
        if r.base == base and used <= r.keeps() and bucket_seconds % r.res == 0:
            out.append((table, r.res))
    return out


def extent_sql(rng: m.TimeRange, source: str, d: Dialect) -> tuple[str, dict]:
    """Per source in the range (`source` only, if given): its first and last window."""
    q = Sql(d)
    q.filters(rng, m.Filter(source=source))
    return (f"SELECT source, toUInt32(toDateTime(min(window_start))), toUInt32(toDateTime(max(window_start))) "
            f"FROM {DATABASE}.window_totals WHERE {q.where_sql()} GROUP BY source", q.params)


# Per source, each hour it has windows in, with that hour's first and last window (WindowHours).
HOUR_S = 3600
HOURS_SQL = (f"SELECT source, intDiv(toUInt32(toDateTime(window_start)), {HOUR_S}) AS h, "
             f"toUInt32(toDateTime(min(window_start))), toUInt32(toDateTime(max(window_start))) "
             f"FROM {DATABASE}.window_totals GROUP BY source, h")


class WindowHours:
    """The hours each source has windows in (HOURS_SQL's rows), to answer what extent_sql does
    for any range without a query: a planner's read per request cost as much as an hour's panel
    (~3 ms on chDB), more than half of it on a small one. The extents are the first and last
    windows of the hours the range touches, a superset of the range's own (plan only reads finer
    levels where a source may have windows a roll-up lacks: more rows read, never a wrong answer)."""

    def __init__(self, rows: list[tuple]):
        by: dict[str, list[tuple[int, int, int]]] = {}
        for src, hour, first, last in rows:
            by.setdefault(src, []).append((int(hour), int(first), int(last)))
        self.sources = {src: [list(col) for col in zip(*sorted(v))] for src, v in by.items()}

    def extents(self, rng: m.TimeRange, source: str = "") -> list[tuple]:
        a, b = seconds(rng)
        out = []
        for src, (hours, firsts, lasts) in self.sources.items():
            if source and src != source:
                continue
            i = bisect.bisect_left(hours, a // HOUR_S)
            j = bisect.bisect_right(hours, (b - 1) // HOUR_S)
            if i < j:
                out.append((src, firsts[i], lasts[j - 1]))
        return out


ROWS_SQL = (f"SELECT table, sum(rows) FROM system.parts WHERE database = '{DATABASE}' AND active "
            f"AND table IN ({', '.join(repr(t) for t in (*dict.fromkeys(r.base for r in ROLLUPS.values()), *ROLLUPS))}) "
            f"GROUP BY table")
MAX_ROWS_SHARE = 0.9    # a roll-up is read only if it holds at most this share of the records' rows
# What one more table read costs, in rows read: ~2 ms each on chDB (a query's parts, FINAL,
# its branch of the statement), about what 100k rows of a minute level take.
READ_ROWS = 100_000


class Piece(NamedTuple):
    """A part of a range, [start_s, end_s), read from one table (res: its resolution, 0 the base);
    sign -1: subtracted (a bucket's part outside the range, see plan)."""
    table: str
    res: int
    start_s: int
    end_s: int
    sign: int = 1


def _negated(pieces: list[Piece]) -> list[Piece]:
    return [p._replace(sign=-p.sign) for p in pieces]


def plan(candidates: list[tuple[str, int]], marks: list[tuple], extents: list[tuple], rows: dict[str, int],
         rng: m.TimeRange, base: str = "flows", subtract: bool = False) -> list[Piece]:
    """The range cut into pieces, each from the coarsest candidate whose buckets lie whole inside
    it, whose span covers every window there of every source (`extents`: extent_sql's rows) and
    that reads no more rows than finer levels would (each table's rows per second: `rows` over
    what it spans), the rest (the edges, and what no level covers yet: the newest windows) from
    finer levels and last from `base` itself. A month of whole hours reads days and the edges'
    hours; the answer is the base table's own, exact and current. A candidate no smaller than
    its base (traffic whose every record is its own key, a spoofed flood, rolls up to as many
    rows: reading those would only cost more) is left out.

    `subtract` (sums only, no time buckets, a range on whole seconds): a part of a bucket may be
    read as the whole bucket minus what lies outside the range (pieces of sign -1), when that
    reads fewer rows, READ_ROWS counted for each table read. 23 hours of a day are then the day
    less one hour, a minute-aligned hour the hour it starts in less minutes and the next one's
    first minutes."""
    spans = {(lvl, src): (int(a), int(b)) for lvl, src, a, b in marks}
    usable = [(t, res) for t, res in candidates if rows.get(t, 0) <= MAX_ROWS_SHARE * rows.get(base, 0)]
    windows = [(int(f), int(la), src) for src, f, la in extents]

    def covered(table: str, res: int, a: int, b: int) -> tuple[int, int]:
        """The longest [lo, hi) inside [a, b), whole buckets, that `table` covers for every source
        with windows there (it may start late and end early: a source's roll-ups began after its
        first windows, or lag its newest)."""
        lo, hi = a, b
        for first, last, src in windows:
            if last < a or first >= b:
                continue                    # no window of this source there
            if (table, src) not in spans:
                return a, a
            since, until = spans[(table, src)]
            if since > max(a, first):
                lo = max(lo, -(-since // res) * res)
            if until <= last:
                hi = min(hi, until // res * res)
        return lo, hi

    spanned: dict[str, int] = {}        # seconds each level covers, summed over sources
    for (lvl, _), (a, b) in spans.items():
        spanned[lvl] = spanned.get(lvl, 0) + b - a

    finest = min(ROLLUPS, key=lambda lvl: (ROLLUPS[lvl].base != base, ROLLUPS[lvl].res, -spanned.get(lvl, 0)))

    def density(table: str) -> float:
        """Rows per second of what the table spans (a cost estimate; the base spans about what
        its finest level does, whose buckets hug its windows best)."""
        return rows.get(table, 0) / max(spanned.get(finest if table == base else table, 0), 1)

    def rows_read(pieces: list[Piece]) -> float:
        return sum(density(p.table) * (p.end_s - p.start_s) for p in pieces)

    def empty(a: int, b: int) -> bool:
        """No source has a window starting in [a, b): every table holds no row there."""
        return not any(first < b and last >= a for first, last, _ in windows)

    def cost(pieces: list[Piece]) -> float:
        """Rows read, and READ_ROWS for each table read (read_from reads each table once)."""
        return rows_read(pieces) + READ_ROWS * len({(p.table, p.sign) for p in pieces})

    memo: dict[tuple, list[Piece]] = {}     # a sub-plan is asked for again (compared, then kept)

    def memoised(f):
        """f(a, b, tiers) computed once per (a, b) and tiers (a suffix of the resolutions: its
        length names it)."""
        def call(a: int, b: int, tiers: list[int]) -> list[Piece]:
            key = (f.__name__, a, b, len(tiers))
            if key not in memo:
                memo[key] = f(a, b, tiers)
            return memo[key]
        return call

    @memoised
    def cover(a: int, b: int, tiers: list[int]) -> list[Piece]:
        """[a, b) from tiers[0] and finer (nothing where no source has windows: nothing to read)."""
        if a >= b or empty(a, b):
            return []
        if not tiers:
            return [Piece(base, 0, a, b)]
        res = tiers[0]
        ia, ib = -(-a // res) * res, b // res * res
        for table in (t for t, r in usable if r == res and ia < ib):
            lo, hi = covered(table, res, ia, ib)
            if lo < hi and empty(lo, hi):        # whole buckets without windows: no read at all
                return cover(a, lo, tiers) + cover(hi, b, tiers)
            # a coarser level is not always smaller: a week of one family can hold more rows
            # than the days of another (the totals' days: 60 rows a month)
            if lo < hi and rows_read([Piece(table, res, lo, hi)]) <= rows_read(cover(lo, hi, tiers[1:])):
                return cover(a, lo, tiers) + [Piece(table, res, lo, hi)] + cover(hi, b, tiers)
        if subtract and ia == ib:               # across one bucket edge: two partial buckets
            return partial(a, ia, tiers) + partial(ia, b, tiers)
        if subtract and ia > ib:                # inside one bucket
            return partial(a, b, tiers)
        return cover(a, b, tiers[1:])

    @memoised
    def partial(a: int, b: int, tiers: list[int]) -> list[Piece]:
        """[a, b) inside one bucket of tiers[0]: from finer levels, or as that bucket less the rest."""
        direct = cover(a, b, tiers[1:])
        if a >= b:
            return direct
        res = tiers[0]
        oa = a // res * res
        for table in (t for t, r in usable if r == res):
            if covered(table, res, oa, oa + res) == (oa, oa + res):
                whole = ([Piece(table, res, oa, oa + res)] + _negated(cover(oa, a, tiers[1:]))
                         + _negated(cover(b, oa + res, tiers[1:])))
                return whole if cost(whole) < cost(direct) else direct
        return direct

    if not windows:
        return [Piece(base, 0, *seconds(rng))]       # nothing anywhere: the base's empty read
    out: list[Piece] = []
    for p in cover(*seconds(rng), sorted({r for _, r in usable}, reverse=True)):
        if out and out[-1][:2] == p[:2] and out[-1].sign == p.sign and out[-1].end_s == p.start_s:
            out[-1] = out[-1]._replace(end_s=p.end_s)         # one range, not two (a read's bounds)
        else:
            out.append(p)
    return out or [Piece(base, 0, *seconds(rng))]     # the extents' windows all outside the range


def seconds(rng: m.TimeRange) -> tuple[int, int]:
    """The whole seconds a range's windows start in: [start, end)."""
    return rng.start_ms // 1000, -(-rng.end_ms // 1000)


def plan_name(pieces: list[Piece]) -> tuple[str, int]:
    """(table, resolution s) a response reports: the tables that answered, coarsest first, joined
    by '+', and the coarsest one's resolution."""
    ordered = sorted(pieces, key=lambda p: -p.res)
    return "+".join(dict.fromkeys(p.table for p in ordered)), ordered[0].res


def _values(base: str) -> list[str]:
    """The columns a table's levels sum (or keep) per key: the same names as in the table."""
    return [c for c, *_ in ROLLUP_VALUES[base]]


def one_table(table: str | list[Piece]) -> str | list[Piece]:
    """A plan of one piece as its table (the range filter bounds it)."""
    return table[0].table if isinstance(table, list) and len(table) == 1 else table


SIGNED_SUMS = ("packets", "bytes", "flows")      # what a piece of sign -1 subtracts (AggregateFlows)


def is_signed(table: str | list[Piece]) -> bool:
    """Whether a plan subtracts (reads buckets beyond the range: the pieces bound themselves)."""
    return not isinstance(table, str) and any(p.sign < 0 for p in table)


def read_from(table: str | list[Piece], where: str, columns: list[str], bounded: bool = True) -> str:
    """A query's "FROM ... WHERE": one table, or the pieces of a plan, each read for its part of
    the range (`columns`: what the query reads; the records count one flow each). `bounded`:
    `where` holds the range (else the pieces' own bounds are all there is)."""
    if bounded:
        table = one_table(table)
    if isinstance(table, str):
        return f"{DATABASE}.{table} FINAL WHERE {where}"
    parts = []
    signed = is_signed(table)
    reads: dict[tuple[str, int], list[Piece]] = {}      # one read per table and sign: each costs ~2 ms
    for p in table:
        reads.setdefault((p.table, p.sign), []).append(p)
    for (name, sign), pieces in reads.items():
        cols = []
        for c in columns:
            v = "toUInt64(1)" if c == "flows" and name == "flows" else c
            if signed and c in SIGNED_SUMS:
                v = f"{'-' if sign < 0 else ''}toInt64({v})"
            cols.append(v if v == c else f"{v} AS {c}")
        spans = " OR ".join(f"(window_start >= toDateTime({p.start_s}, 'UTC') AND window_start < toDateTime({p.end_s}, 'UTC'))"
                            for p in pieces)
        parts.append(f"SELECT {', '.join(cols)} FROM {DATABASE}.{name} FINAL WHERE {where} AND ({spans})")
    return "(" + " UNION ALL ".join(parts) + ")"


def may_exceed_buckets(req: m.AggregateFlowsRequest) -> bool:
    return bool(req.bucket_seconds) and req.range.end_ms - req.range.start_ms > m.MAX_BUCKETS * req.bucket_seconds * 1000


def check_buckets(req: m.AggregateFlowsRequest, extents: list[tuple]) -> None:
    """QueryError when the time buckets between the first and the last window in the range
    (`extents`: extent_sql's rows) are more than an answer holds: a month of minutes is 43,200
    points, more than a chart draws and seconds to build."""
    if not extents:
        return
    b = req.bucket_seconds
    first, last = min(int(f) for _, f, _ in extents), max(int(la) for _, _, la in extents)
    n = last // b - first // b + 1
    if n > m.MAX_BUCKETS:
        raise QueryError(f"bucket_seconds {b} makes {n:,} time buckets of this range's windows, at most "
                         f"{m.MAX_BUCKETS:,} an answer: use bucket_seconds >= {(last - first) // (m.MAX_BUCKETS - 1) + 1} "
                         f"or a shorter range")


def aggregate_flows(req: m.AggregateFlowsRequest, d: Dialect, table: str | list[Piece] = "flows") -> tuple[str, dict]:
    a, b = seconds(req.range)       # buckets read whole past the range (nothing there, or subtracted)
    beyond = not isinstance(table, str) and any(p.start_s < a or p.end_s > b for p in table)
    table = table if beyond else one_table(table)
    q = Sql(d)
    q.filters(req.range, req.filter)
    dims = list(dict.fromkeys(req.group_by))
    select, group = [], []
    if req.bucket_seconds:
        bucket = q.param(req.bucket_seconds * 1000, "UInt64")
        select.append(f"intDiv({d.window_ms()}, {bucket}) * {bucket} AS bucket_ms")
        group.append("bucket_ms")
    else:
        select.append("toUInt64(0) AS bucket_ms")
    for dim in m.Dimension.__args__:
        if dim in dims:
            select.append(f"{d.addr_text(dim)} AS {dim}_out" if dim in ("src", "dst") else f"{dim} AS {dim}_out")
            group.append(dim)
        else:
            select.append("''" if dim in TEXT_DIMENSIONS else "0")
    select += ["sum(packets) AS pk", "sum(bytes) AS by", "count() AS fl" if table == "flows" else "sum(flows) AS fl"]
    order = {"bytes": "by", "packets": "pk", "flows": "fl"}[req.order_by]
    limit = m.limit_of(req.limit)
    signed = is_signed(table)
    sql = (f"SELECT {', '.join(select)} FROM "
           f"{read_from(table, q.where_sql(without_range=beyond), ['window_start', *dims, *_values('flows')], not beyond)}")
    if group:
        sql += f" GROUP BY {', '.join(group)}"
        if signed:          # a key only in what is subtracted sums to nothing (every record has packets)
            sql += " HAVING pk != 0"
    if req.bucket_seconds and dims:
        sql += f" ORDER BY bucket_ms, {order} DESC LIMIT {limit} BY bucket_ms"
    elif req.bucket_seconds:
        sql += " ORDER BY bucket_ms"
    else:
        sql += f" ORDER BY {order} DESC"
    return sql + f" LIMIT {m.MAX_LIMIT * 100 if req.bucket_seconds else limit}", q.params


def aggregate_rows(rows: list[tuple], table: str = "flows", resolution_s: int = 0) -> m.AggregateFlowsResponse:
    # model_construct: the values are typed here (int(), address()), so validating each of up to
    # thousands of groups again would only cost time, with the GIL held
    group = m.FlowGroup.model_construct
    return m.AggregateFlowsResponse.model_construct(groups=[group(
        bucket_ms=int(b), src=address(s), dst=address(t), sport=int(sp), dport=int(dp), proto=int(pr), vlan=int(v),
        tls_sni=sni, tls_ja4=ja4, tls_alpn=alpn, tunnel=tun, tunnel_id=int(tid), packets=int(pk), bytes=int(by),
        flows=int(fl))
        for b, s, t, sp, dp, pr, v, sni, ja4, alpn, tun, tid, pk, by, fl in rows],
        table=table, resolution_seconds=resolution_s)


def trace_flow(req: m.TraceFlowRequest, d: Dialect) -> tuple[str, dict]:
    q = Sql(d)
    # flow_keys' rows of the range (and source), whose windows it holds in whole seconds
    a, b = seconds(req.range)
    keys = [f"window_start >= toDateTime({q.param(a, 'UInt32')}, 'UTC')",
            f"window_start < toDateTime({q.param(b, 'UInt32')}, 'UTC')"]
    if req.source:
        keys.append(f"source = {q.param(req.source, 'String')}")
    q.filters(req.range, m.Filter(source=req.source))
    q.addr_in("src", [req.src])
    q.addr_in("dst", [req.dst])
    q.equals("sport", req.sport, "UInt16")
    q.equals("dport", req.dport, "UInt16")
    q.equals("proto", req.proto, "UInt8")
    # the windows its hash is in (schemas/clickhouse.py FLOW_KEYS), typed as the records' columns
    # (18.16's parameters are literals: 80 would be a UInt8 and hash otherwise)
    addrs = [d.addr_bytes(q.name(d.addr_value(_bounds(m.network(a))[0]))) for a in (req.src, req.dst)]
    key = flow_key_sql(*addrs, f"toUInt16({q.param(req.sport, 'UInt16')})",
                       f"toUInt16({q.param(req.dport, 'UInt16')})", f"toUInt8({q.param(req.proto, 'UInt8')})")
    window = "window_start" if d.legacy else "toDateTime(window_start)"      # a window of 100 ms too
    q.where.append(f"{window} IN (SELECT window_start FROM {DATABASE}.{FLOW_KEYS} "
                   f"WHERE key_hash = {key} AND {' AND '.join(keys)})")
    sql = (f"SELECT {d.window_ms()}, source, packets, bytes, {d.ns('first_seen')}, {d.ns('last_seen')}, tcp_flags, "
           f"vlan, tunnel, tunnel_id FROM {DATABASE}.flows FINAL WHERE {q.where_sql()} "
           f"ORDER BY window_start, source, vlan, tunnel, tunnel_id")
    return sql, q.params


def trace_rows(rows: list[tuple]) -> m.TraceFlowResponse:
    wins = [m.FlowWindow(window_start_ms=int(w), source=s, packets=int(pk), bytes=int(by), first_seen_ns=int(f),
                         last_seen_ns=int(la), tcp_flags=int(fl), vlan=int(v), tunnel=tk, tunnel_id=int(ti))
            for w, s, pk, by, f, la, fl, v, tk, ti in rows]
    flags = 0
    for w in wins:
        flags |= w.tcp_flags
    return m.TraceFlowResponse(windows=wins, packets=sum(w.packets for w in wins), bytes=sum(w.bytes for w in wins),
                               first_seen_ns=min((w.first_seen_ns for w in wins), default=0),
                               last_seen_ns=max((w.last_seen_ns for w in wins), default=0), tcp_flags=flags)


def heavy_columns(req: m.QueryHeavyHittersRequest) -> set[str] | None:
    """The record columns the exact heavy hitters read (None: the sketches answer)."""
    return used_columns(req.filter, HH_GROUP[req.dimension]) if req.exact else None


def heavy_hitters(req: m.QueryHeavyHittersRequest, d: Dialect, table: str | list[Piece] = "") -> tuple[str, dict]:
    """The exact ones from `table` (the records, or a roll-up keeping what they use); else the
    sketches' from `table` (their windows' results, or an hour or day level of them)."""
    q = Sql(d)
    limit = m.limit_of(req.limit)
    table = table or ("flows" if req.exact else "heavy_hitters")
    if req.exact:
        q.filters(req.range, req.filter)
        keys = HH_GROUP[req.dimension]
        out = ", ".join(
            (d.addr_text(c) if c in ("src", "dst") else c) if c in keys else ("''" if c in ("src", "dst") else "0")
            for c in ("src", "dst", "sport", "dport", "proto"))
        value = "sum(bytes)" if req.metric == "bytes" else "sum(packets)"
        read = read_from(table, q.where_sql(), [*keys, req.metric])
        sql = (f"SELECT '', {out}, {value} AS v, v, v FROM {read} "
               f"GROUP BY {', '.join(keys)} ORDER BY v DESC LIMIT {limit}")
        return sql, q.params
    q.filters(req.range, req.filter, HH_COLUMNS[req.dimension])
    q.equals("dimension", HH_DIMENSION_NAMES[req.dimension], "String")
    q.equals("metric", req.metric, "String")
    sql = (f"SELECT item, any({d.addr_text('src')}), any({d.addr_text('dst')}), any(sport), any(dport), any(proto), "
           f"sum(estimate) AS v, sum(lower_bound), sum(upper_bound) FROM "
           f"{read_from(table, q.where_sql(), ['item', *_values('heavy_hitters')])} GROUP BY item ORDER BY v DESC, item LIMIT {limit}")
    return sql, q.params


def _hh_item(dim: str, src: str, dst: str, sport: int, dport: int, proto: int) -> str:
    if dim in ("src", "dst"):
        return src if dim == "src" else dst
    if dim == "flow":
        return f"{src} {sport} {dst} {dport} {proto}"
    return f"{proto}/{dport}" if dim == "port" else str(proto)


def heavy_rows(req: m.QueryHeavyHittersRequest, rows: list[tuple], table: str = "") -> m.QueryHeavyHittersResponse:
    items = []
    keep = HH_COLUMNS[req.dimension]
    for _, s, t, sp, dp, pr, v, lo, hi in rows:
        f = {"src": address(s) if "src" in keep else "", "dst": address(t) if "dst" in keep else "",
             "sport": int(sp) if "sport" in keep else 0, "dport": int(dp) if "dport" in keep else 0,
             "proto": int(pr) if "proto" in keep else 0}
        items.append(m.HeavyHitter(item=_hh_item(req.dimension, **f), value=int(v), lower_bound=int(lo),
                                   upper_bound=int(hi), **f))
    return m.QueryHeavyHittersResponse(items=items, exact=req.exact, table=table)


def spreaders_columns(req: m.QuerySpreadersRequest) -> set[str] | None:
    """The record columns the exact spreaders read (None: the sketches answer)."""
    if req.count == "ports":
        return used_columns(req.filter, {"src", "dst", "dport", "proto"})
    return used_columns(req.filter, {"src", "dst"}) if req.exact else None


def spreaders(req: m.QuerySpreadersRequest, d: Dialect, table: str | list[Piece] = "") -> list[tuple[str, str, dict]]:
    """Two queries: ("sources", sql, params) by distinct destinations, ("destinations", ...) by
    distinct sources, from `table`: the exact ones from the records or a roll-up keeping what they
    use, the sketches' from their windows' results or an hour or day level of them."""
    out = []
    limit = m.limit_of(req.limit)
    table = table or ("flows" if req.exact or req.count == "ports" else "spreaders")
    for side, entity, peer, kind in (("sources", "src", "dst", "src_spread"), ("destinations", "dst", "src", "dst_fan_in")):
        q = Sql(d)
        if req.count == "ports":        # exact from the flow records: no sketch counts ports
            q.filters(req.range, req.filter)
            q.where.append("proto IN (6, 17)")
            sql = (f"SELECT {d.addr_text(entity)}, toFloat64(uniqExact(dport)) AS n, n, n FROM "
                   f"{read_from(table, q.where_sql(), [entity, 'dport'])} GROUP BY {entity} ORDER BY n DESC, {entity} "
                   f"LIMIT {limit}")
        elif req.exact:
            q.filters(req.range, req.filter)
            sql = (f"SELECT {d.addr_text(entity)}, toFloat64(uniqExact({peer})) AS n, n, n FROM "
                   f"{read_from(table, q.where_sql(), [entity, peer])} GROUP BY {entity} ORDER BY n DESC, {entity} LIMIT {limit}")
        else:
            f = req.filter
            if any(getattr(f, c) for c in FILTER_COLUMNS if c not in ("src", "dst")) or (f.src and f.dst):
                raise QueryError("the spread sketches keep addresses only: filter on src or dst alone, "
                                 "or use exact=true")
            # the sketch table has one address column: a src filter narrows the sources' side,
            # a dst filter the destinations' side
            own = f.src if entity == "src" else f.dst
            if (f.src or f.dst) and not own:
                out.append((side, "", {}))
                continue
            q.filters(req.range, m.Filter(source=f.source))
            q.addr_in("addr", own)
            q.equals("kind", kind, "String")
            sql = (f"SELECT {d.addr_text('addr')}, max(estimate) AS n, argMax(lower_bound, estimate), "
                   f"argMax(upper_bound, estimate) FROM {read_from(table, q.where_sql(), ['addr', *_values('spreaders')])} "
                   f"GROUP BY addr ORDER BY n DESC, addr LIMIT {limit}")
        out.append((side, sql, q.params))
    return out


def spreader_rows(rows: list[tuple]) -> list[m.Spreader]:
    return [m.Spreader(addr=address(a), distinct=float(n), lower_bound=float(lo), upper_bound=float(hi))
            for a, n, lo, hi in rows]


def lookup_names(req: m.LookupNamesRequest, d: Dialect) -> tuple[str, dict]:
    q = Sql(d)
    q.filters(req.range, m.Filter(source=req.source))
    q.addr_in("addr", req.addresses)
    if req.name:
        p = q.param(req.name, "String")
        q.where.append(f"(positionCaseInsensitive(name, {p}) > 0 OR positionCaseInsensitive(query, {p}) > 0)")
    sql = (f"SELECT {d.addr_text('addr')} AS a, name, query, sum(answers) AS n, toUInt64(min({d.window_ms()})), "
           f"toUInt64(max({d.window_ms()})) FROM {DATABASE}.dns_names FINAL WHERE {q.where_sql()} "
           f"GROUP BY addr, name, query ORDER BY n DESC, a, name, query LIMIT {m.limit_of(req.limit)}")
    return sql, q.params


def name_rows(rows: list[tuple]) -> m.LookupNamesResponse:
    return m.LookupNamesResponse(names=[m.DnsName(address=address(a), name=n, query=qn, answers=int(c),
                                                  first_window_ms=int(f), last_window_ms=int(la))
                                        for a, n, qn, c, f, la in rows])


def list_sip_calls(req: m.ListSipCallsRequest, d: Dialect) -> tuple[str, dict]:
    """The calls' rows over the range's windows joined per Call-ID (flows/sip.py): the first
    message's fields by first_seen, the first request's method, the last final response."""
    q = Sql(d)
    q.filters(req.range, m.Filter(source=req.source))
    q.names_in("call_id", req.call_id, wildcards=False)
    having = Sql(d, q.params)
    having.names_in("m", req.method, wildcards=False)
    having.int_in("st", req.status, "UInt16")
    if req.uri:
        p = having.param(req.uri, "String")
        having.where.append(f"(positionCaseInsensitive(fu, {p}) > 0 OR positionCaseInsensitive(tu, {p}) > 0)")
    ends = [Sql(d, q.params), Sql(d, q.params)]
    ends[0].addr_in("s", req.addresses)
    ends[1].addr_in("t", req.addresses)
    if req.addresses:
        having.where.append(f"({ends[0].where_sql()} OR {ends[1].where_sql()})")
    c = SIP_CALL_SQL
    sql = (f"SELECT call_id, {c['method']} AS m, {c['from_uri']} AS fu, {c['to_uri']} AS tu, {c['src']} AS s, "
           f"{c['dst']} AS t, {d.addr_text('s')}, {d.addr_text('t')}, {d.ns('min(first_seen)')} AS f, "
           f"{d.ns('max(last_seen)')}, sum(requests), sum(responses), {c['status']} AS st "
           f"FROM {DATABASE}.sip_calls FINAL WHERE {q.where_sql()} GROUP BY call_id HAVING {having.where_sql()} "
           f"ORDER BY f, call_id LIMIT {m.limit_of(req.limit)}")
    return sql, q.params


def sip_call_rows(rows: list[tuple]) -> m.ListSipCallsResponse:
    return m.ListSipCallsResponse(calls=[
        m.SipCall(call_id=c, method=me, from_uri=fu, to_uri=tu, src=address(s), dst=address(t), first_seen_ns=int(f),
                  last_seen_ns=int(la), requests=int(rq), responses=int(rs), status=int(st))
        for c, me, fu, tu, _s, _t, s, t, f, la, rq, rs, st in rows])


def list_alerts(req: m.ListAlertsRequest, d: Dialect) -> tuple[str, dict]:
    """Alerts active in the range: first seen (window_start, their first window) before its end,
    last seen after its start."""
    q = Sql(d)
    q.where.append(f"window_start < {d.time_param(req.range.end_ms, q.params, 't1', up=True)}")
    q.where.append(f"last_seen >= {d.time_param(req.range.start_ms, q.params, 't0', up=False)}")
    if req.source:
        q.equals("source", req.source, "String")
    for col, values in (("state", req.state), ("severity", req.severity), ("rule", req.rule), ("id", req.id)):
        if values:          # one parameter each: chDB does not bind a list of strings as Array(String)
            q.where.append(f"{col} IN ({', '.join(q.param(v, 'String') for v in sorted(set(values)))})")
    if req.address:
        a = q.param(to_text(from_text(req.address)), "String")      # as the engine writes it
        q.where.append(f"(src = {a} OR dst = {a})")
    sql = (f"SELECT id, source, rule, detector, severity, state, entity, value, threshold, {d.window_ms()}, "
           f"{d.ms('last_seen')}, {d.ms('resolved_at')}, windows, evidence FROM {DATABASE}.alerts FINAL "
           f"WHERE {q.where_sql()} ORDER BY window_start DESC, id LIMIT {m.limit_of(req.limit)}")
    return sql, q.params


def alert_rows(rows: list[tuple]) -> m.ListAlertsResponse:
    import json
    return m.ListAlertsResponse(alerts=[
        m.AlertItem(id=i, source=src, rule=r, detector=det, severity=sev, state=st,
                    entity={k: str(v) for k, v in json.loads(ent).items()}, value=float(v), threshold=float(th),
                    first_seen_ms=int(f), last_seen_ms=int(la), resolved_at_ms=int(res), windows=int(w),
                    evidence_json=ev)
        for i, src, r, det, sev, st, ent, v, th, f, la, res, w, ev in rows])
