"""The capture file as a Bytewax source of PacketBatches: read and decoded in the worker by
flows/capture_reader.py, resumable from the number of batches read. The live source is
flows/kafka_source.py; both yield the same PacketBatch items.
"""
from __future__ import annotations

import logging
import os
from typing import Callable, Optional

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from collectors.capture_file import DEFAULT_BATCH
from flows.capture_reader import CaptureReader, SourceStats
from schemas.packet_batch import PacketBatch

log = logging.getLogger(__name__)


class CaptureSource(FixedPartitionedSource[PacketBatch, int]):
    """One partition reading a pcap/pcapng file; its resume state is the batches already read."""

    def __init__(self, path: str, batch_size: int = DEFAULT_BATCH, l7: bool | str = False,
                 on_progress: Optional[Callable[[SourceStats], None]] = None, decap=None):
        self.l7 = l7
        self.decap = decap
        self.path = path
        self.batch_size = batch_size
        self.on_progress = on_progress
        self.stats = SourceStats(file_bytes=os.path.getsize(path))

    def list_parts(self):
        return ["capture"]

    def build_part(self, step_id, for_part, resume_state):
        return _CapturePartition(self, resume_state or 0)


class _CapturePartition(StatefulSourcePartition[PacketBatch, int]):
    def __init__(self, src: CaptureSource, skip: int):
        self.reader = CaptureReader(src.path, src.batch_size, src.l7, skip, src.stats, src.on_progress, src.decap)

    def next_batch(self):
        batch = self.reader.next_batch()
        if batch is None:
            raise StopIteration
        return [batch]

    def snapshot(self) -> int:
        return self.reader.read
