"""The analysis of one capture file: the window pipeline in this process, window results into a
chDB store when one is given, alerts, and the report (`netspectra analyze`, the API's IngestCapture)."""
from __future__ import annotations

import time
from dataclasses import dataclass

from flows.config import WindowConfig
from flows.summary import CaptureSummary


@dataclass
class AnalysisRun:
    summary: CaptureSummary
    report: dict
    seconds: float
    store: str


def run_analysis(pcap: str, cfg: WindowConfig, store: str | None, workers: int = 1, on_progress=None,
                 top: int = 10, export: str | None = None, rules=None, rollups: bool = False,
                 decap=None) -> AnalysisRun:
    """The window stages over one capture; window results into the chDB `store` when one is given
    (with no store, chDB is not even imported: the report needs only the summary). One worker
    runs the stages in this thread (flows.window.LocalPipeline, no Bytewax to start); more run
    the Bytewax dataflow with that many worker threads. Results are the same either way.
    `on_progress` gets the reader's stats (flows.capture_reader.SourceStats) as it goes.
    `rollups`: also keep the store's roll-ups (sinks/rollups.py; off: a capture's range is short).
    `decap`: the tunnels taken out (collectors/decode/tunnels.py Decap; default all)."""
    from collectors.capture_file import sniff_format
    sniff_format(pcap)     # not a capture: CaptureFormatError here, not deep inside a worker
    summary = CaptureSummary(cfg, rules)
    t = time.perf_counter()
    # L7 decoding only for what needs it: the flows' TLS names and DNS names for the store,
    # DNS counts for dns_anomaly
    l7 = True if store else "dns" if any(r.detector == "dns_anomaly" for r in summary.alerts.rules.rules) else False
    st = (_run_local if workers <= 1 else _run_bytewax)(pcap, cfg, store, workers, summary, on_progress, l7, rollups,
                                                        decap)
    seconds = time.perf_counter() - t
    src_errors = dict(st.reader.get("errors", {}))
    if st.decoder.get("l4_truncated"):       # a decoder finding that is not a packet status
        src_errors["l4_truncated"] = st.decoder["l4_truncated"]
    report = {"source": pcap, **summary.report(top, src_errors), "seconds": round(seconds, 3),
              "capture_format": st.reader.get("format"), "truncated_file": bool(st.reader.get("truncated")),
              "corrupt_file": bool(st.reader.get("corrupt")), "memory_mb": _memory_mb()}
    if store:
        from sinks.chdb_store import ChdbStore
        ChdbStore(store).write_alerts(summary.alerts.alerts(), pcap)
    if export:
        from sinks.chdb_store import ChdbStore
        ChdbStore(store).export(export, source=pcap)
    return AnalysisRun(summary, report, seconds, store)


STORE_BUFFER_ROWS = 1_000_000       # flow rows per chDB write (an INSERT costs ~10 ms whatever its size)


def _run_local(pcap, cfg, store, workers, summary, on_progress, l7=False, rollups=False, decap=None):
    from flows.capture_reader import CaptureReader
    from flows.rows import window_rows
    from flows.window import LocalPipeline

    reader = CaptureReader(pcap, l7=l7, on_progress=on_progress, decap=decap)
    pipe = LocalPipeline(cfg)
    db = None
    if store:
        from sinks.chdb_store import ChdbStore
        db = ChdbStore(store, rollups=rollups)
    pending: list = []

    def emit(results, end=False):
        for r in results:
            summary.add(r)
        if db is not None:
            pending.extend(window_rows(r, pcap, cfg.top_n) for r in results)
            if pending and (end or sum(w.flow_rows for w in pending) >= STORE_BUFFER_ROWS):
                db.write(pending)
                pending.clear()

    for batch in reader:
        emit(pipe.feed(batch))
    emit(pipe.flush(), end=True)
    if db is not None:
        db.finish()
    return reader.stats


def _run_bytewax(pcap, cfg, store, workers, summary, on_progress, l7=False, rollups=False, decap=None):
    from bytewax.testing import cluster_main

    from flows.dataflow import build_flow
    from flows.sources import CaptureSource
    from sinks.bytewax_sinks import StoreSink

    source = CaptureSource(pcap, l7=l7, on_progress=on_progress, decap=decap)
    sinks = [StoreSink(store, pcap, buffer_rows=STORE_BUFFER_ROWS, rollups=rollups)] if store else []
    cluster_main(build_flow(source, cfg, sinks, pcap, on_result=summary.add), [], 0, worker_count_per_proc=workers)
    return source.stats


def _memory_mb() -> dict:
    """Peak RSS, and the anonymous part now: the mapped capture file counts in RSS but is page cache."""
    import resource
    out = {"peak_rss": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    try:
        for line in open("/proc/self/status"):
            if line.startswith(("RssAnon:", "RssFile:")):
                out[line.split(":")[0].lower()] = round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return out
