"""The synthetic generator writes what it says it planted."""
from __future__ import annotations

import json

import numpy as np

from collectors import synth
from collectors.capture_file import CaptureFile
from collectors.decode.decoder import Decoder
from schemas.addresses import column_to_text, from_text
from schemas.packet_batch import concat


def test_planted_patterns_decode_as_planted(synth_pcap):
    truth = json.loads(open(str(synth_pcap) + ".truth.json").read())
    dec = Decoder()
    b = concat([dec.decode(r) for r in CaptureFile(str(synth_pcap)).batches()])
    assert len(b) == truth["packets"] and (b.status == 0).all()
    assert dec.stats["fragment_without_first"] == 0 and (b.frag > 0).any()
    assert (b.vlan > 0).any() and (b.ip_ver == 6).any()
    for s in truth["super_spreaders"]:
        rows = (b.src == np.frombuffer(from_text(s["src"]), np.uint8)).all(axis=1)
        assert len(set(column_to_text(b.dst[rows]))) == s["distinct_dsts"]
    victim = truth["fan_in"][0]
    rows = (b.dst == np.frombuffer(from_text(victim["dst"]), np.uint8)).all(axis=1)
    assert len(set(column_to_text(b.src[rows]))) == victim["distinct_srcs"]
    assert (np.diff(b.ts_ns) >= 0).all()


def test_full_size_frames(tmp_path):
    p = tmp_path / "f.pcap"
    synth.write(str(p), synth.SynthConfig(packets=2000, sizes="full", spreaders=0, scans=0, heavy_hitters=0))
    raw = next(CaptureFile(str(p)).batches())
    assert (raw.caplen == 1514).all()
