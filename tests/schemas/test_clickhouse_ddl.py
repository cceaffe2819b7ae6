"""The DDL against an existing database: a table written by an older schema is reported, not
written into with columns missing; columns added since (ADDED_COLUMNS) are added by the writers."""
from __future__ import annotations

import pytest

from schemas.clickhouse import DATABASE, SchemaMismatch, check_existing, column_types


def test_current_tables_pass_and_old_ones_are_named():
    rows = [(t, c) for t in ("flows", "window_totals") for c in column_types(t)]
    check_existing(rows)
    old = [(t, c) for t, c in rows if c != "vlan"]
    with pytest.raises(SchemaMismatch, match=r"missing flows\.vlan"):
        check_existing(old)


def test_writers_add_the_columns_added_since_to_older_tables(tmp_path, local_stack):
    """A store written before the flows' TLS names: opened by a writer, it gains the columns,
    its rows read '' and new rows keep their names (chDB and the 18.16 server)."""
    from sinks.chdb_store import ChdbStore
    from sinks.clickhouse_native import ClickHouseNative
    from tests.support import tls_flows_rows

    old = "ALTER TABLE {db}.flows DROP COLUMN tls_sni, DROP COLUMN tls_ja4, DROP COLUMN tls_alpn"
    path = str(tmp_path / "old")
    store = ChdbStore(path)
    store.write(tls_flows_rows("before", 1_500_000_000))
    store.sess.query(old.format(db=DATABASE))
    store = ChdbStore(path)
    store.write(tls_flows_rows("after", 1_500_000_000))
    assert store.rows(f"SELECT source, countIf(tls_sni != '') FROM {DATABASE}.flows GROUP BY source ORDER BY source") \
        == [("after", 79), ("before", 0)]

    sink = ClickHouseNative(f"127.0.0.1:{local_stack[1]['clickhouse']}")
    sink.write(tls_flows_rows("ddl-before", 1_500_000_000))
    sink.client.execute(old.format(db=sink.database))
    sink = ClickHouseNative(f"127.0.0.1:{local_stack[1]['clickhouse']}")
    sink.write(tls_flows_rows("ddl-after", 1_500_000_000))
    assert sink.client.execute(f"SELECT source, countIf(tls_sni != '') FROM {sink.database}.flows "
                               "WHERE source LIKE 'ddl-%' GROUP BY source ORDER BY source") == [("ddl-after", 79), ("ddl-before", 0)]


def test_chdb_store_refuses_a_store_from_an_older_schema(tmp_path):
    from sinks.chdb_store import ChdbStore

    path = str(tmp_path / "old")
    store = ChdbStore(path)         # chDB has one data directory per process: go through the store's session
    store.sess.query(f"DROP TABLE {DATABASE}.flows")
    store.sess.query(f"CREATE TABLE {DATABASE}.flows (window_start DateTime64(3, 'UTC'), source String, src IPv6) "
                     "ENGINE = MergeTree ORDER BY window_start")
    with pytest.raises(SchemaMismatch, match=r"older NetSpectra \(missing flows\.dst"):
        ChdbStore(path)


def _before_tunnels(create: str) -> str:
    """A flows table's CREATE statement as the version before tunnels wrote it."""
    import re
    create = re.sub(r"\s*`?tunnel(_id)?`? (LowCardinality\(String\)|String|UInt32),", "", create)
    return create.replace(", tunnel, tunnel_id", "")


