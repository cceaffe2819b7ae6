"""The kernels run as plain Python (schemas/jit.py, small captures) and built ahead of time
(schemas/aot.py) with the same results as compiled by numba: the report of every public capture
up to 4 MB and of a generated mix, and every flow record of every window; numba is not even
imported by the first two. The CLI picks plain Python for a small capture only; a kernel built
ahead of time falls back to numba for arguments it was not built for, and a stale build is not used."""
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


@pytest.fixture(scope="module")
def built():
    """The kernels built ahead of time (`make kernels`; a no-op when they are fresh)."""
    got = subprocess.run([sys.executable, "-m", "schemas.aot"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert got.returncode == 0, got.stderr[-3000:]


def test_plain_python_and_ahead_of_time_kernels_give_what_numba_gives(tmp_path, built):
    mix = tmp_path / "mix.pcap"
    synth.write(str(mix), synth.SynthConfig(packets=6_000, hosts=100, vlan=0.1, ipv6=0.15, fragments=0.05,
                                            syn_flood=500, spreaders=1, spread=200, scans=1, scan_ports=100, seed=3))
    paths = [str(mix)] + sorted(str(p) for p in SHARED_PCAPS.glob("*.pcap*") if p.stat().st_size <= 4_000_000)
    python, aot, numba = _run("python", paths), _run("aot", paths), _run("numba", paths)
    assert python.pop("numba imported") is False and aot.pop("numba imported") is False
    assert numba.pop("numba imported") is True
    for path in paths:
        for other in (python, aot):
            assert other[path]["report"] == numba[path]["report"], path
            assert other[path]["records"] == numba[path]["records"], path
    assert sum(len(v["records"]) for v in numba.values()) > 6_000


@pytest.mark.parametrize("size,mode", [(1_000, "python"), (2_000_000, "compiled")])
def test_the_cli_runs_a_small_capture_as_plain_python(tmp_path, size, mode):
    """`decode` of a capture up to SMALL_CAPTURE_BYTES runs the kernels as plain Python; a larger
    one compiled (ahead of time, or by numba)."""
    from schemas.jit import SMALL_CAPTURE_BYTES
    path = tmp_path / "c.pcap"
    packets = max(1, size // 100)
    synth.write(str(path), synth.SynthConfig(packets=packets, hosts=20, seed=1))
    assert (path.stat().st_size <= SMALL_CAPTURE_BYTES) == (mode == "python")
    env = {k: v for k, v in os.environ.items() if k != "NETSPECTRA_JIT"}
    code = ("import sys; from netspectra.cli import main; main(['decode', '--summary', sys.argv[1]]); "
            "import schemas.jit; print(schemas.jit._python)")
    got = subprocess.run([sys.executable, "-c", code, str(path)], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert got.returncode == 0, got.stderr[-2000:]
    assert got.stdout.strip().splitlines()[-1] == str(mode == "python")


def test_a_kernel_built_ahead_of_time_falls_back_to_numba_for_other_arguments(built):
    """_select is built for int64 and uint64 arrays: a float64 or a strided array goes to numba
    (the built code would crash on it), with the same answers."""
    code = ("import sys, numpy as np; from flows.table import _select; a = np.array([5., 1., 4., 2.]); "
            "u = np.arange(10, dtype=np.uint64)[::-1]; built = 'numba' not in sys.modules; "
            "print(_select(np.arange(9)[::-1].copy(), 2), _select(u.copy(), 3), built, "
            "_select(a, 1), _select(u[::2], 0), 'numba' in sys.modules)")
    env = {**os.environ, "NETSPECTRA_JIT": "aot"}
    got = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert got.returncode == 0, got.stderr[-2000:]
    assert got.stdout.split() == ["2", "3", "True", "2.0", "1", "True"]


def test_a_stale_build_is_not_used(built):
    """Kernels edited since the build (another source hash): numba compiles them; forcing the
    build then fails with one line that names the fix."""
    code = ("import schemas.jit as j; j.source_hash = lambda: 1; print(j.aot_module()); "
            "from flows.table import _select; print(type(_select).__name__)")
    env = {k: v for k, v in os.environ.items() if k != "NETSPECTRA_JIT"}
    got = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert got.returncode == 0, got.stderr[-2000:]
    assert got.stdout.split() == ["None", "CPUDispatcher"]
    got = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**env, "NETSPECTRA_JIT": "aot"},
                         capture_output=True, text=True, timeout=300)
    assert got.returncode == 1 and "stale: run `make kernels`" in got.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("signature,specs", [
    ("UniTuple(i8, 3)(u1[::1], i8, b1, u8[:, ::1])", (("uint8", 1, True), "int", "bool", ("uint64", 2, True))),
    ("void(u8[::1], u8[:], u8[::1])", (("uint64", 1, True), ("uint64", 1, False), ("uint64", 1, True))),
    ("Tuple((i8, i8[::1]))(u8[::1], i8)", (("uint64", 1, True), "int")),
])
def test_signatures_read_as_argument_checks(signature, specs):
    from schemas.jit import arg_specs
    assert arg_specs(signature) == specs
