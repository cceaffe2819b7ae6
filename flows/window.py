"""Event-time tumbling windows over packet batches, as pure code (no Bytewax here).

The three stages the dataflow runs, each testable alone:

1. `split_batch`: one decoded packet batch -> one `Chunk` per shard. Packets are aggregated
   into exact flow rows per (window, 5-tuple) first, then rows go to the shard of their flow
   hash. Every shard gets a chunk, even an empty one, carrying the batch's windows and newest
   timestamp, so all shards open the same windows and their clocks advance together.
2. `ShardState.add`: keeps each open window's partial flow tables and closes a window once the
   shard's watermark is `lateness` past its end, emitting a `ShardPartial` (final flow records
   of that shard plus its sketches). The watermark is the oldest of the input partitions' newest
   packet times; a partition silent for `idle_s` while others flow no longer holds it back, and
   `ShardState.idle` closes everything once all input has been silent that long. Rows for a
   window this shard already closed are late: they are counted (late_packets, late_bytes on the
   next partial) and logged, not merged.
3. `WindowMerger`: per window, waits for one partial from every shard and merges them into a
   `WindowResult` (flows concatenated, heavy-hitter sketches merged, spread HLLs unioned).
"""
from __future__ import annotations

import collections
import logging
import time
from dataclasses import dataclass, field

import numpy as np

from flows.config import WindowConfig
from flows.sketches import SPREAD_KINDS, HeavyHitters, Spread
from flows.table import FlowTable, window_starts
from schemas.packet_batch import FRAG_LATER_UNMATCHED, STATUS_NAMES, STATUS_OK, PacketBatch

log = logging.getLogger(__name__)

COMPACT_MIN_ROWS = 262_144      # partial rows a window buffers before it re-aggregates them
RECENTLY_CLOSED = 4096          # closed windows remembered per shard to recognise late rows
ACTIVITY_GAP_S = 1.0            # longest gap between chunks that counts as input flowing (see ShardState)


@dataclass
class Chunk:
    shard: int
    flows: FlowTable                       # this shard's rows of the batch
    windows: tuple[int, ...]               # every window start present in the source batch
    max_ts: int                            # newest packet time in the source batch
    counters: dict[int, dict[str, int]]    # window -> counter -> value (carried by shard 0 only)
    origin: int = 0                        # input partition the batch came from


def batch_counters(batch: PacketBatch, wins: np.ndarray, starts: list[int]) -> dict[int, dict[str, int]]:
    """Per window: frames seen, and frames by non-ok status (non-IP, truncated, ...)."""
    out = {}
    for w in starts:
        m = slice(None) if len(starts) == 1 else wins == w
        st = np.bincount(batch.status[m], minlength=len(STATUS_NAMES))
        c = {"frames": int(st.sum())}
        c.update({STATUS_NAMES[i]: int(v) for i, v in enumerate(st.tolist()) if v and i != STATUS_OK})
        unmatched = int(np.count_nonzero(batch.frag[m] == FRAG_LATER_UNMATCHED))
        if unmatched:
            c["fragment_without_first"] = unmatched
        out[w] = c
    return out


def split_batch(batch: PacketBatch, cfg: WindowConfig, origin: int = 0) -> list[Chunk]:
    if len(batch) == 0:
        return []
    wins = window_starts(batch.ts_ns, cfg.window_ns)
    if wins[0] == wins[-1] and (wins == wins[0]).all():
        starts = [int(wins[0])]
    else:
        s = np.sort(wins)
        starts = s[np.concatenate(([True], s[1:] != s[:-1]))].tolist()
    counters = batch_counters(batch, wins, starts)
    parts = FlowTable.from_packets(batch, cfg.window_ns).split(cfg.shards)
    max_ts = int(batch.ts_ns.max())
    return [Chunk(i, parts[i], tuple(starts), max_ts, counters if i == 0 else {}, origin) for i in range(cfg.shards)]


class WindowAccum:
    """One open window of one shard: partial flow tables, re-aggregated as they pile up."""

    def __init__(self):
        self.parts: list[FlowTable] = []
        self.rows = 0
        self.compacted_rows = 0
        self.counters: collections.Counter = collections.Counter()

    def add(self, t: FlowTable) -> None:
        if len(t):
            self.parts.append(t)
            self.rows += len(t)
            if self.rows > max(COMPACT_MIN_ROWS, 2 * self.compacted_rows):
                self.finish()

    def finish(self) -> FlowTable:
        t = FlowTable.concat(self.parts).aggregate() if len(self.parts) != 1 else self.parts[0]
        self.parts = [t] if len(t) else []
        self.rows = self.compacted_rows = len(t)
        return t


