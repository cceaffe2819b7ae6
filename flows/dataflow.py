"""The Bytewax dataflow: thin wiring around the pure stages in flows.window.

    packets (PacketBatch items) -> split: one Chunk per shard, keyed by shard
      -> shard_windows (stateful per shard): event-time windows -> ShardPartial per window
      -> merge_shards (stateful per window): all shards' partials -> WindowResult
      -> rows: what the sinks write (schemas/window_rows.py), built once -> sinks

Items are whole packet batches and per-shard chunks, never single packets. The same flow runs
offline (`netspectra analyze`, a capture-file source) and live (a Kafka source, issue 4).

Run it directly with Bytewax, e.g. two worker threads over a capture into a chDB store:

    python -m bytewax.run "flows.dataflow:capture_flow('x.pcap', store='out/store', window_s=60)" -w 2
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterable, Optional

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source
from bytewax.outputs import FixedPartitionedSink, Sink, StatefulSinkPartition
from bytewax.operators import StatefulBatchLogic

from flows.config import WindowConfig
from flows.window import Progress, ShardState, WindowMerger, split_batch
from schemas import metrics as M
from schemas.packet_batch import PacketBatch
from schemas.times import iso_utc

log = logging.getLogger(__name__)


class ShardLogic(StatefulBatchLogic):
    """One shard's windows. Driven only by its input: chunks and the sources' progress reports
    (no wall-clock timers, so a stalled or restarted worker decides nothing on its own)."""

    def __init__(self, shard: int, cfg: WindowConfig, resume: Optional[ShardState]):
        self.state = resume.resume() if resume is not None else ShardState(shard, cfg)

    def on_batch(self, values):
        out = []
        for v in values:
            if isinstance(v, Progress):
                out.extend(self.state.progress(v))
            else:
                late = self.state.late["late_packets"]
                self.state.ingest(v)
                M.inc("netspectra_engine_late_packets_total", self.state.late["late_packets"] - late)
        out.extend(self.state.advance())
        return out, StatefulBatchLogic.RETAIN

    def on_eof(self):
        return self.state.flush(), StatefulBatchLogic.RETAIN

    def snapshot(self) -> ShardState:
        return self.state.copy()


class MergeLogic(StatefulBatchLogic):
    """One window's merge: emits the result when complete and after each revision; a window
    whose shards have not all reported after `merge_timeout_s` (wall clock: only a stalled shard
    delays it) is written as incomplete, and again when the rest arrive."""

    def __init__(self, cfg: WindowConfig, resume: Optional[WindowMerger]):
        self.merger = resume if resume is not None else WindowMerger(cfg)
        self.deadline = datetime.now(timezone.utc) + timedelta(seconds=cfg.merge_timeout_s)

    def on_batch(self, values):
        for p in values:
            self.merger.add(p)
        return self._emit(force=False)

    def on_notify(self):
        return self._emit(force=True)

    def on_eof(self):
        res = self._result(force=True)
        return ([res] if res is not None else []), StatefulBatchLogic.DISCARD

    def _emit(self, force: bool):
        res = self._result(force)
        keep = StatefulBatchLogic.DISCARD if self.merger.spent else StatefulBatchLogic.RETAIN
        return ([res] if res is not None else []), keep

    def _result(self, force: bool):
        """The merger's result, counted as a closed window or, once emitted before, a revision."""
        first = not self.merger.emitted
        res = self.merger.result(force)
        _count_window(res, first, self.merger.cfg.shards)
        return res

    def notify_at(self):
        return None if self.merger.emitted else self.deadline

    def snapshot(self) -> WindowMerger:
        return self.merger.copy()


class CallbackSink(FixedPartitionedSink):
    """Hands every WindowResult to a function in this process (the analyser's report), from one
    worker: the function needs no lock."""

    def __init__(self, fn: Callable):
        self.fn = fn

    def list_parts(self):
        return ["callback"]

    def build_part(self, step_id, for_part, resume_state):
        return _Callback(self.fn)


class _Callback(StatefulSinkPartition):
    def __init__(self, fn: Callable):
        self.fn = fn

    def write_batch(self, values):
        for result in values:
            self.fn(result)

    def snapshot(self):
        return None


def _count_window(res, first: bool, shards: int) -> None:
    """Window metrics and a log line for a merged result: a closed window, or a revision of one."""
    if res is None:
        return
    log.info("window %s %s: %d packets, %d flows, %d late packets, %d of %d shards", iso_utc(res.start),
             "closed" if first else "revised", res.packets, len(res.flows), res.counters.get("late_packets", 0),
             res.shards, shards)
    if not first:
        M.inc("netspectra_engine_window_revisions_total")
        return
    M.inc("netspectra_engine_windows_total", complete=str(res.complete).lower())
    M.observe("netspectra_engine_window_flows", len(res.flows))
    M.inc("netspectra_engine_capped_flows_total", res.counters.get("capped_flow_records", 0))
    if M.enabled():
        M.set("netspectra_engine_sketch_bytes",
              res.heavy.memory_bytes() + sum(s.memory_bytes() for s in res.spread.values()))


