"""Column-wise header decoding with numpy: link layer, IPv4, IPv6 (+ extension headers), L4.

Every function works on index subsets (`rows`) of a RawBatch and only gathers bytes that the
captured length guarantees are present, so nothing here can read past a frame or raise on
malformed input. Rows that fail a check get a STATUS_* code instead.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from collectors import protocols as P
from schemas.packet_batch import (STATUS_BAD_IP_HEADER, STATUS_NON_IP, STATUS_TRUNCATED_IP,
                                  STATUS_TRUNCATED_L2, STATUS_UNKNOWN_LINK)


def u8(buf: np.ndarray, pos: np.ndarray) -> np.ndarray:
    return buf[pos].astype(np.int64)


def u16(buf: np.ndarray, pos: np.ndarray) -> np.ndarray:
    return (buf[pos].astype(np.int64) << 8) | buf[pos + 1]


def u32(buf: np.ndarray, pos: np.ndarray) -> np.ndarray:
    return (u16(buf, pos) << 16) | u16(buf, pos + 2)


@dataclass
class LinkResult:
    l3: np.ndarray          # int64 absolute offset of the L3 header
    eth_type: np.ndarray    # int64 EtherType (0x0800 / 0x86DD / other); -1 where undecodable
    vlan: np.ndarray        # int64 outer VLAN id
    vlan_depth: np.ndarray  # int64 number of tags


def link_layer(buf, off, end, link, status) -> LinkResult:
    """Find the L3 header of every frame; sets status for short frames and unknown link types."""
    n = off.shape[0]
    res = LinkResult(l3=off.copy(), eth_type=np.full(n, -1, np.int64), vlan=np.zeros(n, np.int64),
                     vlan_depth=np.zeros(n, np.int64))
    caplen = end - off
    if n and link[0] == link[-1] and (link == link[0]).all():
        groups = [(int(link[0]), None)]
    else:
        groups = [(int(lt), np.nonzero(link == lt)[0]) for lt in np.unique(link)]
    for lt, rows in groups:
        rows = np.arange(n) if rows is None else rows
        if lt == P.LINK_ETHERNET:
            _ethernet(buf, off, end, caplen, rows, res, status)
        elif lt in (P.LINK_LINUX_SLL, P.LINK_LINUX_SLL2):
            hdr, type_at = (16, 14) if lt == P.LINK_LINUX_SLL else (20, 0)
            ok = _require(caplen, rows, hdr, status, STATUS_TRUNCATED_L2)
            res.eth_type[ok] = u16(buf, off[ok] + type_at)
            res.l3[ok] = off[ok] + hdr
        elif lt in (P.LINK_RAW, P.LINK_RAW_BSD, P.LINK_IPV4, P.LINK_IPV6):
            ok = _require(caplen, rows, 1, status, STATUS_TRUNCATED_IP)
            ver = u8(buf, off[ok]) >> 4
            res.eth_type[ok] = np.where(ver == 4, P.ETH_IPV4, np.where(ver == 6, P.ETH_IPV6, -1))
        elif lt in (P.LINK_NULL, P.LINK_LOOP):
            ok = _require(caplen, rows, 4, status, STATUS_TRUNCATED_L2)
            # The family is < 256: whichever end byte is non-zero holds it, in either byte order.
            b0, b3 = u8(buf, off[ok]), u8(buf, off[ok] + 3)
            fam = np.where(b0 != 0, b0, b3)
            res.eth_type[ok] = np.where(fam == P.AF_INET, P.ETH_IPV4,
                                        np.where(np.isin(fam, P.AF_INET6_VALUES), P.ETH_IPV6, -1))
            res.l3[ok] = off[ok] + 4
        else:
            status[rows] = STATUS_UNKNOWN_LINK
    undecoded = (status == 0) & (res.eth_type != P.ETH_IPV4) & (res.eth_type != P.ETH_IPV6)
    status[undecoded] = STATUS_NON_IP
    return res


def _require(caplen, rows, nbytes, status, code):
    short = caplen[rows] < nbytes
    if short.any():
        status[rows[short]] = code
        return rows[~short]
    return rows


def _ethernet(buf, off, end, caplen, rows, res, status):
    rows = _require(caplen, rows, 14, status, STATUS_TRUNCATED_L2)
    et = u16(buf, off[rows] + 12)
    l3 = off[rows] + 14
    tagged = np.nonzero(np.isin(et, P.ETH_VLAN_TAGS))[0]
    depth = 0
    while tagged.size and depth < 3:
        fits = l3[tagged] + 4 <= end[rows[tagged]]
        status[rows[tagged[~fits]]] = STATUS_TRUNCATED_L2
        tagged = tagged[fits]
        if depth == 0:
            res.vlan[rows[tagged]] = u16(buf, l3[tagged]) & 0x0FFF
        et[tagged] = u16(buf, l3[tagged] + 2)
        l3[tagged] += 4
        res.vlan_depth[rows[tagged]] += 1
        depth += 1
        tagged = tagged[np.isin(et[tagged], P.ETH_VLAN_TAGS)]
    res.eth_type[rows] = et
    res.l3[rows] = l3


@dataclass
class IPResult:
    rows: np.ndarray        # batch rows that hold a valid IP header
    l4: np.ndarray          # int64 offset of the transport header (after options / ext headers)
    proto: np.ndarray
    ip_len: np.ndarray
    ttl: np.ndarray
    frag_off: np.ndarray    # fragment offset in 8-byte units
    more_frags: np.ndarray  # bool
    is_frag: np.ndarray     # bool
    frag_id: np.ndarray
    l4_ok: np.ndarray       # bool: transport header start lies inside the IP header chain as captured
    src: np.ndarray         # (k, 16) uint8
    dst: np.ndarray


def ipv4(buf, rows, off, l3, end, wirelen, status, warn) -> IPResult:
    fits = l3[rows] + 20 <= end[rows]
    status[rows[~fits]] = STATUS_TRUNCATED_IP
    rows = rows[fits]
    p = l3[rows]
    b0 = u8(buf, p)
    ihl = (b0 & 0x0F) * 4
    tot = u16(buf, p + 2)
    bad = ((b0 >> 4) != 4) | (ihl < 20) | ((tot < ihl) & (tot != 0))
    if bad.any():
        status[rows[bad]] = STATUS_BAD_IP_HEADER
        keep = ~bad
        rows, p, ihl, tot = rows[keep], p[keep], ihl[keep], tot[keep]
    zero_len = tot == 0   # TSO/GSO on the capturing host: take the length from the frame
    if zero_len.any():
        warn["ip_len_zero"] += int(zero_len.sum())
        tot = np.where(zero_len, wirelen[rows] - (p - off[rows]), tot)
    fo = u16(buf, p + 6)
    frag_off = fo & 0x1FFF
    more = (fo & 0x2000) != 0
    k = rows.shape[0]
    src = np.zeros((k, 16), np.uint8)
    dst = np.zeros((k, 16), np.uint8)
    src[:, 10:12] = 0xFF
    dst[:, 10:12] = 0xFF
    for i in range(4):
        src[:, 12 + i] = buf[p + 12 + i]
        dst[:, 12 + i] = buf[p + 16 + i]
    l4 = p + ihl
    return IPResult(rows=rows, l4=l4, proto=u8(buf, p + 9), ip_len=tot, ttl=u8(buf, p + 8),
                    frag_off=frag_off, more_frags=more, is_frag=more | (frag_off > 0), frag_id=u16(buf, p + 4),
                    l4_ok=l4 <= end[rows], src=src, dst=dst)


_EXT = np.array(P.IPV6_EXT_HEADERS)


def ipv6(buf, rows, off, l3, end, wirelen, status, warn) -> IPResult:
    fits = l3[rows] + 40 <= end[rows]
    status[rows[~fits]] = STATUS_TRUNCATED_IP
    rows = rows[fits]
    p = l3[rows]
    bad = (u8(buf, p) >> 4) != 6
    if bad.any():
        status[rows[bad]] = STATUS_BAD_IP_HEADER
        rows, p = rows[~bad], p[~bad]
    k = rows.shape[0]
    plen = u16(buf, p + 4)
    jumbo = plen == 0
    ip_len = np.where(jumbo, wirelen[rows] - (p - off[rows]), plen + 40)
    if jumbo.any():
        warn["ip_len_zero"] += int(jumbo.sum())
    addr = buf[p[:, None] + np.arange(8, 40)]
    nh = u8(buf, p + 6)
    cur = p + 40
    frag_off = np.zeros(k, np.int64)
    more = np.zeros(k, bool)
    is_frag = np.zeros(k, bool)
    frag_id = np.zeros(k, np.int64)
    l4_ok = np.ones(k, bool)
    walking = np.nonzero(np.isin(nh, _EXT))[0]
    for _ in range(P.IPV6_MAX_EXT_HEADERS):
        if walking.size == 0:
            break
        fits = cur[walking] + 8 <= end[rows[walking]]
        l4_ok[walking[~fits]] = False
        walking = walking[fits]
        c = cur[walking]
        this = nh[walking]
        nh[walking] = u8(buf, c)
        is_fr = this == P.IPV6_EXT_FRAGMENT
        if is_fr.any():
            f = walking[is_fr]
            v = u16(buf, c[is_fr] + 2)
            frag_off[f] = v >> 3
            more[f] = (v & 1) != 0
            is_frag[f] = True
            frag_id[f] = u32(buf, c[is_fr] + 4)
        ext_len = np.where(this == P.IPV6_EXT_AH, (u8(buf, c + 1) + 2) * 4,
                           np.where(is_fr, 8, (u8(buf, c + 1) + 1) * 8))
        cur[walking] = c + ext_len
        # Later fragments carry no further headers: what follows is opaque payload.
        walking = walking[np.isin(nh[walking], _EXT) & ~(is_fr & (frag_off[walking] > 0))]
    if walking.size:
        warn["ipv6_ext_chain_too_long"] += int(walking.size)
        l4_ok[walking] = False
    l4_ok &= cur <= end[rows]
    return IPResult(rows=rows, l4=cur, proto=nh, ip_len=ip_len, ttl=u8(buf, p + 7), frag_off=frag_off,
                    more_frags=more, is_frag=is_frag, frag_id=frag_id, l4_ok=l4_ok,
                    src=np.ascontiguousarray(addr[:, :16]), dst=np.ascontiguousarray(addr[:, 16:]))
