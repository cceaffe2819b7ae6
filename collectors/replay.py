"""Replaying a capture file as if it were live: pacing and re-stamping.

- `speed`: release packets at their recorded pace times `speed` (2.0 = twice as fast).
- `rate`: release packets at a fixed number per second, ignoring recorded times.
- `retime`: stamp each packet with the wall-clock time it is released (what a live capture
  would record), so windows and capture-to-query latency behave as in live use.

Packets leave in slices of about `PACE_SLICE_S` of traffic, each when its last packet is due,
as a live capture hands them on (a batch every flush interval, collectors/live.py): the collector
sleeps a few times per second, not per packet, and a replay at a given rate makes the batches,
messages and per-batch costs downstream that a live capture at that rate would (20 ms slices
made five times as many at 200k packets/s).
"""
from __future__ import annotations

import time
from typing import Callable, Iterator

import numpy as np

from collectors.live import DEFAULT_FLUSH_MS
from collectors.raw_batch import RawBatch

PACE_SLICE_S = DEFAULT_FLUSH_MS / 1000


def take(raw: RawBatch, idx: slice) -> RawBatch:
    return RawBatch(buf=raw.buf, off=raw.off[idx], caplen=raw.caplen[idx], wirelen=raw.wirelen[idx],
                    ts_ns=raw.ts_ns[idx], link=raw.link[idx], iface=raw.iface[idx])


class Pacer:
    """Turns a stream of RawBatches into a paced (and optionally re-stamped) stream."""

    def __init__(self, speed: float = 0.0, rate: float = 0.0, retime: bool = False,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep):
        if speed < 0 or rate < 0:
            raise ValueError("speed and rate must be positive")
        self.speed, self.rate, self.retime = speed, rate, retime
        self.clock, self.sleep = clock, sleep
        self.t0: float | None = None       # wall time of the first packet
        self.ts0 = 0                        # its recorded time, ns
        self.sent = 0

    def offsets(self, raw: RawBatch) -> np.ndarray:
        """Seconds after the first packet at which each packet of `raw` is due."""
        if self.rate:
            return (self.sent + np.arange(len(raw))) / self.rate
        if self.speed:
            return (raw.ts_ns - self.ts0) / 1e9 / self.speed
        return np.zeros(len(raw))

    def pace(self, batches: Iterator[RawBatch], stop: Callable[[], bool] = lambda: False) -> Iterator[RawBatch]:
        for raw in batches:
            if not len(raw):
                continue
            if self.t0 is None:
                self.t0, self.ts0 = self.clock(), int(raw.ts_ns[0])
            due = self.offsets(raw)
            if not (self.rate or self.speed):        # as fast as possible
                yield self._stamp(raw, None)
                self.sent += len(raw)
                continue
            i = 0
            while i < len(raw):
                if stop():
                    return
                j = int(np.searchsorted(due, due[i] + PACE_SLICE_S, side="right"))
                wait = self.t0 + due[j - 1] - self.clock()
                if wait > 0:
                    self.sleep(wait)
                yield self._stamp(take(raw, slice(i, j)), due[i:j])
                self.sent += j - i
                i = j
            if stop():
                return

    def _stamp(self, raw: RawBatch, due: np.ndarray | None) -> RawBatch:
        if not self.retime:
            return raw
        if due is None:      # unpaced: everything is released now
            stamped = np.full(len(raw), int(self.clock() * 1e9), np.int64)
        else:
            stamped = (int(self.t0 * 1e9) + (due * 1e9).astype(np.int64)).astype(np.int64)
        return RawBatch(buf=raw.buf, off=raw.off, caplen=raw.caplen, wirelen=raw.wirelen, ts_ns=stamped,
                        link=raw.link, iface=raw.iface)
