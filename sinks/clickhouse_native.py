"""Window results into a ClickHouse server over the native protocol (clickhouse-driver).

Rows are sent as columnar data with the INSERT, never as inline VALUES text. The DDL is
schemas/clickhouse.py; a server older than 19.x (Debian's 18.16) gets its down-level types
(`ddl(legacy=True)`). Writes are idempotent (ReplacingMergeTree keyed on window and entity),
so a failed INSERT is simply retried, with backoff, until the server is back: the engine then
stops taking new input (Kafka keeps it), and nothing is lost or counted twice.
"""
from __future__ import annotations

import logging
import time

import numpy as np

from schemas.clickhouse import (DATABASE, EXISTING_COLUMNS_SQL, INSERT_SETTINGS, add_columns_sql, backfill_sql,
                               check_existing, column_types, ddl, engines_sql, flow_keys_sql, ttl_changes, views)
from schemas.window_rows import Coded, WindowRows, concat_tables, window_spans
from schemas import metrics as M
from sinks.retry import Backoff
from sinks.rollups import Rollups
from sinks.rows import alert_tables

log = logging.getLogger(__name__)


_UNIT = {0: "s", 3: "ms", 6: "us", 9: "ns"}


def _values(cols: dict, types: dict[str, str]) -> list:
    """Column arrays -> what clickhouse-driver writes without a Python step per value where it can
    (its numpy mode, `use_numpy`): numbers and times as numpy arrays (datetime64 at the column's
    precision, exact to the ns), addresses as 16-byte strings (FixedString(16) and IPv6 both take
    raw bytes), strings as object arrays."""
    out = []
    for name, v in cols.items():
        t = types[name]
        if t in ("FixedString(16)", "IPv6"):
            raw = np.empty(len(v), object)      # numpy mode wants arrays: of bytes objects here
            raw[:] = np.ascontiguousarray(v).view("V16").ravel().tolist()
            out.append(raw)
        elif t.startswith("DateTime"):
            p = _precision(t)
            out.append((np.asarray(v, np.int64) // 10 ** (9 - p)).astype(f"datetime64[{_UNIT[p]}]"))
        elif isinstance(v, list):
            out.append(np.array(v, dtype=object))
        elif isinstance(v, Coded):
            out.append(v.objects())
        else:
            out.append(np.asarray(v))
    return out


class ClickHouseNative:
    def __init__(self, address: str, database: str = DATABASE, connect_timeout: float = 5.0, rollups: bool = False,
                 retention: dict | None = None):
        from schemas.credentials import clickhouse_client

        # a new client on each reconnection: it logs in with the password known then
        self._connect = lambda: clickhouse_client(address, connect_timeout=connect_timeout, send_receive_timeout=60)
        self.client = self._connect()
        self.database = database
        self.retries = 0
        self.legacy = None
        self.rollups: Rollups | None = None
        self.keep_rollups = rollups         # sinks/rollups.py (engine --rollups)
        self.retention = retention or {}    # table -> seconds (schemas/clickhouse.py retention_setting)

    def _setup(self) -> None:
        if self.legacy is not None:
            return
        version = self.client.execute("SELECT version()")[0][0]
        legacy = int(version.split(".")[0]) < 19
        for stmt in ddl(self.database, legacy=legacy, retention=self.retention):
            self.client.execute(stmt)
        for stmt in add_columns_sql(self.client.execute(EXISTING_COLUMNS_SQL), legacy):
            log.info("schema: %s", stmt)
            self.client.execute(stmt)
        check_existing(self.client.execute(EXISTING_COLUMNS_SQL))
        if legacy and self.retention:
            log.warning("ClickHouse %s has no TTL: the retention setting is not applied there (drop old "
                        "partitions by hand)", version)
        elif self.retention:
            for stmt in ttl_changes(self.database, self.client.execute(engines_sql(self.database)), self.retention):
                log.info("retention: %s", stmt)
                self.client.execute(stmt)
        for stmt in views(self.database):
            self.client.execute(stmt)
        if self.client.execute(backfill_sql(self.database))[0][0]:
            log.info("flow_keys: made from the records of a store written before it")
            self.client.execute(flow_keys_sql(self.database)[1])
        if self.rollups is None and self.keep_rollups:      # kept over reconnects: what is marked stays marked
            self.rollups = Rollups(lambda sql: self.client.execute(sql), lambda sql: self.client.execute(sql),
                                   legacy, self.database)
        self.legacy = legacy        # only now: a failure above makes the next write set up again

    def write(self, windows: list[WindowRows]) -> None:
        """The windows' rows, then the roll-ups of the buckets they close (sinks/rollups.py)."""
        self._write(concat_tables(windows), window_spans(windows))

    def write_alerts(self, alerts: list, source: str) -> None:
        self._write(alert_tables(alerts, source))

    def finish(self) -> None:
        """The roll-ups of every bucket written, closed or not (the end of a stream)."""
        self._write({}, [], everything=True)

    def close(self) -> None:
        self.client.disconnect()

    def _write(self, tables: dict, spans: list | None = None, everything: bool = False) -> None:
        backoff = Backoff()
        while True:
            try:
                self._setup()
                if spans and self.rollups:
                    self.rollups.before_write(spans)
                for table, cols in tables.items():
                    self.insert(table, cols)
                if (spans or everything) and self.rollups:
                    self.rollups.roll(everything)
                return
            except Exception as e:      # network errors, server restarting: wait and write again
                if not _retryable(e):
                    raise
                self.retries += 1
                M.inc("netspectra_sink_retries_total", sink="clickhouse")
                delay = backoff.delay()
                log.warning("clickhouse unavailable (%s); retrying in %.1f s", e, delay)
                self.client.disconnect()
                self.client = self._connect()
                time.sleep(delay)

    def insert(self, table: str, cols: dict) -> None:
        types = column_types(table, self.legacy)
        self.client.execute(f"INSERT INTO {self.database}.{table} ({', '.join(cols)}) VALUES",
                            _values(cols, types), columnar=True,
                            settings={"use_numpy": True, **({} if self.legacy else INSERT_SETTINGS)})


def _precision(typ: str) -> int:
    """Digits after the second of a DateTime/DateTime64 type: DateTime64(3, 'UTC') -> 3."""
    return int(typ.split("(")[1].split(",")[0]) if typ.startswith("DateTime64") else 0


def _retryable(e: Exception) -> bool:
    from clickhouse_driver import errors
    return isinstance(e, (errors.NetworkError, errors.SocketTimeoutError, EOFError, OSError, ConnectionError))
