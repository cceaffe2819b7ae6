"""Tunnels (collectors/decode/tunnels.py and the decoder's _take_out): on Zeek's public tunnel
captures every packet's innermost addresses, ports, IP length, tunnel kind, id, depth and outer
addresses equal tshark's (`-T fields`, IP reassembly off); carriers that are not taken out are
the ones tshark does not take out either, or the documented differences (docs/decoding.md)."""
from __future__ import annotations

import ipaddress
import subprocess

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from collectors import protocols as P
from collectors.capture_file import CaptureFile
from collectors.decode.decoder import Decoder
from collectors.decode.tunnels import Decap
from collectors.raw_batch import RawBatch
from schemas.packet_batch import STATUS_OK, TUNNEL_NAMES, PacketBatch, concat
from tests.conftest import require_tool
from tests.support import TEST_DATA, TUNNEL_CAPTURES

# tshark's layer -> our tunnel kind ("ip"/"ipv6" right after an IP layer: IP-in-IP)
_MARKERS = {"vxlan": "vxlan", "geneve": "geneve", "gre": "gre", "erspan": "erspan", "mpls": "mpls", "pppoes": "pppoe",
            "gtp": "gtpu"}
_ID_FIELDS = {"vxlan": "vxlan.vni", "geneve": "geneve.vni", "gre": "gre.key", "erspan": "erspan.spanid",
              "mpls": "mpls.label", "pppoe": "pppoe.session_id", "gtpu": "gtp.teid"}
_FIELDS = ("frame.protocols", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "ip.len", "ipv6.plen", "tcp.srcport",
           "tcp.dstport", "udp.srcport", "udp.dstport", "gre.key.call_id") + tuple(_ID_FIELDS.values())


def _addr(text: str) -> str:
    return str(ipaddress.ip_address(text)) if text else "::"


def _theirs(path) -> list[dict | None]:
    """Per frame: the innermost IP packet and its innermost tunnel as tshark dissects it (None: no IP)."""
    args = [require_tool("tshark"), "-r", str(path), "-n", "-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE",
            "-T", "fields", "-E", "occurrence=a"]
    for f in _FIELDS:
        args += ["-e", f]
    out = []
    for line in subprocess.run(args, capture_output=True, text=True, timeout=120, check=True).stdout.splitlines():
        v = dict(zip(_FIELDS, (x.split(",") if x else [] for x in (line.split("\t") + [""] * len(_FIELDS)))))
        layers = v["frame.protocols"][0].split(":")
        for stop in ("icmp", "icmpv6"):         # an ICMP error quotes a packet: not a layer of this one
            if stop in layers:
                layers = layers[:layers.index(stop)]
        ips = [i for i, p in enumerate(layers) if p in ("ip", "ipv6")]
        if not ips:
            out.append(None)
            continue
        tunnels = []
        for i, p in enumerate(layers):
            if p in _MARKERS:
                if tunnels and tunnels[-1] == (i - 1, "gre"):     # ERSPAN or MPLS in GRE: one tunnel
                    tunnels.pop()
                tunnels.append((i, _MARKERS[p]))
            elif p in ("ip", "ipv6") and i - 1 in ips:
                tunnels.append((i, "ipip"))
        inner = ips[-1]
        tunnels = [t for t in tunnels if t[0] <= inner]     # one with no IP inside (ARP): its carrier is the packet
        ver = layers[inner]
        nth = sum(layers[i] == ver for i in ips) - 1       # occurrence of the innermost header's fields
        row = {"src": _addr(v[f"{ver}.src"][nth]), "dst": _addr(v[f"{ver}.dst"][nth]),
               "ip_len": int(v["ip.len"][nth]) if ver == "ip" else int(v["ipv6.plen"][nth]) + 40,
               "kind": "", "tid": 0, "depth": len(tunnels), "outer": ("::", "::")}
        transport = layers[inner + 1] if inner + 1 < len(layers) else ""
        if transport in ("tcp", "udp"):
            row["ports"] = (int(v[f"{transport}.srcport"][-1]), int(v[f"{transport}.dstport"][-1]))
        if tunnels:
            at, kind = tunnels[-1]
            row["kind"] = kind
            if kind == "gre" and v["gre.key.call_id"]:
                row["tid"] = int(v["gre.key.call_id"][-1], 0)
            elif kind != "ipip" and v[_ID_FIELDS[kind]]:
                row["tid"] = int(v[_ID_FIELDS[kind]][-1], 0)
            before = [i for i in ips if i < at]
            if before:
                o = layers[before[-1]]
                k = sum(layers[i] == o for i in ips if i <= before[-1]) - 1
                row["outer"] = (_addr(v[f"{o}.src"][k]), _addr(v[f"{o}.dst"][k]))
        out.append(row)
    return out


