"""Bytewax sinks for window results. Each has one partition, so one worker (in one process)
owns the store: chDB allows a single process per data directory."""
from __future__ import annotations

import logging
from typing import Callable

from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition

from flows.config import WindowConfig
from flows.window import WindowResult

log = logging.getLogger(__name__)


class _Partition(StatefulSinkPartition):
    def __init__(self, write: Callable[[WindowResult], None]):
        self.write = write

    def write_batch(self, values):
        for r in values:
            self.write(r)

    def snapshot(self):
        return None


class StoreSink(FixedPartitionedSink):
    """Writes every WindowResult to a chDB store directory."""

    def __init__(self, path: str, source: str, cfg: WindowConfig):
        self.path, self.source, self.cfg = path, source, cfg

    def list_parts(self):
        return ["store"]

    def build_part(self, step_id, for_part, resume_state):
        from sinks.chdb_store import ChdbStore

        store = ChdbStore(self.path)
        return _Partition(lambda r: store.write(r, self.source, self.cfg.top_n))


class CallbackSink(FixedPartitionedSink):
    """Hands every WindowResult to a function in this process (the analyser's report)."""

    def __init__(self, fn: Callable[[WindowResult], None]):
        self.fn = fn

    def list_parts(self):
        return ["callback"]

    def build_part(self, step_id, for_part, resume_state):
        return _Partition(self.fn)
