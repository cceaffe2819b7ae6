"""The common-case fast path of the decoder: one compiled pass over a batch.

Most packets on a network are Ethernet (with at most one VLAN tag) carrying an unfragmented
IPv4 or extension-free IPv6 packet whose headers are all captured. This pass decodes those in
one loop (~20 ns a packet) and marks every other packet for the column-wise decoder in
layers.py, which stays the reference for everything unusual (stacked VLANs, other link types,
fragments, IPv6 extension headers, truncation, bad headers, non-IP). `tests/collectors/decode/
test_fast_path.py` checks that both give identical columns on real and fuzzed frames.
"""
from __future__ import annotations

import numpy as np

from collectors import protocols as P
from collectors.decode.l7_scan import is_one_of, l7_kind
from schemas.jit import njit

_LINK_ETHERNET = P.LINK_ETHERNET
_VLAN_A, _VLAN_B, _VLAN_C = P.ETH_VLAN_TAGS
_ETH_IPV4, _ETH_IPV6 = P.ETH_IPV4, P.ETH_IPV6
_TCP, _UDP, _ICMP, _ICMPV6 = P.IPPROTO_TCP, P.IPPROTO_UDP, P.IPPROTO_ICMP, P.IPPROTO_ICMPV6
_IPV6_EXT = np.array(P.IPV6_EXT_HEADERS, np.int64)
PREFETCH = 16     # packets ahead whose headers are read early (see fast_decode)


@njit(cache=True, nogil=True, aot=["void(u1[::1], i8[::1], i8[::1], u2[::1], u2[::1], u1[::1], u2[::1], u1[::1], u1[:, ::1], "
                                    "u1[:, ::1], u1[::1], u2[::1], u2[::1], u4[::1], u1[::1], u2[::1], u1[::1], u1[::1], b1[::1], "
                                    "i8[::1], i8[::1], b1, b1, u1[::1], i8[::1], u1[::1], u1[::1], i8[::1], u1[::1])"])
