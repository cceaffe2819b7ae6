"""The compiled fast path gives exactly the reference decoder's columns, on every public capture,
on generated traffic and on fuzzed frames."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from collectors.capture_file import CaptureFile
from collectors.decode.decoder import Decoder
from collectors.raw_batch import RawBatch
from schemas.packet_batch import DENSE_COLUMNS
from tests.conftest import SHARED_NAMES, shared_pcap


def reference(dec: Decoder, raw: RawBatch):
    return dec._decode(raw)        # the column-wise decoder alone


def assert_same(a, b):
    for name in DENSE_COLUMNS:
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


def compare_file(path, batch_size=4096):
    fast, ref = Decoder(l7=False), Decoder(l7=False)
    fast_rows = 0
    for raw in CaptureFile(str(path), batch_size).batches():
        a, b = fast.decode(raw), reference(ref, raw)
        assert_same(a, b)
        fast_rows += len(raw)
    assert fast.stats == ref.stats
    return fast_rows


@pytest.mark.parametrize("name", SHARED_NAMES)
def test_public_captures(name):
    compare_file(shared_pcap(name))


def test_generated_mix(synth_pcap):
    assert compare_file(synth_pcap) >= 60_000


@st.composite
def frames(draw):
    """Ethernet frames around the fast path's edges: tags, IPv4/IPv6 headers, cut anywhere."""
    eth = bytes(12) + draw(st.sampled_from([b"\x08\x00", b"\x86\xdd", b"\x81\x00", b"\x88\xa8", b"\x08\x06"]))
    if eth[12:] in (b"\x81\x00", b"\x88\xa8"):
        eth += draw(st.binary(min_size=2, max_size=2)) + draw(st.sampled_from([b"\x08\x00", b"\x86\xdd", b"\x81\x00"]))
    if draw(st.booleans()):
        ihl = draw(st.sampled_from([5, 5, 6, 4]))
        tot = draw(st.integers(0, 1600))
        fo = draw(st.sampled_from([0, 0, 0x4000, 0x2000, 0x0001]))
        ip = bytes([0x40 | ihl, 0]) + tot.to_bytes(2, "big") + b"\x00\x01" + fo.to_bytes(2, "big") + \
            bytes([64, draw(st.sampled_from([6, 17, 1, 47, 132]))]) + bytes(2) + draw(st.binary(min_size=8, max_size=8))
    else:
        plen = draw(st.integers(0, 1600))
        ip = b"\x60" + bytes(3) + plen.to_bytes(2, "big") + bytes([draw(st.sampled_from([6, 17, 58, 0, 44, 43, 60])), 64]) \
            + draw(st.binary(min_size=32, max_size=32))
    frame = eth + ip + draw(st.binary(min_size=0, max_size=40))
    return frame[:draw(st.integers(0, len(frame)))] if draw(st.booleans()) else frame


@settings(max_examples=300, deadline=None)
@given(st.lists(frames(), min_size=1, max_size=30))
def test_fuzzed_frames(fs):
    raw = RawBatch.from_frames(fs, 1)
    a, b = Decoder(l7=False).decode(raw), reference(Decoder(l7=False), raw)
    assert_same(a, b)
