"""The DDL against an existing database: a table written by an older schema is reported, not
written into with columns missing."""
from __future__ import annotations

import pytest

from schemas.clickhouse import DATABASE, SchemaMismatch, check_existing, column_types


def test_current_tables_pass_and_old_ones_are_named():
    rows = [(t, c) for t in ("flows", "window_totals") for c in column_types(t)]
    check_existing(rows)
    old = [(t, c) for t, c in rows if c != "vlan"]
    with pytest.raises(SchemaMismatch, match=r"missing flows\.vlan"):
        check_existing(old)


def test_chdb_store_refuses_a_store_from_an_older_schema(tmp_path):
    from sinks.chdb_store import ChdbStore

    path = str(tmp_path / "old")
    store = ChdbStore(path)         # chDB has one data directory per process: go through the store's session
    store.sess.query(f"DROP TABLE {DATABASE}.flows")
    store.sess.query(f"CREATE TABLE {DATABASE}.flows (window_start DateTime64(3, 'UTC'), source String, src IPv6) "
                     "ENGINE = MergeTree ORDER BY window_start")
    with pytest.raises(SchemaMismatch, match=r"older NetSpectra \(missing flows\.dst"):
        ChdbStore(path)
