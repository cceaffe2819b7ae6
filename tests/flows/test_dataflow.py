"""The Bytewax dataflow end to end: in-process (testing harness), `python -m bytewax.run` with
2 workers, and 2 processes; all equal the brute-force reference and each other."""
from __future__ import annotations

import subprocess
import sys

import pytest
from bytewax.testing import run_main

from flows.config import WindowConfig
from flows.dataflow import build_flow
from flows.sources import CaptureSource
from sinks.chdb_store import ChdbStore, address_text
from tests.conftest import ROOT, _free_ports, reference_windows, table_records
from tests.pipeline import store_records

WINDOW_S = 10


@pytest.fixture(scope="module")
def reference(synth_pcap):
    return reference_windows(synth_pcap, WINDOW_S)


@pytest.fixture(scope="module")
def in_process(synth_pcap):
    results = []
    run_main(build_flow(CaptureSource(str(synth_pcap)), WindowConfig(window_s=WINDOW_S), [], on_result=results.append))
    return results


def test_testing_harness_equals_brute_force(in_process, reference):
    assert all(r.complete for r in in_process)
    got = {}
    for r in in_process:
        assert r.start not in got, "each window is emitted once"
        got.update(table_records(r.flows))
    assert got == reference


def _bytewax_run(pcap, store, extra, **kw):
    spec = f"flows.dataflow:capture_flow({str(pcap)!r}, store={store!r}, window_s={WINDOW_S})"
    return subprocess.Popen([sys.executable, "-m", "bytewax.run", spec, *extra], cwd=ROOT, **kw)


def test_bytewax_run_with_two_workers(synth_pcap, reference, tmp_path, in_process):
    store = str(tmp_path / "store")
    p = _bytewax_run(synth_pcap, store, ["-w", "2"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 0, out
    assert store_records(store) == reference
    _same_summaries(store, in_process)


def test_two_processes(synth_pcap, reference, tmp_path, in_process):
    store = str(tmp_path / "store")
    addrs = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    args = ["-a", ";".join(addrs)]
    procs = [_bytewax_run(synth_pcap, store, ["-i", str(i), *args, "-w", "1"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) for i in range(2)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert store_records(store) == reference
    _same_summaries(store, in_process)


def _same_summaries(store, in_process):
    """Sketch results written by a multi-worker run equal the single-worker run's."""
    s = ChdbStore(store)
    hh = s.rows("SELECT toUnixTimestamp64Nano(window_start), dimension, metric, item, estimate FROM netspectra.heavy_hitters FINAL "
                "WHERE rank <= 5")
    ours = {(r.start, d, m, k, est) for r in in_process for d in ("src", "flow") for m in ("bytes",)
            for k, est, _, _ in r.heavy.top(d, m, 5)}
    assert {(int(w), d, m, k, int(e)) for w, d, m, k, e in hh if d in ("src", "flow") and m == "bytes"} == ours
    sp = s.rows(f"SELECT toUnixTimestamp64Nano(window_start), kind, {address_text('addr')}, estimate "
                "FROM netspectra.spreaders FINAL WHERE rank <= 3")
    from schemas.addresses import to_text
    ours = {(r.start, k, to_text(a), round(e, 6)) for r in in_process for k in r.spread for a, e, _, _ in r.spread[k].top(3)}
    assert {(int(w), k, a, round(float(e), 6)) for w, k, a, e in sp} == ours


def test_tls_names_through_the_dataflow_equal_the_local_pipelines():
    """The flows' TLS names (flows/tls.py) through the Bytewax dataflow (2 shards, 1 s windows:
    connections over several windows) are the local pipeline's."""
    from flows.rows import result_tables
    from tests.support import TEST_DATA, capture_windows

    path = TEST_DATA / "zeek_tls13-ech.pcap"

    def names(results):
        out = {}
        for r in results:
            t = result_tables(r, "x", 10)["flows"]
            for i, sni, ja4 in zip(range(len(t["dport"])), t["tls_sni"].tolist(), t["tls_ja4"].tolist()):
                out[(r.start, bytes(t["src"][i]), bytes(t["dst"][i]), int(t["sport"][i]), int(t["dport"][i]))] = (sni, ja4)
        return out
    results = []
    run_main(build_flow(CaptureSource(str(path), l7=True), WindowConfig(window_s=1, shards=2), [], on_result=results.append))
    got = names(results)
    assert got == names(capture_windows(path, 1, shards=2))
    assert sum(1 for v in got.values() if v[0]) >= 4         # both directions, over several windows
