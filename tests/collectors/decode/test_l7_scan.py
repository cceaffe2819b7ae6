"""The compiled L7 scan (collectors/decode/l7_scan.py): it names every packet an L7 parser would
read, and the fast path and the reference decoder, which both run it, read the same L7 fields."""
from __future__ import annotations

import dpkt
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from collectors import protocols as P
from collectors.capture_file import CaptureFile
from collectors.decode import l7_scan as S
from collectors.decode.decoder import Decoder
from collectors.decode.dns import parse_dns
from collectors.decode.http import parse_http
from collectors.decode.sip import parse_sip
from collectors.decode.tls import parse_tls
from collectors.raw_batch import RawBatch
from tests.conftest import SHARED_NAMES, shared_pcap

V4 = dict(src=b"\x0a\x00\x00\x01", dst=b"\x0a\x00\x00\x02")


def _frame(proto: int, sport: int, dport: int, payload: bytes) -> bytes:
    l4 = (dpkt.udp.UDP(sport=sport, dport=dport, data=payload) if proto == 17
          else dpkt.tcp.TCP(sport=sport, dport=dport, data=payload))
    return bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, type=0x0800,
                                        data=dpkt.ip.IP(p=proto, data=l4, **V4)))


def _kinds(frames: list[bytes], http: bool = True) -> list[int]:
    """l7_scan's bits for Ethernet/IPv4 frames without options (transport header at 34)."""
    raw = RawBatch.from_frames(frames, P.LINK_ETHERNET)
    n = len(frames)
    buf = raw.buf
    l4 = raw.off + 34
    proto = buf[raw.off + 23].copy()
    sport = ((buf[l4].astype(np.uint16) << 8) | buf[l4 + 1]).astype(np.uint16)
    dport = ((buf[l4 + 2].astype(np.uint16) << 8) | buf[l4 + 3]).astype(np.uint16)
    kind, seen = np.zeros(n, np.uint8), np.zeros(1, np.int64)
    S.l7_scan(buf, proto, np.ones(n, bool), sport, dport, l4, raw.off + raw.caplen, http, kind, seen)
    assert seen[0] == np.bitwise_or.reduce(kind) if n else seen[0] == 0
    return kind.tolist()


payloads = st.one_of(
    st.binary(max_size=80),
    st.sampled_from([b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b"HTTP/1.1 200 OK\r\n\r\n", b"NOTIFY * HTTP/1.1\r\n\r\n",
                     b"INVITE sip:b@x SIP/2.0\r\nCall-ID: 1\r\n\r\n", b"SIP/2.0 180 Ringing\r\n\r\n",
                     bytes(dpkt.dns.DNS(id=7, qd=[dpkt.dns.DNS.Q(name="example.org")]))]),
    st.builds(lambda head, tail: head + tail,
              st.sampled_from([b"\x16\x03\x01", b"\x16\x03\x03", b"\x14\x03\x03\x00\x01\x01\x16\x03\x03"]),
              st.binary(max_size=60)))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([6, 17]), st.sampled_from([53, 80, 443, 1900, 5060, 5353, 40000]),
                          st.sampled_from([53, 80, 443, 1900, 5060, 40001]), payloads), min_size=1, max_size=20))
def test_the_scan_names_every_packet_a_parser_reads(packets):
    """No false negatives: a payload the DNS, HTTP, SIP or TLS parser reads carries the bit that
    makes the decoder call that parser (DNS: on a DNS port, its header counting something; HTTP
    and SIP: a start line's first letter, or over UDP the SSDP or SIP port; TLS: a handshake
    record), and TCP payloads carry L7_TCP_DATA."""
    kinds = _kinds([_frame(*p) for p in packets])
    for (proto, sport, dport, data), k in zip(packets, kinds):
        dns_port = {sport, dport} & set(P.DNS_UDP_PORTS if proto == 17 else P.DNS_TCP_PORTS)
        if proto == 17:
            if dns_port and len(data) >= 12 and any(data[4:12]) and parse_dns(data) is not None:
                assert k & S.L7_DNS_UDP
            if P.SSDP_UDP_PORT in (sport, dport) and len(data) >= 12 and parse_http(data) is not None:
                assert k & S.L7_UDP_TEXT
            if {sport, dport} & set(P.SIP_PORTS) and len(data) >= 12 and parse_sip(data) is not None:
                assert k & S.L7_UDP_TEXT
            assert not k & (S.L7_DNS_TCP | S.L7_HTTP | S.L7_HELLO | S.L7_TCP_DATA)
            continue
        assert not k & (S.L7_DNS_UDP | S.L7_UDP_TEXT | S.L7_QUIC | S.L7_DTLS)
        if dns_port and len(data) >= 14:
            continue        # DNS over TCP: read as DNS only
        assert bool(k & S.L7_TCP_DATA) == (len(data) > 0)
        if len(data) >= 12 and (parse_http(data) is not None or parse_sip(data) is not None):
            assert k & S.L7_HTTP
        if parse_tls(data) is not None:
            assert k & S.L7_HELLO


def test_dns_only_scans_name_dns_alone():
    dns = bytes(dpkt.dns.DNS(id=7, qd=[dpkt.dns.DNS.Q(name="example.org")]))
    frames = [_frame(17, 40000, 53, dns), _frame(6, 40000, 53, len(dns).to_bytes(2, "big") + dns),
              _frame(6, 40000, 80, b"GET / HTTP/1.1\r\n\r\n"), _frame(17, 1900, 1900, b"NOTIFY * HTTP/1.1\r\n\r\n")]
    assert _kinds(frames, http=False) == [S.L7_DNS_UDP, S.L7_DNS_TCP, 0, 0]
    assert _kinds(frames) == [S.L7_DNS_UDP, S.L7_DNS_TCP, S.L7_HTTP | S.L7_TCP_DATA, S.L7_UDP_TEXT]


def _l7_rows(t) -> list[tuple]:
    return list(zip(t.row.tolist(), *(getattr(t, c) for c in t.value_columns())))


@pytest.mark.parametrize("name", SHARED_NAMES)
def test_fast_path_and_reference_read_the_same_l7(name):
    """The fast path scans in its loop, the reference decoder in a pass of its own: on every public
    capture both give the same L7 rows (the reference is Decoder._decode, the column-wise decoder)."""
    fast, ref = Decoder(), Decoder()
    for raw in CaptureFile(str(shared_pcap(name)), 4096).batches():
        assert _l7_rows(fast.decode(raw).l7) == _l7_rows(ref._decode(raw).l7)
