"""Where the API reads: chDB (embedded; this process owns the data directory) or a ClickHouse
server over the native protocol (clickhouse-driver). Both take the same SQL with `{name:Type}`
placeholders (api/queries.py) and return rows as tuples of Python values.
"""
from __future__ import annotations

import re
import threading

import pyarrow as pa
import pyarrow.ipc  # noqa: F401

from api.queries import Dialect
from schemas.clickhouse import DATABASE, EXISTING_COLUMNS_SQL, TABLES, check_existing

_PLACEHOLDER = re.compile(r"\{(\w+):[^{}]+\}")


class _Backend:
    dialect: Dialect
    name: str

    def rows(self, sql: str, params: dict) -> list[tuple]:
        raise NotImplementedError

    def version(self):
        """A number that changes when the data does, if every write passes through this process;
        else None (answers cannot be cached: api/cache.py)."""
        return None

    def ping(self) -> bool:
        try:
            return self.rows("SELECT 1", {}) == [(1,)]
        except Exception:
            return False


class ChdbBackend(_Backend):
    """chDB session of a data directory (the tables are created when missing)."""

    def __init__(self, path: str):
        from sinks.chdb_store import ChdbStore

        self.store = ChdbStore(path)
        self.dialect = Dialect()
        self.name = f"chdb:{self.store.path}"

    def version(self) -> int:
        from sinks.chdb_store import write_version
        return write_version(self.store.path)

    def rows(self, sql: str, params: dict) -> list[tuple]:
        data = self.store.query(sql, "Arrow", _escaped(params))
        if not data:
            return []
        table = pa.ipc.open_file(pa.py_buffer(data)).read_all()
        cols = [c.to_pylist() for c in table.columns]
        return list(zip(*cols))

    def execute(self, sql: str, params: dict) -> None:
        self.store.query(sql, "CSV", _escaped(params))


_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r", "\0": "\\0"})


def _escaped(params: dict) -> dict:
    """String parameters as chDB parses them (ClickHouse's escaped text: a raw newline or
    backslash in a value would end or change it; a request's text may hold either)."""
    return {k: v.translate(_ESCAPES) if isinstance(v, str) else v for k, v in params.items()}


class NativeBackend(_Backend):
    """A ClickHouse server over the native protocol. Parameters are escaped by clickhouse-driver
    (client-side, which works on every server version, 18.16 included)."""

    def __init__(self, address: str, connect_timeout: float = 5.0):
        from schemas.credentials import clickhouse_client

        host, _, port = address.rpartition(":") if ":" in address else (address, "", "9000")
        self.address = f"{host or '127.0.0.1'}:{port}"
        self._local = threading.local()     # a clickhouse-driver Client is not thread-safe
        self._connect = lambda: clickhouse_client(self.address, connect_timeout=connect_timeout,
                                                  send_receive_timeout=30)
        version = self._client().execute("SELECT version()")[0][0]
        self.dialect = Dialect(legacy=int(version.split(".")[0]) < 19)
        check_existing(self.rows(EXISTING_COLUMNS_SQL, {}))
        self.name = f"clickhouse:{self.address}"

    def _client(self):
        c = getattr(self._local, "client", None)
        if c is None:
            c = self._local.client = self._connect()
        return c

    def rows(self, sql: str, params: dict) -> list[tuple]:
        return [tuple(r) for r in self._client().execute(_PLACEHOLDER.sub(r"%(\1)s", sql), params)]

    def execute(self, sql: str, params: dict) -> None:
        self._client().execute(_PLACEHOLDER.sub(r"%(\1)s", sql), params)


def open_backend(store: str):
    """'clickhouse://host:port' or 'host:port' with a port -> server; anything else: a chDB directory."""
    if store.startswith("clickhouse://"):
        return NativeBackend(store[len("clickhouse://"):])
    return ChdbBackend(store)


def delete_source(backend, source: str) -> int:
    """Remove every row of one source from every result table.

    Modern ClickHouse (chDB): lightweight DELETE, which masks the rows at once and drops them at
    the next merge: 27-74 ms for the five tables of a 10M-flow store, where a mutation (ALTER
    ... DELETE) rewrote the heavy-hitter parts for 0.84 s even for a source that was not there.
    Each statement holds the chDB session alone, so reads wait for one table at most.
    ClickHouse 18.16 has only mutations, which it runs in the background.
    """
    for table in TABLES:
        stmt = (f"ALTER TABLE {DATABASE}.{table} DELETE" if backend.dialect.legacy else f"DELETE FROM {DATABASE}.{table}")
        backend.execute(f"{stmt} WHERE source = {{source:String}}", {"source": source})
    return len(TABLES)
