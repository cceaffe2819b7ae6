"""Bytewax sources of PacketBatches. The capture-file source reads and decodes in the worker.

For a live or Kafka source see issue 4; both yield the same PacketBatch items.
"""
from __future__ import annotations

import collections
import logging
import os
from dataclasses import dataclass, field
from typing import Callable, Optional

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from collectors.capture_file import DEFAULT_BATCH, CaptureFile
from collectors.decode.decoder import Decoder
from schemas.packet_batch import PacketBatch

log = logging.getLogger(__name__)


@dataclass
class SourceStats:
    """What the reader and decoder saw; read by the in-process analyser after the run."""
    packets: int = 0
    file_bytes: int = 0
    position: int = 0           # bytes of the file consumed so far
    reader: dict = field(default_factory=dict)
    decoder: collections.Counter = field(default_factory=collections.Counter)
    done: bool = False


class CaptureSource(FixedPartitionedSource[PacketBatch, int]):
    """One partition reading a pcap/pcapng file; its resume state is the batches already read."""

    def __init__(self, path: str, batch_size: int = DEFAULT_BATCH, l7: bool = False,
                 on_progress: Optional[Callable[[SourceStats], None]] = None):
        # The window analysis uses no DNS/HTTP fields, so by default they are not decoded.
        self.l7 = l7
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
        self.src = src
        self.cap = CaptureFile(src.path, src.batch_size)
        self.batches = self.cap.batches()
        self.decoder = Decoder(l7=src.l7)
        self.read = 0
        for _ in range(skip):            # resuming: batches before the snapshot were processed
            if next(self.batches, None) is None:
                break
            self.read += 1

    def next_batch(self):
        raw = next(self.batches, None)
        st = self.src.stats
        if raw is None:
            st.reader, st.decoder, st.position, st.done = self.cap.stats.as_dict(), self.decoder.stats, st.file_bytes, True
            if self.src.on_progress is not None:
                self.src.on_progress(st)
            raise StopIteration
        self.read += 1
        batch = self.decoder.decode(raw)
        st.packets += len(batch)
        st.position = int(raw.off[-1] + raw.caplen[-1]) if len(raw) else st.position
        if self.src.on_progress is not None:
            self.src.on_progress(st)
        return [batch]

    def snapshot(self) -> int:
        return self.read
