"""End-to-end benchmark of `netspectra analyze` beside nfpcapd + nfdump and pmacctd.

For each capture (a generated 2M-packet IMIX capture, the same with 90% and with 75% of its
packets a spoofed SYN flood of one-packet flows (1.1 and 1.3 packets a flow), and
../shared/pcaps/merged_public_large_162k.pcap when present) it runs, interleaved and best of --runs:
  - `netspectra analyze FILE --window W --json` (one worker, no store: the report);
  - `nfpcapd -r FILE` (flow export to files) then `nfdump -R DIR -s srcip/bytes` (top talkers);
  - `pmacctd` reading FILE, aggregating per 5-tuple with the print plugin.
Start-up is measured the same way for every tool: its wall time on a 1,000-packet capture (for
us: interpreter, imports and the kernels built ahead of time, as for a large capture: schemas/aot.py). Every tool gets a row with and without its own
start-up, and its CPU time; ratios are given all three ways (pmacctd's wall time is mostly its
own waiting, so its CPU ratio is the fair one). A peer that is not installed is said so, not
left out silently. Peak RSS is each child's maxrss. Then a small capture
(../shared/pcaps/ppp_DnsPackets.pcap, 464 packets) against `tshark -r FILE -q -z conv,ip`, paired
runs, median of --runs + 2: start-up is all there is to it. The project's modules are compiled to
bytecode first, as pip leaves an installed package (an editable install is not compiled, and with
PYTHONDONTWRITEBYTECODE set, as on this machine, every run would compile them again: ~40 ms), and
the kernels are built ahead of time (`make kernels`; --jit numba measures numba compiling them
from its cache at run time instead: ~0.35 s more).

    python bench/bench_analyze.py [--packets 2000000] [--runs 3] [--window 10] [--no-pmacct]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import bench_capture, nfdump_run, run_measured  # noqa: E402
from collectors import synth  # noqa: E402
from schemas.jit import JIT_ENV  # noqa: E402

SHARED_LARGE = ROOT.parent / "shared" / "pcaps" / "merged_public_large_162k.pcap"


WINDOW = 10.0
JIT = "aot"


def analyze_cmd(path: str, window: float | None = None) -> list[str]:
    window = WINDOW if window is None else window
    return [sys.executable, "-m", "netspectra.cli", "analyze", path, "--window", str(window), "--json"]


def pmacct_cmd(path: str, work: str) -> list[str]:
    conf = os.path.join(work, "pmacctd.conf")
    with open(conf, "w") as f:
        f.write(f"daemonize: false\npcap_savefile: {path}\naggregate: src_host, dst_host, src_port, dst_port, proto\n"
                f"plugins: print\nprint_output: csv\nprint_output_file: {work}/out.csv\nprint_refresh_time: 3600\n"
                "print_cache_entries: 262147\n")
    return ["pmacctd", "-f", conf]


PEERS = {"nfpcapd -r + nfdump": ("nfpcapd", "nfdump"), "pmacctd": ("pmacctd",)}


def run_tool(name: str, path: str, compiled: bool = False) -> tuple[float, float, int, str]:
    """(wall s, CPU s, peak RSS bytes, stdout) of one tool on one capture. `compiled`: our
    kernels compiled even for a small capture (the start-up a large one pays)."""
    if name == "netspectra analyze":
        env = {**os.environ, JIT_ENV: JIT} if compiled or JIT == "numba" else None
        return run_measured(analyze_cmd(path), cwd=ROOT, env=env)
    if name == "nfpcapd -r + nfdump":
        return (*nfdump_run(path), "")
    with tempfile.TemporaryDirectory() as d:
        return run_measured(pmacct_cmd(path, d))


def tools(pmacct: bool = True) -> list[str]:
    out = ["netspectra analyze"]
    for name, commands in PEERS.items():
        if name == "pmacctd" and not pmacct:
            continue
        missing = [c for c in commands if not shutil.which(c)]
        if missing:
            print(f"  {name}: not installed ({', '.join(missing)}), no row")
        else:
            out.append(name)
    return out


def startups(names: list[str], tiny: str, runs: int) -> dict[str, float]:
    return {n: min(run_tool(n, tiny, compiled=True)[0] for _ in range(runs)) for n in names}


def bench_file(path: str, runs: int, startup: dict[str, float]) -> None:
    best: dict[str, tuple[float, float, int]] = {}
    report = None
    for _ in range(runs):                   # interleaved: each round runs every tool once
        for name in startup:
            wall, cpu, rss, out = run_tool(name, path)
            if name == "netspectra analyze":
                report = json.loads(out)
            if name not in best or wall < best[name][0]:
                best[name] = (wall, cpu, rss)
    frames = report["frames"]
    ours = best["netspectra analyze"]
    ours_net = max(ours[0] - startup["netspectra analyze"], 1e-9)
    print(f"\n{path}: {frames:,} packets, {os.path.getsize(path) / 1e6:,.0f} MB, {report['flows']:,} flows")
    print(f"  {'tool':24} {'wall s':>7} {'-start s':>8} {'cpu s':>7} {'pkts/s':>9} {'-start':>9} {'peak RSS':>9}"
          f"   ratios peer/ours: wall, wall-start, cpu")
    for name, (wall, cpu, rss) in best.items():
        net = max(wall - startup[name], 1e-9)
        row = (f"  {name:24} {wall:7.2f} {net:8.2f} {cpu:7.2f} {frames / wall / 1e6:7.2f} M {frames / net / 1e6:7.2f} M"
               f" {rss / 2**20:6.0f} MB")
        if name != "netspectra analyze":
            row += f"   {wall / ours[0]:.2f}x, {net / ours_net:.2f}x, {cpu / ours[1]:.2f}x"
        print(row)
    m = report["memory_mb"]
    print(f"  (ours at exit: RSS {m.get('rssanon', 0):.0f} MB anonymous + {m.get('rssfile', 0):.0f} MB mapped files)")


SMALL = ROOT.parent / "shared" / "pcaps" / "ppp_DnsPackets.pcap"


def small_vs_tshark(runs: int) -> None:
    if not SMALL.exists() or not shutil.which("tshark"):
        print(f"\nsmall capture vs tshark: {'tshark not installed' if SMALL.exists() else f'{SMALL} missing'}, no row")
        return
    ours, theirs = [], []
    for _ in range(runs):                   # paired: each round runs both
        ours.append(run_measured(analyze_cmd(str(SMALL)), cwd=ROOT)[0])
        theirs.append(run_measured(["tshark", "-r", str(SMALL), "-q", "-z", "conv,ip"])[0])
    o, t = sorted(ours)[len(ours) // 2], sorted(theirs)[len(theirs) // 2]
    print(f"\n{SMALL.name}: analyze median {o:.2f} s, tshark -q -z conv,ip median {t:.2f} s: ours {o / t:.2f}x tshark's"
          " (the kernels as plain Python: schemas/jit.py)")


def compile_bytecode() -> None:
    """The project's sources compiled to __pycache__ (see the module's doc)."""
    import compileall
    import re
    compileall.compile_dir(str(ROOT), quiet=1, rx=re.compile(r"/(\.venv|\.git|bench/out)/"))


def main() -> int:
    global WINDOW, JIT
    ap = argparse.ArgumentParser()
    ap.add_argument("--packets", type=int, default=2_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--window", type=float, default=WINDOW, help="analyze --window (0: one window)")
    ap.add_argument("--no-pmacct", action="store_true", help="leave out pmacctd (75 s a run on 2M packets)")
    ap.add_argument("--dir", default=str(ROOT / "bench" / "out"))
    ap.add_argument("--jit", choices=("aot", "numba"), default="aot",
                    help="the kernels built ahead of time (schemas/aot.py) or compiled by numba at run time")
    args = ap.parse_args()
    WINDOW, JIT = args.window, args.jit
    compile_bytecode()
    if JIT == "aot":                 # in a child: the build compiles the kernels' modules with numba
        subprocess.run([sys.executable, "-m", "schemas.aot"], cwd=ROOT, check=True)
    tiny = os.path.join(args.dir, "startup_1000.pcap")
    os.makedirs(args.dir, exist_ok=True)
    if not os.path.exists(tiny):
        synth.write(tiny, synth.SynthConfig(packets=1000, hosts=50, spread=50, scan_ports=50))
    startup = startups(tools(not args.no_pmacct), tiny, args.runs)
    print("start-up (each tool on a 1,000-packet capture): "
          + ", ".join(f"{n} {s:.2f} s" for n, s in startup.items()))
    bench_file(bench_capture(args.dir, args.packets, "imix"), args.runs, startup)
    bench_file(bench_capture(args.dir, args.packets, "imix", 0.9), args.runs, startup)
    bench_file(bench_capture(args.dir, args.packets, "imix", 0.75), args.runs, startup)   # 1.3 packets a flow
    if SHARED_LARGE.exists():
        bench_file(str(SHARED_LARGE), args.runs, startup)
    small_vs_tshark(args.runs + 2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
