"""The kernels run as plain Python (schemas/jit.py, small captures) with the same results as
compiled by numba: the report of every public capture up to 4 MB and of a generated mix, and
every flow record of every window; numba is not even imported. And the CLI picks plain Python
for a small capture only."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from collectors import synth
from tests.conftest import ROOT, SHARED_PCAPS

# Run in a child per mode (the mode is set before the kernels are imported): every capture's
# report (without timings) and its windows' flow records, sorted, as JSON on stdout.
_CHILD = r"""
import dataclasses, json, sys
from flows.analysis import run_analysis
from flows.capture_reader import CaptureReader
from flows.config import WindowConfig
from flows.window import LocalPipeline
out = {}
for path in sys.argv[1:]:
    rep = run_analysis(path, WindowConfig(window_s=10), None).report
    for k in ("seconds", "memory_mb"):
        rep.pop(k, None)
    pipe = LocalPipeline(WindowConfig(window_s=10))
    records = []
    for r in [r for b in CaptureReader(path) for r in pipe.feed(b)] + pipe.flush():
        cols = [getattr(r.flows, f.name) for f in dataclasses.fields(r.flows)]
        rows = zip(*[[bytes(x) if getattr(x, "ndim", 0) else x.item() for x in c] for c in cols])
        records += [[r.start] + [v.hex() if isinstance(v, bytes) else v for v in row] for row in rows]
    out[path] = {"report": rep, "records": sorted(records)}
out["numba imported"] = "numba" in sys.modules
print(json.dumps(out, default=str))
"""


def _run(mode: str, paths: list[str]) -> dict:
    env = {**os.environ, "NETSPECTRA_JIT": mode}
    got = subprocess.run([sys.executable, "-c", _CHILD, *paths], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=600)
    assert got.returncode == 0, got.stderr[-3000:]
    return json.loads(got.stdout)


def test_plain_python_kernels_give_what_numba_gives(tmp_path):
    mix = tmp_path / "mix.pcap"
    synth.write(str(mix), synth.SynthConfig(packets=6_000, hosts=100, vlan=0.1, ipv6=0.15, fragments=0.05,
                                            syn_flood=500, spreaders=1, spread=200, scans=1, scan_ports=100, seed=3))
    paths = [str(mix)] + sorted(str(p) for p in SHARED_PCAPS.glob("*.pcap*") if p.stat().st_size <= 4_000_000)
    python, numba = _run("python", paths), _run("numba", paths)
    assert python.pop("numba imported") is False and numba.pop("numba imported") is True
    for path in paths:
        assert python[path]["report"] == numba[path]["report"], path
        assert python[path]["records"] == numba[path]["records"], path
    assert sum(len(v["records"]) for v in numba.values()) > 6_000


@pytest.mark.parametrize("size,mode", [(1_000, "python"), (2_000_000, "numba")])
def test_the_cli_runs_a_small_capture_without_numba(tmp_path, size, mode):
    """`decode` of a capture up to SMALL_CAPTURE_BYTES skips numba; a larger one compiles."""
    from schemas.jit import SMALL_CAPTURE_BYTES
    path = tmp_path / "c.pcap"
    packets = max(1, size // 100)
    synth.write(str(path), synth.SynthConfig(packets=packets, hosts=20, seed=1))
    assert (path.stat().st_size <= SMALL_CAPTURE_BYTES) == (mode == "python")
    env = {k: v for k, v in os.environ.items() if k != "NETSPECTRA_JIT"}
    code = ("import sys; from netspectra.cli import main; main(['decode', '--summary', sys.argv[1]]); "
            "print('numba' in sys.modules)")
    got = subprocess.run([sys.executable, "-c", code, str(path)], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert got.returncode == 0, got.stderr[-2000:]
    assert got.stdout.strip().splitlines()[-1] == str(mode == "numba")