def fast_decode(buf, off, caplen, link, vlan, vlan_depth, eth_type, ip_ver, src, dst, proto, sport, dport,
                ip_len, ttl, tcp_flags, icmp_type, icmp_code, slow, l4_out, ip_end_out, l7, http, kind, seen,
                carrier, tun_proto, tun_ports, tun_port_kinds):
    """Fill the columns of fast-path packets, their transport header offset and their IP packet's
    captured end (l4_out, ip_end_out: for the L7 decoders); set slow[i] for every packet it
    leaves alone. With `l7`, also what each TCP or UDP packet may carry (l7_scan.l7_kind: kind[i],
    and seen[0] every bit set; `http` False: DNS only), while its headers are in the cache.
    A tunnel carrier is decoded as the outer packet it is, and carrier[i] set to its kind
    (tunnels.Decap's kinds by IP protocol, and by UDP destination port: a few ports, compared,
    where a 64 kB table by port missed the cache), seen[1] counting them: the decoder then takes
    their packets out (no L7 kind for a carrier: what it carries is read from the inner packet)."""
    ext = _IPV6_EXT
    n = off.shape[0]
    touched = np.uint8(0)
    bits = 0
    carriers = 0
    for i in range(n):
        o = off[i]
        end = o + caplen[i]
        # the headers PREFETCH packets on, read now (independent loads: their cache misses overlap
        # this packet's work); a condition that is never true uses what was read, so it is read
        if i + PREFETCH < n:
            p = off[i + PREFETCH]
            touched ^= buf[p] ^ buf[min(p + 63, buf.shape[0] - 1)]
        if (touched == 7) & (o < 0):
            slow[i] = True
        if link[i] != _LINK_ETHERNET or caplen[i] < 14:
            slow[i] = True
            continue
        et = (np.int64(buf[o + 12]) << 8) | buf[o + 13]
        l3 = o + 14
        vid = 0
        depth = 0
        if et == _VLAN_A or et == _VLAN_B or et == _VLAN_C:
            if l3 + 4 > end:
                slow[i] = True
                continue
            vid = ((np.int64(buf[l3]) << 8) | buf[l3 + 1]) & 0x0FFF
            et = (np.int64(buf[l3 + 2]) << 8) | buf[l3 + 3]
            l3 += 4
            depth = 1
            if et == _VLAN_A or et == _VLAN_B or et == _VLAN_C:
                slow[i] = True
                continue
        if et == _ETH_IPV4:
            if l3 + 20 > end:
                slow[i] = True
                continue
            b0 = np.int64(buf[l3])
            ihl = (b0 & 0x0F) * 4
            tot = (np.int64(buf[l3 + 2]) << 8) | buf[l3 + 3]
            fo = (np.int64(buf[l3 + 6]) << 8) | buf[l3 + 7]
            if (b0 >> 4) != 4 or ihl < 20 or tot < ihl or (fo & 0x3FFF) != 0:
                slow[i] = True        # bad header, zero length (TSO) or a fragment
                continue
            pr = np.int64(buf[l3 + 9])
            l4 = l3 + ihl
            for k in range(10):
                src[i, k] = 0
                dst[i, k] = 0
            src[i, 10] = src[i, 11] = dst[i, 10] = dst[i, 11] = 0xFF
            for k in range(4):
                src[i, 12 + k] = buf[l3 + 12 + k]
                dst[i, 12 + k] = buf[l3 + 16 + k]
            ip_ver[i] = 4
            ttl[i] = buf[l3 + 8]
            ip_len[i] = tot
            is_icmp = pr == _ICMP
        elif et == _ETH_IPV6:
            if l3 + 40 > end:
                slow[i] = True
                continue
            plen = (np.int64(buf[l3 + 4]) << 8) | buf[l3 + 5]
            pr = np.int64(buf[l3 + 6])
            if (buf[l3] >> 4) != 6 or plen == 0 or is_one_of(pr, ext):
                slow[i] = True        # bad header, jumbogram or extension headers
                continue
            l4 = l3 + 40
            for k in range(16):
                src[i, k] = buf[l3 + 8 + k]
                dst[i, k] = buf[l3 + 24 + k]
            ip_ver[i] = 6
            ttl[i] = buf[l3 + 7]
            ip_len[i] = plen + 40
            is_icmp = pr == _ICMPV6
        else:
            slow[i] = True            # non-IP: counted by the reference decoder
            continue
        if (pr == _TCP or pr == _UDP) and l4 + 4 > end:
            slow[i] = True            # ports cut by the capture: the reference decoder counts it
            continue
        tk = tun_proto[pr]
        if pr == _UDP:
            dp = (np.int64(buf[l4 + 2]) << 8) | buf[l4 + 3]
            for j in range(tun_ports.shape[0]):
                if dp == tun_ports[j]:
                    tk = tun_port_kinds[j]
        if tk != 0:
            carrier[i] = tk
            carriers += 1
        l4_out[i] = l4
        ip_end_out[i] = min(end, l3 + ip_len[i])
        vlan[i] = vid
        vlan_depth[i] = depth
        eth_type[i] = et
        proto[i] = pr
        if pr == _TCP or pr == _UDP:
            sport[i] = (np.int64(buf[l4]) << 8) | buf[l4 + 1]
            dport[i] = (np.int64(buf[l4 + 2]) << 8) | buf[l4 + 3]
        if pr == _TCP and l4 + 14 <= end:
            tcp_flags[i] = buf[l4 + 13] | ((np.int64(buf[l4 + 12]) & 1) << 8)
        if is_icmp and l4 + 2 <= end:
            icmp_type[i] = buf[l4]
            icmp_code[i] = buf[l4 + 1]
        if l7 and (pr == _TCP or pr == _UDP) and tk == 0:
            k = l7_kind(buf, pr, sport[i], dport[i], l4, ip_end_out[i], http)
            kind[i] = k
            bits |= k
    if l7:
        seen[0] = bits
    seen[1] = carriers