@dataclass
class ShardPartial:
    start: int
    shard: int
    flows: FlowTable
    heavy: HeavyHitters
    spread: dict[str, Spread]
    counters: dict[str, int]


def make_partial(start: int, shard: int, flows: FlowTable, counters: dict, cfg: WindowConfig) -> ShardPartial:
    sk = cfg.sketches
    spread = {"src_spread": Spread.from_flows(flows, "src", sk), "dst_fan_in": Spread.from_flows(flows, "dst", sk)}
    return ShardPartial(start, shard, flows, HeavyHitters.from_flows(flows, sk), spread, dict(counters))


class ShardState:
    """The open windows of one shard and its event-time clock (a watermark over its inputs)."""

    def __init__(self, shard: int, cfg: WindowConfig, now: float | None = None):
        self.shard = shard
        self.cfg = cfg
        self.open: dict[int, WindowAccum] = {}
        self.closed: collections.OrderedDict[int, None] = collections.OrderedDict()
        self.clocks: dict[int, int] = {}        # input partition -> newest packet time
        # Idleness of one input is measured in "busy seconds": time during which chunks kept
        # arriving, a gap between chunks counting at most ACTIVITY_GAP_S. So an input is idle only
        # while the others flow; a worker that was itself stalled (a sink blocked on a dead
        # server) does not take its inputs for idle when it resumes.
        self.busy = 0.0
        self.heard: dict[int, float] = {}       # input partition -> busy seconds at its last chunk
        self.last_heard = time.time() if now is None else now    # wall time of the last chunk
        self.late: collections.Counter = collections.Counter()

    def watermark(self) -> int:
        """Oldest newest-packet time over the inputs that are not idle (silent for `idle_s` busy
        seconds). Inputs not heard from yet hold it back (at -1) for the first `idle_s` busy seconds."""
        idle = self.cfg.idle_s
        if len(self.clocks) < self.cfg.inputs and self.busy < idle:
            return -1
        return min(ts for o, ts in self.clocks.items() if self.busy - self.heard[o] < idle)

    def add(self, chunk: Chunk, now: float | None = None) -> list[ShardPartial]:
        now = time.time() if now is None else now
        self.shard = chunk.shard
        self.busy += min(max(now - self.last_heard, 0.0), ACTIVITY_GAP_S)
        self.last_heard = now
        self.clocks[chunk.origin] = max(self.clocks.get(chunk.origin, -1), chunk.max_ts)
        self.heard[chunk.origin] = self.busy
        for w in chunk.windows:
            if w in self.closed:
                continue
            acc = self.open.get(w)
            if acc is None:
                acc = self.open[w] = WindowAccum()
            acc.counters.update(chunk.counters.get(w, {}))
            acc.add(chunk.flows if len(chunk.windows) == 1 else chunk.flows.select_window(w))
        late = [w for w in chunk.windows if w in self.closed]
        if late:
            self._count_late(chunk, late)
        mark = self.watermark()
        return self._close(lambda w: self.cfg.window_ns > 0
                           and w + self.cfg.window_ns + self.cfg.lateness_ns <= mark)

    def resume(self, now: float | None = None) -> "ShardState":
        """After a restore from a snapshot: idleness counts from now, not from before the restart
        (else open windows would close before the replayed input arrives)."""
        self.last_heard = time.time() if now is None else now
        return self

    def idle(self, now: float | None = None) -> list[ShardPartial]:
        """Close every open window when no input has arrived for `idle_s` (traffic stopped)."""
        now = time.time() if now is None else now
        if self.open and now - self.last_heard >= self.cfg.idle_s:
            return self.flush()
        return []

    def copy(self) -> "ShardState":
        """A consistent copy for recovery snapshots. Flow tables are never modified in place, so
        copying the containers is enough."""
        s = ShardState(self.shard, self.cfg)
        for w, acc in self.open.items():
            a = s.open[w] = WindowAccum()
            a.parts, a.rows, a.compacted_rows, a.counters = list(acc.parts), acc.rows, acc.compacted_rows, acc.counters.copy()
        s.closed, s.clocks, s.heard = self.closed.copy(), dict(self.clocks), dict(self.heard)
        s.busy, s.last_heard, s.late = self.busy, self.last_heard, self.late.copy()
        return s

    def flush(self) -> list[ShardPartial]:
        """End of input: close every open window."""
        return self._close(lambda w: True)

    def _count_late(self, chunk: Chunk, late: list[int]) -> None:
        rows = chunk.flows if len(chunk.windows) == 1 else chunk.flows.take(np.flatnonzero(np.isin(chunk.flows.window, late)))
        frames = sum(chunk.counters.get(w, {}).get("frames", 0) for w in late)
        self.late["late_packets"] += int(rows.packets.sum())
        self.late["late_bytes"] += int(rows.bytes.sum())
        self.late["late_frames"] += frames
        log.warning("shard %d: %d packets arrived for closed windows %s", self.shard, int(rows.packets.sum()), late[:3])

    def _close(self, due) -> list[ShardPartial]:
        out = []
        for w in sorted(w for w in self.open if due(w)):
            acc = self.open.pop(w)
            counters = acc.counters
            if self.late:
                counters = counters + self.late
                self.late.clear()
            out.append(make_partial(w, self.shard, acc.finish(), counters, self.cfg))
            self.closed[w] = None
            if len(self.closed) > RECENTLY_CLOSED:
                self.closed.popitem(last=False)
        return out


