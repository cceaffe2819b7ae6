"""Shared by the benchmarks: the generated capture and timing helpers."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

from collectors import synth

BENCH_CONFIG = dict(hosts=5000, heavy_hitters=10, spreaders=2, spread=5000, scans=1, scan_ports=1000)


def bench_capture(directory: str, packets: int, sizes: str = "imix", flood: float = 0.0) -> str:
    """The generated benchmark capture (written once, then reused). `flood`: the share of its
    packets that are a spoofed SYN flood, one packet per flow (attack-shaped traffic)."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"bench_{packets}_{sizes}" + (f"_flood{flood}" if flood else "") + ".pcap")
    if not os.path.exists(path):
        t = time.perf_counter()
        synth.write(path, synth.SynthConfig(packets=packets, sizes=sizes, syn_flood=int(packets * flood), **BENCH_CONFIG))
        print(f"generated {path} in {time.perf_counter() - t:.1f} s")
    return path


def vxlan_capture(path: str, vni: int = 4242) -> str:
    """`path`'s frames, each inside VXLAN (outer Ethernet, IPv4, UDP to 4789 from a port per
    frame, VNI `vni`): the same traffic as 100% tunnel traffic. Written once beside it."""
    import struct

    from collectors.capture_file import CaptureFile
    out = path.replace(".pcap", f"_vxlan{vni}.pcap")
    if os.path.exists(out):
        return out
    eth = b"\x02\0\0\0\0\x01" + b"\x02\0\0\0\0\x02" + b"\x08\x00"
    vxlan = struct.pack("!BBHI", 0x08, 0, 0, vni << 8)
    with open(out + ".tmp", "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, 1))     # nanosecond pcap, Ethernet
        i = 0
        for raw in CaptureFile(path).batches():
            buf = raw.buf
            for off, cap, wire, ts in zip(raw.off.tolist(), raw.caplen.tolist(), raw.wirelen.tolist(),
                                          raw.ts_ns.tolist()):
                n = wire + 36                  # outer IPv4 + UDP + VXLAN around the frame
                ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, n, 0, 0, 64, 17, 0, bytes([10, 255, 0, 1]),
                                 bytes([10, 255, 0, 2]))
                udp = struct.pack("!HHHH", 49152 + (i & 0x3FFF), 4789, n - 20, 0)
                rec = eth + ip + udp + vxlan + bytes(buf[off:off + cap])
                f.write(struct.pack("<IIII", ts // 10**9, ts % 10**9, len(rec), wire + 50) + rec)
                i += 1
    os.replace(out + ".tmp", out)
    return out


def warm_page_cache(path: str) -> None:
    """Read a file once so a timed run finds it in the page cache (as the best-of-N runs do)."""
    with open(path, "rb") as f:
        while f.read(16 << 20):
            pass


def best_of(runs: int, fn):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


# Runs a command and writes its wall and CPU seconds, peak RSS and exit code to a file. A child's
# peak RSS (ru_maxrss) counts the memory of the process it was forked from: forked from a
# benchmark holding a generated capture (2 GB), every tool would "peak" at 2 GB. This small process
# forks it instead (its own ~10 MB is the floor).
_LAUNCHER = """
import json, os, sys, time
t = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, ru = os.wait4(pid, 0)
wall = time.perf_counter() - t
with open(sys.argv[1], "w") as f:
    json.dump([wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss * 1024, os.waitstatus_to_exitcode(status)], f)
"""


def run_measured(cmd: list[str], **kw) -> tuple[float, float, int, str]:
    """Wall seconds, CPU seconds (user + system), peak RSS (bytes) and stdout of a child process."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err, \
            tempfile.NamedTemporaryFile("r", suffix=".json") as measured:
        subprocess.run([sys.executable, "-c", _LAUNCHER, measured.name, *cmd], stdout=out, stderr=err, text=True,
                       check=True, **kw)
        wall, cpu, rss, code = json.load(measured)
        out.seek(0)
        err.seek(0)
        if code != 0:
            raise RuntimeError(f"{cmd[0]} failed ({code}): {err.read()[-2000:]}")
        return wall, cpu, rss, out.read()


def nfdump_run(path: str) -> tuple[float, float, int]:
    """The peer: `nfpcapd -r` (flow records to files) then `nfdump` top talkers. Wall, CPU, RSS."""
    with tempfile.TemporaryDirectory() as d:
        w1, c1, m1, _ = run_measured(["nfpcapd", "-r", path, "-w", d, "-e", "3600,3600", "-t", "86400"])
        w2, c2, m2, _ = run_measured(["nfdump", "-R", d, "-s", "srcip/bytes", "-n", "10", "-q"])
        return w1 + w2, c1 + c2, max(m1, m2)
