"""Capture readers: formats, byte orders, resolutions, interfaces, truncation, garbage."""
from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from collectors.capture_file import CaptureFile, CaptureFormatError
from tests.conftest import SHARED, shared_pcap


@pytest.mark.parametrize("row", SHARED, ids=[r["file"] for r in SHARED])
def test_shared_capture_packet_counts(row):
    cap = CaptureFile(str(shared_pcap(row["file"])))
    assert sum(len(b) for b in cap.batches()) == int(row["packets"])
    assert cap.stats.corrupt is False


def test_truncated_file_yields_complete_packets_and_reports():
    cap = CaptureFile(str(shared_pcap("suricata_http-mime-truncated_cutshort.pcap")))
    assert sum(len(b) for b in cap.batches()) == 2696
    assert cap.stats.truncated and cap.stats.errors["truncated_file"] == 1


def test_nanosecond_big_endian_timestamps():
    cap = CaptureFile(str(shared_pcap("ppp_nanosecs_big_endian.pcap")))
    ts = np.concatenate([b.ts_ns for b in cap.batches()])
    assert ts.shape == (10,)
    assert (ts % 1000 != 0).any()          # sub-microsecond digits survive
    assert 1e18 < ts[0] < 2e18


def test_pcapng_interfaces_keep_their_own_link_type_and_resolution():
    cap = CaptureFile(str(shared_pcap("ppp_pcapng-example_2if_snaplen.pcapng")))
    batches = list(cap.batches())
    link = np.concatenate([b.link for b in batches])
    iface = np.concatenate([b.iface for b in batches])
    assert dict(zip(*np.unique(iface, return_counts=True))) == {0: 59, 1: 100}
    assert set(link[iface == 0]) == {1} and set(link[iface == 1]) == {113}
    caplen = np.concatenate([b.caplen for b in batches])
    wirelen = np.concatenate([b.wirelen for b in batches])
    assert (caplen < wirelen).sum() == 39      # snaplen-truncated frames are kept


def test_format_is_sniffed_not_taken_from_the_extension():
    cap = CaptureFile(str(shared_pcap("stopddos_amp.UDP.bacnet.IOT.37810.pcapng")))
    assert cap.stats.format == "pcap"
    assert sum(len(b) for b in cap.batches()) == 9617


def test_not_a_capture(tmp_path):
    p = tmp_path / "x.pcap"
    p.write_bytes(b"hello world, not a capture")
    with pytest.raises(CaptureFormatError):
        CaptureFile(str(p))
    p.write_bytes(b"")
    with pytest.raises(CaptureFormatError):
        CaptureFile(str(p))


def _pcap(records: list[bytes], big=False, nanos=False, link=1) -> bytes:
    e = ">" if big else "<"
    magic = 0xA1B23C4D if nanos else 0xA1B2C3D4
    out = struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, 65535, link)
    for i, r in enumerate(records):
        out += struct.pack(e + "IIII", 1000 + i, 7, len(r), len(r)) + r
    return out


@pytest.mark.parametrize("big", [False, True])
@pytest.mark.parametrize("nanos", [False, True])
def test_classic_pcap_byte_orders_and_resolutions(tmp_path, big, nanos):
    p = tmp_path / "t.pcap"
    p.write_bytes(_pcap([b"\x00" * 60, b"\x01" * 10], big=big, nanos=nanos))
    b = next(CaptureFile(str(p)).batches())
    assert b.caplen.tolist() == [60, 10]
    assert b.ts_ns[0] == 1000 * 10**9 + (7 if nanos else 7000)


def test_giant_record_stops_with_corrupt_flag(tmp_path):
    data = _pcap([b"\x00" * 60])
    data += struct.pack("<IIII", 1, 0, 10**9, 10**9)
    p = tmp_path / "g.pcap"
    p.write_bytes(data)
    cap = CaptureFile(str(p))
    assert sum(len(b) for b in cap.batches()) == 1
    assert cap.stats.corrupt and cap.stats.errors["corrupt_record_header"] == 1


@settings(max_examples=60, deadline=None)
@given(cut=st.integers(min_value=0, max_value=400), sizes=st.lists(st.integers(0, 120), min_size=1, max_size=6))
def test_any_truncation_point_yields_the_complete_records(tmp_path_factory, cut, sizes):
    data = _pcap([bytes([i]) * s for i, s in enumerate(sizes)])
    data = data[:max(24, len(data) - cut)]
    p = tmp_path_factory.mktemp("cut") / "c.pcap"
    p.write_bytes(data)
    cap = CaptureFile(str(p))
    n = sum(len(b) for b in cap.batches())
    complete, pos = 0, 24
    for s in sizes:
        if pos + 16 + s > len(data):
            break
        complete += 1
        pos += 16 + s
    assert n == complete
    assert cap.stats.truncated == (pos != len(data))


@settings(max_examples=100, deadline=None)
@given(body=st.binary(min_size=0, max_size=600))
def test_random_pcapng_bodies_never_raise(tmp_path_factory, body):
    shb = struct.pack("<IIIHHq", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1) + struct.pack("<I", 28)
    idb = struct.pack("<IIHHI", 1, 20, 1, 0, 0) + struct.pack("<I", 20)
    p = tmp_path_factory.mktemp("ng") / "r.pcapng"
    p.write_bytes(shb + idb + body)
    cap = CaptureFile(str(p))
    total = 0
    for b in cap.batches():
        assert (b.off + b.caplen <= len(cap.buf)).all()
        total += len(b)
    assert total == cap.stats.packets                  # every record counted is handed over


@settings(max_examples=60, deadline=None)
@given(skipped=st.lists(st.tuples(st.integers(0x100, 0xFFFF), st.binary(max_size=64)), max_size=5),
       payload=st.binary(min_size=1, max_size=200))
def test_blocks_of_unknown_types_are_skipped_and_the_packet_after_them_read(tmp_path_factory, skipped, payload):
    """Well-formed pcapng blocks of types the reader does not know are stepped over: the enhanced
    packet block after them is read, byte for byte."""
    def block(btype: int, body: bytes) -> bytes:
        body += b"\0" * (-len(body) % 4)
        return struct.pack("<II", btype, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))
    shb = struct.pack("<IIIHHq", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1) + struct.pack("<I", 28)
    idb = block(1, struct.pack("<HHI", 1, 0, 0))
    epb = block(6, struct.pack("<IIIII", 0, 0, 1_000_000, len(payload), len(payload)) + payload)
    p = tmp_path_factory.mktemp("ng") / "k.pcapng"
    p.write_bytes(shb + idb + b"".join(block(t, b) for t, b in skipped) + epb)
    cap = CaptureFile(str(p))
    batches = list(cap.batches())
    assert sum(len(b) for b in batches) == 1 and not cap.stats.corrupt and not cap.stats.truncated
    b = batches[0]
    assert bytes(cap.buf[b.off[0]:b.off[0] + b.caplen[0]]) == payload
