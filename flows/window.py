"""Event-time tumbling windows over packet batches, as pure code (no Bytewax here).

The three stages the dataflow runs, each testable alone:

1. `split_batch`: one decoded packet batch -> one `Chunk` per shard. Packets are aggregated
   into exact flow rows per (window, 5-tuple) first, then rows go to the shard of their flow
   hash. Every shard gets a chunk, even an empty one, carrying the batch's windows and newest
   timestamp, so all shards open the same windows and their clocks advance together.
2. `ShardState.add`: keeps each open window's partial flow tables and closes a window once the
   shard's watermark is `lateness` past its end, emitting a `ShardPartial` (final flow records
   of that shard plus its sketches). The watermark is the oldest of the input partitions' newest
   packet times. An input stops holding it back only when its source reports it caught up with
   the broker and quiet for `idle_s` (`Progress`); when all inputs are, every open window closes
   (traffic stopped). Rows for a closed window within its grace period (`grace_s` of event time
   after it closed) are sent as a revision and the window is written again; rows for a window
   past its grace are counted (late_packets, late_bytes on the next partial), logged, dropped.
3. `WindowMerger`: per window, keeps one partial per shard and merges them into a
   `WindowResult` (flows concatenated, heavy-hitter sketches merged, spread HLLs unioned) once
   every shard has reported, and again after each revision, until every shard retired it.
"""
from __future__ import annotations

import collections
from dataclasses import dataclass, field, replace
from typing import Optional

import numpy as np

from flows.config import WindowConfig
from flows.l7 import L7Facts
from flows.sketches import SPREAD_KINDS, HeavyHitters, Spread
from flows.table import FlowTable, sum_by_address, top_by, window_starts
from flows.tls import TlsMemory
from schemas.flow_key import words_to_addr
from schemas.packet_batch import FRAG_LATER_UNMATCHED, STATUS_NAMES, STATUS_OK, PacketBatch



def log():
    """This module's logger (logging is imported when something is said: 5 ms of start-up)."""
    import logging
    return logging.getLogger(__name__)

COMPACT_MIN_ROWS = 262_144      # partial rows a window buffers before it re-aggregates them
RECENTLY_CLOSED = 4096          # retired windows remembered per shard to recognise late rows
# A shard's window with at most this many flow records (and none folded by the flow cap) leaves
# its heavy hitters and spread to the merger, which summarises all such shards' records at once:
# the same answers, without a set of sketches per shard to build, pickle and merge (most of a
# small window's fixed cost). Bigger tables are summarised by their shards, in parallel.
DEFER_SUMMARY_ROWS = 4096
_CAP_LOGGED = False             # the flow cap is logged once per process (then counted per window)


@dataclass
class Chunk:
    shard: int
    flows: FlowTable                       # this shard's rows of the batch
    windows: tuple[int, ...]               # every window start present in the source batch
    max_ts: int                            # newest packet time in the source batch
    counters: dict[int, dict[str, int]]    # window -> counter -> value (carried by shard 0 only)
    origin: int = 0                        # input partition the batch came from
    l7: dict = field(default_factory=dict)     # window -> L7Facts of the batch (DNS: shard 0; TLS: the flows' shard)


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
    l7 = L7Facts.by_shard(L7Facts.from_batch(batch, wins, starts), cfg.shards)
    parts = FlowTable.from_packets(batch, cfg.window_ns).split(cfg.shards)
    max_ts = int(batch.ts_ns.max())
    return [Chunk(i, parts[i], tuple(starts), max_ts, counters if i == 0 else {}, origin, l7[i])
            for i in range(cfg.shards)]


@dataclass(frozen=True)
class Folded:
    """Sketches of flow records a shard dropped from a window's exact table (the flow cap)."""
    heavy: HeavyHitters
    spread: dict[str, Spread]


