"""Roll-ups (sinks/rollups.py): every level sums exactly to the flow records (the sketch levels
to the sketch tables' windows), on chDB and on Debian's 18.16 server, also after a window is
written again and after a revision; a span never covers a bucket whose records changed until it
is computed again; data past a table's TTL is gone after a merge."""
from __future__ import annotations

import os
import time

import pytest

from schemas.clickhouse import MARKS, ROLLUP_VALUES, ROLLUPS, rollup_dim_sql
from tests.support import revised, rows_of

MINUTES = [t for t, r in ROLLUPS.items() if r.res == 60]


@pytest.fixture(scope="module")
def results(synth_pcap):
    """The capture's 10 s window results (6 windows over a minute and more)."""
    from flows.capture_reader import CaptureReader
    from flows.config import WindowConfig
    from flows.window import LocalPipeline
    pipe = LocalPipeline(WindowConfig(window_s=10))
    got = [r for b in CaptureReader(str(synth_pcap)) for r in pipe.feed(b)] + pipe.flush()
    return sorted(got, key=lambda r: r.start)


@pytest.fixture(scope="module")
def windows(results):
    """The windows as the sinks receive them."""
    return rows_of(results, "cap")


def _by_bucket(rows, db: str, table: str, res: int) -> dict:
    count = "count()" if table == "flows" else "sum(flows)"
    got = rows(f"SELECT intDiv(toUInt32(toDateTime(window_start)), {res}) * {res} AS b, sum(packets), sum(bytes), "
               f"{count} FROM {db}.{table} FINAL GROUP BY b ORDER BY b")
    return {int(b): (int(p), int(by), int(f)) for b, p, by, f in got}


def _by_key(rows, db: str, table: str, dims: list[str]) -> dict:
    cols = ", ".join(f"{d} AS k{i}" for i, d in enumerate(dims))
    got = rows(f"SELECT {cols}, sum(packets), sum(bytes) FROM {db}.{table} FINAL "
               f"GROUP BY {', '.join(f'k{i}' for i in range(len(dims)))}")
    return {tuple(str(x) for x in r[:-2]): (int(r[-2]), int(r[-1])) for r in got}


def _spans(rows, db: str) -> dict:
    got = rows(f"SELECT level, toUInt32(toDateTime(since)), toUInt32(toDateTime(until)) FROM {db}.{MARKS} FINAL "
               f"WHERE source = 'cap'")
    return {lvl: (int(a), int(b)) for lvl, a, b in got}


def _sketch_level(rows, db: str, table: str, per=None) -> list:
    """A sketch roll-up's rows, or (`per` its Rollup) those its base table's windows give per
    bucket: the estimates summed (heavy hitters), the largest with its bounds (spreaders)."""
    if per is None:
        r = ROLLUPS[table]
        dims, values = ", ".join(r.dims), ", ".join(c for c, *_ in ROLLUP_VALUES[r.base])
        got = rows(f"SELECT toUInt32(toDateTime(window_start)), {dims}, {values} FROM {db}.{table} FINAL")
    else:
        dims, values = ", ".join(per.dims), ", ".join(agg for _c, _t, agg, _ in ROLLUP_VALUES[table])
        got = rows(f"SELECT intDiv(toUInt32(toDateTime(window_start)), {per.res}) * {per.res} AS b, {dims}, {values} "
                   f"FROM {db}.{table} FINAL GROUP BY b, {dims}")
    assert got, table
    return sorted(tuple(str(x) for x in r) for r in got)


def assert_exact(rows, db: str, legacy: bool) -> None:
    """Each level, per its own buckets and per key over everything (the records' dst cut to its
    network for a dst_nets_* level), equals the flow records; and each level's span covers every
    window written."""
    first, last = min(_by_bucket(rows, db, "flows", 10)), max(_by_bucket(rows, db, "flows", 10))
    spans = _spans(rows, db)
    for level, r in ROLLUPS.items():
        res, dims, base = r.res, r.dims, r.base
        if base == "flows":
            assert _by_bucket(rows, db, level, res) == _by_bucket(rows, db, "flows", res), level
            assert _by_key(rows, db, level, list(dims)) == \
                _by_key(rows, db, "flows", [rollup_dim_sql(level, d, legacy) for d in dims]), level
        else:
            assert _sketch_level(rows, db, level) == _sketch_level(rows, db, base, ROLLUPS[level]), level
        since, until = spans[level]
        assert since <= first and until > last, (level, spans[level])


def check_store(store, rows, db: str, windows) -> None:
    store.rollups.every_s = 0           # compute closed buckets at every write (live: every 30 s)
    write, finish = store.write, store.finish
    write(windows[:2])
    write(windows[2:])          # the first minute closes inside this write: rolled before finish
    assert set(_spans(rows, db)) == set(MINUTES)
    finish()
    assert_exact(rows, db, store.rollups.legacy)
    write(windows[1:2])                         # written again (a replay): nothing changes
    finish()
    assert_exact(rows, db, store.rollups.legacy)
    write([revised(windows[2])])                # a revision: the records change
    spans = _spans(rows, db)
    start = windows[2].start // 10**9
    # its minute is closed: computed again in the same write; its hour and day are not: their
    # spans end before it until they are
    for minute in MINUTES:
        assert _by_bucket(rows, db, minute, 60) == _by_bucket(rows, db, "flows", 60) and spans[minute][1] > start
    assert all(spans[lvl][1] <= start for lvl in ROLLUPS if ROLLUPS[lvl].res > 60), spans
    finish()
    assert_exact(rows, db, store.rollups.legacy)