def build_flow(source: Source[PacketBatch], cfg: WindowConfig, sinks: Iterable[Sink], source_name: str = "",
               on_result: Optional[Callable] = None, name: str = "netspectra") -> Dataflow:
    """The dataflow from a source of PacketBatches to the sinks of windows (sinks/bytewax_sinks.py)
    and, in this process, `on_result` for every WindowResult."""
    flow = Dataflow(name)
    batches = op.input("packets", flow, source)
    window_pipeline(op.map("one_input", batches, lambda b: (0, b)), cfg, sinks, source=source_name,
                    on_result=on_result)
    return flow


def window_pipeline(batches: Stream, cfg: WindowConfig, sinks: Iterable[Sink], rules=None,
                    notify: Optional[Sink] = None, source: str = "", on_result: Optional[Callable] = None) -> Stream:
    """Shard, window and merge a stream of (input partition, PacketBatch) and Progress reports;
    every sink gets (window key, WindowRows) of `source` with the parts it `wants`. With `rules`,
    every window is also run through detection and the alert lifecycle, and the sinks get its
    alert changes too (AlertEvent); `notify` gets only those."""
    from flows.rows import window_rows

    sinks = list(sinks)
    chunks = op.flat_map("split", batches, lambda item: _to_shards(item, cfg))
    partials = op.stateful_batch("shard_windows", chunks, lambda resume: _shard_logic(cfg, resume))
    by_window = op.map("key_by_window", partials, lambda kv: (str(kv[1].start), kv[1]))
    results = op.stateful_batch("merge_shards", by_window, lambda resume: MergeLogic(cfg, resume))
    if on_result is not None:
        op.output("on_result", results, CallbackSink(on_result))
    wants = {getattr(s, "wants", "tables") for s in sinks}
    if sinks:
        out = op.map("rows", results, lambda kv: (kv[0], window_rows(kv[1], source, cfg.top_n,
                                                                    "tables" in wants, "live" in wants)))
    if rules is not None:
        events = alert_pipeline(results, cfg, rules)
        if sinks:
            out = op.merge("rows_and_alerts", out, events)
        if notify is not None:
            op.output("notify", events, notify)
    for i, sink in enumerate(sinks):
        op.output(f"out{i}", out, sink)
    return results


ALERT_KEY = "alerts"      # one lifecycle for the whole flow: windows in order, on one worker


def alert_pipeline(results: Stream, cfg: WindowConfig, rules) -> Stream:
    """(key, WindowResult) -> (key, AlertEvent). Detection runs where each window was merged
    (in parallel); only its findings, a few objects, go to the one lifecycle step."""
    from flows.detect import detect

    found = op.map("detect", results, lambda kv: (ALERT_KEY, detect(kv[1], rules.rules, cfg.window_s)))
    return op.stateful_batch("alert_lifecycle", found, lambda resume: AlertLogic(rules, cfg, resume))


class AlertLogic(StatefulBatchLogic):
    """The alert lifecycle over windows' findings, in window order; its state (open alerts,
    streaks, learned baselines) is in the recovery snapshots."""

    def __init__(self, rules, cfg: WindowConfig, resume):
        from flows.alerts import AlertBook
        self.book = resume if resume is not None else AlertBook(rules, cfg.window_s)
        self.book.rules = {r.name: r for r in rules.rules}     # a restart may bring edited rules
        # resumed: the recent changes go out again (the notifiers drop what they delivered)
        self.redeliver = list(resume.recent) if resume is not None else []

    def on_batch(self, values):
        out, self.redeliver = self.redeliver, []
        for wf in sorted(values, key=lambda w: w.start):
            events = self.book.observe(wf)
            for ev in events:
                M.inc("netspectra_engine_alerts_total", change=ev.change, detector=ev.alert.detector)
            out.extend(events)
        return out, StatefulBatchLogic.RETAIN

    def notify_at(self):
        return datetime.now(timezone.utc) if self.redeliver else None

    def on_notify(self):
        out, self.redeliver = self.redeliver, []
        return out, StatefulBatchLogic.RETAIN

    def snapshot(self):
        return self.book.copy()


def _to_shards(item, cfg: WindowConfig) -> list:
    """A batch's per-shard chunks; a progress report goes to every shard."""
    if isinstance(item, Progress):
        return [(str(s), item) for s in range(cfg.shards)]
    M.inc("netspectra_engine_packets_total", len(item[1]))
    return [(str(c.shard), c) for c in split_batch(item[1], cfg, item[0])]


def _shard_logic(cfg: WindowConfig, resume: Optional[ShardState]) -> ShardLogic:
    # Bytewax builds the logic without telling it its key; the first chunk does. State built
    # before then has shard -1, which only labels log lines.
    return ShardLogic(resume.shard if resume else -1, cfg, resume)


def capture_flow(pcap: str, store: Optional[str] = None, window_s: float = WindowConfig.window_s,
                 lateness_s: float = WindowConfig.lateness_s, source_name: Optional[str] = None) -> Dataflow:
    """The offline analysis of one capture file, writing to a chDB store (for `bytewax.run`)."""
    from flows.sources import CaptureSource
    from sinks.bytewax_sinks import StoreSink

    cfg = WindowConfig(window_s=window_s, lateness_s=lateness_s)
    sinks = [StoreSink(store, source_name or pcap)] if store else []
    return build_flow(CaptureSource(pcap), cfg, sinks, source_name or pcap)
