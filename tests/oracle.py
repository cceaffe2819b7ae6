"""An independent reference for the exact tests: its own classic-pcap record reader and dpkt for
the layers, one Python step per packet. Slow and simple on purpose, and it shares no code with
collectors/ (no CaptureFile, no Decoder), so a bug there cannot hide in the expected numbers.

It covers what the generated captures hold: classic pcap (µs or ns, either byte order) of
Ethernet (802.1Q/802.1ad tags) or raw IP, IPv4 (fragments: later fragments take the ports of the
first fragment of their datagram by src, dst, protocol and IP id), IPv6, TCP, UDP, ICMP (ports 0).
Flow key and counts follow the project's conventions: (src, dst, sport, dport, proto, outermost
VLAN); bytes are the IP total length; every IP packet counts, each fragment too.
"""
from __future__ import annotations

import collections
import ipaddress
import struct

import dpkt

PCAP_MAGICS = {b"\xd4\xc3\xb2\xa1": ("<", 1000), b"\xa1\xb2\xc3\xd4": (">", 1000),
               b"\x4d\x3c\xb2\xa1": ("<", 1), b"\xa1\xb2\x3c\x4d": (">", 1)}
ETHERNET, RAW_IP = 1, {12, 101, 228, 229}


def records(path):
    """(timestamp ns, link type, frame bytes) of each record of a classic pcap file."""
    data = open(path, "rb").read()
    order, scale = PCAP_MAGICS[data[:4]]
    link = struct.unpack_from(order + "I", data, 20)[0] & 0x0FFFFFFF
    pos = 24
    while pos + 16 <= len(data):
        sec, frac, caplen, _wire = struct.unpack_from(order + "IIII", data, pos)
        pos += 16
        if pos + caplen > len(data):
            break                       # truncated last record
        yield sec * 1_000_000_000 + frac * scale, link, data[pos:pos + caplen]
        pos += caplen


def _ip_layer(link: int, frame: bytes):
    """(IP or IP6 packet, outermost VLAN id) or (None, 0)."""
    if link == ETHERNET:
        eth = dpkt.ethernet.Ethernet(frame)
        tags = getattr(eth, "vlan_tags", None) or []
        vlan = tags[0].id if tags else 0
        ip = eth.data
    elif link in RAW_IP:
        ip = dpkt.ip.IP(frame) if frame[0] >> 4 == 4 else dpkt.ip6.IP6(frame)
        vlan = 0
    else:
        raise ValueError(f"oracle: link type {link} not covered")
    return (ip, vlan) if isinstance(ip, (dpkt.ip.IP, dpkt.ip6.IP6)) else (None, 0)


def _text(packed: bytes) -> str:
    return str(ipaddress.ip_address(packed))


def packets(path):
    """(ts ns, flow key, IP total length, TCP flags) of every IP packet, in file order."""
    rows, first_ports = [], {}
    for ts, link, frame in records(path):
        ip, vlan = _ip_layer(link, frame)
        if ip is None:
            continue
        v4 = isinstance(ip, dpkt.ip.IP)
        proto, length = (ip.p, ip.len) if v4 else (ip.p, ip.plen + 40)
        frag_off = ip.offset if v4 else 0
        more = bool(ip.mf) if v4 else False
        l4 = ip.data
        sport = dport = flags = 0
        if frag_off == 0 and isinstance(l4, (dpkt.tcp.TCP, dpkt.udp.UDP)):
            sport, dport = l4.sport, l4.dport
            if isinstance(l4, dpkt.tcp.TCP):
                flags = l4._off_flags & 0x1FF                 # the 9 flag bits, NS included
        key = (_text(ip.src), _text(ip.dst), sport, dport, proto, vlan)
        datagram = (ip.src, ip.dst, proto, ip.id) if v4 else None
        if v4 and frag_off == 0 and more:
            first_ports[datagram] = (sport, dport)
        rows.append([ts, key, length, flags, datagram if v4 and frag_off > 0 else None])
    for row in rows:                  # later fragments: their datagram's ports, wherever its first is
        if row[4] is not None and row[4] in first_ports:
            s, d, sp, dp, p, v = row[1]
            row[1] = (s, d, *first_ports[row[4]], p, v)
    return [r[:4] for r in rows]


def udp_payloads(path):
    """(frame number from 1, source port, destination port, payload) of each UDP datagram that
    is whole in its frame (no fragment)."""
    for number, (_ts, link, frame) in enumerate(records(path), 1):
        ip, _vlan = _ip_layer(link, frame)
        whole = ip is not None and (not isinstance(ip, dpkt.ip.IP) or (ip.offset == 0 and not ip.mf))
        if whole and isinstance(ip.data, dpkt.udp.UDP):
            yield number, ip.data.sport, ip.data.dport, bytes(ip.data.data)


def flow_windows(path, window_s: float) -> dict:
    """{window start ns: {flow key: [packets, bytes, first ns, last ns, tcp flags OR]}}."""
    out: dict = collections.defaultdict(dict)
    wns = int(window_s * 1e9)
    for ts, key, length, flags in packets(path):
        w = ts - ts % wns if wns else 0
        rec = out[w].get(key)
        if rec is None:
            out[w][key] = [1, length, ts, ts, flags]
        else:
            rec[0] += 1
            rec[1] += length
            rec[2] = min(rec[2], ts)
            rec[3] = max(rec[3], ts)
            rec[4] |= flags
    return dict(out)