class WindowAccum:
    """One open window of one shard: partial flow tables, re-aggregated as they pile up. Past
    `cap` records the heaviest are kept and the rest folded into sketches and counters."""

    def __init__(self, cfg: WindowConfig):
        self.cfg = cfg
        self.parts: list[FlowTable] = []
        self.rows = 0
        self.compacted_rows = 0
        self.counters: collections.Counter = collections.Counter()
        self.folded: list[Folded] = []          # never modified once made: copies share them
        self.l7: list = []                      # L7Facts of its batches (flows/l7.py)

    def add(self, t: FlowTable) -> None:
        if len(t):
            self.parts.append(t)
            self.rows += len(t)
            cap = self.cfg.max_flows_per_shard
            if self.rows > max(COMPACT_MIN_ROWS, 2 * self.compacted_rows) or (cap and self.rows > 2 * cap):
                self.finish()

    def finish(self) -> FlowTable:
        t = FlowTable.concat(self.parts).aggregate() if len(self.parts) != 1 else self.parts[0]
        cap = self.cfg.max_flows_per_shard
        if cap and len(t) > cap:
            t = self._fold(t, cap)
        self.parts = [t] if len(t) else []
        self.rows = self.compacted_rows = len(t)
        return t

    def _fold(self, t: FlowTable, cap: int) -> FlowTable:
        """Keep the `cap` heaviest records (bytes; ties by flow hash); sketch and count the rest."""
        keep = top_by(t.bytes, np.stack([t.fhash, t.pp], axis=1), cap)
        drop = np.ones(len(t), bool)
        drop[keep] = False
        rest = t.take(np.flatnonzero(drop))
        self.folded.append(Folded(*sketch_flows(rest, self.cfg.sketches)))
        self.counters["capped_flow_records"] += len(rest)
        self.counters["capped_packets"] += int(rest.packets.sum())
        self.counters["capped_bytes"] += int(rest.bytes.sum())
        global _CAP_LOGGED
        if not _CAP_LOGGED:
            _CAP_LOGGED = True
            log().warning("a window has over %d flows in one shard: the heaviest are kept exactly, the rest go to its "
                        "sketches and capped_* counters (max_flows %d)", cap, self.cfg.max_flows)
        return t.take(keep)

    def __setstate__(self, state: dict) -> None:
        if "dns" in state:          # a snapshot from before the L7 facts (flows/l7.py): DNS counts alone
            state["l7"] = [L7Facts(dns=d) for d in state.pop("dns")]
        self.__dict__.update(state)

    def copy(self) -> "WindowAccum":
        a = WindowAccum(self.cfg)
        a.parts, a.rows, a.compacted_rows, a.counters = list(self.parts), self.rows, self.compacted_rows, self.counters.copy()
        a.folded = list(self.folded)
        a.l7 = list(self.l7)
        return a


@dataclass(frozen=True)
class Progress:
    """What a source knows about one input partition while it delivers nothing: whether the broker
    said, just now, that there is nothing more to read (caught up), and for how long the input has
    been quiet. Only these facts let a shard treat an input as idle: silence alone can also mean
    a lost broker connection, a restart or a stalled reader."""
    origin: int
    caught_up: bool
    quiet_s: float


@dataclass
class ShardPartial:
    start: int
    shard: int
    flows: FlowTable
    heavy: Optional[HeavyHitters]           # None: left to the merger (DEFER_SUMMARY_ROWS)
    spread: Optional[dict[str, Spread]]
    counters: dict[str, int]
    # Rows that arrived after this shard closed the window, to add to its earlier partial.
    revision: bool = False
    # The shard sends nothing more for this window (its grace period is over, or there is none).
    final: bool = True
    l7: object = None            # L7Facts (flows/l7.py), None without L7 rows

    def __setstate__(self, state: dict) -> None:
        if "dns" in state:          # a snapshot from before the L7 facts (flows/l7.py): DNS counts alone
            d = state.pop("dns")
            state["l7"] = L7Facts(dns=d) if d is not None else None
        self.__dict__.update(state)

    def absorb(self, d: "ShardPartial", sk) -> "ShardPartial":
        """This partial with a revision's rows added (exact: flow rows re-aggregated by key)."""
        if self.heavy is None and d.heavy is None:       # both left to the merger: so is the sum
            heavy = spread = None
            counters = sum_counters([self, d])
        else:
            heavy, spread, counters = merge_summaries([self, d], sk)
        return ShardPartial(self.start, self.shard, FlowTable.concat([self.flows, d.flows]).aggregate(), heavy,
                            spread, counters, False, self.final or d.final, L7Facts.combine([self.l7, d.l7]))


