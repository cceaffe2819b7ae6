"""Bytewax sinks for closed windows (schemas/window_rows.py) and alert changes. Each has one
partition, so one worker (in one process) owns the store: chDB allows a single process per data
directory. `wants` says which part of a window a sink writes, so the flow builds only those."""
from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition

from schemas import metrics as M
from schemas.times import iso_utc
from schemas.window_rows import WindowRows
from sinks.redis_state import MAX_BACKLOG

log = logging.getLogger(__name__)


class WindowWriter(Protocol):
    """What every store writer does (sinks/chdb_store.py, clickhouse_native.py, redis_state.py):
    write windows and alert states, idempotently (a window or alert written again replaces itself),
    retrying with sinks/retry.py's backoff while the store is away."""

    def write(self, windows: list[WindowRows]) -> None: ...

    def write_alerts(self, alerts: list, source: str) -> None: ...

    def finish(self) -> None:
        """The stream ended: complete what waits for later windows (ClickHouse roll-ups)."""

    def close(self) -> None: ...


class _Partition(StatefulSinkPartition):
    """Windows (and, when the flow detects, alert changes) to one writer. `close_writer`: close
    it at the end of the flow (not chDB: its session is per process and reused).

    `overlap`: a write runs in a thread of its own while the dataflow computes the next window
    (a server's insert is mostly waiting for the server). One write at most is in flight, in
    order: the next write, the epoch's snapshot and close wait for it first, so a recovery
    snapshot is never taken over a write that has not finished (what was in flight at a crash is
    replayed and written again, which replaces it), and an error the writer raises ends the
    dataflow at the next of those calls as it would have at once."""

    def __init__(self, writer: WindowWriter, source: str, name: str, buffer_rows: int = 0, close_writer: bool = True,
                 overlap: bool = False):
        self.writer, self.source, self.name = writer, source, name
        self.buffer_rows, self.close_writer = buffer_rows, close_writer
        self.pending: list[WindowRows] = []
        self.alerts: dict = {}          # alert id -> newest state not yet written
        self.rows = 0
        self.pool = ThreadPoolExecutor(1, thread_name_prefix=f"sink-{name}") if overlap else None
        self.inflight = None

    def write_batch(self, values):
        for v in values:
            if isinstance(v, WindowRows):
                self.pending.append(v)
                self.rows += v.flow_rows
            else:                                     # an AlertEvent
                self.alerts[v.alert.id] = v.alert
        if self.rows >= self.buffer_rows:
            self.flush()

    def flush(self):
        self.wait()
        if not (self.pending or self.alerts):
            return
        batch = (self.pending, list(self.alerts.values()))
        self.pending, self.rows, self.alerts = [], 0, {}
        if self.pool is None:
            self._write(*batch)
        else:
            self.inflight = self.pool.submit(self._write, *batch)

    def wait(self):
        """Until the write in flight (if any) is done; raises what it raised."""
        if self.inflight is not None:
            done, self.inflight = self.inflight, None
            done.result()

    def _write(self, windows: list[WindowRows], alerts: list):
        t = time.perf_counter()
        if windows:
            self.writer.write(windows)
            M.inc("netspectra_sink_windows_total", len(windows), sink=self.name)
        if alerts:
            self.writer.write_alerts(alerts, self.source)
        took = time.perf_counter() - t
        M.observe("netspectra_sink_write_seconds", took, sink=self.name)
        if windows and log.isEnabledFor(logging.INFO):
            rows = sum(w.flow_rows for w in windows)
            log.info("%s: wrote window %s%s%s in %.3f s, %.3f s after it closed", self.name, iso_utc(windows[0].start),
                     f" and {len(windows) - 1} more" if len(windows) > 1 else "", f" ({rows} flow rows)" if rows else "",
                     took, time.time() - windows[0].made_at)

    def snapshot(self):
        self.wait()
        return None

    def close(self):
        self.flush()
        self.wait()
        if self.pool is not None:
            self.pool.shutdown()
        if hasattr(self.writer, "finish"):
            self.writer.finish()
        if self.close_writer:
            self.writer.close()


class StoreSink(FixedPartitionedSink):
    """Writes windows (their ClickHouse tables) to a chDB store directory.

    buffer_rows > 0 holds results until that many flow rows are pending (or the run ends):
    offline analysis writes in a few large INSERTs; live use keeps 0, writing every window at once."""

    wants = "tables"

    def __init__(self, path: str, source: str, buffer_rows: int = 0, rollups: bool = False,
                 retention: dict | None = None):
        self.path, self.source, self.buffer_rows, self.rollups = path, source, buffer_rows, rollups
        self.retention = retention

    def list_parts(self):
        return ["store"]

    def build_part(self, step_id, for_part, resume_state):
        from sinks.chdb_store import ChdbStore

        return _Partition(ChdbStore(self.path, self.retention, rollups=self.rollups), self.source, "chdb",
                          self.buffer_rows, close_writer=False)


class ClickHouseSink(FixedPartitionedSink):
    """Writes windows (their tables) to a ClickHouse server over the native protocol as windows close."""

    wants = "tables"

    def __init__(self, address: str, source: str, rollups: bool = False, retention: dict | None = None):
        self.address, self.source, self.rollups, self.retention = address, source, rollups, retention

    def list_parts(self):
        return ["clickhouse"]

    def build_part(self, step_id, for_part, resume_state):
        from sinks.clickhouse_native import ClickHouseNative

        return _Partition(ClickHouseNative(self.address, rollups=self.rollups, retention=self.retention), self.source,
                          "clickhouse", overlap=True)


class RedisSink(FixedPartitionedSink):
    """Writes every window's live view to Redis (sinks/redis_state.py) as it closes."""

    wants = "live"

    def __init__(self, url: str, source: str, ttl_s: int = 3600, max_backlog: int = MAX_BACKLOG):
        self.url, self.source, self.ttl_s, self.max_backlog = url, source, ttl_s, max_backlog

    def list_parts(self):
        return ["redis"]

    def build_part(self, step_id, for_part, resume_state):
        from sinks.redis_state import RedisState

        return _Partition(RedisState(self.url, self.source, self.ttl_s, self.max_backlog), self.source, "redis",
                          overlap=True)


class NotifySink(FixedPartitionedSink):
    """Alert changes to the notifiers (sinks/notifiers.py): queued, never waited for."""

    def __init__(self, notifiers: dict, source: str, state_dir: str | None):
        self.notifiers, self.source, self.state_dir = notifiers, source, state_dir

    def list_parts(self):
        return ["notify"]

    def build_part(self, step_id, for_part, resume_state):
        from sinks.notifiers import outboxes

        return _NotifyPartition(outboxes(self.notifiers, self.source, self.state_dir))


class _NotifyPartition(StatefulSinkPartition):
    def __init__(self, boxes):
        self.boxes = boxes

    def write_batch(self, values):
        for box in self.boxes:
            box.submit(values)

    def snapshot(self):
        return None

    def close(self):
        for box in self.boxes:
            box.stop()
