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