def _decoded(path, decoder: Decoder | None = None) -> PacketBatch:
    dec = decoder or Decoder()
    return concat([dec.decode(raw) for raw in CaptureFile(str(path)).batches()])


def _text(a) -> str:
    return str(ipaddress.ip_address(bytes(a)[12:] if bytes(a)[:12] == b"\0" * 10 + b"\xff\xff" else bytes(a)))


def _ours(b: PacketBatch) -> list[dict | None]:
    env = {int(r): i for i, r in enumerate(b.tunnels.row)}
    out = []
    for i in range(len(b)):
        if b.status[i] != STATUS_OK:
            out.append(None)
            continue
        row = {"src": _text(b.src[i]), "dst": _text(b.dst[i]), "ip_len": int(b.ip_len[i]), "kind": "", "tid": 0,
               "depth": 0, "outer": ("::", "::")}
        if b.proto[i] in (P.IPPROTO_TCP, P.IPPROTO_UDP):
            row["ports"] = (int(b.sport[i]), int(b.dport[i]))
        if i in env:
            j, t = env[i], b.tunnels
            row.update(kind=TUNNEL_NAMES[int(t.kind[j])], tid=int(t.tid[j]), depth=int(t.depth[j]),
                       outer=(_text(t.outer_src[j]), _text(t.outer_dst[j])))
        out.append(row)
    return out


# Where we differ from tshark, by design (docs/decoding.md): frame index -> what we say instead
_DIFFERENCES = {
    # a fragmented carrier stays its outer packets (tshark, reassembly off, dissects the first fragment's
    # inside); the later fragment has its first fragment's ports (pmacct's convention)
    "zeek_tun_gtp_ext_header.pcap": {0: {"src": "10.155.148.149", "dst": "10.155.148.157", "ip_len": 1500,
                                         "ports": (9000, 2152), "kind": "", "tid": 0, "depth": 0,
                                         "outer": ("::", "::")},
                                     1: {"src": "10.155.148.149", "dst": "10.155.148.157", "ip_len": 64,
                                         "ports": (9000, 2152), "kind": "", "tid": 0, "depth": 0,
                                         "outer": ("::", "::")}},
}


@pytest.mark.parametrize("name", TUNNEL_CAPTURES)
def test_inner_packets_and_envelopes_match_tshark(name):
    path = TEST_DATA / name
    theirs = _theirs(path)
    assert any(t and t["kind"] for t in theirs)
    theirs = [_DIFFERENCES.get(name, {}).get(i, t) for i, t in enumerate(theirs)]
    ours = _ours(_decoded(path))
    assert len(ours) == len(theirs)
    for i, (o, t) in enumerate(zip(ours, theirs)):
        assert o == t, f"frame {i + 1}"


def test_every_kind_is_covered():
    kinds = {t["kind"] for name in TUNNEL_CAPTURES for t in _ours(_decoded(TEST_DATA / name)) if t}
    assert kinds == set(TUNNEL_NAMES.values())


def test_vlan_of_the_inner_frame_else_the_carrier():
    """An inner Ethernet frame's VLAN tag keys its packet; an untagged or IP inside keeps the carrier's."""
    b = _decoded(TEST_DATA / "zeek_tun_gre-erspan3-dot1q.pcap")
    assert b.vlan.tolist() == [10, 10]
    b = _decoded(TEST_DATA / "zeek_tun_mpls-in-vlan.pcap")
    assert b.vlan.tolist() == [3199, 0, 3399]


def test_switched_off_kinds_stay_carriers():
    path = TEST_DATA / "zeek_tun_vxlan-encapsulated-http.pcap"
    b = _decoded(path, Decoder(decap=Decap(off=frozenset({"vxlan"}))))
    assert len(b.tunnels) == 0 and set(b.dport.tolist()) == {P.VXLAN_PORT}
    b = _decoded(path, Decoder(decap=Decap(vxlan_ports=(4790,))))
    assert len(b.tunnels) == 0
    path = TEST_DATA / "zeek_tun_mixed-vlan-mpls.pcap"
    b, off = _decoded(path), _decoded(path, Decoder(decap=Decap.none()))
    mpls = (off.status != STATUS_OK).sum() - (b.status != STATUS_OK).sum()       # not IP when left in MPLS
    assert len(off.tunnels) == 0 and mpls == len(b.tunnels) == 11