@dataclass
class WindowResult:
    start: int                   # window start, ns since the epoch (0 with one window over everything)
    length_ns: int               # 0 = the whole input
    flows: FlowTable
    heavy: HeavyHitters
    spread: dict[str, Spread]
    counters: dict[str, int] = field(default_factory=dict)
    shards: int = 0              # shards that reported
    complete: bool = True

    @property
    def packets(self) -> int:
        return int(self.flows.packets.sum())

    @property
    def bytes(self) -> int:
        return int(self.flows.bytes.sum())

    def protocols(self) -> list[tuple[int, int, int]]:
        """Exact (proto, packets, bytes), most bytes first."""
        pr = self.flows.proto
        pk = np.bincount(pr, weights=self.flows.packets, minlength=256)
        by = np.bincount(pr, weights=self.flows.bytes, minlength=256)
        ids = np.flatnonzero(pk)
        return sorted(((int(i), int(pk[i]), int(by[i])) for i in ids), key=lambda x: -x[2])

    def ports(self, n: int) -> list[tuple[int, int, int, int]]:
        """Exact top-n (proto, dport, packets, bytes) by bytes over flows with ports."""
        t = self.flows
        has = t.dport > 0
        if not has.any():
            return []
        code = (t.proto[has].astype(np.int64) << 16) | t.dport[has]
        s = np.argsort(code, kind="stable")
        cs = code[s]
        starts = np.concatenate(([0], np.flatnonzero(cs[1:] != cs[:-1]) + 1))
        pk = np.add.reduceat(t.packets[has][s], starts)
        by = np.add.reduceat(t.bytes[has][s], starts)
        top = np.lexsort((cs[starts], -by.astype(np.int64)))[:n]
        return [(int(cs[starts][i] >> 16), int(cs[starts][i] & 0xFFFF), int(pk[i]), int(by[i])) for i in top]


def merge_partials(partials: list[ShardPartial], cfg: WindowConfig) -> WindowResult:
    partials = sorted(partials, key=lambda p: p.shard)     # deterministic merge order
    heavy = HeavyHitters(cfg.sketches)
    spread = {k: Spread(cfg.sketches) for k in SPREAD_KINDS}
    counters: collections.Counter = collections.Counter()
    for p in partials:
        heavy.merge(p.heavy)
        for k in SPREAD_KINDS:
            spread[k].merge(p.spread[k])
        counters.update(p.counters)
    return WindowResult(partials[0].start, cfg.window_ns, FlowTable.concat([p.flows for p in partials]), heavy,
                        spread, dict(counters), len({p.shard for p in partials}),
                        len({p.shard for p in partials}) == cfg.shards)


class WindowMerger:
    """Partials of one window until every shard has reported."""

    def __init__(self, cfg: WindowConfig):
        self.cfg = cfg
        self.partials: dict[int, ShardPartial] = {}

    def add(self, p: ShardPartial) -> WindowResult | None:
        if p.shard in self.partials:      # a replayed partial (recovery) replaces the first
            log.warning("window %d: shard %d reported twice; keeping the newest", p.start, p.shard)
        self.partials[p.shard] = p
        if len(self.partials) == self.cfg.shards:
            return self.finish()
        return None

    def finish(self) -> WindowResult | None:
        if not self.partials:
            return None
        res = merge_partials(list(self.partials.values()), self.cfg)
        if not res.complete:
            log.warning("window %d written with %d of %d shards", res.start, res.shards, self.cfg.shards)
        self.partials = {}
        return res
