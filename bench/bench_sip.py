"""SIP benchmark: messages per second read by the decoder and joined into calls, beside tshark.

    python bench/bench_sip.py [--messages 100000] [--runs 3]

The worst case for the SIP path: every packet a SIP message on port 5060 over UDP (the 86
messages of tests/data's Zeek captures, requests and responses), each repeated with a Call-ID of
its own (a scanner's or an INVITE flood's shape: every message a new call). Ours: the decoder
(method, status, Call-ID, From, To per message), batches in memory, with L7 off (the packets
only), every message read, and with the default budget (SIP_MESSAGES_PER_BATCH: what a flood
costs, the messages past it counted, not read); then the calls of the decoded batches (flows/sip.py SipCalls.from_batch, one window).
tshark: `-Y sip -T fields` with the same five fields, which dissects every layer (more work than
ours), best of --runs.
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
import numpy as np  # noqa: E402

from bench.common import best_of  # noqa: E402
from collectors.capture_file import CaptureFile  # noqa: E402
from collectors.decode import decoder as D  # noqa: E402
from collectors.decode.decoder import SIP_MESSAGES_PER_BATCH, Decoder  # noqa: E402
from collectors.decode.sip import _HEADER  # noqa: E402
from flows.sip import SipCalls  # noqa: E402

CAPTURES = sorted((ROOT / "tests" / "data").glob("zeek_sip*.pcap"))


def messages() -> list[bytes]:
    """The UDP payloads to or from port 5060 in the SIP captures of tests/data."""
    out = []
    for path in CAPTURES:
        with open(path, "rb") as f:
            for _, frame in dpkt.pcap.Reader(f):
                ip = dpkt.ethernet.Ethernet(frame).data
                if isinstance(ip, dpkt.ip.IP) and isinstance(ip.data, dpkt.udp.UDP) and 5060 in (ip.data.sport, ip.data.dport):
                    out.append(bytes(ip.data.data))
    return out


def write_capture(path: str, msgs: list[bytes], n: int) -> None:
    """n messages, the i-th with its Call-ID made unique (suffix i), from distinct client ports."""
    with open(path, "wb") as f:
        w = dpkt.pcap.Writer(f)
        for i in range(n):
            data = _HEADER.sub(lambda m: m.group(0) + f"-{i}".encode() if m.group(1).lower() in (b"call-id", b"i")
                               else m.group(0), msgs[i % len(msgs)], count=0)
            udp = dpkt.udp.UDP(sport=1024 + i % 60000, dport=5060, data=data)
            udp.ulen = 8 + len(data)
            ip = dpkt.ip.IP(src=(0x0A000000 + i // 60000).to_bytes(4, "big"), dst=b"\xc0\x00\x02\x01", p=17, data=udp)
            w.writepkt(bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, data=ip)), ts=1.7e9 + i / 1e5)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    msgs = messages()
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "sip.pcap")
        write_capture(path, msgs, args.messages)
        raws = list(CaptureFile(path).batches())
        rows = [("decoder, L7 off", best_of(args.runs, lambda: [Decoder(l7=False).decode(r) for r in raws]))]
        for label, budget in (("decoder, every message read", args.messages),
                              (f"decoder, default budget ({SIP_MESSAGES_PER_BATCH:,} a batch)", SIP_MESSAGES_PER_BATCH)):
            D.SIP_MESSAGES_PER_BATCH = budget
            rows.append((label, best_of(args.runs, lambda: [Decoder().decode(r) for r in raws])))
        D.SIP_MESSAGES_PER_BATCH = args.messages
        batches = [Decoder().decode(r) for r in raws]
        calls = [0]

        def join():
            parts = [SipCalls.from_batch(b, np.zeros(len(b.ts_ns), np.int64), [0]).get(0) for b in batches]
            calls[0] = len(SipCalls.combine(parts))
        rows.append(("calls joined (flows/sip.py), decoded batches", best_of(args.runs, join)))
        if shutil.which("tshark"):
            def tshark():
                subprocess.run(["tshark", "-r", path, "-n", "-Y", "sip", "-T", "fields", "-e", "sip.Method",
                                "-e", "sip.Status-Code", "-e", "sip.Call-ID", "-e", "sip.from.addr", "-e", "sip.to.addr"],
                               capture_output=True, check=True)
            rows.append(("tshark -T fields (the same five)", best_of(args.runs, tshark)))
    peer = rows[-1][1] if rows[-1][0].startswith("tshark") else None
    print(f"{args.messages:,} packets, each a SIP message over UDP ({len(msgs)} distinct, each a Call-ID of its own); "
          f"{calls[0]:,} calls")
    for label, t in rows:
        ratio = f"  {peer / t:6.1f}x tshark" if peer else ""
        print(f"  {label:48s} {args.messages / t:12,.0f} messages/s  {t * 1e6 / args.messages:6.2f} us each{ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
