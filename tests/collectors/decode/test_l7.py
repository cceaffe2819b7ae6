"""DNS and HTTP/1.x field parsers."""
from __future__ import annotations

import dpkt
from hypothesis import given, settings, strategies as st

from collectors.decode.dns import parse_dns
from collectors.decode.http import parse_http


def _query(name: str, qtype=dpkt.dns.DNS_A) -> bytes:
    q = dpkt.dns.DNS(id=1, qd=[dpkt.dns.DNS.Q(name=name, type=qtype)])
    return bytes(q)


def test_dns_query_and_response():
    d = parse_dns(_query("www.example.org", dpkt.dns.DNS_AAAA))
    assert d.qname == "www.example.org" and d.qtype == 28 and not d.response and d.rcode == 0
    r = dpkt.dns.DNS(id=1, op=dpkt.dns.DNS_RA, rcode=dpkt.dns.DNS_RCODE_NXDOMAIN, qd=[dpkt.dns.DNS.Q(name="x.test")])
    r.qr = dpkt.dns.DNS_R
    d = parse_dns(bytes(r))
    assert d.response and d.rcode == 3 and d.qname == "x.test"


def test_dns_compression_loop_is_bounded():
    msg = bytes(12)[:4] + b"\x00\x01" + bytes(6) + b"\xc0\x0c"   # name pointing at itself
    d = parse_dns(msg)
    assert d is not None and d.qname is None


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_dns_never_raises(data):
    parse_dns(data)


@settings(max_examples=200, deadline=None)
@given(name=st.from_regex(r"[a-z0-9]{1,20}(\.[a-z0-9]{1,20}){0,4}", fullmatch=True))
def test_dns_names_roundtrip(name):
    assert parse_dns(_query(name)).qname == name


def test_http_request_response_and_odd_forms():
    h = parse_http(b"GET /index.html HTTP/1.1\r\nUser-Agent: x\r\nHost: example.org\r\n\r\nbody")
    assert (h.method, h.host, h.path, h.status) == ("GET", "example.org", "/index.html", -1)
    assert parse_http(b"HTTP/1.1 404 Not Found\r\n\r\n").status == 404
    assert parse_http(b"OPTIONS\nHost: a.b\n\n").method == "OPTIONS"
    assert parse_http(b"CCM_POST /x HTTP/1.1\r\n\r\n").method == "CCM_POST"
    assert parse_http(b"GET/ HTTP/1.1\n") is None
    assert parse_http(b"\x16\x03\x01\x02\x00\x01\x00") is None
    assert parse_http(b"GET / HTTP/1.1\r\n\r\nHost: not-a-header\r\n").host is None


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_http_never_raises(data):
    parse_http(data)


def test_an_empty_dns_header_is_not_dns():
    """Twelve zero bytes (a padded UDP/53 datagram) name no question and no record: not DNS. A
    message with records but no question (a NOTIFY answer, an error reply) still is."""
    assert parse_dns(bytes(12)) is None and parse_dns(bytes(40)) is None
    d = parse_dns(b"\x00\x07\x81\x83" + b"\x00\x00\x00\x00\x00\x01\x00\x00" + bytes(10))
    assert d is not None and d.response and d.rcode == 3 and d.qname is None


