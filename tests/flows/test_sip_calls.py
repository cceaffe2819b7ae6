"""SIP calls per window (flows/sip.py, the sip_calls table): per Call-ID, equal to tshark's
messages joined as the module documents (tests/conftest.py tshark_sip_calls) on every public
capture with SIP, whatever the batches and shards, through the wire format too; the cap and
messages without a Call-ID are counted."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from collectors.capture_file import CaptureFile
from collectors.decode.decoder import Decoder
from flows import sip as S
from flows.config import WindowConfig
from flows.rows import result_tables
from flows.window import LocalPipeline
from schemas.addresses import to_text
from schemas.packet_batch import PacketBatch
from tests.conftest import SHARED_PCAPS, tshark_sip_calls

DATA = Path(__file__).resolve().parent.parent / "data"
CAPTURES = [DATA / p.name for p in sorted(DATA.glob("zeek_sip*.pcap"))] + [
    SHARED_PCAPS / "stopddos_amp.dns.RRSIG.fragmented.pcap"]       # one SIP REGISTER among DNS
WINDOW_S = 60


def _windows(path, batch: int = 4096, shards: int = 2, wire: bool = False) -> list:
    pipe, dec, out = LocalPipeline(WindowConfig(window_s=WINDOW_S, shards=shards)), Decoder(), []
    for raw in CaptureFile(str(path), batch).batches():
        b = dec.decode(raw)
        out += pipe.feed(PacketBatch.from_bytes(b.to_bytes()) if wire else b)
    return out + pipe.flush()


def _ours(results) -> dict[tuple[int, str], tuple]:
    """(window start ns, Call-ID) -> the sip_calls row, as tshark_sip_calls gives it."""
    out = {}
    for r in results:
        t = result_tables(r, "s", 10)["sip_calls"]
        for i, cid in enumerate(t["call_id"]):
            out[(r.start, cid)] = (t["method"][i], t["from_uri"][i], t["to_uri"][i], to_text(bytes(t["src"][i])),
                                   to_text(bytes(t["dst"][i])), int(t["first_seen"][i]), int(t["last_seen"][i]),
                                   int(t["requests"][i]), int(t["responses"][i]), int(t["status"][i]))
    return out


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_calls_per_window_match_tshark(path):
    if not path.exists():
        pytest.skip(f"public capture {path.name} not present (../shared/pcaps)")
    theirs = tshark_sip_calls(path, WINDOW_S)
    assert _ours(_windows(path)) == theirs


def test_any_batches_shards_and_the_wire_give_the_same_calls():
    """The wireshark capture's calls span windows, REGISTER refreshes reuse one Call-ID and the
    From changes under it: one message a batch, one shard, through the wire, all equal."""
    path = DATA / "zeek_sip_wireshark.pcap"
    want = _ours(_windows(path))
    assert len(want) == 18 and {k[1] for k in want} == {c for _, c in tshark_sip_calls(path)}
    assert _ours(_windows(path, batch=1, shards=1)) == want
    assert _ours(_windows(path, batch=7, wire=True)) == want


def test_table_columns_sorted_with_times_of_none_zero():
    r = next(r for r in _windows(DATA / "zeek_sip_wireshark.pcap") if r.sip and len(r.sip) == 2)
    t = result_tables(r, "s", 10)["sip_calls"]
    assert t["call_id"] == sorted(t["call_id"]) and t["source"] == ["s", "s"]
    only = next(r for r in _windows(DATA / "zeek_sip_wireshark.pcap")
                if r.sip and any(v[2] == S._NO_FINAL for v in r.sip.calls.values()))
    t = result_tables(only, "s", 10)["sip_calls"]
    assert t["status"].tolist() == [0] and t["status_seen"].tolist() == [0] and t["method"] == ["INVITE"]


def test_past_max_calls_and_without_call_id_are_counted(monkeypatch):
    monkeypatch.setattr(S, "MAX_CALLS", 1)
    rs = [r for r in _windows(DATA / "zeek_sip_wireshark.pcap") if r.sip and len(r.sip.calls) + r.sip.dropped > 1]
    assert rs and all(len(r.sip) == 1 and r.sip.dropped > 0 for r in rs)
    rows = result_tables(rs[0], "s", 10)["window_counters"]
    got = dict(zip(rows["name"], rows["packets"].tolist()))
    assert got["sip_calls_dropped"] == rs[0].sip.dropped
    # the junk capture's REGISTER has no Call-ID tshark reads: counted, not a call
    r = next(r for r in _windows(DATA / "zeek_sip_junk-before-request.pcap") if r.sip is not None)
    assert len(r.sip) == 0 and r.sip.no_call_id == 1


def test_a_batch_without_sip_columns_has_no_calls():
    """A wire message of a version before SIP (no sip_* columns) reads as no calls."""
    from schemas.packet_batch import L7Table

    class B:
        l7 = L7Table(row=np.array([0], np.int32), dns_qname=["x"])
    assert S.SipCalls.from_batch(B, np.zeros(1, np.int64), [0]) == {}
