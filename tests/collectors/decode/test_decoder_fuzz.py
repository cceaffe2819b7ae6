"""Property tests: random bytes and mutated real frames never make the decoder raise or read
outside a frame, and decoded fields stay within their definitions."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

from collectors import protocols as P
from collectors.capture_file import CaptureFile
from collectors.decode.decoder import Decoder
from collectors.raw_batch import RawBatch
from schemas.packet_batch import STATUS_NAMES, PacketBatch

LINKS = st.sampled_from([P.LINK_ETHERNET, P.LINK_RAW, P.LINK_RAW_BSD, P.LINK_LINUX_SLL, P.LINK_LINUX_SLL2,
                         P.LINK_NULL, P.LINK_LOOP, 147])


def _check(batch: PacketBatch, raw: RawBatch):
    assert len(batch) == len(raw)
    assert set(np.unique(batch.status).tolist()) <= set(STATUS_NAMES)
    ok = batch.status == 0
    assert (batch.ip_ver[ok] > 0).all() and (batch.ip_ver[~ok] == 0).all()
    assert (batch.vlan_depth <= 3).all()
    assert all(0 <= r < len(batch) for r in batch.l7.row)
    PacketBatch.from_bytes(batch.to_bytes())   # every decoded batch serialises


@settings(max_examples=300, deadline=None)
@given(frames=st.lists(st.binary(max_size=200), min_size=1, max_size=20), link=LINKS)
def test_random_frames(frames, link):
    raw = RawBatch.from_frames(frames, link)
    _check(Decoder().decode(raw), raw)
    _check(Decoder(l7=False).decode(raw), raw)     # the compiled fast path too


def _real_frames():
    from tests.conftest import SHARED_PCAPS
    frames = []
    for name in ("ppp_many-protocols.pcap", "suricata_ipv6-exthdr-dos_denial6-6.pcap", "zeek_vlan-qinqinq.pcap",
                 "ppp_ip-frag.pcap", "ppp_DnsPackets.pcap", "zeek_http-methods.pcap"):
        path = SHARED_PCAPS / name
        if path.exists():
            b = next(CaptureFile(str(path)).batches())
            for i in range(0, len(b), max(len(b) // 40, 1)):
                frames.append(bytes(b.buf[b.off[i]:b.off[i] + b.caplen[i]]))
    if not frames:  # without the public captures, mutate generated traffic
        import tempfile
        from collectors import synth
        with tempfile.TemporaryDirectory() as d:
            path = f"{d}/g.pcap"
            synth.write(path, synth.SynthConfig(packets=200, vlan=0.3, ipv6=0.3, fragments=0.3))
            for b in CaptureFile(path).batches():
                frames += [bytes(b.buf[o:o + c]) for o, c in zip(b.off.tolist(), b.caplen.tolist())]
    return frames


REAL = _real_frames()


@settings(max_examples=400, deadline=None)
@given(idx=st.integers(0, len(REAL) - 1), cut=st.integers(0, 1600),
       flips=st.lists(st.tuples(st.integers(0, 120), st.integers(0, 255)), max_size=6))
def test_mutated_real_frames(idx, cut, flips):
    frame = bytearray(REAL[idx][:cut])
    for pos, val in flips:
        if pos < len(frame):
            frame[pos] = val
    raw = RawBatch.from_frames([bytes(frame), REAL[idx]], P.LINK_ETHERNET)
    b = Decoder().decode(raw)
    _check(b, raw)
    # the unmutated copy decodes as it does alone
    alone = Decoder().decode(RawBatch.from_frames([REAL[idx]], P.LINK_ETHERNET))
    assert b.status[1] == alone.status[0] and b.ip_len[1] == alone.ip_len[0]
