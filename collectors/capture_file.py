"""Capture-file readers: classic pcap (µs/ns, either byte order) and pcapng (any number of
interfaces, each with its own link type and timestamp resolution).

The file is memory-mapped; numba walkers (collectors.walkers) find the records and the
frames are handed on as RawBatch columns without copying. A truncated or corrupt file yields
every complete record before the damage and reports it in ReaderStats; it never raises.
"""
from __future__ import annotations

import mmap
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from collectors import walkers
from collectors.raw_batch import RawBatch

DEFAULT_BATCH = 16384   # packets per batch: the decoder's gathers stay in cache at this size

PCAP_MAGICS = {  # first four bytes -> (big_endian, nanosecond timestamps)
    b"\xd4\xc3\xb2\xa1": (False, False),
    b"\xa1\xb2\xc3\xd4": (True, False),
    b"\x4d\x3c\xb2\xa1": (False, True),
    b"\xa1\xb2\x3c\x4d": (True, True),
}
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"


class CaptureFormatError(ValueError):
    """The file is not a pcap or pcapng capture at all."""


@dataclass
class ReaderStats:
    format: str = ""
    packets: int = 0
    bytes_captured: int = 0
    truncated: bool = False     # the file ends inside a record
    corrupt: bool = False       # an impossible record header stopped the read
    stopped_at: int = -1        # byte offset where reading stopped early, -1 when the file ended cleanly
    errors: Counter = field(default_factory=Counter)
    link_types: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict:
        return {"format": self.format, "packets": self.packets, "bytes_captured": self.bytes_captured,
                "truncated": self.truncated, "corrupt": self.corrupt, "stopped_at": self.stopped_at,
                "errors": dict(self.errors), "link_types": {str(k): v for k, v in self.link_types.items()}}


def require_regular_file(path: str) -> int:
    """The file's size; CaptureFormatError for a directory, FIFO, socket or device (a FIFO would
    block the reader, or be read as empty), FileNotFoundError when it is not there."""
    import stat
    st = os.stat(path)
    if stat.S_ISDIR(st.st_mode):
        raise CaptureFormatError(f"{path}: is a directory, not a capture file")
    if not stat.S_ISREG(st.st_mode):
        raise CaptureFormatError(f"{path}: not a regular file (a FIFO, socket or device); save the capture to a file")
    return st.st_size


def sniff_format(path: str) -> str:
    require_regular_file(path)
    with open(path, "rb") as f:
        head = f.read(4)
    if head in PCAP_MAGICS:
        return "pcap"
    if head == PCAPNG_MAGIC:
        return "pcapng"
    raise CaptureFormatError(f"{path}: not a pcap or pcapng file (magic {head.hex() or 'empty'})")


def _map(fd: int, size: int) -> mmap.mmap:
    """Map a capture read-only. A file that fits easily in free memory is mapped with MAP_POPULATE:
    one batched pre-fault instead of a page fault per 4 KiB makes the walk ~1.6x faster
    (bench/bench_analyze.py); bigger files stream with sequential read-ahead."""
    free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    if hasattr(mmap, "MAP_POPULATE") and size < free // 4:
        return mmap.mmap(fd, 0, flags=mmap.MAP_SHARED | mmap.MAP_POPULATE, prot=mmap.PROT_READ)
    mm = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
    mm.madvise(mmap.MADV_SEQUENTIAL)
    return mm


class CaptureFile:
    """Iterate a capture file as RawBatches: `for raw in CaptureFile(path).batches(): ...`."""

    def __init__(self, path: str, batch_size: int = DEFAULT_BATCH, stats: ReaderStats | None = None):
        self.path = path
        self.batch_size = batch_size
        fmt = sniff_format(path)
        self.stats = stats if stats is not None else ReaderStats(format=fmt)   # shared when a replay loops
        size = require_regular_file(path)
        with open(path, "rb") as f:
            self._mm = _map(f.fileno(), size) if size else None
        self.buf = np.frombuffer(self._mm, dtype=np.uint8) if self._mm is not None else np.zeros(0, np.uint8)

    def batches(self) -> Iterator[RawBatch]:
        if self.stats.format == "pcap":
            yield from self._pcap_batches()
        else:
            yield from self._pcapng_batches()

    def _arrays(self):
        n = self.batch_size
        return (np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.int64))

    def _finish(self, status: int, pos: int) -> bool:
        """Record why the walk stopped; True when there is nothing more to read."""
        if status == walkers.BATCH_FULL:
            return False
        if status == walkers.TRUNCATED:
            self.stats.truncated = True
            self.stats.errors["truncated_file"] += 1
            self.stats.stopped_at = pos
        elif status == walkers.CORRUPT:
            self.stats.corrupt = True
            self.stats.errors["corrupt_record_header"] += 1
            self.stats.stopped_at = pos
        return True

    def _emit(self, n, off, caplen, wirelen, ts, link, iface) -> RawBatch:
        self.stats.packets += n
        self.stats.bytes_captured += int(caplen[:n].sum())
        return RawBatch(buf=self.buf, off=off[:n].copy(), caplen=caplen[:n].copy(), wirelen=wirelen[:n].copy(),
                        ts_ns=ts[:n].copy(), link=link, iface=iface)

    def _pcap_batches(self) -> Iterator[RawBatch]:
        buf = self.buf
        if buf.shape[0] < 24:
            self.stats.truncated = True
            self.stats.errors["truncated_file"] += 1
            self.stats.stopped_at = 0
            return
        big, nanos = PCAP_MAGICS[bytes(buf[:4])]
        linktype = int.from_bytes(bytes(buf[20:24]), "big" if big else "little") & 0xFFFF
        off, caplen, wirelen, ts = self._arrays()
        pos, done = 24, False
        while not done:
            n, pos, status = walkers.walk_pcap(buf, pos, big, nanos, off, caplen, wirelen, ts)
            done = self._finish(status, pos)
            if n:
                self.stats.link_types[linktype] += n
                yield self._emit(n, off, caplen, wirelen, ts,
                                 np.full(n, linktype, np.uint16), np.zeros(n, np.uint16))

    def _pcapng_batches(self) -> Iterator[RawBatch]:
        m = walkers.MAX_INTERFACES
        state = np.zeros(3, np.int64)
        if_link, if_mul, if_div = np.zeros(m, np.int64), np.zeros(m, np.int64), np.ones(m, np.int64)
        if_bin, if_snap, if_tsoff = np.zeros(m, np.int64), np.zeros(m, np.int64), np.zeros(m, np.int64)
        err = np.zeros(len(walkers.WALK_ERROR_NAMES), np.int64)
        off, caplen, wirelen, ts = self._arrays()
        iface = np.empty(self.batch_size, np.int64)
        pos, done = 0, False
        while not done:
            n, pos, status = walkers.walk_pcapng(self.buf, pos, state, if_link, if_mul, if_div, if_bin, if_snap,
                                                 if_tsoff, off, caplen, wirelen, ts, iface, err)
            done = self._finish(status, pos)
            if n:
                ifc = iface[:n].astype(np.uint16)
                link = if_link[iface[:n]].astype(np.uint16)
                for lt, cnt in zip(*np.unique(link, return_counts=True)):
                    self.stats.link_types[int(lt)] += int(cnt)
                yield self._emit(n, off, caplen, wirelen, ts, link, ifc)
        for name, cnt in zip(walkers.WALK_ERROR_NAMES, err):
            if cnt:
                self.stats.errors[name] += int(cnt)