def test_dns_only_decoding_finds_the_same_dns_and_no_http():
    """Decoder(l7="dns") (what the analysis asks for) gives the DNS rows DNS and HTTP decoding
    gives, and no HTTP rows, on frames of both over UDP and TCP (the fast and the slow path)."""
    from collectors import protocols as P
    from collectors.decode.decoder import Decoder
    from collectors.raw_batch import RawBatch

    def eth(ip) -> bytes:
        return bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, data=ip, type=0x0800))

    v4 = dict(src=b"\x0a\x00\x00\x01", dst=b"\x0a\x00\x00\x02")
    get = b"GET /x HTTP/1.1\r\nHost: example.org\r\n\r\n"
    dns = _query("example.org")
    frames = [eth(dpkt.ip.IP(p=17, data=dpkt.udp.UDP(sport=5353, dport=53, data=dns), **v4)),
              eth(dpkt.ip.IP(p=6, data=dpkt.tcp.TCP(sport=40000, dport=80, data=get), **v4)),
              eth(dpkt.ip.IP(p=6, data=dpkt.tcp.TCP(sport=40001, dport=53, data=len(dns).to_bytes(2, "big") + dns),
                             **v4)),
              eth(dpkt.ip.IP(p=17, data=dpkt.udp.UDP(sport=1900, dport=1900, data=b"M-SEARCH * HTTP/1.1\r\n\r\n"),
                             **v4)),
              eth(dpkt.ip.IP(p=17, id=9, mf=1, data=bytes(dpkt.udp.UDP(sport=5354, dport=53, data=dns))[:16], **v4))]
    both = Decoder(l7=True).decode(RawBatch.from_frames(frames, P.LINK_ETHERNET)).l7
    only = Decoder(l7="dns").decode(RawBatch.from_frames(frames, P.LINK_ETHERNET)).l7
    assert sorted(m for m in both.http_method if m) == ["GET", "M-SEARCH"]
    dns_rows = [(r, q) for r, q, m in zip(both.row.tolist(), both.dns_qname, both.http_method) if m is None]
    assert len(dns_rows) == 2 and dns_rows == list(zip(only.row.tolist(), only.dns_qname))
    assert set(only.http_method) == {None}


def _response_frames(ids_and_names) -> list[bytes]:
    """UDP/53 responses, each with its question and two A records for it."""
    frames = []
    for i, name in ids_and_names:
        r = dpkt.dns.DNS(id=i, qd=[dpkt.dns.DNS.Q(name=name)], an=[
            dpkt.dns.DNS.RR(name=name, type=dpkt.dns.DNS_A, ip=bytes([192, 0, 2, k])) for k in (1, 2)])
        r.qr = dpkt.dns.DNS_R
        ip = dpkt.ip.IP(p=17, src=b"\x0a\x00\x00\x35", dst=b"\x0a\x00\x00\x02",
                        data=dpkt.udp.UDP(sport=53, dport=40000 + i, data=bytes(r)))
        frames.append(bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, data=ip, type=0x0800)))
    return frames


def test_a_reflection_floods_one_answer_is_parsed_once(monkeypatch):
    """Many ids, one answer (a reflection flood): parsed once per decoder, every row gets its records."""
    from collectors import protocols as P
    from collectors.decode import decoder as D
    from collectors.raw_batch import RawBatch
    calls = []
    monkeypatch.setattr(D, "parse_dns", lambda msg, records=False: calls.append(1) or parse_dns(msg, records))
    dec = D.Decoder()
    for _ in range(2):
        l7 = dec.decode(RawBatch.from_frames(_response_frames([(i, "amp.example") for i in range(300)]),
                                             P.LINK_ETHERNET)).l7
        assert [len(a) for a in l7.dns_answers] == [2] * 300
    assert len(calls) == 1


def test_past_the_batch_budget_responses_keep_their_question_only(monkeypatch):
    from collectors import protocols as P
    from collectors.decode import decoder as D
    from collectors.raw_batch import RawBatch
    monkeypatch.setattr(D, "DNS_RECORDS_PER_BATCH", 2)
    dec = D.Decoder()
    frames = _response_frames([(i, f"n{i}.example") for i in range(5)])
    l7 = dec.decode(RawBatch.from_frames(frames, P.LINK_ETHERNET)).l7
    assert [a is not None for a in l7.dns_answers] == [True, True, False, False, False]
    assert l7.dns_qname == [f"n{i}.example" for i in range(5)] and dec.stats["dns_answers_unread"] == 3
    l7 = dec.decode(RawBatch.from_frames(frames, P.LINK_ETHERNET)).l7         # a new batch, a new budget
    assert [a is not None for a in l7.dns_answers] == [True] * 4 + [False]
