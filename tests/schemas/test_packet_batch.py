"""Packet-batch wire format: lossless round trip, versioned, corrupt input rejected cleanly."""
from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from collectors.capture_file import CaptureFile
from collectors.decode.decoder import Decoder
from schemas.packet_batch import DENSE_COLUMNS, PacketBatch, TunnelTable, WireFormatError, concat
from tests.support import TEST_DATA, TUNNEL_CAPTURES


@pytest.fixture(scope="module")
def batch(synth_pcap):
    return Decoder().decode(next(CaptureFile(str(synth_pcap), batch_size=5000).batches()))


def _same(a: PacketBatch, b: PacketBatch):
    for name in DENSE_COLUMNS:
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
        assert getattr(a, name).dtype == getattr(b, name).dtype, name
    assert a.l7.row.tolist() == b.l7.row.tolist()
    for c in a.l7.value_columns():
        assert getattr(a.l7, c) == getattr(b.l7, c), c
    for f in fields(TunnelTable):
        assert np.array_equal(getattr(a.tunnels, f.name), getattr(b.tunnels, f.name)), f.name


def test_roundtrip(batch):
    _same(batch, PacketBatch.from_bytes(batch.to_bytes()))


def test_roundtrip_with_l7():
    from tests.conftest import shared_pcap
    b = Decoder().decode(next(CaptureFile(str(shared_pcap("ppp_DnsPackets.pcap"))).batches()))
    assert len(b.l7) > 0
    _same(b, PacketBatch.from_bytes(b.to_bytes()))


def test_compact(batch):
    assert len(batch.to_bytes()) < 20 * len(batch)   # bytes per packet on the wire (raw columns are 64)


def test_take_and_concat(batch):
    rows = np.arange(0, len(batch), 3)
    part = batch.take(rows)
    assert len(part) == len(rows)
    _same(concat([batch.take(np.arange(0, 100)), batch.take(np.arange(100, len(batch)))]), batch)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=200))
def test_garbage_is_rejected(data):
    with pytest.raises(WireFormatError):
        PacketBatch.from_bytes(data)


@pytest.fixture(scope="module")
def tunnelled():
    """Every tunnel capture's packets in one batch: a message with a tunnel table."""
    return concat([Decoder().decode(raw) for n in TUNNEL_CAPTURES for raw in CaptureFile(str(TEST_DATA / n)).batches()])


@settings(max_examples=100, deadline=None)
@given(pos=st.integers(0, 10_000), val=st.integers(0, 255), tunnels=st.booleans())
def test_a_corrupted_message_is_rejected_never_parsed_into_other_packets(batch, tunnelled, pos, val, tunnels):
    if tunnels:
        batch = tunnelled
    data = bytearray(batch.to_bytes())
    data[pos % len(data)] ^= val or 1
    try:
        got = PacketBatch.from_bytes(bytes(data))
    except WireFormatError:
        return
    _same(batch, got)           # a flip that changes nothing (e.g. in padding) may parse


def test_other_version_rejected(batch):
    data = bytearray(batch.to_bytes())
    data[4] = 99
    with pytest.raises(WireFormatError, match="version"):
        PacketBatch.from_bytes(bytes(data))


def test_versions_1_and_2_messages_still_read(batch):
    """Version 1: no outer zstd frame, Arrow's per-buffer zstd inside the IPC streams.
    Version 2: the zstd frame without the crc32 of version 3."""
    import pyarrow as pa
    from schemas.packet_batch import _CRC, _HEADER, _TUNNEL_LEN

    v7 = batch.to_bytes()
    magic, _, flags, n, dense_len, l7_len = _HEADER.unpack_from(v7, 0)
    assert _TUNNEL_LEN.unpack_from(v7, _HEADER.size) == (0,)       # no tunnels
    frame = v7[_HEADER.size + _TUNNEL_LEN.size + _CRC.size:]
    _same(batch, PacketBatch.from_bytes(_HEADER.pack(magic, 2, flags, n, dense_len, l7_len) + frame))
    plain = pa.Codec("zstd").decompress(frame, decompressed_size=dense_len + l7_len, asbytes=True)

    def recompress(ipc: bytes) -> bytes:
        rb = next(iter(pa.ipc.open_stream(ipc)))
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, rb.schema, options=pa.ipc.IpcWriteOptions(compression="zstd")) as w:
            w.write_batch(rb)
        return sink.getvalue().to_pybytes()

    dense = recompress(plain[:dense_len])
    l7 = recompress(plain[dense_len:]) if l7_len else b""
    v1 = _HEADER.pack(magic, 1, flags, n, len(dense), len(l7)) + dense + l7
    _same(batch, PacketBatch.from_bytes(v1))


