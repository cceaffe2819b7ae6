"""Packet-batch wire format: lossless round trip, versioned, corrupt input rejected cleanly."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from collectors.capture_file import CaptureFile
from collectors.decode.decoder import Decoder
from schemas.packet_batch import DENSE_COLUMNS, PacketBatch, WireFormatError, concat


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


@settings(max_examples=100, deadline=None)
@given(pos=st.integers(0, 10_000), val=st.integers(0, 255))
def test_corrupted_message_is_rejected_or_parses(batch, pos, val):
    data = bytearray(batch.to_bytes())
    data[pos % len(data)] ^= val or 1
    try:
        PacketBatch.from_bytes(bytes(data))
    except WireFormatError:
        pass


def test_other_version_rejected(batch):
    data = bytearray(batch.to_bytes())
    data[4] = 99
    with pytest.raises(WireFormatError, match="version"):
        PacketBatch.from_bytes(bytes(data))
