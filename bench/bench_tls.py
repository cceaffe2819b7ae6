"""TLS hello benchmark: ClientHellos read per second by the decoder, beside tshark on the same file.

    python bench/bench_tls.py [--hellos 100000] [--runs 3]

Two captures, each the worst case for its path: every packet a ClientHello over TCP (the 67 of
tests/data's FoxIO captures, Chrome and Firefox), and every packet a client's QUIC Initial (the
21 single-packet ones of tests/data: decrypted, then read), repeated from distinct client ports.
Ours: the decoder (SNI, ALPN, versions, JA3, JA4 per hello), batches in memory, once with no
per-batch budget (the cost of a hello) and once with the default one (what a handshake flood
costs: the hellos past it are counted, not read). tshark: `-Y tls.handshake.type==1 -T fields`
with SNI and JA3, which dissects every layer (more work than ours), best of --runs.

Then the names' memory of a shard (flows/tls.py TlsMemory) at its worst: full (TLS_MEMORY_KEYS
connections), 1,000 new hellos a window and 10 remembered connections with records in it; the
time of each window close (the compiled match against the records, FlowTable.find, is left out:
it is one pass whatever the memory holds).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import dpkt  # noqa: E402

from bench.common import best_of  # noqa: E402
from collectors.capture_file import CaptureFile  # noqa: E402
from collectors.decode.decoder import TLS_HELLOS_PER_BATCH, Decoder  # noqa: E402

TCP_CAPTURES = ["foxio_tls-sni.pcapng", "foxio_tls12.pcap", "foxio_tls-non-ascii-alpn.pcapng"]
QUIC_CAPTURES = ["foxio_tls-sni.pcapng", "zeek_chromium-115.0.5790.110-api-cirrus-com.pcap"]


def payloads(names: list[str], quic: bool) -> list[bytes]:
    """The TCP payloads of the ClientHellos (or the UDP payloads of the clients' QUIC Initials,
    to port 443) in captures of tests/data."""
    out = []
    for name in names:
        with open(ROOT / "tests" / "data" / name, "rb") as f:
            reader = dpkt.pcapng.Reader(f) if name.endswith("ng") else dpkt.pcap.Reader(f)
            for _, frame in reader:
                l4 = getattr(dpkt.ethernet.Ethernet(frame).data, "data", None)
                if quic and isinstance(l4, dpkt.udp.UDP) and l4.dport == 443 and len(l4.data) >= 1200 \
                        and l4.data[0] & 0xC0 == 0xC0:
                    out.append(bytes(l4.data))
                elif not quic and isinstance(l4, dpkt.tcp.TCP) and l4.data[:1] == b"\x16" and l4.data[5:6] == b"\x01":
                    out.append(bytes(l4.data))
    return out


def write_capture(path: str, hellos: list[bytes], n: int, quic: bool) -> None:
    with open(path, "wb") as f:
        w = dpkt.pcap.Writer(f)
        for i in range(n):
            data = hellos[i % len(hellos)]
            l4 = (dpkt.udp.UDP(sport=1024 + i % 60000, dport=443, data=data) if quic else
                  dpkt.tcp.TCP(sport=1024 + i % 60000, dport=443, seq=1, flags=dpkt.tcp.TH_ACK | dpkt.tcp.TH_PUSH,
                               data=data))
            if quic:
                l4.ulen = 8 + len(data)
            ip = dpkt.ip.IP(src=(0x0A000000 + i // 60000).to_bytes(4, "big"), dst=b"\xc0\x00\x02\x01",
                            p=17 if quic else 6, data=l4)
            w.writepkt(bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, data=ip)), ts=1.7e9 + i / 1e5)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hellos", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    for quic, names in ((False, TCP_CAPTURES), (True, QUIC_CAPTURES)):
        hellos = payloads(names, quic)
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "hellos.pcap")
            write_capture(path, hellos, args.hellos, quic)
            rows = measure(path, args)
        peer = rows[-1][1] if rows[-1][0].startswith("tshark") else None
        print(f"{args.hellos:,} packets, each a {'QUIC Initial' if quic else 'TCP segment'} with a ClientHello "
              f"({len(hellos)} distinct)")
        for label, t, read in rows:
            ratio = f"  {peer / t:6.1f}x tshark" if peer else ""
            print(f"  {label:45s} {args.hellos / t:12,.0f} packets/s  {read:9,} hellos read{ratio}")
    memory()
    return 0


def memory(closes: int = 30) -> None:
    import time

    import numpy as np

    from flows import tls as T
    rng = np.random.default_rng(1)

    class Records:          # a window's records as TlsMemory reads them; 10 of them remembered
        def __len__(self):
            return 1_000_000

        def find(self, keys):
            np.ascontiguousarray(keys, np.uint64)
            out = np.full(1000, -1, np.int64)
            out[:10] = np.arange(10)
            return out

    def window(i: int):
        keys = [tuple(r) for r in rng.integers(0, 2**62, (1000, 6), dtype=np.uint64).tolist()]
        return T.TlsNames({k: (i, "a.example", "t13d", "h2") for k in keys})

    mem = T.TlsMemory()
    for i in range(T.TLS_MEMORY_KEYS // 1000 + 10):
        mem.name(Records(), window(i))
    times = []
    for i in range(closes):
        w = window(i)
        t = time.perf_counter()
        mem.name(Records(), w)
        times.append(time.perf_counter() - t)
    print(f"names' memory of a shard, full ({len(mem.names):,} keys), 1,000 new hellos a window: "
          f"{np.median(times) * 1e3:.1f} ms a window close (median of {closes}), {max(times) * 1e3:.1f} ms at most")


def measure(path: str, args) -> list[tuple[str, float, int]]:
    raws = list(CaptureFile(path).batches())

    def ours(budget: int):
        def run():
            dec = Decoder(hellos_per_batch=budget)
            for raw in raws:
                dec.decode(raw)
            run.read = args.hellos - dec.stats["tls_hellos_unread"]
        return run

    rows = []
    for label, budget in (("ours, every hello read", args.hellos),
                          (f"ours, default budget ({TLS_HELLOS_PER_BATCH:,} a batch)", TLS_HELLOS_PER_BATCH)):
        run = ours(budget)
        t = best_of(args.runs, run)
        rows.append((label, t, run.read))
    if shutil.which("tshark"):
        def tshark():
            subprocess.run(["tshark", "-r", path, "-n", "-Y", "tls.handshake.type==1", "-T", "fields",
                            "-e", "tls.handshake.extensions_server_name", "-e", "tls.handshake.ja3"],
                           capture_output=True, check=True)
        rows.append(("tshark -T fields (SNI, JA3)", best_of(args.runs, tshark), args.hellos))
    return rows


if __name__ == "__main__":
    sys.exit(main())