def test_rollups_are_exact_on_chdb(windows, tmp_path):
    from sinks.chdb_store import ChdbStore
    s = ChdbStore(str(tmp_path / "store"), rollups=True)
    check_store(s, s.rows, "netspectra", windows)


def test_rollups_are_exact_on_the_1816_server(windows, local_stack):
    from sinks.clickhouse_native import ClickHouseNative
    _, ports, _ = local_stack
    db = f"rollups_{os.getpid()}"          # the server is shared by the session's tests
    s = ClickHouseNative(f"127.0.0.1:{ports['clickhouse']}", database=db, rollups=True)
    s._setup()
    check_store(s, lambda sql: s.client.execute(sql), db, windows)
    s.client.execute(f"DROP DATABASE {db}")


def test_data_past_a_tables_ttl_is_gone_after_a_merge(windows, tmp_path):
    """A few seconds' retention on a roll-up: after a merge its parts are dropped whole, the flow
    records (90 days) stay. (The level computed last, and seconds to spare: ClickHouse may drop an
    expired part before the merge, so the first count must come before its rows expire.)"""
    from sinks.chdb_store import ChdbStore
    keep, level = 5, list(ROLLUPS)[-1]
    s = ChdbStore(str(tmp_path / "store"), retention={level: keep}, rollups=True)
    s.write(windows)
    s.finish()
    assert int(s.rows(f"SELECT count() FROM netspectra.{level}")[0][0]) > 0
    time.sleep(keep + 1.5)
    s.query(f"OPTIMIZE TABLE netspectra.{level} FINAL")
    assert int(s.rows(f"SELECT count() FROM netspectra.{level}")[0][0]) == 0
    assert int(s.rows("SELECT count() FROM netspectra.flows")[0][0]) == sum(len(w.tables["flows"]["packets"])
                                                                            for w in windows)


def test_a_capture_of_months_is_written_at_once(results, tmp_path, local_stack):
    """Windows over 101 days in one write: more daily partitions than a modern server lets an
    INSERT fill by default (100); on chDB and on 18.16. (The roll-ups' INSERTs take the same
    settings; with them, this write takes 25 s: each gap between two buckets is a query.)"""
    import dataclasses

    from sinks.chdb_store import ChdbStore
    from sinks.clickhouse_native import ClickHouseNative
    days = rows_of([dataclasses.replace(results[0], start=results[0].start + d * 86400 * 10**9) for d in range(101)],
                   "cap")
    s = ChdbStore(str(tmp_path / "store"))
    s.write(days)
    _, ports, _ = local_stack
    n = ClickHouseNative(f"127.0.0.1:{ports['clickhouse']}", database=f"months_{os.getpid()}")
    n._setup()
    n.write(days)
    for rows, db in ((s.rows, "netspectra"), (n.client.execute, n.database)):
        assert int(rows(f"SELECT count() FROM {db}.flows")[0][0]) == 101 * len(days[0].tables["flows"]["packets"])
        assert int(rows(f"SELECT uniqExact(partition) FROM system.parts WHERE database = '{db}' AND table = 'flows' "
                        f"AND active")[0][0]) == 101
    n.client.execute(f"DROP DATABASE {n.database}")


@pytest.mark.parametrize("server", ["chdb", "18.16"])
def test_a_writer_computes_what_a_killed_one_left(results, tmp_path, server, request):
    """A writer stopped without finishing (a kill) leaves buckets uncomputed and the spans cut
    before them; the next writer of the source computes them again, so the spans grow over
    everything once more, exact (else they stop there for good and the records answer)."""
    import dataclasses

    if server == "chdb":
        from sinks.chdb_store import ChdbStore
        db = "netspectra"

        def writer():
            return ChdbStore(str(tmp_path / "store"), rollups=True)
        rows = writer().rows
    else:
        from sinks.clickhouse_native import ClickHouseNative
        _, ports, _ = request.getfixturevalue("local_stack")
        db = f"killed_{os.getpid()}"

        def writer():
            w = ClickHouseNative(f"127.0.0.1:{ports['clickhouse']}", database=db, rollups=True)
            w._setup()
            return w
        rows = writer().client.execute
    first = writer()
    first.rollups.every_s = 0
    first.write(rows_of(results[:4], "cap"))        # its first minute closes and is computed: then killed
    assert set(_spans(rows, db)) == set(MINUTES)
    later = [dataclasses.replace(r, start=r.start + 7200 * 10**9) for r in results]
    second = writer()                               # what the killed one had marked is gone with it
    second.write(rows_of(later, "cap"))
    second.finish()
    assert_exact(rows, db, second.rollups.legacy)
    if server != "chdb":
        rows(f"DROP DATABASE {db}")


def test_many_buckets_are_computed_a_statement_at_a_time(windows, tmp_path, monkeypatch):
    """A month of minutes at once (a long capture, a store back after an outage) names more
    buckets than one statement may hold: they go in several, and the sums stay exact."""
    from sinks import rollups
    from sinks.chdb_store import ChdbStore
    monkeypatch.setattr(rollups, "BUCKETS_PER_STATEMENT", 1)
    s = ChdbStore(str(tmp_path / "store"), rollups=True)
    s.write(windows)
    s.finish()
    assert_exact(s.rows, "netspectra", False)
