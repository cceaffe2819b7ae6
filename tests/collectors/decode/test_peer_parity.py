"""Decoded per-5-tuple packets and bytes agree with pmacctd; DNS and HTTP fields with tshark.

Every difference from the peers is named here with its reason."""
from __future__ import annotations

import collections
import csv

import pytest

from schemas.packet_batch import STATUS_NAMES
from tests.conftest import (PMACCT_UNREADABLE, SHARED_NAMES, SHARED_PCAPS, decode_flows, pmacct_flows, shared_pcap,
                            tshark_dns_records, tshark_fields)
from collectors.capture_file import CaptureFile
from collectors.decode.decoder import Decoder
from collectors.decode.tunnels import Decap



@pytest.mark.parametrize("name", SHARED_NAMES)
def test_flows_match_pmacct(name, tmp_path):
    path = shared_pcap(name)
    theirs_p, theirs_b = pmacct_flows(path, tmp_path)
    if name in PMACCT_UNREADABLE:
        iface = PMACCT_UNREADABLE[name]
        if iface is None:
            assert not theirs_p
            return
        ours_p, ours_b, _ = decode_flows(path, iface=iface, decap=Decap.none())
    else:
        # pmacct drops later fragments whose first fragment it never saw; we count them (ports 0).
        # pmacct keys tunnelled packets on their carrier: so do we with decapsulation off.
        ours_p, ours_b, dec = decode_flows(path, drop_unmatched_fragments=True, decap=Decap.none())
    assert ours_p == theirs_p
    assert ours_b == theirs_b


@pytest.mark.parametrize("name, moved, control", [("merged_public_large_162k.pcap", 2, 15),
                                                  ("stopddos_amp.dns.RRSIG.fragmented.pcap", 1, 0)])
def test_decapsulation_moves_only_tunnelled_packets(name, moved, control):
    """With tunnels taken out (the default), the only packets keyed otherwise than pmacct keys
    them are those tshark finds IP inside GRE in (PPTP's PPP with IP: 2, IP in GRE: 1); PPTP
    control (LCP, IPCP, PAP) and bare acknowledgements stay GRE packets, counted."""
    path = shared_pcap(name)
    on_p, _, dec = decode_flows(path)
    off_p, _, _ = decode_flows(path, decap=Decap.none())
    assert sum(on_p.values()) == sum(off_p.values())
    assert sum((off_p - on_p).values()) == sum((on_p - off_p).values()) == moved
    layers = [p for (p,) in tshark_fields(path, "gre", "frame.protocols")]
    assert sum(":gre:ip:" in p or ":gre:ppp:ip:" in p for p in layers) == moved
    assert dec.stats["tunnel_gre_not_data"] == len(layers) - moved == control


@pytest.mark.parametrize("name", SHARED_NAMES)
def test_every_ip_packet_is_counted_like_tshark(name):
    """Every IP packet counts, each fragment included: tshark's IP frame count (peers/totals.tsv)."""
    path = shared_pcap(name)
    totals = {r["file"]: r for r in csv.DictReader(open(SHARED_PCAPS.parent / "peers" / "totals.tsv"), delimiter="\t")}
    pk, _, dec = decode_flows(path)
    assert sum(pk.values()) == dec.stats["ok"] == int(totals[name]["tshark_ip_frames"])
    assert sum(dec.stats[s] for s in STATUS_NAMES.values()) == int(totals[name]["tshark_frames"])


def test_unmatched_fragments_are_the_only_pmacct_difference(tmp_path):
    path = shared_pcap("stopddos_amp.dns.RRSIG.fragmented.pcap")
    ours_p, _, dec = decode_flows(path)
    theirs_p, _ = pmacct_flows(path, tmp_path)
    assert sum(ours_p.values()) - sum(theirs_p.values()) == dec.stats["fragment_without_first"] == 46


def test_multi_interface_pcapng_read_in_full_like_tshark():
    path = shared_pcap("ppp_pcapng-example_2if_snaplen.pcapng")
    pk, by, _ = decode_flows(path)
    assert sum(pk.values()) == 159
    frames = tshark_fields(path, "ip or ipv6", "frame.number")
    assert len(frames) == 159
    path = shared_pcap("ppp_many_interfaces-1.pcapng")
    b = Decoder().decode(next(CaptureFile(str(path)).batches()))
    assert (b.status == 0).sum() == 64
    assert set(b.link.tolist()) == {0, 1}     # BSD loopback on interface 10, Ethernet elsewhere


DNS_CAPTURES = ["ppp_DnsPackets.pcap", "cs_http_espn.pcapng", "ppp_many-protocols.pcap", "ppp_sll_linux-cooked.pcap",
                "ppp_many_interfaces-1.pcapng", "merged_public_large_162k.pcap"]


