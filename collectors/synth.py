"""Synthetic traffic: pcap files with known contents for the demo, tests and benchmarks.

Everything is generated column-wise with numpy (2M packets in a few seconds): a background of
Zipf-distributed flows plus planted heavy hitters, super-spreaders, port scans and a spoofed SYN
flood; optional VLAN tags, IPv6 and IPv4 fragments. A JSON file beside the capture records what
was planted.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np

from collectors import protocols as P
from schemas.addresses import V4_PREFIX, to_text

TCP_SYN, TCP_ACK, TCP_PSH = 0x02, 0x10, 0x08
FRAME_SIZES = {  # name -> (frame sizes, weights) for background packets; IMIX is the classic 7:4:1
    "imix": ((64, 594, 1518), (7, 4, 1)),
    "full": ((1514,), (1,)),
    "small": ((64,), (1,)),
}
ETH_HDR, VLAN_HDR, IPV4_HDR, IPV6_HDR, TCP_HDR, UDP_HDR = 14, 4, 20, 40, 20, 8


@dataclass
class SynthConfig:
    packets: int = 100_000
    duration: float = 60.0          # seconds of capture time
    hosts: int = 1000               # background host pool
    flows: int = 0                  # background flows; 0 = packets // 20
    heavy_hitters: int = 5          # planted elephant flows
    heavy_share: float = 0.3        # fraction of packets in the elephants (split evenly)
    spreaders: int = 2              # sources that each contact `spread` distinct destinations
    spread: int = 2000
    scans: int = 1                  # port scanners hitting one host on `scan_ports` ports
    scan_ports: int = 1000
    syn_flood: int = 0              # spoofed sources sending one SYN each to the flood victim
    connect_scans: int = 0          # scanners completing a handshake on each of `scan_ports` ports, then RST
    reflection: int = 0             # reflectors sending unsolicited UDP (source port 123) to a victim
    reflection_packets: int = 20    # packets per reflector (468-byte NTP answers; every other one fragmented)
    # Benign look-alikes, each packet timed within its connection (ms apart), not spread at random:
    busy_server: int = 0            # clients completing a TCP handshake and a request with one server
    resolver: int = 0               # DNS servers one resolver queries (each answers its query)
    download_mb: float = 0.0        # one bulk TCP download of this many MB (a benign heavy hitter)
    vlan: float = 0.0               # fraction of frames with an 802.1Q tag
    ipv6: float = 0.0               # fraction of background flows over IPv6
    fragments: float = 0.0          # fraction of background UDP packets sent as 2 IPv4 fragments
    sizes: str = "imix"
    seed: int = 1
    start: float = 1_700_000_000.0  # capture start, Unix seconds


FLOOD_VICTIM = "10.10.10.10"
FLOOD_PORT = 80
REFLECTION_VICTIM, REFLECTION_PORT = "10.20.30.40", 123
BUSY_SERVER, RESOLVER, DOWNLOAD_SERVER = "10.0.0.80", "10.0.0.53", "10.0.0.99"


def _ip4(a, b, c, d) -> int:
    return (a << 24) | (b << 16) | (c << 8) | d


def generate(cfg: SynthConfig) -> dict:
    """Columns of every packet (numpy arrays) and the planted truth."""
    rng = np.random.default_rng(cfg.seed)
    parts, truth = [], {"config": asdict(cfg)}

    # Planted packets first; background fills the rest.
    spread_src = np.array([_ip4(172, 16, 0, 1 + i) for i in range(cfg.spreaders)], np.int64)
    if cfg.spreaders:
        n = cfg.spreaders * cfg.spread
        src = np.repeat(spread_src, cfg.spread)
        dst = _ip4(100, 64, 0, 0) + np.tile(np.arange(cfg.spread), cfg.spreaders) * 7 + 1
        parts.append(_syns(src, dst, rng.integers(1024, 65535, n), np.full(n, 80)))
        truth["super_spreaders"] = [{"src": _fmt4(s), "distinct_dsts": cfg.spread} for s in spread_src]
        truth.setdefault("attacks", []).extend({"detector": "host_scan", "entity": {"src": _fmt4(s)}} for s in spread_src)
    if cfg.scans:
        n = cfg.scans * cfg.scan_ports
        src = np.repeat(np.array([_ip4(198, 51, 100, 1 + i) for i in range(cfg.scans)]), cfg.scan_ports)
        parts.append(_syns(src, np.full(n, _ip4(10, 0, 0, 2)), np.full(n, 40000), np.tile(np.arange(1, cfg.scan_ports + 1), cfg.scans)))
        truth["scanners"] = [_fmt4(s) for s in np.unique(src)]
        truth.setdefault("attacks", []).extend({"detector": "port_scan", "entity": {"src": s, "dst": "10.0.0.2"}}
                                               for s in truth["scanners"])
    if cfg.syn_flood:
        n = cfg.syn_flood
        src = rng.choice(np.arange(_ip4(1, 0, 0, 0), _ip4(1, 0, 0, 0) + 4 * n), n, replace=False)
        parts.append(_syns(src, np.full(n, _ip4(10, 10, 10, 10)), rng.integers(1024, 65535, n), np.full(n, FLOOD_PORT)))
        truth["fan_in"] = [{"dst": FLOOD_VICTIM, "distinct_srcs": int(n)}]
        truth.setdefault("attacks", []).append({"detector": "syn_flood", "entity": {"dst": FLOOD_VICTIM}})
    planted = sum(len(p["src"]) for p in parts)
    remaining = max(cfg.packets - planted, 0)
    n_heavy = int(remaining * cfg.heavy_share) if cfg.heavy_hitters else 0
    n_bg = remaining - n_heavy

    n_flows = max(cfg.flows or n_bg // 20, 1)
    hosts = _ip4(10, 1, 0, 0) + rng.choice(65000, max(cfg.hosts, 2), replace=False)
    f_src = rng.choice(hosts, n_flows)
    f_dst = rng.choice(hosts, n_flows)
    f_proto = np.where(rng.random(n_flows) < 0.8, P.IPPROTO_TCP, P.IPPROTO_UDP)
    f_sport = rng.integers(1024, 65535, n_flows)
    f_dport = rng.choice(np.array([80, 443, 53, 22, 8080, 3306, 123, 5432]), n_flows)
    f_v6 = rng.random(n_flows) < cfg.ipv6
    flow_of = np.minimum(rng.zipf(1.3, n_bg) - 1, n_flows - 1) if n_bg else np.zeros(0, np.int64)
    flow_of = rng.permutation(n_flows)[flow_of]
    if cfg.heavy_hitters and n_heavy:
        hh = np.arange(cfg.heavy_hitters)
        h_src = _ip4(10, 200, 0, 1) + hh
        h_dst = _ip4(10, 201, 0, 1) + hh
        f_src = np.concatenate([f_src, h_src])
        f_dst = np.concatenate([f_dst, h_dst])
        f_proto = np.concatenate([f_proto, np.full(cfg.heavy_hitters, P.IPPROTO_TCP)])
        f_sport = np.concatenate([f_sport, 50000 + hh])
        f_dport = np.concatenate([f_dport, np.full(cfg.heavy_hitters, 443)])
        f_v6 = np.concatenate([f_v6, np.zeros(cfg.heavy_hitters, bool)])
        flow_of = np.concatenate([flow_of, n_flows + rng.integers(0, cfg.heavy_hitters, n_heavy)])
        truth["heavy_hitters"] = [{"src": _fmt4(s), "dst": _fmt4(d), "sport": int(50000 + i), "dport": 443, "proto": 6}
                                  for i, (s, d) in enumerate(zip(h_src, h_dst))]
    sizes, weights = FRAME_SIZES[cfg.sizes]
    w = np.asarray(weights, float)
    frame = rng.choice(np.asarray(sizes), len(flow_of), p=w / w.sum())
    proto = f_proto[flow_of]
    v6 = f_v6[flow_of]
    l4 = np.where(proto == P.IPPROTO_TCP, TCP_HDR, UDP_HDR)
    l3 = np.where(v6, IPV6_HDR, IPV4_HDR)
    ip_len = np.maximum(frame - ETH_HDR, l3 + l4)
    parts.append({"src": f_src[flow_of], "dst": f_dst[flow_of], "sport": f_sport[flow_of], "dport": f_dport[flow_of],
                  "proto": proto, "flags": np.where(proto == P.IPPROTO_TCP, TCP_ACK | TCP_PSH, 0),
                  "ip_len": ip_len, "v6": v6})
    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    n = len(cols["src"])
    order = rng.permutation(n)
    cols = {k: v[order] for k, v in cols.items()}
    ts = np.sort(rng.integers(0, int(cfg.duration * 1e9), n)) + int(cfg.start * 1e9)
    cols["ts_ns"] = ts
    cols["vlan"] = np.where(rng.random(n) < cfg.vlan, rng.integers(1, 4095, n), 0)
    cols["ip_id"] = rng.integers(0, 65536, n)
    frag = (rng.random(n) < cfg.fragments) & (cols["proto"] == P.IPPROTO_UDP) & ~cols["v6"] & (cols["ip_len"] > 64)
    cols["frag"] = frag
    timed = _timed_parts(cfg, rng, truth)
    if timed:       # merged in by time; without them the capture is what it always was for a seed
        cols = {k: np.concatenate([cols[k]] + [p[k] for p in timed]) for k in cols}
        order = np.argsort(cols["ts_ns"], kind="stable")
        cols = {k: v[order] for k, v in cols.items()}
    truth["packets"] = int(len(cols["src"]) + cols["frag"].sum())
    return {"cols": cols, "truth": truth}


def _timed_parts(cfg: SynthConfig, rng, truth: dict) -> list[dict]:
    """Planted traffic whose packets keep their own times: a reflection attack, and benign
    traffic that a careless detector would take for one (connections, lookups, a download)."""
    parts, t0 = [], int(cfg.start * 1e9)
    span = int(cfg.duration * 1e9)
    attacks, benign = truth.setdefault("attacks", []), truth.setdefault("benign", [])
    if cfg.reflection:
        n = cfg.reflection * cfg.reflection_packets
        src = _ip4(203, 0, 0, 0) + rng.choice(1 << 16, cfg.reflection, replace=False)
        part = _packets(np.repeat(src, cfg.reflection_packets), _ip4(10, 20, 30, 40), REFLECTION_PORT,
                        rng.integers(1024, 65535, n), P.IPPROTO_UDP, 0, 468, t0 + rng.integers(0, span, n))
        part["frag"] = np.arange(n) % 2 == 1
        parts.append(part)
        attacks.append({"detector": "udp_reflection", "entity": {"dst": REFLECTION_VICTIM, "port": REFLECTION_PORT,
                                                                 "proto": "udp"}, "sources": cfg.reflection})
    if cfg.connect_scans:
        n = cfg.scan_ports
        target = _ip4(10, 0, 0, 3)
        for i in range(cfg.connect_scans):
            scanner = _ip4(198, 51, 101, 1 + i)
            port = np.arange(1, n + 1)
            sport = 30000 + np.arange(n) % 30000
            start = t0 + np.sort(rng.integers(0, max(span - 10_000_000, 1), n))
            # SYN, SYN-ACK, ACK, RST-ACK: a full handshake, then closed at once (nmap -sT)
            for ms, up, flags in ((0, True, TCP_SYN), (1, False, TCP_SYN | TCP_ACK), (2, True, TCP_ACK),
                                  (3, True, TCP_ACK | 0x04)):
                parts.append(_packets(scanner if up else target, target if up else scanner, sport if up else port,
                                      port if up else sport, P.IPPROTO_TCP, flags, 40, start + ms * 1_000_000))
            attacks.append({"detector": "port_scan", "entity": {"src": _fmt4(scanner), "dst": _fmt4(target)},
                            "kind": "connect"})
    if cfg.busy_server:
        c = cfg.busy_server
        client = _ip4(10, 2, 0, 0) + rng.choice(1 << 16, c, replace=True)
        port = rng.integers(1024, 65535, c)
        start = t0 + rng.integers(0, max(span - 50_000_000, 1), c)
        srv = _ip4(10, 0, 0, 80)
        # client SYN, server SYN-ACK, client request, 3 server segments, client FIN: ms apart
        steps = [(0, True, TCP_SYN, 60), (1, False, TCP_SYN | TCP_ACK, 60), (2, True, TCP_ACK | TCP_PSH, 400),
                 (3, False, TCP_ACK | TCP_PSH, 1400), (4, False, TCP_ACK | TCP_PSH, 1400),
                 (5, False, TCP_ACK | TCP_PSH, 1400), (9, True, TCP_ACK | 0x01, 52)]
        for ms, up, flags, size in steps:
            parts.append(_packets(client if up else srv, srv if up else client, port if up else 443,
                                  443 if up else port, P.IPPROTO_TCP, flags, size, start + ms * 1_000_000))
        benign.append({"what": "busy server", "host": BUSY_SERVER, "clients": c})
    if cfg.resolver:
        r = cfg.resolver
        servers = _ip4(192, 0, 2, 0) + np.arange(r) % 250 + (np.arange(r) // 250) * 256
        port = rng.integers(1024, 65535, r)
        start = t0 + rng.integers(0, max(span - 50_000_000, 1), r)
        res = _ip4(10, 0, 0, 53)
        parts.append(_packets(res, servers, port, 53, P.IPPROTO_UDP, 0, 80, start))
        parts.append(_packets(servers, res, 53, port, P.IPPROTO_UDP, 0, 900, start + rng.integers(1, 30, r) * 1_000_000))
        benign.append({"what": "DNS resolver", "host": RESOLVER, "servers": r})
    if cfg.download_mb:
        n = max(int(cfg.download_mb * 1e6 / 1500), 1)
        ts = t0 + np.sort(rng.integers(0, span, n))
        parts.append(_packets(_ip4(10, 0, 0, 99), _ip4(10, 3, 0, 1), 443, 50123, P.IPPROTO_TCP,
                              TCP_ACK | TCP_PSH, 1500, ts))
        parts.append(_packets(_ip4(10, 3, 0, 1), _ip4(10, 0, 0, 99), 50123, 443, P.IPPROTO_TCP, TCP_ACK, 52, ts + 500_000))
        benign.append({"what": "bulk download", "host": DOWNLOAD_SERVER, "megabytes": cfg.download_mb})
    return parts


def _packets(src, dst, sport, dport, proto, flags, ip_len, ts) -> dict:
    """Columns of n packets (scalars broadcast to the length of ts)."""
    ts = np.asarray(ts, np.int64)
    n = len(ts)
    col = lambda v: np.broadcast_to(np.asarray(v, np.int64), (n,)).copy()
    return {"src": col(src), "dst": col(dst), "sport": col(sport), "dport": col(dport), "proto": col(proto),
            "flags": col(flags), "ip_len": col(ip_len), "v6": np.zeros(n, bool), "ts_ns": ts,
            "vlan": np.zeros(n, np.int64), "ip_id": col(0) + np.arange(n) % 65536, "frag": np.zeros(n, bool)}


def _syns(src, dst, sport, dport) -> dict:
    n = len(src)
    return {"src": np.asarray(src, np.int64), "dst": np.asarray(dst, np.int64), "sport": np.asarray(sport, np.int64),
            "dport": np.asarray(dport, np.int64), "proto": np.full(n, P.IPPROTO_TCP), "flags": np.full(n, TCP_SYN),
            "ip_len": np.full(n, IPV4_HDR + TCP_HDR), "v6": np.zeros(n, bool)}


def _fmt4(v: int) -> str:
    return to_text(V4_PREFIX + int(v).to_bytes(4, "big"))


def _put(buf, pos, value, nbytes):
    """Write big-endian integers `value` at byte positions `pos` (vectorised)."""
    for i in range(nbytes):
        buf[pos + i] = (value >> (8 * (nbytes - 1 - i))) & 0xFF


def _put_le(buf, pos, value, nbytes):
    for i in range(nbytes):
        buf[pos + i] = (value >> (8 * i)) & 0xFF


def build_pcap(cols: dict) -> bytes:
    """Serialise the packet columns as a little-endian nanosecond pcap (Ethernet)."""
    # Fragmented UDP datagrams become two packets: first (UDP header, MF) and the rest.
    frag = cols["frag"]
    idx = np.repeat(np.arange(len(frag)), np.where(frag, 2, 1))
    second = np.zeros(len(idx), bool)
    second[1:] = (idx[1:] == idx[:-1])
    c = {k: v[idx] for k, v in cols.items()}
    fr = c["frag"]
    half = ((c["ip_len"] - IPV4_HDR) // 2 + 7) // 8 * 8   # payload bytes in the first fragment (multiple of 8)
    ip_len = np.where(fr, np.where(second, c["ip_len"] - half, IPV4_HDR + half), c["ip_len"])
    v6, vlan = c["v6"], c["vlan"] > 0
    l3_len = np.where(v6, IPV6_HDR, IPV4_HDR)
    eth = ETH_HDR + np.where(vlan, VLAN_HDR, 0)
    frame = eth + ip_len
    n = len(idx)
    rec = np.zeros(n, np.int64)
    rec[1:] = np.cumsum(16 + frame[:-1])
    rec += 24
    total = int(rec[-1] + 16 + frame[-1]) if n else 24
    buf = np.zeros(total, np.uint8)
    buf[:24] = np.frombuffer(bytes.fromhex("4d3cb2a1020004000000000000000000ffff000001000000"), np.uint8)
    ts = c["ts_ns"]
    _put_le(buf, rec, ts // 1_000_000_000, 4)
    _put_le(buf, rec + 4, ts % 1_000_000_000, 4)
    _put_le(buf, rec + 8, frame, 4)
    _put_le(buf, rec + 12, frame, 4)
    f = rec + 16
    buf[f + 0] = 0x02                                   # locally administered MACs
    buf[f + 5] = 0x01
    buf[f + 6] = 0x02
    buf[f + 11] = 0x02
    et_pos = f + 12
    t = np.nonzero(vlan)[0]
    _put(buf, et_pos[t], np.full(t.size, 0x8100), 2)
    _put(buf, et_pos[t] + 2, c["vlan"][t], 2)
    et_pos = et_pos + np.where(vlan, VLAN_HDR, 0)
    _put(buf, et_pos, np.where(v6, P.ETH_IPV6, P.ETH_IPV4), 2)
    l3 = f + eth
    i4 = np.nonzero(~v6)[0]
    p = l3[i4]
    buf[p] = 0x45
    _put(buf, p + 2, ip_len[i4], 2)
    _put(buf, p + 4, c["ip_id"][i4], 2)
    fo = np.where(fr[i4], np.where(second[i4], half[i4] // 8, 0x2000), 0)
    _put(buf, p + 6, fo, 2)
    buf[p + 8] = 64
    buf[p + 9] = c["proto"][i4]
    _put(buf, p + 12, c["src"][i4], 4)
    _put(buf, p + 16, c["dst"][i4], 4)
    i6 = np.nonzero(v6)[0]
    p = l3[i6]
    buf[p] = 0x60
    _put(buf, p + 4, ip_len[i6] - IPV6_HDR, 2)
    buf[p + 6] = c["proto"][i6]
    buf[p + 7] = 64
    for base in (8, 24):   # 2001:db8::<v4 host> so IPv6 flows mirror the IPv4 host pool
        _put(buf, p + base, np.full(i6.size, 0x20010DB8), 4)
    _put(buf, p + 20, c["src"][i6], 4)
    _put(buf, p + 36, c["dst"][i6], 4)
    hdr = np.nonzero(~second)[0]                        # later fragments carry no transport header
    p = l3[hdr] + l3_len[hdr]
    _put(buf, p, c["sport"][hdr], 2)
    _put(buf, p + 2, c["dport"][hdr], 2)
    tcp = hdr[c["proto"][hdr] == P.IPPROTO_TCP]
    q = l3[tcp] + l3_len[tcp]
    buf[q + 12] = 0x50
    buf[q + 13] = c["flags"][tcp]
    udp = hdr[c["proto"][hdr] == P.IPPROTO_UDP]
    q = l3[udp] + l3_len[udp]
    _put(buf, q + 4, np.where(fr[udp], c["ip_len"][udp], ip_len[udp]) - l3_len[udp], 2)
    return buf.tobytes()


def write(path: str, cfg: SynthConfig) -> dict:
    g = generate(cfg)
    with open(path, "wb") as f:
        f.write(build_pcap(g["cols"]))
    with open(path + ".truth.json", "w") as f:
        json.dump(g["truth"], f, indent=1)
    return g["truth"]
