"""SIP (collectors/decode/sip.py): method, status code, Call-ID, From and To equal tshark's
(`sip.Method`, `sip.Status-Code`, `sip.Call-ID`, `sip.from.addr`, `sip.to.addr`) frame by frame
on the public captures with SIP; the parser never raises on any bytes; the decoder reads SIP on
its port over UDP and TCP, and only there."""
from __future__ import annotations

from pathlib import Path

import dpkt
import pytest
from hypothesis import given, settings, strategies as st

from collectors.capture_file import CaptureFile
from collectors.decode.decoder import Decoder
from collectors.decode.sip import SipInfo, parse_sip
from tests.conftest import SHARED_PCAPS, tshark_fields

DATA = Path(__file__).resolve().parent.parent.parent / "data"
CAPTURES = [DATA / p.name for p in sorted(DATA.glob("zeek_sip*.pcap"))]
SHARED = ["stopddos_amp.dns.RRSIG.fragmented.pcap"]        # one SIP REGISTER among its packets


def _ours(path) -> dict[int, tuple]:
    """frame number -> (method, status, call id, from, to) of the decoder's SIP rows."""
    out, first = {}, 1
    dec = Decoder()
    for raw in CaptureFile(str(path), 4096).batches():
        t = dec.decode(raw).l7
        for i, row in enumerate(t.row.tolist()):
            if t.sip_method[i] is not None or t.sip_status[i] != -1:
                out[first + row] = (t.sip_method[i] or "", t.sip_status[i], t.sip_call_id[i] or "", t.sip_from[i] or "",
                                    t.sip_to[i] or "")
        first += len(raw.off)
    return out


def _theirs(path) -> dict[int, tuple]:
    return {int(fr): (m, int(st) if st else -1, cid, fa, ta) for fr, m, st, cid, fa, ta in tshark_fields(
        path, "sip", "frame.number", "sip.Method", "sip.Status-Code", "sip.Call-ID", "sip.from.addr", "sip.to.addr")}


@pytest.mark.parametrize("path", CAPTURES + [SHARED_PCAPS / n for n in SHARED], ids=lambda p: p.name)
def test_sip_fields_match_tshark(path):
    if not path.exists():
        pytest.skip(f"public capture {path.name} not present (../shared/pcaps)")
    theirs = _theirs(path)
    assert theirs, "a capture with SIP"
    assert _ours(path) == theirs


_TOKEN = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-.!%*_+~", min_size=1, max_size=12)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["INVITE", "ACK", "BYE", "REGISTER", "OPTIONS", "CANCEL", "MESSAGE"]), _TOKEN, _TOKEN, _TOKEN,
       st.booleans(), st.booleans(), st.sampled_from(["\r\n", "\n"]))
def test_built_requests_read_back(method, user, host, call, compact, display, eol):
    """Long and compact header names in any case, display names and angle brackets or bare URIs
    with parameters: the URI is the address; the first header of a kind wins."""
    frm = f'"Al {user}" <sip:{user}@{host}>;tag=1' if display else f"sip:{user}@{host};tag=1"
    names = ("i", "f", "t") if compact else ("cAll-iD", "From", "TO")
    msg = (f"{method} sip:{user}@{host} SIP/2.0{eol}Via: SIP/2.0/UDP {host}{eol}{names[1]} :  {frm}{eol}"
           f"{names[2]}: <sip:b@{host}>{eol}{names[0]}: {call}@{host}{eol}Call-ID: later{eol}{eol}i: body").encode()
    assert parse_sip(msg) == SipInfo(method, -1, f"{call}@{host}", f"sip:{user}@{host}", f"sip:b@{host}")
    assert parse_sip(f"SIP/2.0 486 Busy Here{eol}{eol}".encode()) == SipInfo(None, 486, None, None, None)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_raise(data):
    parse_sip(data)
    parse_sip(b"INVITE sip:a@b SIP/2.0\r\n" + data)
    parse_sip(b"SIP/2.0 200 OK\r\nFrom: " + data)


def _frame(proto: int, sport: int, dport: int, payload: bytes) -> bytes:
    l4 = (dpkt.udp.UDP(sport=sport, dport=dport, data=payload) if proto == 17 else
          dpkt.tcp.TCP(sport=sport, dport=dport, flags=dpkt.tcp.TH_ACK | dpkt.tcp.TH_PUSH, data=payload))
    ip = dpkt.ip.IP(src=b"\x0a\x00\x00\x01", dst=b"\x0a\x00\x00\x02", p=proto, data=l4)
    return bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, data=ip))


def test_the_decoder_reads_sip_on_its_port_over_udp_and_tcp_only(tmp_path):
    invite = b"INVITE sip:b@x SIP/2.0\r\nCall-ID: c1\r\nf: <sip:a@x>\r\nt: sip:b@x\r\n\r\n"
    options = b"OPTIONS sip:b@x SIP/2.0\r\nCall-ID: c2\r\n\r\n"      # OPTIONS is an HTTP method too
    path = tmp_path / "sip.pcap"
    with open(path, "wb") as f:
        w = dpkt.pcap.Writer(f)
        for i, frame in enumerate([_frame(17, 5060, 5060, invite), _frame(6, 40000, 5060, options),
                                   _frame(6, 40000, 8080, options), _frame(17, 40000, 40001, invite)]):
            w.writepkt(frame, ts=1.0 + i)
    assert _ours(path) == {1: ("INVITE", -1, "c1", "sip:a@x", "sip:b@x"), 2: ("OPTIONS", -1, "c2", "", "")}
    (raw,) = CaptureFile(str(path), 4096).batches()
    t = Decoder().decode(raw).l7
    assert [(r, m) for r, m in zip(t.row.tolist(), t.http_method) if m] == [(2, "OPTIONS")]   # off the SIP port: HTTP


def test_a_flood_past_the_batch_budget_is_counted_not_read(monkeypatch):
    """An INVITE flood: SIP_MESSAGES_PER_BATCH messages a batch are read, the rest counted
    (sip_unread); their packets are decoded all the same, and the next batch reads again."""
    from collectors.decode import decoder as D
    from collectors.raw_batch import RawBatch
    monkeypatch.setattr(D, "SIP_MESSAGES_PER_BATCH", 3)
    msg = b"INVITE sip:b@x SIP/2.0\r\nCall-ID: c@x\r\n\r\n"
    frames = [_frame(17, 5060 + i % 2, 5060, msg) for i in range(5)]
    dec = Decoder()
    for _ in range(2):
        b = dec.decode(RawBatch.from_frames(frames, 1))
        assert len(b.ts_ns) == 5 and sum(m == "INVITE" for m in b.l7.sip_method) == 3
    assert dec.stats["sip_unread"] == 4