def _older_message(b: PacketBatch, version: int, dropped: list[str]) -> bytes:
    """`b` as a writer of `version` (3-6) sent it: the same message without the L7 columns it
    lacked, and without the tunnel table (version 7)."""
    import pyarrow as pa
    import zlib
    from schemas.packet_batch import _CRC, _HEADER, _TUNNEL_LEN

    new = b.to_bytes()
    magic, _, flags, n, dense_len, l7_len = _HEADER.unpack_from(new, 0)
    (tun_len,) = _TUNNEL_LEN.unpack_from(new, _HEADER.size)
    codec = pa.Codec("zstd")
    plain = codec.decompress(new[_HEADER.size + _TUNNEL_LEN.size + _CRC.size:],
                             decompressed_size=dense_len + l7_len + tun_len, asbytes=True)[:dense_len + l7_len]
    l7 = next(iter(pa.ipc.open_stream(plain[dense_len:]))).drop_columns(dropped)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, l7.schema) as w:
        w.write_batch(l7)
    old_l7 = sink.getvalue().to_pybytes()
    body = codec.compress(plain[:dense_len] + old_l7, asbytes=True)
    head = _HEADER.pack(magic, version, flags, n, dense_len, len(old_l7))
    return head + _CRC.pack(zlib.crc32(body, zlib.crc32(head))) + body


TLS_COLUMNS = ["tls_hello", "tls_version", "tls_sni", "tls_alpn", "tls_cipher", "tls_ja3", "tls_ja4"]
SIP_COLUMNS = ["sip_method", "sip_status", "sip_call_id", "sip_from", "sip_to"]


def test_a_version_3_message_reads_without_dns_answers():
    """Version 3 carried no dns_answers: its L7 rows read with none (None), all else as sent."""
    from tests.conftest import shared_pcap

    b = Decoder().decode(next(CaptureFile(str(shared_pcap("ppp_DnsPackets.pcap"))).batches()))
    assert any(b.l7.dns_answers)
    got = PacketBatch.from_bytes(_older_message(b, 3, ["dns_answers"] + TLS_COLUMNS + SIP_COLUMNS))
    assert got.l7.dns_answers == [None] * len(b.l7)
    b.l7.dns_answers = [None] * len(b.l7)
    _same(b, got)


def _tls_batch() -> PacketBatch:
    b = Decoder().decode(next(CaptureFile(str(TEST_DATA / "foxio_tls-sni.pcapng")).batches()))
    assert sum(h != -1 for h in b.l7.tls_hello) == 84 and any(b.l7.tls_alpn)      # 64 over TCP, 20 over QUIC
    return b


def test_roundtrip_with_tls_hellos():
    b = _tls_batch()
    _same(b, PacketBatch.from_bytes(b.to_bytes()))


def test_a_version_4_message_reads_without_tls_fields():
    """Version 4 carried no tls_*: its L7 rows read with none (-1 / None), all else as sent."""
    b = _tls_batch()
    got = PacketBatch.from_bytes(_older_message(b, 4, TLS_COLUMNS + SIP_COLUMNS))
    for c in TLS_COLUMNS:
        setattr(b.l7, c, [-1 if c in ("tls_hello", "tls_version", "tls_cipher") else None] * len(b.l7))
    _same(b, got)


def test_sip_rows_round_trip_and_a_version_5_message_reads_without_them():
    """Version 5 carried no sip_*: its L7 rows read with none (-1 / None), all else as sent."""
    b = Decoder().decode(next(CaptureFile(str(TEST_DATA / "zeek_sip_wireshark.pcap")).batches()))
    assert sum(m is not None for m in b.l7.sip_method) == 47 and sum(s != -1 for s in b.l7.sip_status) == 34
    _same(b, PacketBatch.from_bytes(b.to_bytes()))
    got = PacketBatch.from_bytes(_older_message(b, 5, SIP_COLUMNS))
    for c in SIP_COLUMNS:
        setattr(b.l7, c, [-1 if c == "sip_status" else None] * len(b.l7))
    _same(b, got)


def test_a_version_6_message_reads_without_tunnels():
    """Version 6 had no tunnel table: its packets read as sent, with no envelopes."""
    b = Decoder().decode(next(CaptureFile(str(TEST_DATA / "zeek_tun_vxlan-encapsulated-http.pcap")).batches()))
    assert len(b.tunnels) == 12
    _same(b, PacketBatch.from_bytes(b.to_bytes()))
    got = PacketBatch.from_bytes(_older_message(b, 6, []))
    assert len(got.tunnels) == 0
    b.tunnels = got.tunnels
    _same(b, got)


def test_a_null_dns_record_is_left_out_not_the_message():
    """A writer's null record inside dns_answers costs that record, not the batch's packets."""
    from schemas.packet_batch import L7Table
    from tests.support import batch as udp_batch
    b = udp_batch([1.0, 2.0])
    b.l7 = L7Table(row=np.array([1], np.int32), dns_qname=["a.example"], dns_qtype=[1], dns_rcode=[0],
                   dns_response=[True], dns_answers=[[None, ("a.example", 1, "192.0.2.1")]], http_method=[None],
                   http_host=[None], http_path=[None], http_status=[-1], tls_hello=[-1], tls_version=[-1],
                   tls_sni=[None], tls_alpn=[None], tls_cipher=[-1], tls_ja3=[None], tls_ja4=[None], sip_method=[None],
                   sip_status=[-1], sip_call_id=[None], sip_from=[None], sip_to=[None])
    got = PacketBatch.from_bytes(b.to_bytes())
    assert got.l7.dns_answers == [[("a.example", 1, "192.0.2.1")]] and len(got) == 2