def test_counts_what_it_leaves_in_its_carrier():
    dec = Decoder()
    _decoded(TEST_DATA / "zeek_tun_vxlan.pcap", dec)
    assert dec.stats["tunnel_inner_non_ip"] == 2          # ARP inside VXLAN: the UDP packet counts
    assert dec.stats["ok"] == 10
    dec = Decoder()
    _decoded(TEST_DATA / "zeek_tun_pppoe.pcap", dec)
    assert dec.stats["tunnel_pppoe_not_data"] == 36 and dec.stats["non_ip"] == 40     # LCP, discovery
    dec = Decoder()
    _decoded(TEST_DATA / "zeek_tun_gtp_ext_header.pcap", dec)
    assert dec.stats["tunnel_fragment"] == 1


def test_wire_format_carries_envelopes():
    b = concat([_decoded(TEST_DATA / n) for n in TUNNEL_CAPTURES])
    back = PacketBatch.from_bytes(b.to_bytes())
    for c in ("row", "kind", "tid", "depth", "outer_src", "outer_dst"):
        assert np.array_equal(getattr(back.tunnels, c), getattr(b.tunnels, c))
    rows = np.arange(1, len(b), 3)
    part = b.take(rows)
    assert _ours(part) == [r for i, r in enumerate(_ours(b)) if i in set(rows.tolist())]


# ---- property tests: any bytes behind a tunnel header ----------------------------------------------------------

def _eth(ethertype: int, payload: bytes) -> bytes:
    return b"\x02" * 6 + b"\x04" * 6 + ethertype.to_bytes(2, "big") + payload


def _ipv4(proto: int, payload: bytes) -> bytes:
    import dpkt
    return bytes(dpkt.ip.IP(src=b"\x0a\x00\x00\x01", dst=b"\x0a\x00\x00\x02", p=proto, data=payload))


def _udp(dport: int, payload: bytes) -> bytes:
    return (40000).to_bytes(2, "big") + dport.to_bytes(2, "big") + (8 + len(payload)).to_bytes(2, "big") + b"\0\0" + payload


_CARRIERS = [
    lambda x: _eth(P.ETH_IPV4, _ipv4(P.IPPROTO_UDP, _udp(P.VXLAN_PORT, x))),
    lambda x: _eth(P.ETH_IPV4, _ipv4(P.IPPROTO_UDP, _udp(P.GENEVE_PORT, x))),
    lambda x: _eth(P.ETH_IPV4, _ipv4(P.IPPROTO_UDP, _udp(P.GTPU_PORT, x))),
    lambda x: _eth(P.ETH_IPV4, _ipv4(P.IPPROTO_GRE, x)),
    lambda x: _eth(P.ETH_IPV4, _ipv4(P.IPPROTO_IPIP, x)),
    lambda x: _eth(P.ETH_IPV4, _ipv4(P.IPPROTO_IPV6, x)),
    lambda x: _eth(P.ETH_MPLS[0], x),
    lambda x: _eth(P.ETH_PPPOE_SESSION, x),
]
# headers that pass the first checks, so that what follows them is what varies
_HEADS = [b"\x08\0\0\0\0\0\x01\0", b"\0\0\x65\x58\0\0\x01\0", b"\x34\xff\0\x10\0\0\0\x01\0\0\0\x85\x01",
          b"\x30\0\x88\xbe\0\0\0\x01\0\0\0\x01\x10\0\0\x64\0\0\0\0", b"\x10\0\x22\xeb", b"\0\x01\x01\xff",
          b"\x11\0\0\x01\0\x10\0\x21", b""]


@settings(max_examples=400, deadline=None)
@given(st.integers(0, len(_CARRIERS) - 1), st.sampled_from(_HEADS), st.binary(max_size=120), st.integers(0, 3))
def test_any_bytes_inside_a_tunnel(carrier, head, rest, nest):
    """No crash and no read past a frame, nested or not; every envelope belongs to an IP packet;
    the fast path and the reference decoder agree; the batch goes through the wire format."""
    frame = head + rest
    for _ in range(nest):
        frame = _eth(P.ETH_IPV4, _ipv4(P.IPPROTO_UDP, _udp(P.VXLAN_PORT, b"\x08\0\0\0\0\0\x07\0" + frame)))
    frame = _CARRIERS[carrier](frame)
    raw = RawBatch.from_frames([frame, frame[:len(frame) // 2], frame], P.LINK_ETHERNET)
    b = Decoder().decode(raw)
    assert len(b) == 3
    if len(b.tunnels):
        assert (b.status[b.tunnels.row] == STATUS_OK).all() and (b.tunnels.depth >= 1).all()
        assert (np.diff(b.tunnels.row) > 0).all()
    ref = Decoder()._decode(raw)
    for c in ("status", "src", "dst", "sport", "dport", "proto", "ip_len"):
        assert np.array_equal(getattr(b, c), getattr(ref, c)), c
    back = PacketBatch.from_bytes(b.to_bytes())
    assert np.array_equal(back.tunnels.tid, b.tunnels.tid)
