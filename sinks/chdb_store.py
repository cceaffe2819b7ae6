"""The embedded store: window results in chDB (ClickHouse in-process) through schemas/clickhouse.py.

chDB runs one embedded server per process, on one data directory at a time (and a directory
belongs to one process). Every ChdbStore on the same path shares its sessions (_Sessions);
opening a store on another path closes the previous one's.
"""
from __future__ import annotations

import atexit
import logging
import os
import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc  # noqa: F401

from schemas.clickhouse import (DATABASE, EXISTING_COLUMNS_SQL, RESULT_TABLES, TABLES, add_columns_sql, backfill_sql,
                                check_existing, column_types, columns, ddl, engines_sql, flow_keys_sql,
                                insert_settings_sql, sql_string, ttl_changes, views)
from schemas.fifo import FifoSemaphore
from schemas.window_rows import Coded, WindowRows, concat_tables, window_spans
from sinks.rollups import Rollups
from sinks.rows import alert_tables

log = logging.getLogger(__name__)

_ACTIVE: dict[str, "_Sessions"] = {}    # at most one {path: its sessions}
_LOCK = threading.Lock()
_WRITES: dict[str, int] = {}        # path -> statements that may have changed data (api/cache.py)
_READS = ("SELECT", "WITH", "SHOW", "DESCRIBE", "EXISTS", "EXPLAIN")
# Reads at once per store, an upper bound: the API's query_slots (twice the cores) sets how many it asks.
READ_SESSIONS = 8


class _Sessions:
    """A data directory's chDB sessions. chDB 4 runs statements of different sessions in
    parallel, each with its own parameters; one session takes one statement at a time (two at
    once mix their parameters). Statements that may change data go through `writer`, one at a
    time; reads each take a session of their own, opened when first needed."""

    def __init__(self, path: str):
        from chdb import session

        self._open = lambda: session.Session(path)
        self.writer = self._open()
        self.write_lock = FifoSemaphore(1)
        self._reads = FifoSemaphore(READ_SESSIONS)      # first come, first served (schemas/fifo.py)
        self._free: list = []
        self._lock = threading.Lock()
        self._all = [self.writer]

    @contextmanager
    def reader(self):
        with self._reads:
            with self._lock:
                sess = self._free.pop() if self._free else None
            if sess is None:
                sess = self._open()
                with self._lock:
                    self._all.append(sess)
            try:
                yield sess
            finally:
                with self._lock:
                    self._free.append(sess)

    def close(self) -> None:
        for sess in self._all:
            sess.close()


def write_version(path: str) -> int:
    """Changes whenever a statement that may change data ran on the store at `path`."""
    return _WRITES.get(path, 0)


def address_text(col: str) -> str:
    """SQL for an IPv6 column as text, IPv4-mapped addresses as plain dotted quads."""
    return f"if(isIPv4String(substring(toString({col}), 8)) AND startsWith(toString({col}), '::ffff:'), " \
           f"substring(toString({col}), 8), toString({col}))"


def _arrow(cols: dict) -> pa.Table:
    arrays = {}
    for name, v in cols.items():
        if isinstance(v, np.ndarray) and v.ndim == 2:         # (n, 16) address bytes
            v = np.ascontiguousarray(v)
            arrays[name] = pa.FixedSizeBinaryArray.from_buffers(pa.binary(16), len(v), [None, pa.py_buffer(v.tobytes())])
        elif isinstance(v, list):
            arrays[name] = pa.array(v, pa.string())
        elif isinstance(v, Coded):                             # read by ClickHouse as its values
            arrays[name] = pa.DictionaryArray.from_arrays(pa.array(v.codes, pa.int32()), pa.array(v.values, pa.string()))
        else:
            arrays[name] = pa.array(v)
    return pa.table(arrays)


def _select(name: str, typ: str) -> str:
    """SQL turning a column as written (address bytes, ns since the epoch) into its DDL type."""
    if typ == "IPv6":
        return f"CAST({name} AS IPv6)"
    if typ.startswith("DateTime64"):
        return f"fromUnixTimestamp64Nano({name}, 'UTC')"
    return name


def _close_all() -> None:
    """Sessions closed before the interpreter tears down: left to garbage collection at exit,
    chDB's engine can crash the process (exit code 139 after the work is done)."""
    with _LOCK:
        while _ACTIVE:
            _ACTIVE.popitem()[1].close()


atexit.register(_close_all)


