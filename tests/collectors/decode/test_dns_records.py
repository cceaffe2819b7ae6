"""DNS records that name addresses (collectors/decode/dns.py dns_records): A, AAAA and CNAME,
against dpkt-built messages, random bytes, and tshark on public captures."""
from __future__ import annotations

import ipaddress

import dpkt
import pytest
from hypothesis import given, settings, strategies as st

from collectors.decode.dns import A, AAAA, CNAME, MAX_POINTER_JUMPS, MAX_RECORDS, DnsRecord, dns_records, parse_dns, read_name
from collectors.protocols import DNS_UDP_PORTS
from tests.conftest import shared_pcap, tshark_dns_records
from tests.oracle import udp_payloads


def _response(an=(), ns=(), ar=(), name="www.example.org") -> bytes:
    r = dpkt.dns.DNS(id=7, qd=[dpkt.dns.DNS.Q(name=name)], an=list(an), ns=list(ns), ar=list(ar))
    r.qr = dpkt.dns.DNS_R
    return bytes(r)


def _a(name: str, ip: str):
    return dpkt.dns.DNS.RR(name=name, type=dpkt.dns.DNS_A, ip=ipaddress.IPv4Address(ip).packed)


def _aaaa(name: str, ip: str):
    return dpkt.dns.DNS.RR(name=name, type=dpkt.dns.DNS_AAAA, ip6=ipaddress.IPv6Address(ip).packed)


def _cname(name: str, target: str):
    return dpkt.dns.DNS.RR(name=name, type=dpkt.dns.DNS_CNAME, cname=target)


def test_a_cname_chain_and_its_addresses_in_order_from_every_section():
    msg = _response(an=[_cname("www.example.org", "edge.example.net"), _a("edge.example.net", "93.184.216.34"),
                        _aaaa("edge.example.net", "2001:db8::1")],
                    ns=[dpkt.dns.DNS.RR(name="example.net", type=dpkt.dns.DNS_NS, nsname="ns1.example.net")],
                    ar=[_a("ns1.example.net", "192.0.2.53")])
    assert dns_records(msg) == [DnsRecord("www.example.org", CNAME, "edge.example.net"),
                                DnsRecord("edge.example.net", A, "93.184.216.34"),
                                DnsRecord("edge.example.net", AAAA, "2001:db8::1"),
                                DnsRecord("ns1.example.net", A, "192.0.2.53")]


def test_records_before_one_cut_short_are_kept():
    msg = _response(an=[_a("a.example", "192.0.2.1"), _a("b.example", "192.0.2.2")])
    assert dns_records(msg[:-3]) == [DnsRecord("a.example", A, "192.0.2.1")]
    assert dns_records(msg[:12]) == [] and dns_records(b"") == []


def test_at_most_max_records_are_read():
    msg = _response(an=[_a(f"h{i}.example", f"10.0.{i // 256}.{i % 256}") for i in range(MAX_RECORDS + 10)])
    assert len(dns_records(msg)) == MAX_RECORDS


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=400))
def test_never_raises(data):
    dns_records(data)


# Messages dense in compression pointers (0xC0 followed by an offset into the first 64 bytes),
# short labels and zero bytes: chains, loops and pointers into names' middles.
_POINTERY = st.lists(st.one_of(st.sampled_from([b"\x00", b"\x01a", b"\x02bc", b"\x03xyz", b"\x06<Root>"]),
                               st.integers(0, 63).map(lambda o: bytes([0xC0, o]))), max_size=60).map(b"".join)


@given(_POINTERY)
@settings(max_examples=300)
def test_names_already_read_give_what_walking_gives(msg):
    """read_name takes a name the message holds from those read before (most records point at
    the question): at every offset, in order, the same name and end as a walk without them,
    chains at MAX_POINTER_JUMPS included."""
    names: dict = {}
    for pos in range(len(msg)):
        assert read_name(msg, pos, names) == read_name(msg, pos), pos
    assert MAX_POINTER_JUMPS < 64


def test_a_name_read_before_counts_its_pointers_against_the_limit():
    """"b.a" at 23 follows 11 pointers; reached through 5 more it is still a name (16), through 6
    it is not (17 > MAX_POINTER_JUMPS), whether it was read before or not."""
    assert MAX_POINTER_JUMPS == 16
    chain = bytes([0xC0, 0]) + b"".join(bytes([0xC0, 3 + 2 * i]) for i in range(9))   # at 3..21, each to the one before
    msg = b"\x01a\x00" + chain + b"\x01b\xC0\x15"              # "b" at 23, then a pointer to 21
    for i in range(6):                                            # 27, 29, ...: each to the one before, the first to 23
        msg += bytes([0xC0, 23 if i == 0 else len(msg) - 2])
    names: dict = {}
    assert read_name(msg, 23, names) == ("b.a", 27) == read_name(msg, 23)
    assert read_name(msg, len(msg) - 4, names) == read_name(msg, len(msg) - 4) == ("b.a", len(msg) - 2)
    assert read_name(msg, len(msg) - 2, names) == read_name(msg, len(msg) - 2)
    assert read_name(msg, len(msg) - 2)[0] is None


@given(st.binary(max_size=400))
def test_records_in_the_question_pass_equal_dns_records(data):
    msg = data[:2] + b"\x81\x80" + data[4:]       # a response
    d = parse_dns(msg, records=True)
    assert d is None or d.records == dns_records(msg)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.from_regex(r"[a-z0-9]{1,12}(\.[a-z0-9]{1,12}){0,3}", fullmatch=True),
                          st.ip_addresses()), min_size=1, max_size=20))
def test_addresses_roundtrip(records):
    rrs = [_a(n, str(ip)) if ip.version == 4 else _aaaa(n, str(ip)) for n, ip in records]
    assert dns_records(_response(an=rrs)) == [DnsRecord(n, A if ip.version == 4 else AAAA, str(ip))
                                              for n, ip in records]


@pytest.mark.parametrize("name,types", [("ppp_DnsPackets.pcap", {A, CNAME}),
                                        ("merged_public_large_162k.pcap", {A, AAAA, CNAME})])
def test_records_match_tshark(name, types):
    """Every message tshark calls DNS (port 53: not its mdns and llmnr) over UDP, frame by frame
    (these hold no fragmented one, which tshark would reassemble and the decoder does not)."""
    path = shared_pcap(name)
    theirs = {n: [DnsRecord(*r) for r in rs] for n, rs in tshark_dns_records(path, "dns && udp").items()}
    ours = {n: dns_records(p) for n, sp, dp, p in udp_payloads(path) if n in theirs and {sp, dp} & set(DNS_UDP_PORTS)}
    assert ours == theirs
    assert {r.rtype for rs in ours.values() for r in rs} == types
