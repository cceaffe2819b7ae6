"""AggregateFlows from roll-ups: the coarsest table that answers exactly (its dimensions, a range
and buckets aligned to its resolution, every source's windows inside its span), the same answer
as the flow records, and the response says which table answered."""
from __future__ import annotations

import dataclasses
import os

import pytest

from api import models as m
from api import queries as q
from api.queries import address
from api.config import ApiConfig
from tests.support import revised, rows_of

MIN = 60_000


@pytest.fixture(scope="module")
def service(api_results, tmp_path_factory):
    from api.server import build
    from sinks.chdb_store import ChdbStore
    results, _ref = api_results
    path = tmp_path_factory.mktemp("rollup-api")
    store = ChdbStore(str(path), rollups=True)
    store.write(rows_of(results, "cap"))
    store.finish()
    svc, *_ = build(ApiConfig(store=str(path), grpc_port=0, tokens=[{"token": "t" * 20}], cache_entries=0))
    share, q.MAX_ROWS_SHARE = q.MAX_ROWS_SHARE, 1.0     # this capture's records hardly repeat: plan as if they did
    yield svc, results
    q.MAX_ROWS_SHARE = share


def _raw(svc, req) -> list:
    return q.aggregate_rows(svc.backend.rows(*q.aggregate_flows(req, svc.dialect, "flows"))).groups


def _of_cap(req, source: str = "cap"):
    """The request about one source only (by default this module's: others add sources no
    roll-up covers)."""
    return req.model_copy(update={"filter": req.filter.model_copy(update={"source": source})})


def _assert_spreaders_as_base(svc, req, got) -> None:
    for side, sql, params in q.spreaders(req, svc.dialect):
        assert getattr(got, side) == q.spreader_rows(svc.backend.rows(sql, params)), side