@pytest.mark.parametrize("name", DNS_CAPTURES)
def test_dns_query_names_match_tshark(name):
    path = shared_pcap(name)
    ours = collections.Counter()
    dec = Decoder()
    for raw in CaptureFile(str(path)).batches():
        l7 = dec.decode(raw).l7
        ours.update(q for q, resp in zip(l7.dns_qname, l7.dns_response) if resp is False and q is not None)
    theirs = collections.Counter(r[0] for r in tshark_fields(path, "dns.flags.response==0", "dns.qry.name"))
    assert ours == theirs


def _http(path):
    ours = collections.Counter()
    dec = Decoder()
    for raw in CaptureFile(str(path)).batches():
        l7 = dec.decode(raw).l7
        ours.update((m, h or "") for m, h in zip(l7.http_method, l7.http_host) if m)
    return ours


HTTP_CAPTURES = ["zeek_http-methods.pcap", "cs_http_espn.pcapng", "ppp_four_ipv6_http_streams_rawip.pcap",
                 "suricata_http-mime-truncated_cutshort.pcap", "zeek_vlan-qinqinq.pcap", "ppp_sll_linux-cooked.pcap",
                 "evilfingers_nmap_TCP_SYN_SCAN.pcap"]


@pytest.mark.parametrize("name", HTTP_CAPTURES)
def test_http_methods_and_hosts_match_tshark(name):
    path = shared_pcap(name)
    ours = _http(path)
    # tshark files SSDP NOTIFY under http.notification rather than http.request.
    theirs = collections.Counter(tshark_fields(path, "http.request or http.notification", "http.request.method", "http.host"))
    theirs = collections.Counter({(m or "NOTIFY", h): c for (m, h), c in theirs.items()})
    assert ours == theirs


def test_http_differences_on_the_mixed_captures_are_explained():
    """tshark does not dissect TCP retransmissions again and finds one request only after TCP
    reassembly; NetSpectra reports what each packet carries, at the start of its TCP payload."""
    path = shared_pcap("ppp_many-protocols.pcap")
    ours = _http(path)
    theirs = collections.Counter(tshark_fields(path, "http.request or http.notification", "http.request.method", "http.host"))
    theirs = collections.Counter({(m or "NOTIFY", h): c for (m, h), c in theirs.items()})
    assert theirs - ours == collections.Counter({("GET", "px.dynamicyield.com"): 1})   # mid-segment request
    assert not ours - theirs
    path = shared_pcap("merged_public_large_162k.pcap")
    ours = _http(path)
    theirs = collections.Counter(tshark_fields(path, "http.request or http.notification", "http.request.method", "http.host"))
    theirs = collections.Counter({(m or "NOTIFY", h): c for (m, h), c in theirs.items()})
    extra = ours - theirs
    assert extra == collections.Counter({("GET", "127.0.0.1"): 48})
    retransmitted_gets = tshark_fields(path, 'tcp.analysis.retransmission and tcp.payload[0:4] == 47:45:54:20',
                                       "frame.number")
    assert len(retransmitted_gets) == 48
    assert theirs - ours == collections.Counter({("GET", "px.dynamicyield.com"): 1})


def test_synthetic_capture_matches_pmacct(synth_pcap, tmp_path):
    ours_p, ours_b, dec = decode_flows(synth_pcap)
    theirs_p, theirs_b = pmacct_flows(synth_pcap, tmp_path)
    assert ours_p == theirs_p and ours_b == theirs_b
    assert dec.stats["fragment_without_first"] == 0


@pytest.mark.parametrize("name", DNS_CAPTURES)
def test_dns_answers_match_tshark(name):
    """The address records of every DNS response on port 53 the decoder reads (collectors/decode/dns.py
    dns_records), as tshark dissects them. Not mDNS and LLMNR (tshark's mdns and llmnr, which the
    decoder reads as DNS too): their NSEC records list types that tshark reports under
    dns.resp.type as well, so its fields cannot be paired record by record."""
    path = shared_pcap(name)
    ours = collections.Counter()
    dec = Decoder()
    for raw in CaptureFile(str(path)).batches():
        b = dec.decode(raw)
        port53 = (b.sport[b.l7.row] == 53) | (b.dport[b.l7.row] == 53)
        ours.update(r for rs, keep in zip(b.l7.dns_answers, port53) if rs and keep for r in rs)
    theirs = collections.Counter(r for rs in tshark_dns_records(path, "dns && dns.flags.response==1").values() for r in rs)
    assert ours == theirs and ours
