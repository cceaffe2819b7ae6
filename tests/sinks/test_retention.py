"""Retention as a setting (schemas/clickhouse.py retention_setting, engine --retention): tables
made before get the new TTL, and data past it is gone after a merge; a table that keeps nothing
for a time, or no time, is one line; 18.16 (no TTL) says it does not apply it."""
from __future__ import annotations

import logging
import os
import time

import pytest

from schemas.clickhouse import engines_sql, parse_retention, retention_setting, ttl_changes
from tests.support import rows_of


@pytest.fixture(scope="module")
def windows(synth_pcap):
    from flows.capture_reader import CaptureReader
    from flows.config import WindowConfig
    from flows.window import LocalPipeline
    pipe = LocalPipeline(WindowConfig(window_s=10))
    results = [r for b in CaptureReader(str(synth_pcap)) for r in pipe.feed(b)] + pipe.flush()
    return rows_of(results, "cap")


def _ttl(store, table: str) -> str:
    return dict(store.rows(engines_sql()))[table]


def test_a_store_made_before_gets_the_new_retention_and_loses_what_is_past_it(windows, tmp_path):
    from sinks.chdb_store import ChdbStore
    path = str(tmp_path / "store")
    s = ChdbStore(path)
    s.write(windows)
    assert "toIntervalSecond(7776000)" in _ttl(s, "flows")             # 90 days
    s = ChdbStore(path, retention={"flows": 1, "heavy_hitters": 7 * 86400})
    assert "toIntervalSecond(1)" in _ttl(s, "flows") and "toIntervalSecond(604800)" in _ttl(s, "heavy_hitters")
    assert "toIntervalSecond(1)" in _ttl(s, "flow_keys")        # TraceFlow's index: as long as the records
    assert "toIntervalSecond(7776000)" in _ttl(s, "window_totals")     # not named: as it was
    assert ttl_changes("netspectra", s.rows(engines_sql()), {"flows": 1}) == []      # set once, not every start
    time.sleep(2.5)
    for table in ("flows", "flow_keys"):
        s.query(f"OPTIMIZE TABLE netspectra.{table} FINAL")
        assert int(s.rows(f"SELECT count() FROM netspectra.{table}")[0][0]) == 0, table
    assert int(s.rows("SELECT count() FROM netspectra.window_totals")[0][0]) == len(windows)


@pytest.mark.parametrize("text,message", [
    ("nosuch=3", "no table nosuch keeps data for a time: retention is for flows, "),
    ("rollup_marks=3", "no table rollup_marks keeps data"),
    ("flows=0", "retention of flows must be more than 0 days"),
    ("flows", "write TABLE=DAYS"),
    ("flows=ten", "write TABLE=DAYS"),
])
def test_a_bad_retention_is_one_line(text, message):
    from pydantic import ValidationError

    from flows.engine_config import EngineConfig
    with pytest.raises(ValueError, match=message):
        retention_setting(parse_retention(text))
    with pytest.raises(ValidationError, match=message):
        EngineConfig(store="x", retention=text)
    assert EngineConfig(store="x", retention="flows=30, traffic_1d=3650").retention == {"flows": 30, "traffic_1d": 3650}


def test_the_1816_server_keeps_everything_and_says_so(windows, local_stack, caplog):
    from sinks.clickhouse_native import ClickHouseNative
    _, ports, _ = local_stack
    db = f"retention_{os.getpid()}"
    s = ClickHouseNative(f"127.0.0.1:{ports['clickhouse']}", database=db, retention={"flows": 86400})
    with caplog.at_level(logging.WARNING, logger="sinks.clickhouse_native"):
        s.write(windows[:2])
    assert any("has no TTL: the retention setting is not applied" in r.message for r in caplog.records)
    assert s.client.execute(f"SELECT count() FROM {db}.window_totals")[0][0] == 2
    s.client.execute(f"DROP DATABASE {db}")