def _minutes(results) -> m.TimeRange:
    first, last = results[0].start // 10**6, results[-1].start // 10**6
    return m.TimeRange(start_ms=first // MIN * MIN, end_ms=(last // MIN + 1) * MIN)


@pytest.mark.parametrize("body,table,res", [
    ({}, "protocols_1h", 3600), ({"group_by": ["src"], "limit": 20}, "sources_1h", 3600),
    ({"group_by": ["dst", "dport", "proto"], "limit": 50}, "dst_ports_1h", 3600),
    ({"bucket_seconds": 60}, "protocols_1m", 60), ({"bucket_seconds": 120, "group_by": ["proto"]}, "protocols_1m", 60),
    ({"filter": {"dst": ["10.0.0.0/8"], "proto": [6]}, "group_by": ["dport"]}, "dst_nets_1h", 3600),
    ({"filter": {"src": ["10.0.0.0/8"]}, "group_by": ["dport"]}, "flows_1h", 3600),
    ({"filter": {"vlan": [0], "dport": [53]}, "group_by": ["proto"]}, "traffic_1h", 3600),
    ({"filter": {"vlan": [0]}, "order_by": "flows", "group_by": ["src"], "limit": 5}, "sources_1h", 3600),
], ids=["totals", "by-src", "by-dst-port", "buckets", "2-min-by-proto", "dst-net-by-port", "src-net-by-port",
        "port-by-proto", "vlan-by-flows"])
def test_a_capture_alone_in_its_hour_is_answered_by_the_smallest_rollup_exactly(service, body, table, res):
    """Without addresses or ports asked for, the protocols' roll-up answers; with ports, the
    address-free one; with addresses but no port, the port-free one; a destination network by
    port, the one with destinations cut to their networks; with both, the one that keeps them.
    Sums: from the hour level (the capture's minutes are all its hour holds: nothing to subtract);
    minutes asked for: from the minute level."""
    svc, results = service
    req = _of_cap(m.AggregateFlowsRequest(range=_minutes(results), **body))
    got = svc.aggregate_flows(req)
    assert (got.table, got.resolution_seconds) == (table, res)
    _assert_as_records(svc, req, got)


def _assert_as_records(svc, req, got) -> None:
    raw = _raw(svc, req)
    key = lambda g: (g.bucket_ms, g.src, g.dst, g.dport, g.proto, g.vlan)     # noqa: E731
    if req.limit or req.group_by:       # ties at the limit may pick other members: compare what is certain
        assert [(g.bytes if req.order_by == "bytes" else g.flows) for g in got.groups] == \
            [(g.bytes if req.order_by == "bytes" else g.flows) for g in raw]
        full = {key(g): g for g in _raw(svc, req.model_copy(update={"limit": 1000}))}
        assert all(full[key(g)] == g for g in got.groups)
    else:
        assert got.groups == raw
    assert sum(g.packets for g in got.groups) > 0


@pytest.mark.parametrize("body,why", [
    ({"group_by": ["sport"]}, "the roll-ups drop the source port"),
    ({"filter": {"sport": [53]}}, "the roll-ups drop the source port"),
    ({"bucket_seconds": 10}, "buckets finer than a minute"),
])
def test_what_the_rollups_cannot_answer_comes_from_the_records(service, body, why):
    svc, results = service
    got = svc.aggregate_flows(_of_cap(m.AggregateFlowsRequest(range=_minutes(results), **body)))
    assert (got.table, got.resolution_seconds) == ("flows", 0), why


def test_a_rollup_that_is_not_smaller_than_the_records_is_not_read(service):
    """Records that are each their own key (a spoofed flood) roll up to as many rows: the records
    answer what needs addresses."""
    svc, results = service
    rows = dict(svc.backend.rows(q.ROWS_SQL, {}))
    q.MAX_ROWS_SHARE = min(rows[f"{t}_{r}"] for t in ("flows", "hosts", "sources") for r in ("1m", "1h")) / rows["flows"] - 0.01
    try:
        svc._marks_cache = None
        req = _of_cap(m.AggregateFlowsRequest(range=_minutes(results), group_by=["src"]))
        assert svc.aggregate_flows(req).table == "flows"
        # the address-free roll-up stays small whatever the addresses do: it still answers without them
        assert svc.aggregate_flows(_of_cap(m.AggregateFlowsRequest(range=_minutes(results)))).table == "protocols_1h"
    finally:
        q.MAX_ROWS_SHARE = 1.0


def test_what_a_source_has_not_rolled_up_yet_comes_from_the_records(service):
    """A source written without the end of the stream: its closed minute is rolled up, its
    newest one not yet; that one comes from the records, exactly. (A source written without
    roll-ups at all comes from the records whole: test_a_traced_flow_is_its_windows_newest_version.)"""
    svc, results = service
    r = _minutes(results)
    from sinks.chdb_store import ChdbStore
    ChdbStore(svc.backend.store.path, rollups=True).write(rows_of(results, "late"))
    req = m.AggregateFlowsRequest(range=r, group_by=["proto"], filter=m.Filter(source="late"))
    got = svc.aggregate_flows(req)
    assert got.table == "protocols_1m+flows"
    _assert_as_records(svc, req, got)
    assert svc.aggregate_flows(m.AggregateFlowsRequest(range=r, filter=m.Filter(source="cap"))).table == "protocols_1h"


PIECES = [
    ("AggregateFlows", {}), ("AggregateFlows", {"group_by": ["src"], "limit": 20}),
    ("AggregateFlows", {"filter": {"dst": ["10.0.0.0/8"], "proto": [6]}, "group_by": ["dport"]}),
    ("AggregateFlows", {"bucket_seconds": 60, "group_by": ["proto"]}),
    ("QueryHeavyHitters", {"dimension": "src", "exact": True, "limit": 1000}),
    ("QueryHeavyHitters", {"dimension": "port", "exact": True, "limit": 1000}),
    ("QueryHeavyHitters", {"dimension": "src", "limit": m.MAX_LIMIT}),
    ("QuerySpreaders", {"exact": True, "limit": 1000}), ("QuerySpreaders", {"count": "ports", "limit": 1000}),
    ("QuerySpreaders", {"limit": m.MAX_LIMIT}),
]


def _edges(results) -> tuple[list, m.TimeRange]:
    """The capture's windows copied around a whole hour H, so that the range [H - 97 s,
    H + 3695 s) holds windows in every piece: seconds before a whole minute, a whole minute, the
    hour, a minute past it, seconds past that; and in the hours at its edges outside it."""
    h = (results[-1].start // 10**9 // 3600 + 2) * 3600
    # and one window in each edge hour outside the range: a bucket read whole has those to subtract
    starts = [h - 3000, h - 95, h - 55, h - 15, h + 1800, h + 3605, h + 3645, h + 3685, h + 5000]
    copies = [dataclasses.replace(results[i % len(results)], start=t * 10**9) for i, t in enumerate(starts)]
    return copies, m.TimeRange(start_ms=(h - 97) * 1000, end_ms=(h + 3695) * 1000)


@pytest.fixture(scope="module")
def edges(service) -> m.TimeRange:
    """Source "edges" (_edges) in the module's store."""
    from sinks.chdb_store import ChdbStore
    svc, results = service
    copies, rng = _edges(results)
    store = ChdbStore(svc.backend.store.path, rollups=True)
    store.write(rows_of(copies, "edges"))
    store.finish()
    return rng


IDS = ["totals", "by-src", "dst-net-by-port", "per-minute", "hh-src", "hh-port", "hh-sketch", "spread", "ports",
       "spread-sketch"]


@pytest.mark.parametrize("method,body", PIECES, ids=IDS)
def test_a_range_of_whole_and_partial_buckets_is_read_in_pieces_exactly(service, edges, method, body):
    """A range that starts and ends inside an hour: its whole hours from an hour level, the
    minutes at its edges from a minute level, the seconds past them from the base table; the
    same answer as the base table alone, and the response names every table read."""
    _assert_pieces(service[0], edges, "edges", method, body)


@pytest.fixture(scope="module")
def server_edges(service, local_stack):
    """The API on Debian's ClickHouse 18.16 (shared by the session's tests), its source
    "edges-<pid>" (_edges) written with roll-ups."""
    from api.server import build
    from sinks.clickhouse_native import ClickHouseNative
    _svc, results = service
    _, ports, _ = local_stack
    addr, source = f"127.0.0.1:{ports['clickhouse']}", f"edges-{os.getpid()}"
    copies, rng = _edges(results)
    store = ClickHouseNative(addr, rollups=True)
    store.write(rows_of(copies, source))
    store.finish()
    svc, *_ = build(ApiConfig(store=f"clickhouse://{addr}", grpc_port=0, tokens=[{"token": "t" * 20}], cache_entries=0))
    return svc, rng, source


@pytest.mark.parametrize("method,body", PIECES, ids=IDS)
def test_pieces_on_the_1816_server(server_edges, method, body):
    _assert_pieces(*server_edges, method, body)


SUBTRACTED = [{}, {"group_by": ["src"], "limit": 20}, {"group_by": ["dst", "dport", "proto"], "limit": 50},
              {"filter": {"dst": ["10.0.0.0/8"], "proto": [6]}, "group_by": ["dport"]}]
SUBTRACTED_IDS = ["totals", "by-src", "by-dst-port-proto", "dst-net-by-port"]


@pytest.mark.parametrize("body", SUBTRACTED, ids=SUBTRACTED_IDS)
def test_part_of_a_bucket_read_as_the_bucket_less_the_rest_is_exact(service, edges, body, monkeypatch):
    _assert_subtracted(service[0], edges, "edges", body, monkeypatch)


@pytest.mark.parametrize("body", SUBTRACTED, ids=SUBTRACTED_IDS)
def test_subtracted_on_the_1816_server(server_edges, body, monkeypatch):
    svc, rng, source = server_edges
    _assert_subtracted(svc, rng, source, body, monkeypatch)


def _assert_subtracted(svc, edges: m.TimeRange, source: str, body: dict, monkeypatch) -> None:
    """[H - 50 s, H + 3700 s) of _edges's windows, the records made to look costly (and reads
    free): the minute before H is read as that minute less its first 10 s, which hold a window
    outside the range (its rows cancel the minute's out, key by key), and the last 40 s as their
    minute less 20 s; the same answer as the records."""
    h = edges.start_ms // 1000 + 97
    rng = m.TimeRange(start_ms=(h - 50) * 1000, end_ms=(h + 3700) * 1000)
    req = _of_cap(m.AggregateFlowsRequest(range=rng, **body), source)
    marks, rows, hours = svc._marks()
    monkeypatch.setattr(svc, "_marks", lambda: (marks, {**rows, "flows": rows["flows"] * 1000}, hours))
    monkeypatch.setattr(q, "READ_ROWS", 0)
    pieces = svc._plan(q.used_columns(req.filter, req.group_by), rng, source, subtract=True)
    assert [p for p in pieces if p.sign < 0 and p.start_s == h - 60] == [q.Piece("flows", 0, h - 60, h - 50, -1)]
    got = svc.aggregate_flows(req)
    _assert_as_records(svc, req, got)
    if req.group_by:        # every group: none that only the subtracted rows hold (they sum to nothing)
        every = req.model_copy(update={"limit": m.MAX_LIMIT})
        raw = _raw(svc, every)
        key = lambda g: (g.src, g.dst, g.dport, g.proto, g.vlan)        # noqa: E731 (ties come in any order)
        assert len(raw) < m.MAX_LIMIT and sorted(svc.aggregate_flows(every).groups, key=key) == sorted(raw, key=key)


def _assert_pieces(svc, rng: m.TimeRange, source: str, method: str, body: dict) -> None:
    req = _of_cap(getattr(m, f"{method}Request")(range=rng, **body), source)
    call = {"AggregateFlows": svc.aggregate_flows, "QueryHeavyHitters": svc.heavy_hitters,
            "QuerySpreaders": svc.spreaders}[method]
    got = call(req)
    tables = got.table.split("+")
    assert len(tables) >= 2 and tables[-1] in ("flows", "heavy_hitters", "spreaders"), got.table
    if method == "AggregateFlows":
        _assert_as_records(svc, req, got)
        assert got.resolution_seconds == (3600 if "_1h" in tables[0] else 60)
    elif method == "QueryHeavyHitters":
        _assert_heavy_as_base(svc, req, got)
    else:
        _assert_spreaders_as_base(svc, req, got)
        assert got.sources


def _assert_heavy_as_base(svc, req, got) -> None:
    """The same values as from the base table; ties at the limit may pick other members: every
    member's value is certain."""
    raw = q.heavy_rows(req, svc.backend.rows(*q.heavy_hitters(req, svc.dialect)))
    assert sorted(h.value for h in got.items) == sorted(h.value for h in raw.items) and got.items
    full = req.model_copy(update={"limit": m.MAX_LIMIT})
    everything = {h.item: h for h in q.heavy_rows(full, svc.backend.rows(*q.heavy_hitters(full, svc.dialect))).items}
    tail = min(h.value for h in everything.values())        # members tied past MAX_LIMIT are not in `everything`
    assert all(everything[h.item] == h if h.item in everything else h.value == tail for h in got.items)


@pytest.mark.parametrize("dimension,table", [("src", "sources_1m"), ("dst", "hosts_1m"), ("port", "traffic_1m"),
                                             ("proto", "protocols_1m"), ("flow", "flows")])
def test_exact_heavy_hitters_are_summed_from_a_rollup_that_keeps_their_columns(service, dimension, table):
    svc, results = service
    req = _of_cap(m.QueryHeavyHittersRequest(range=_minutes(results), dimension=dimension, exact=True, limit=1000))
    got = svc.heavy_hitters(req)
    assert got.table == table and got.exact
    _assert_heavy_as_base(svc, req, got)


@pytest.mark.parametrize("body,table", [({"exact": True}, "hosts_1m"), ({"count": "ports"}, "flows_1m"),
                                        ({"exact": True, "filter": {"dport": [53]}}, "flows_1m")],
                         ids=["peers", "ports", "peers-of-dns"])
def test_exact_spreaders_are_counted_from_the_rollup_with_addresses(service, body, table):
    svc, results = service
    req = _of_cap(m.QuerySpreadersRequest(range=_minutes(results), limit=1000, **body))
    got = svc.spreaders(req)
    assert got.table == table and got.exact
    _assert_spreaders_as_base(svc, req, got)       # exact: from the records
    assert got.sources and got.destinations
    sketch = svc.spreaders(_of_cap(m.QuerySpreadersRequest(range=_minutes(results), limit=10)))
    assert sketch.table == "spreaders" and not sketch.exact       # minutes: the sketches' windows


def _hours(results) -> m.TimeRange:
    first, last = results[0].start // 10**6, results[-1].start // 10**6
    return m.TimeRange(start_ms=first // 3_600_000 * 3_600_000, end_ms=(last // 3_600_000 + 1) * 3_600_000)


@pytest.mark.parametrize("dimension", ["src", "dst", "flow", "port", "proto"])
def test_sketch_heavy_hitters_over_whole_hours_come_from_their_hour_rollup(service, dimension):
    """The windows' estimates summed per hour: the same items, values and bounds as summed
    from the windows."""
    svc, results = service
    req = _of_cap(m.QueryHeavyHittersRequest(range=_hours(results), dimension=dimension, limit=m.MAX_LIMIT))
    got = svc.heavy_hitters(req)
    assert got.table == "heavy_hitters_1h" and not got.exact and got.items
    raw = q.heavy_rows(req, svc.backend.rows(*q.heavy_hitters(req, svc.dialect)))
    assert sorted(got.items, key=lambda h: h.item) == sorted(raw.items, key=lambda h: h.item)
    minutes = svc.heavy_hitters(req.model_copy(update={"range": _minutes(results)}))
    assert minutes.table == "heavy_hitters"


def test_sketch_spreaders_over_whole_hours_come_from_their_hour_rollup(service):
    """The largest window's estimate per hour, with its bounds: as from the windows; filtered too."""
    svc, results = service
    req = _of_cap(m.QuerySpreadersRequest(range=_hours(results), limit=m.MAX_LIMIT))
    got = svc.spreaders(req)
    assert got.table == "spreaders_1h" and got.sources and got.destinations
    _assert_spreaders_as_base(svc, req, got)
    one = got.sources[0].addr
    narrowed = svc.spreaders(req.model_copy(update={"filter": req.filter.model_copy(update={"src": [one]})}))
    assert narrowed.table == "spreaders_1h" and [s.addr for s in narrowed.sources] == [one]


@pytest.mark.parametrize("body,table", [
    ({}, "protocols_1h"), ({"bucket_seconds": 3600, "group_by": ["proto"]}, "protocols_1h"),
    ({"filter": {"dst": ["10.0.0.0/8"], "proto": [6]}, "group_by": ["dport"]}, "dst_nets_1h"),
    ({"filter": {"dst": ["10.0.0.0/25"], "proto": [6]}, "group_by": ["dport"]}, "dst_ports_1h"),
    ({"group_by": ["dst", "dport"], "limit": 50}, "dst_ports_1h"),
    ({"filter": {"src": ["10.0.0.0/8"]}, "group_by": ["dport"]}, "flows_1h"),
], ids=["totals", "hourly-by-proto", "dst-net-by-port", "narrow-dst-net-by-port", "by-dst-port", "src-net-by-port"])
def test_whole_hours_are_answered_by_an_hour_rollup_exactly(service, body, table):
    """A destination network by port: the level with destinations cut to their /24 (or /64)
    when the filter is no narrower, else the source-free level sorted by destination, so only
    that network's rows are read; with the source too, the level that keeps both."""
    svc, results = service
    req = _of_cap(m.AggregateFlowsRequest(range=_hours(results), **body))
    got = svc.aggregate_flows(req)
    assert (got.table, got.resolution_seconds) == (table, 3600)
    _assert_as_records(svc, req, got)


def test_more_time_buckets_than_an_answer_holds_is_one_clear_error(service):
    """Counted between the range's first and last window: "everything, per minute" is fine on a
    short capture; a month of minutes is not."""
    svc, results = service
    everything = m.TimeRange(start_ms=0, end_ms=2**52)
    assert svc.aggregate_flows(_of_cap(m.AggregateFlowsRequest(range=everything, bucket_seconds=1))).groups
    month = 31 * 86_400_000
    req = m.AggregateFlowsRequest(range=_hours(results), bucket_seconds=1)
    with pytest.raises(q.QueryError, match="use bucket_seconds >= "):
        q.check_buckets(req, [("a", 0, month // 1000), ("b", 5, 100)])
    q.check_buckets(req.model_copy(update={"bucket_seconds": 268}), [("a", 0, month // 1000)])


def test_a_traced_flow_is_its_windows_newest_version(service):
    """TraceFlow reads the windows flow_keys names under FINAL: a window written twice, its
    records revised, still answers once per window, with the newest values."""
    from sinks.chdb_store import ChdbStore
    svc, results = service
    windows = rows_of(results, "revised")
    store = ChdbStore(svc.backend.store.path)
    store.write(windows)
    store.write([revised(w) for w in windows])
    text = svc.dialect.addr_text
    src, dst, sport, dport, proto = svc.backend.rows(
        f"SELECT {text('src')}, {text('dst')}, sport, dport, proto FROM netspectra.flows WHERE source = 'cap' "
        f"GROUP BY src, dst, sport, dport, proto ORDER BY count() DESC, sum(bytes) DESC LIMIT 1", {})[0]
    req = m.TraceFlowRequest(range=m.TimeRange(start_ms=0, end_ms=2**52), src=address(src), dst=address(dst),
                             sport=sport, dport=dport, proto=proto)
    cap, again = (svc.trace_flow(req.model_copy(update={"source": s})) for s in ("cap", "revised"))
    revised_only = svc.aggregate_flows(m.AggregateFlowsRequest(range=_minutes(results), filter=m.Filter(source="revised")))
    assert revised_only.table == "flows"        # written without roll-ups: nothing covers it
    assert len(cap.windows) > 1 and again.packets == 2 * cap.packets and again.bytes == 2 * cap.bytes
    assert [(w.window_start_ms, w.vlan, w.packets) for w in again.windows] == \
        [(w.window_start_ms, w.vlan, 2 * w.packets) for w in cap.windows]


def test_a_traced_flow_in_windows_off_whole_seconds(service):
    """flow_keys holds windows in whole seconds: windows starting 0.5 s past one (any length of
    window starts anywhere) are all found, and a range starting 0.3 s past a whole second still
    holds its first window."""
    from sinks.chdb_store import ChdbStore
    svc, results = service
    shifted = [dataclasses.replace(r, start=r.start + 500_000_000) for r in results]
    ChdbStore(svc.backend.store.path).write(rows_of(shifted, "half"))
    text = svc.dialect.addr_text
    src, dst, sport, dport, proto = svc.backend.rows(
        f"SELECT {text('src')}, {text('dst')}, sport, dport, proto FROM netspectra.flows WHERE source = 'cap' "
        f"GROUP BY src, dst, sport, dport, proto ORDER BY count() DESC, sum(bytes) DESC LIMIT 1", {})[0]
    first = results[0].start // 10**6
    rng = m.TimeRange(start_ms=first + 300, end_ms=first + 10**7)
    req = m.TraceFlowRequest(range=rng, src=address(src), dst=address(dst), sport=sport, dport=dport, proto=proto)
    cap = svc.trace_flow(req.model_copy(update={"source": "cap", "range": m.TimeRange(start_ms=first, end_ms=first + 10**7)}))
    half = svc.trace_flow(req.model_copy(update={"source": "half"}))
    assert len(cap.windows) > 1
    assert [(w.window_start_ms, w.packets) for w in half.windows] == [(w.window_start_ms + 500, w.packets) for w in cap.windows]