class ChdbStore:
    def __init__(self, path: str, retention: dict | None = None, rollups: bool = False):
        """`retention`: table -> seconds, over the defaults of schemas/clickhouse.py (tables made
        before with another TTL get this one). `rollups`: keep the roll-ups as windows are
        written (sinks/rollups.py): asked for (engine and analyze --rollups), because rolling a
        flood's records up costs about as much as writing them."""
        self.path = str(Path(path).resolve())
        Path(self.path).mkdir(parents=True, exist_ok=True)
        with _LOCK:
            if self.path not in _ACTIVE:
                for other in list(_ACTIVE):
                    log.info("closing chDB store %s to open %s", other, self.path)
                    _ACTIVE.pop(other).close()
                _ACTIVE[self.path] = _Sessions(self.path)
            self._sessions = _ACTIVE[self.path]
            self.sess = self._sessions.writer
        for stmt in ddl(retention=retention):
            self.query(stmt)
        for stmt in add_columns_sql(self.rows(EXISTING_COLUMNS_SQL)):
            log.info("schema: %s", stmt)
            self.query(stmt)
        check_existing(self.rows(EXISTING_COLUMNS_SQL))
        if retention:               # the tables' TTLs are read only when a retention is set
            for stmt in ttl_changes(DATABASE, self.rows(engines_sql()), retention):
                log.info("retention: %s", stmt)
                self.query(stmt)
        for stmt in views():
            self.query(stmt)
        if self.rows(backfill_sql())[0][0]:
            log.info("flow_keys: made from the records of a store written before it")
            self.query(flow_keys_sql()[1])
        self.rollups = Rollups(self.query, self.rows, legacy=False) if rollups else None

    def write(self, windows: list[WindowRows]) -> None:
        """Write windows' rows, one INSERT per table for all of them (an INSERT costs ~10 ms),
        then the roll-ups of the buckets they close (sinks/rollups.py)."""
        if self.rollups:
            self.rollups.before_write(window_spans(windows))
        for table, cols in concat_tables(windows).items():
            self.insert(table, cols)
        if self.rollups:
            self.rollups.roll()

    def finish(self) -> None:
        """The roll-ups of every bucket written, closed or not (the end of a capture or stream)."""
        if self.rollups:
            self.rollups.roll(everything=True)

    def write_alerts(self, alerts: list, source: str) -> None:
        """Alerts' current states (the newest version of each wins in the table)."""
        for table, cols in alert_tables(alerts, source).items():
            self.insert(table, cols)

    def insert(self, table_name: str, cols: dict) -> None:
        names = columns(table_name)
        types = column_types(table_name)
        select = {n: _select(n, types[n]) for n in names}
        # a text column with one value (the source; the TLS names of a window without hellos):
        # sent once in the statement, not a value a row (list.count compares in C)
        same = {n: v[0] for n, v in cols.items() if isinstance(v, list) and v and v.count(v[0]) == len(v)}
        same |= {n: v.values[0] for n, v in cols.items() if isinstance(v, Coded) and len(v.values) == 1}
        for n, value in same.items():
            select[n] = sql_string(value)
        cols = {n: v for n, v in cols.items() if n not in same}
        # Rows go through an Arrow file: chDB's Python() table function deadlocks when called
        # from a Bytewax worker thread other than the main one.
        tmp = Path(self.path) / f"tmp-insert-{os.getpid()}-{threading.get_ident()}.arrow"
        with pa.ipc.new_file(str(tmp), (table := _arrow(cols)).schema) as w:
            w.write_table(table)
        try:
            self._write(f"INSERT INTO {DATABASE}.{table_name} ({', '.join(names)}){insert_settings_sql()} "
                        f"SELECT {', '.join(select.values())} FROM file({sql_string(str(tmp))}, 'Arrow')")
        finally:
            tmp.unlink(missing_ok=True)

    def close(self) -> None:
        with _LOCK:
            if _ACTIVE.get(self.path) is self._sessions:
                _ACTIVE.pop(self.path).close()

    def _write(self, sql: str, fmt: str = "CSV", params: dict | None = None):
        """A statement that may change data. The version changes before and after it: a read
        that overlapped it in any part is not cached as current (api/cache.py)."""
        with self._sessions.write_lock:
            _WRITES[self.path] = _WRITES.get(self.path, 0) + 1
            try:
                return self.sess.query(sql, fmt, params=params)
            finally:
                _WRITES[self.path] += 1

    def query(self, sql: str, fmt: str = "CSVWithNames", params: dict | None = None) -> str | bytes:
        """A statement's output as text (as bytes for binary formats such as Arrow)."""
        if sql.lstrip().upper().startswith(_READS):
            with self._sessions.reader() as sess:
                res = sess.query(sql, fmt, params=params)
        else:
            res = self._write(sql, fmt, params)
        data = res.bytes() if hasattr(res, "bytes") else str(res).encode()
        return data if fmt in ("Arrow", "Parquet", "Native") else data.decode()

    def rows(self, sql: str) -> list[tuple]:
        """Result rows as Python values (JSONCompact parsing; numbers come back as numbers)."""
        import json
        out = self.query(sql, "JSONCompact")
        return [tuple(r) for r in json.loads(out)["data"]] if out.strip() else []

    def export(self, out_dir: str, source: str | None = None) -> list[Path]:
        """Each result table as CSV with a header; addresses as text, times as ISO text."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        where = f"WHERE source = {sql_string(source)}" if source is not None else ""
        for table in RESULT_TABLES:
            types = column_types(table)
            cols = [address_text(c) + f" AS {c}" if types[c] == "IPv6" else c
                    for c in columns(table) if c != "source" or source is None]
            order = TABLES[table][1]
            sql = f"SELECT {', '.join(cols)} FROM {DATABASE}.{table} FINAL {where} ORDER BY {order}"
            p = out / f"{table}.csv"
            p.write_text(self.query(sql, "CSVWithNames"))
            paths.append(p)
        return paths