@dataclass(frozen=True)
class WindowRetired:
    """A shard's word that a window's grace period is over: it sends nothing more for it."""
    start: int
    shard: int


def sketch_flows(flows: FlowTable, sk) -> tuple[HeavyHitters, dict[str, Spread]]:
    """Heavy hitters and spread (distinct dsts per src, distinct srcs per dst) of flow records."""
    return (HeavyHitters.from_flows(flows, sk),
            {"src_spread": Spread.from_flows(flows, "src", sk), "dst_fan_in": Spread.from_flows(flows, "dst", sk)})


def make_partial(start: int, shard: int, flows: FlowTable, counters: dict, cfg: WindowConfig,
                 revision: bool = False, final: bool = True, folded: tuple = (), l7: list = ()) -> ShardPartial:
    heavy = spread = None               # small and unfolded: the merger summarises it with the others
    if folded or len(flows) > DEFER_SUMMARY_ROWS:
        heavy, spread = sketch_flows(flows, cfg.sketches)
        for f in folded:                # records dropped by the flow cap still count in the sketches
            heavy.merge(f.heavy)
            for k in SPREAD_KINDS:
                spread[k].merge(f.spread[k])
    return ShardPartial(start, shard, flows, heavy, spread, dict(counters), revision, final,
                        L7Facts.combine(l7))