def test_a_store_from_before_tunnels_gains_them_in_its_sorting_key(tmp_path, local_stack):
    """Opened by a writer, an older flows table gains the tunnel columns, in its sorting key on
    chDB (so records of one 5-tuple in two tunnels stay two rows through merges), and read ''/0."""
    from sinks.chdb_store import ChdbStore
    from sinks.clickhouse_native import ClickHouseNative
    from tests.support import tls_flows_rows

    path = str(tmp_path / "old")
    store = ChdbStore(path)
    create = _before_tunnels(store.rows(f"SHOW CREATE TABLE {DATABASE}.flows")[0][0])
    assert "tunnel" not in create
    store.sess.query(f"DROP TABLE {DATABASE}.flows")
    store.sess.query(create)
    store = ChdbStore(path)
    (after,) = store.rows(f"SHOW CREATE TABLE {DATABASE}.flows")[0]
    assert "ORDER BY (window_start, source, src, dst, sport, dport, proto, vlan, tunnel, tunnel_id)" in after
    store.write(tls_flows_rows("after", 1_500_000_000))
    assert store.rows(f"SELECT count(), countIf(tunnel = '' AND tunnel_id = 0) FROM {DATABASE}.flows") == [(79, 79)]

    sink = ClickHouseNative(f"127.0.0.1:{local_stack[1]['clickhouse']}")
    create = _before_tunnels(sink.client.execute(f"SHOW CREATE TABLE {sink.database}.flows")[0][0])
    sink.client.execute(f"DROP TABLE {sink.database}.flows")
    sink.client.execute(create)
    sink = ClickHouseNative(f"127.0.0.1:{local_stack[1]['clickhouse']}")
    sink.write(tls_flows_rows("tun-after", 1_500_000_000))
    assert sink.client.execute(f"SELECT count(), countIf(tunnel = '' AND tunnel_id = 0) FROM {sink.database}.flows "
                               "WHERE source = 'tun-after'") == [(79, 79)]


def test_a_store_written_before_flow_keys_gains_them_from_its_records(tmp_path, local_stack):
    """flow_keys (TraceFlow's index) made by a writer from the records of a store written
    without it, then kept by its materialized view: a row per record, the key its 5-tuple's
    (chDB and the 18.16 server)."""
    from schemas.clickhouse import FLOW_KEYS, flow_key_sql
    from sinks.chdb_store import ChdbStore
    from sinks.clickhouse_native import ClickHouseNative
    from tests.support import tls_flows_rows

    before = "DROP TABLE {db}.{t}_mv", "DROP TABLE {db}.{t}"
    count = (f"SELECT (SELECT count() FROM {{db}}.flows FINAL), (SELECT count() FROM {{db}}.{FLOW_KEYS} FINAL), "
             f"(SELECT count() FROM {{db}}.flows AS f FINAL WHERE ({flow_key_sql()}, toDateTime(window_start), source) "
             f"NOT IN (SELECT key_hash, window_start, source FROM {{db}}.{FLOW_KEYS}))")
    path = str(tmp_path / "old")
    store = ChdbStore(path)
    store.write(tls_flows_rows("before", 1_500_000_000))
    for stmt in before:
        store.sess.query(stmt.format(db=DATABASE, t=FLOW_KEYS))
    store = ChdbStore(path)
    store.write(tls_flows_rows("after", 1_600_000_000))
    n, keys, missing = store.rows(count.format(db=DATABASE))[0]
    assert n == keys > 79 and missing == 0

    sink = ClickHouseNative(f"127.0.0.1:{local_stack[1]['clickhouse']}")
    sink.write(tls_flows_rows("ddl-before", 1_500_000_000))
    for stmt in before:
        sink.client.execute(stmt.format(db=sink.database, t=FLOW_KEYS))
    sink = ClickHouseNative(f"127.0.0.1:{local_stack[1]['clickhouse']}")
    sink.write(tls_flows_rows("ddl-after", 1_600_000_000))
    n, keys, missing = sink.client.execute(count.format(db=sink.database))[0]
    assert n == keys > 79 and missing == 0


def test_flow_keys_live_as_long_as_the_records():
    from schemas.clickhouse import ddl
    made = {s.split("(")[0].split()[-1]: s for s in ddl(retention={"flows": 86400 * 3}) if s.startswith("CREATE TABLE")}
    assert "TTL inserted_at + INTERVAL 259200 SECOND" in made[f"{DATABASE}.flow_keys"]
    assert "CODEC" not in "".join(ddl(legacy=True))         # 18.16 has no column codecs
