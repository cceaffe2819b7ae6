"""DNS records that name addresses (collectors/decode/dns.py dns_records): A, AAAA and CNAME,
against dpkt-built messages, random bytes, and tshark on public captures."""
from __future__ import annotations

import ipaddress

import dpkt
import pytest
from hypothesis import given, settings, strategies as st

from collectors.decode.dns import A, AAAA, CNAME, MAX_RECORDS, DnsRecord, dns_records
from collectors.protocols import DNS_UDP_PORTS
from tests.conftest import shared_pcap, tshark_fields
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


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.from_regex(r"[a-z0-9]{1,12}(\.[a-z0-9]{1,12}){0,3}", fullmatch=True),
                          st.ip_addresses()), min_size=1, max_size=20))
def test_addresses_roundtrip(records):
    rrs = [_a(n, str(ip)) if ip.version == 4 else _aaaa(n, str(ip)) for n, ip in records]
    assert dns_records(_response(an=rrs)) == [DnsRecord(n, A if ip.version == 4 else AAAA, str(ip))
                                              for n, ip in records]


def _theirs(path) -> dict[int, list[DnsRecord]]:
    """tshark's A, AAAA and CNAME records per frame: the owners of those types among every
    record's (dns.resp.name, dns.resp.type), each with the next value of its type's field."""
    out = {}
    fields = ("frame.number", "dns.resp.name", "dns.resp.type", "dns.a", "dns.aaaa", "dns.cname")
    for number, names, types, a, aaaa, cname in tshark_fields(path, "dns && udp", *fields):
        values = {A: iter(a.split(",")), AAAA: iter(aaaa.split(",")), CNAME: iter(cname.split(","))}
        rows = [(n, int(t)) for n, t in zip(names.split(","), types.split(",")) if t and int(t) in values]
        out[int(number)] = [DnsRecord(n, t, next(values[t])) for n, t in rows]
    return out


@pytest.mark.parametrize("name,types", [("ppp_DnsPackets.pcap", {A, CNAME}),
                                        ("merged_public_large_162k.pcap", {A, AAAA, CNAME})])
def test_records_match_tshark(name, types):
    """Every message tshark calls DNS (port 53: not its mdns and llmnr) over UDP, frame by frame
    (these hold no fragmented one, which tshark would reassemble and the decoder does not)."""
    path = shared_pcap(name)
    theirs = _theirs(path)
    ours = {n: dns_records(p) for n, sp, dp, p in udp_payloads(path) if n in theirs and {sp, dp} & set(DNS_UDP_PORTS)}
    assert ours == theirs
    assert {r.rtype for rs in ours.values() for r in rs} == types
