"""A capture file read and decoded batch by batch, with what the reader and decoder saw.

Pure: no Bytewax here. flows/sources.py wraps it as a Bytewax source (several workers, the
engine's recovery); `analyze` with one worker drives it directly (flows.window.LocalPipeline).
"""
from __future__ import annotations

import collections
import os
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional

from collectors.capture_file import DEFAULT_BATCH, CaptureFile
from collectors.decode.decoder import Decoder
from schemas.packet_batch import PacketBatch


@dataclass
class SourceStats:
    """What the reader and decoder saw; read by the in-process analyser after the run."""
    packets: int = 0
    file_bytes: int = 0
    position: int = 0           # bytes of the file consumed so far
    reader: dict = field(default_factory=dict)
    decoder: collections.Counter = field(default_factory=collections.Counter)
    done: bool = False


class CaptureReader:
    """Decoded batches of one pcap/pcapng file, after skipping `skip` batches (a resume)."""

    def __init__(self, path: str, batch_size: int = DEFAULT_BATCH, l7: bool | str = False, skip: int = 0,
                 stats: Optional[SourceStats] = None,
                 on_progress: Optional[Callable[[SourceStats], None]] = None, decap=None):
        # The window analysis uses no DNS/HTTP fields, so by default they are not decoded.
        self.cap = CaptureFile(path, batch_size)
        self.raw = self.cap.batches()
        self.decoder = Decoder(l7=l7, decap=decap)      # decap: the tunnels taken out (None: all)
        self.stats = stats or SourceStats(file_bytes=os.path.getsize(path))
        self.on_progress = on_progress
        self.read = 0
        for _ in range(skip):
            if next(self.raw, None) is None:
                break
            self.read += 1

    def next_batch(self) -> Optional[PacketBatch]:
        """The next decoded batch; None at the end (the stats are then complete)."""
        raw = next(self.raw, None)
        st = self.stats
        if raw is None:
            st.reader, st.decoder, st.position, st.done = self.cap.stats.as_dict(), self.decoder.stats, st.file_bytes, True
            if self.on_progress is not None:
                self.on_progress(st)
            return None
        self.read += 1
        batch = self.decoder.decode(raw)
        st.packets += len(batch)
        st.position = int(raw.off[-1] + raw.caplen[-1]) if len(raw) else st.position
        if self.on_progress is not None:
            self.on_progress(st)
        return batch

    def __iter__(self) -> Iterator[PacketBatch]:
        while (batch := self.next_batch()) is not None:
            yield batch