class ShardState:
    """The windows of one shard and its event-time clock (a watermark over its inputs).

    A window is open until the watermark is `lateness` past its end, then closed: its partial is
    sent and rows that still arrive for it are sent as revisions, until the watermark is also
    `grace` past (retired); rows for a retired window are counted as late and dropped. Every
    decision depends on event time and on the inputs' progress as the sources report it, never on
    how fast or how steadily this worker happens to read.
    """

    def __init__(self, shard: int, cfg: WindowConfig):
        self.shard = shard
        self.cfg = cfg
        self.open: dict[int, WindowAccum] = {}
        self.closed: collections.OrderedDict[int, None] = collections.OrderedDict()    # in their grace period
        self.retired: collections.OrderedDict[int, None] = collections.OrderedDict()
        self.revisions: dict[int, WindowAccum] = {}
        self.clocks: dict[int, int] = {}        # input partition -> newest packet time
        self.drained: dict[int, bool] = {}      # input partition -> caught up and quiet for idle_s
        self.mark = -1                          # the watermark; never moves back
        self.late: collections.Counter = collections.Counter()
        self.tls = TlsMemory()                  # names of connections seen in closed windows

    def _named(self, rows: FlowTable, l7: list) -> list:
        """A closing window's L7 facts, with the names of earlier windows' connections that its
        records continue (flows/tls.py)."""
        facts = L7Facts.combine(l7)
        tls = self.tls.name(rows, facts.tls if facts else None)
        if tls is None:
            return [facts] if facts else []
        return [replace(facts, tls=tls) if facts else L7Facts(tls=tls)]

    def watermark(self) -> int:
        """Oldest newest-packet time over the inputs that are not drained. An input that was never
        heard from and is not known to be drained holds it back entirely (-1)."""
        inputs = range(self.cfg.inputs)
        if any(o not in self.clocks and not self.drained.get(o) for o in inputs):
            return -1
        live = [ts for o, ts in self.clocks.items() if not self.drained.get(o)]
        if live:
            return min(live)
        return max(self.clocks.values(), default=-1)

    def add(self, chunk: Chunk) -> list:
        """Take one chunk and emit what is then due (partials, revisions, retirements)."""
        self.ingest(chunk)
        return self.advance()

    def ingest(self, chunk: Chunk) -> None:
        self.shard = chunk.shard
        self.clocks[chunk.origin] = max(self.clocks.get(chunk.origin, -1), chunk.max_ts)
        self.drained[chunk.origin] = False
        single = len(chunk.windows) == 1
        dropped = []
        for w in chunk.windows:
            if w in self.retired:
                dropped.append(w)
                continue
            rows = chunk.flows if single else chunk.flows.select_window(w)
            counters = chunk.counters.get(w, {})
            acc = self.open.get(w)
            if acc is None:
                if w in self.closed:
                    if not len(rows) and not counters:
                        continue                  # nothing to revise
                    acc = self.revisions.setdefault(w, WindowAccum(self.cfg))
                else:
                    acc = self.open[w] = WindowAccum(self.cfg)
            acc.counters.update(counters)
            if w in chunk.l7:
                acc.l7.append(chunk.l7[w])
                if len(acc.l7) > 64:             # keep a long window's per-batch facts combined
                    acc.l7 = [L7Facts.combine(acc.l7)]
            acc.add(rows)
        if dropped:
            self._count_late(chunk, dropped)

    def progress(self, p: Progress) -> list:
        """A source's progress report for one input. When every input is caught up and has been
        quiet for `idle_s`, traffic has stopped: every open window closes."""
        self.drained[p.origin] = p.caught_up and p.quiet_s >= self.cfg.idle_s
        out = []
        if self.open and all(self.drained.get(o) for o in range(self.cfg.inputs)):
            out = self._close(lambda w: True)
        return out + self.advance()

    def advance(self) -> list:
        """Close the windows the watermark has passed, send pending revisions, retire windows
        whose grace period is over."""
        self.mark = max(self.mark, self.watermark())
        cfg = self.cfg
        out = self._close(lambda w: cfg.window_ns > 0 and w + cfg.window_ns + cfg.lateness_ns <= self.mark)
        for w, acc in self.revisions.items():
            rows = acc.finish()
            acc.counters["revised_packets"] += int(rows.packets.sum())
            out.append(make_partial(w, self.shard, rows, acc.counters, cfg, revision=True, final=False,
                                    folded=acc.folded, l7=self._named(rows, acc.l7)))
        self.revisions.clear()
        if cfg.grace_ns > 0:
            for w in [w for w in self.closed if w + cfg.window_ns + cfg.lateness_ns + cfg.grace_ns <= self.mark]:
                self._retire(w)
                out.append(WindowRetired(w, self.shard))
        return out

    def resume(self) -> "ShardState":
        """After a restore from a snapshot: what the sources said before the restart no longer
        holds; each input is taken for drained again only on a fresh report."""
        self.drained.clear()
        return self

    def copy(self) -> "ShardState":
        """A consistent copy for recovery snapshots. Flow tables are never modified in place, so
        copying the containers is enough."""
        s = ShardState(self.shard, self.cfg)
        s.open = {w: acc.copy() for w, acc in self.open.items()}
        s.revisions = {w: acc.copy() for w, acc in self.revisions.items()}
        s.closed, s.retired, s.clocks, s.drained = self.closed.copy(), self.retired.copy(), dict(self.clocks), dict(self.drained)
        s.mark, s.late, s.tls = self.mark, self.late.copy(), self.tls.copy()
        return s

    def __setstate__(self, state: dict) -> None:
        state.setdefault("tls", TlsMemory())        # a snapshot from before the TLS names
        self.__dict__.update(state)

    def flush(self) -> list:
        """End of input: close every open window and send what is pending."""
        out = self._close(lambda w: True)
        return out + self.advance()

    def _count_late(self, chunk: Chunk, late: list[int]) -> None:
        rows = chunk.flows if len(chunk.windows) == 1 else chunk.flows.take(np.flatnonzero(np.isin(chunk.flows.window, late)))
        frames = sum(chunk.counters.get(w, {}).get("frames", 0) for w in late)
        self.late["late_packets"] += int(rows.packets.sum())
        self.late["late_bytes"] += int(rows.bytes.sum())
        self.late["late_frames"] += frames
        log().warning("shard %d: %d packets arrived for windows past their grace period %s, dropped and counted",
                    self.shard, int(rows.packets.sum()), late[:3])

    def _retire(self, w: int) -> None:
        self.closed.pop(w, None)
        self.retired[w] = None
        if len(self.retired) > RECENTLY_CLOSED:
            self.retired.popitem(last=False)

    def _close(self, due) -> list[ShardPartial]:
        out = []
        final = self.cfg.grace_ns <= 0
        for w in sorted(w for w in self.open if due(w)):
            acc = self.open.pop(w)
            counters = acc.counters
            if self.late:
                counters = counters + self.late
                self.late.clear()
            rows = acc.finish()
            out.append(make_partial(w, self.shard, rows, counters, self.cfg, final=final, folded=acc.folded,
                                    l7=self._named(rows, acc.l7)))
            if final:
                self._retire(w)
            else:
                self.closed[w] = None
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
    l7: object = None            # L7Facts of the window's L7 rows (flows/l7.py), None without

    @property
    def dns(self):
        """The window's DNS counts (flows/dns.py), None without DNS packets."""
        return self.l7.dns if self.l7 is not None else None

    @property
    def sip(self):
        """The window's SIP calls (flows/sip.py), None without SIP messages."""
        return self.l7.sip if self.l7 is not None else None

    @property
    def tls(self):
        """The window's flows' TLS names (flows/tls.py), None without ClientHellos."""
        return self.l7.tls if self.l7 is not None else None

    @property
    def packets(self) -> int:
        """Every packet of the window, those of flow records dropped by the flow cap included."""
        return int(self.flows.packets.sum()) + self.counters.get("capped_packets", 0)

    @property
    def bytes(self) -> int:
        return int(self.flows.bytes.sum()) + self.counters.get("capped_bytes", 0)

    def source_sums(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(distinct source words, packets, bytes) over the flow records."""
        return sum_by_address(self.flows.src, self.flows.packets, self.flows.bytes)

    def talkers(self, n: int, sums: tuple | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Exact top-n sources by bytes, most first: (16-byte addresses, packets, bytes), from the
        flow records (or their `source_sums()`)."""
        words, pk, by = sums or self.source_sums()
        idx = top_by(by, words, n)
        return words_to_addr(words[idx]), pk[idx], by[idx]

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


def merge_summaries(partials: list[ShardPartial], sk) -> tuple[HeavyHitters, dict[str, Spread], dict[str, int]]:
    """Heavy hitters merged, spread unioned and counters summed over partials, in their order."""
    heavy = HeavyHitters(sk)
    spread = {k: Spread(sk) for k in SPREAD_KINDS}
    deferred = [p.flows for p in partials if p.heavy is None]
    summaries = [sketch_flows(FlowTable.concat(deferred), sk)] if deferred else []
    summaries += [(p.heavy, p.spread) for p in partials if p.heavy is not None]
    for h, sp in summaries:
        heavy.merge(h)
        for k in SPREAD_KINDS:
            spread[k].merge(sp[k])
    return heavy, spread, sum_counters(partials)


def sum_counters(partials) -> dict[str, int]:
    """The partials' counters summed, key by key."""
    counters: collections.Counter = collections.Counter()
    for p in partials:
        counters.update(p.counters)
    return dict(counters)


def merge_partials(partials: list[ShardPartial], cfg: WindowConfig) -> WindowResult:
    partials = sorted(partials, key=lambda p: p.shard)     # deterministic merge order
    heavy, spread, counters = merge_summaries(partials, cfg.sketches)
    return WindowResult(partials[0].start, cfg.window_ns, FlowTable.concat([p.flows for p in partials]), heavy,
                        spread, counters, len({p.shard for p in partials}),
                        len({p.shard for p in partials}) == cfg.shards, L7Facts.combine([p.l7 for p in partials]))


class WindowMerger:
    """One window's partials, one per shard, until every shard has retired it.

    The merged result is emitted once every shard has reported, and again whenever a shard sends
    a revision (rows that arrived after it closed the window). Sinks key every row on (window,
    source, entity), so a re-emitted window replaces the earlier one."""

    def __init__(self, cfg: WindowConfig):
        self.cfg = cfg
        self.partials: dict[int, ShardPartial] = {}
        self.final: set[int] = set()
        self.changed = False        # partials changed since the last emitted result
        self.emitted = False

    def add(self, p) -> None:
        if isinstance(p, WindowRetired):
            self.final.add(p.shard)
            return
        have = self.partials.get(p.shard)
        if p.revision and have is not None:
            self.partials[p.shard] = have.absorb(p, self.cfg.sketches)
        else:
            if have is not None:      # a replayed partial (recovery) replaces the first
                log().warning("window %d: shard %d reported twice; keeping the newest", p.start, p.shard)
            self.partials[p.shard] = p
        if p.final:
            self.final.add(p.shard)
        self.changed = True

    def copy(self) -> "WindowMerger":
        """A consistent copy for recovery snapshots (partials are never modified in place)."""
        m = WindowMerger(self.cfg)
        m.partials, m.final, m.changed, m.emitted = dict(self.partials), set(self.final), self.changed, self.emitted
        return m

    @property
    def complete(self) -> bool:
        return len(self.partials) == self.cfg.shards

    @property
    def done(self) -> bool:
        """Every shard has retired the window: nothing more can change it."""
        return len(self.final) == self.cfg.shards

    @property
    def spent(self) -> bool:
        """Done, and its last result emitted: the state can go."""
        return self.done and not self.changed

    def result(self, force: bool = False) -> WindowResult | None:
        """The merged window if it is complete (or `force`d) and changed since it was last emitted."""
        if not self.partials or not self.changed or not (self.complete or force):
            return None
        res = merge_partials(list(self.partials.values()), self.cfg)
        if not res.complete:
            log().warning("window %d written with %d of %d shards", res.start, res.shards, self.cfg.shards)
        self.changed, self.emitted = False, True
        return res


class LocalPipeline:
    """The three stages in one thread, without Bytewax, batch by batch as the dataflow runs them
    (one merge pass per batch): for tests and benchmarks of the pure core."""

    def __init__(self, cfg: WindowConfig):
        self.cfg = cfg
        self.states = [ShardState(i, cfg) for i in range(cfg.shards)]
        self.mergers: dict[int, WindowMerger] = {}

    def feed(self, batch: PacketBatch, origin: int = 0) -> list[WindowResult]:
        return self._merge([x for c in split_batch(batch, self.cfg, origin) for x in self.states[c.shard].add(c)])

    def progress(self, p: Progress) -> list[WindowResult]:
        return self._merge([x for s in self.states for x in s.progress(p)])

    def flush(self) -> list[WindowResult]:
        """End of input: every window closes and is emitted (incomplete ones too)."""
        out = self._merge([x for s in self.states for x in s.flush()])
        for w in sorted(self.mergers):
            res = self.mergers.pop(w).result(force=True)
            if res is not None:
                out.append(res)
        return out

    def _merge(self, items: list) -> list[WindowResult]:
        for p in items:
            self.mergers.setdefault(p.start, WindowMerger(self.cfg)).add(p)
        out = []
        for w in sorted({p.start for p in items}):
            m = self.mergers[w]
            res = m.result()
            if res is not None:
                out.append(res)
            if m.spent:
                del self.mergers[w]
        return out
