"""End-to-end benchmark of `netspectra analyze` beside nfpcapd + nfdump and pmacctd.

For each capture (a generated 2M-packet IMIX capture, and ../shared/pcaps/merged_public_large_162k.pcap
when present) it runs, interleaved and best of --runs:
  - `netspectra analyze FILE --window 0 --json` (Bytewax dataflow + chDB store, one worker);
  - `nfpcapd -r FILE` (flow export to files) then `nfdump -R DIR -s srcip/bytes` (top talkers);
  - `pmacctd` reading FILE, aggregating per 5-tuple with the print plugin.
Start-up (interpreter, imports, JIT cache, chDB) is the time `analyze` takes on a 1,000-packet
capture; end-to-end packets/s = packets / (wall - start-up). Peak RSS is each child's maxrss.

    python bench/bench_analyze.py [--packets 2000000] [--runs 3]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import bench_capture, nfdump_run, run_measured  # noqa: E402
from collectors import synth  # noqa: E402

SHARED_LARGE = ROOT.parent / "shared" / "pcaps" / "merged_public_large_162k.pcap"


def analyze_cmd(path: str, window: float = 0) -> list[str]:
    return [sys.executable, "-m", "netspectra.cli", "analyze", path, "--window", str(window), "--json"]


def pmacct_cmd(path: str, work: str) -> list[str]:
    conf = os.path.join(work, "pmacctd.conf")
    with open(conf, "w") as f:
        f.write(f"daemonize: false\npcap_savefile: {path}\naggregate: src_host, dst_host, src_port, dst_port, proto\n"
                f"plugins: print\nprint_output: csv\nprint_output_file: {work}/out.csv\nprint_refresh_time: 3600\n"
                "print_cache_entries: 262147\n")
    return ["pmacctd", "-f", conf]


def bench_file(path: str, runs: int, startup: float) -> None:
    best: dict[str, tuple[float, float, int]] = {}
    report = None

    def keep(name, wall, cpu, rss):
        if name not in best or wall < best[name][0]:
            best[name] = (wall, cpu, rss)
    for _ in range(runs):
        wall, cpu, rss, out = run_measured(analyze_cmd(path), cwd=ROOT)
        report = json.loads(out)
        keep("netspectra analyze", wall, cpu, rss)
        if shutil.which("nfpcapd") and shutil.which("nfdump"):
            keep("nfpcapd -r + nfdump", *nfdump_run(path))
        if shutil.which("pmacctd"):
            with tempfile.TemporaryDirectory() as d:
                wall, cpu, rss, _ = run_measured(pmacct_cmd(path, d))
                keep("pmacctd", wall, cpu, rss)
    frames = report["frames"]
    ours = best["netspectra analyze"][0]
    print(f"\n{path}: {frames:,} packets, {os.path.getsize(path) / 1e6:,.0f} MB, {report['flows']:,} flows")
    print(f"  {'tool':24} {'wall s':>7} {'cpu s':>7} {'pkts/s':>10} {'peak RSS':>9}  ratio: peer wall / ours")
    for name, (wall, cpu, rss) in best.items():
        row = f"  {name:24} {wall:7.2f} {cpu:7.2f} {frames / wall / 1e6:8.2f} M {rss / 2**20:6.0f} MB"
        if name == "netspectra analyze":
            net = max(wall - startup, 1e-9)
            print(row)
            m = report["memory_mb"]
            print(f"  {'  minus start-up':24} {net:7.2f} {'':7} {frames / net / 1e6:8.2f} M   (at exit: RSS "
                  f"{m.get('rssanon', 0):.0f} MB anonymous + {m.get('rssfile', 0):.0f} MB mapped files)")
        else:
            print(f"{row}  {wall / ours:.2f}x, {wall / max(ours - startup, 1e-9):.2f}x without our start-up")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--packets", type=int, default=2_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", default=str(ROOT / "bench" / "out"))
    args = ap.parse_args()
    path = bench_capture(args.dir, args.packets, "imix")
    tiny = os.path.join(args.dir, "startup_1000.pcap")
    if not os.path.exists(tiny):
        synth.write(tiny, synth.SynthConfig(packets=1000, hosts=50, spread=50, scan_ports=50))
    startup = min(run_measured(analyze_cmd(tiny), cwd=ROOT)[0] for _ in range(args.runs))
    print(f"start-up (analyze of a 1,000-packet capture): {startup:.2f} s")
    bench_file(path, args.runs, startup)
    if SHARED_LARGE.exists():
        bench_file(str(SHARED_LARGE), args.runs, startup)
    return 0


if __name__ == "__main__":
    sys.exit(main())
