"""Decode benchmark: reader + decoder throughput on a generated capture, beside nfpcapd and tshark.

    python bench/bench_decode.py [--packets 2000000] [--sizes full|imix|small] [--no-tshark] [--vxlan]

Prints packets/s for the record walker alone, for the numpy decode step alone (batches
already read), for reader + decoder end to end, and for `nfpcapd -r` and `tshark` on the same
file, with the ratios. All figures are single-process wall time after a warm-up run (numba's
compiled walkers are cached, the file is in the page cache); the peers run right after ours so
the ratio holds on a noisy machine.

The peers do different work, and the table says so: ours is decode only (columns in memory);
`nfpcapd -r` also aggregates flows and writes flow files (more work than ours), and includes its
start-up; tshark dissects every layer (far more work) and is timed, best of --runs after a
warm-up, on its first TSHARK_PACKETS packets and scaled to the file.

--vxlan adds the same traffic with every frame inside VXLAN (bench/common.py vxlan_capture): our
decoder and tshark on it, the tunnel taken out (the inner addresses and ports decoded).
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import best_of, bench_capture, vxlan_capture  # noqa: E402
from collectors import synth  # noqa: E402
from collectors.capture_file import CaptureFile  # noqa: E402
from collectors.decode.decoder import Decoder  # noqa: E402


TSHARK_PACKETS = 200_000


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--packets", type=int, default=2_000_000)
    ap.add_argument("--sizes", default="full", choices=sorted(synth.FRAME_SIZES))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-tshark", action="store_true")
    ap.add_argument("--vxlan", action="store_true", help="also the same traffic, every frame inside VXLAN")
    ap.add_argument("--dir", default=str(Path(__file__).resolve().parent / "out"))
    args = ap.parse_args()
    path = bench_capture(args.dir, args.packets, args.sizes)
    size = os.path.getsize(path)
    n = sum(len(b) for b in CaptureFile(path).batches())   # warm-up: page cache + numba cache
    print(f"capture: {n:,} packets, {size / 1e6:,.0f} MB, frames '{args.sizes}'")

    def walk():
        for _ in CaptureFile(path).batches():
            pass

    def full():
        dec = Decoder()
        for raw in CaptureFile(path).batches():
            dec.decode(raw)

    raws = list(CaptureFile(path).batches())

    def decode_only(l7: bool = True):
        dec = Decoder(l7=l7)
        for raw in raws:
            dec.decode(raw)

    rows = []
    t_walk = best_of(args.runs, walk)
    rows.append(("reader (numba record walk)", t_walk))
    t_dec = best_of(args.runs, decode_only)
    rows.append(("decoder (numpy columns, batches in memory)", t_dec))
    # what finding and reading L7 costs (none of this traffic holds any: the scan's cost alone)
    rows.append(("decoder without L7 (Decoder(l7=False))", best_of(args.runs, lambda: decode_only(False))))
    t_full = best_of(args.runs, full)
    rows.append(("reader + decoder", t_full))
    if args.vxlan:
        vpath = vxlan_capture(path)
        raws = list(CaptureFile(vpath).batches())
        rows.append(("decoder, every frame in VXLAN (batches in memory)", best_of(args.runs, decode_only)))

        def full_vxlan():
            dec = Decoder()
            for raw in CaptureFile(vpath).batches():
                dec.decode(raw)
        t_vxlan = best_of(args.runs, full_vxlan)
        rows.append(("reader + decoder, every frame in VXLAN", t_vxlan))

    peers = {}
    if shutil.which("nfpcapd"):
        def nfpcapd():
            with tempfile.TemporaryDirectory() as d:
                subprocess.run(["nfpcapd", "-r", path, "-w", d, "-e", "3600,3600", "-t", "86400"],
                               capture_output=True, check=True)
        peers["nfpcapd -r (decode + flows + files)"] = best_of(args.runs, nfpcapd)
    else:
        print("nfpcapd: not installed, no row")
    if shutil.which("tshark") and not args.no_tshark:
        # tshark needs minutes for millions of packets: time it on the first TSHARK_PACKETS and scale.
        def tshark(p=path):
            subprocess.run(["tshark", "-r", p, "-c", str(TSHARK_PACKETS), "-n", "-T", "fields", "-e", "ip.src", "-e", "ip.dst", "-e", "ip.proto",
                            "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "udp.srcport", "-e", "udp.dstport",
                            "-e", "ip.len"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        tshark()                                                   # warm-up (page cache, plugins)
        peers[f"tshark -T fields (first {TSHARK_PACKETS:,}, scaled)"] = best_of(args.runs, tshark) * n / min(n, TSHARK_PACKETS)
        if args.vxlan:
            tshark(vpath)
            t = best_of(args.runs, lambda: tshark(vpath)) * n / min(n, TSHARK_PACKETS)
            print(f"ratio reader+decoder vs tshark, every frame in VXLAN: {t / t_vxlan:.2f}x "
                  f"(tshark {n / t / 1e6:.2f} Mpkt/s)")
    elif not args.no_tshark:
        print("tshark: not installed, no row")

    print(f"\n{'stage':48} {'seconds':>8} {'Mpkt/s':>8} {'ns/pkt':>8}")
    for name, t in rows + list(peers.items()):
        print(f"{name:48} {t:8.3f} {n / t / 1e6:8.2f} {t / n * 1e9:8.0f}")
    for name, t in peers.items():
        print(f"ratio reader+decoder vs {name}: {t / t_full:.2f}x")
    if args.vxlan:
        print(f"VXLAN against plain frames, reader + decoder: {t_full / t_vxlan:.2f}x the packets/s")
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB "
          f"(includes the {len(raws)} batches held for the decoder-only stage; the capture is memory-mapped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
