"""Tunnels: where a carrier packet's inner packet starts, one compiled pass per level.

The decoder (decoder.py) decodes a carrier as usual (an outer IP packet with GRE, IP-in-IP or
a tunnel's UDP port; an Ethernet frame with MPLS or a PPPoE session), asks `decapsulate` where
its inner frame starts and what it is (Ethernet, or IP), decodes the inner frames as a batch
of their own (the fast path again, so nested tunnels are taken out the same way, up to
MAX_DEPTH), and keeps the envelope in the batch's tunnel table (schemas/packet_batch.py).

Formats: VXLAN (RFC 7348, I flag required), Geneve (RFC 8926, options skipped), GRE (RFC 2784/
2890: checksum, key, sequence; version 1 is PPTP's enhanced GRE carrying PPP), ERSPAN I, II and
III inside GRE (types I and II share a protocol type: II has a GRE sequence number), IP-in-IP
(protocols 4 and 41), MPLS label stacks (up to MAX_LABELS; after the bottom label IPv4, IPv6,
or an Ethernet pseudowire behind a zero control word), PPPoE sessions (IPv4 and IPv6 in PPP),
GTP-U version 1 G-PDUs (extension headers skipped; its signalling messages are not tunnels).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from collectors import protocols as P
from schemas.jit import njit
from schemas.packet_batch import (TUNNEL_ERSPAN, TUNNEL_GENEVE, TUNNEL_GRE, TUNNEL_GTPU, TUNNEL_IPIP, TUNNEL_MPLS,
                                  TUNNEL_NAMES, TUNNEL_PPPOE, TUNNEL_VXLAN)

MAX_DEPTH = 4          # tunnels inside tunnels taken out; a deeper packet keeps its 4th envelope's inside
MAX_LABELS = 8         # an MPLS stack deeper than this is counted as bad
MAX_GTP_EXTENSIONS = 16

# Why a carrier was not taken out (decapsulate's `why`): counted by the decoder per tunnel kind.
DECAP_OK = 0
DECAP_TRUNCATED = 1    # its headers cut by the capture
DECAP_BAD = 2          # an impossible or unsupported header
DECAP_NOT_DATA = 3     # signalling (a GTP echo, PPP's LCP), or a kind inside it that is switched off
DECAP_REASONS = {DECAP_TRUNCATED: "truncated", DECAP_BAD: "bad", DECAP_NOT_DATA: "not_data"}

# What starts at the inner offset (decapsulate's `link`): the decoder's link types.
_ETH, _IP = P.LINK_ETHERNET, P.LINK_RAW
_VXLAN, _GENEVE, _GRE, _ERSPAN, _IPIP, _MPLS, _PPPOE, _GTPU = (TUNNEL_VXLAN, TUNNEL_GENEVE, TUNNEL_GRE, TUNNEL_ERSPAN,
                                                             TUNNEL_IPIP, TUNNEL_MPLS, TUNNEL_PPPOE, TUNNEL_GTPU)
_V4, _V6, _TEB = P.ETH_IPV4, P.ETH_IPV6, P.ETH_TEB
_MPLS_U, _MPLS_M = P.ETH_MPLS
_ERSPAN_2, _ERSPAN_3, _PPP = P.ETH_ERSPAN_2, P.ETH_ERSPAN_3, P.ETH_PPP
_PPP_V4, _PPP_V6 = P.PPP_IPV4, P.PPP_IPV6


@njit(cache=True, nogil=True, inline="always")
def _u16(buf, p):
    return (np.int64(buf[p]) << 8) | buf[p + 1]


@njit(cache=True, nogil=True, inline="always")
def _u32(buf, p):
    return (_u16(buf, p) << 16) | _u16(buf, p + 2)


@njit(cache=True, nogil=True)
def _mpls(buf, q, e):
    """An MPLS stack at q: (inner offset, link, bottom label, why)."""
    label = 0
    for _ in range(MAX_LABELS):
        if q + 4 > e:
            return q, 0, label, DECAP_TRUNCATED
        label = _u32(buf, q) >> 12
        bottom = buf[q + 2] & 1
        q += 4
        if bottom:
            if q >= e:
                return q, 0, label, DECAP_TRUNCATED
            nib = buf[q] >> 4
            if nib == 4 or nib == 6:
                return q, _IP, label, DECAP_OK
            if nib == 0:                   # a pseudowire's control word, then an Ethernet frame
                return q + 4, _ETH, label, DECAP_OK
            return q, 0, label, DECAP_BAD
    return q, 0, label, DECAP_BAD


@njit(cache=True, nogil=True)
def _ppp(buf, q, e):
    """A PPP frame at q (address and control, and a compressed protocol field, allowed): (inner
    offset, why)."""
    if q + 2 > e:
        return q, DECAP_TRUNCATED
    if buf[q] == 0xFF and buf[q + 1] == 0x03:
        q += 2
    if q + 1 > e:
        return q, DECAP_TRUNCATED
    if buf[q] & 1:
        proto = np.int64(buf[q])
        q += 1
    else:
        if q + 2 > e:
            return q, DECAP_TRUNCATED
        proto = _u16(buf, q)
        q += 2
    if proto == _PPP_V4 or proto == _PPP_V6:
        return q, DECAP_OK
    return q, DECAP_NOT_DATA


@njit(cache=True, nogil=True)
def _gre(buf, p, e, enabled):
    """A GRE header at p: (inner offset, link, kind, tunnel id, why)."""
    if p + 4 > e:
        return p, 0, _GRE, 0, DECAP_TRUNCATED
    fl = _u16(buf, p)
    et = _u16(buf, p + 2)
    ver = fl & 7
    q = p + 4
    tid = 0
    if ver == 0:
        if fl & 0x4000:                    # source routing (RFC 1701): obsolete
            return q, 0, _GRE, 0, DECAP_BAD
        if fl & 0x8000:
            q += 4
        if fl & 0x2000:
            if q + 4 > e:
                return q, 0, _GRE, 0, DECAP_TRUNCATED
            tid = _u32(buf, q)
            q += 4
        if fl & 0x1000:
            q += 4
    elif ver == 1:                         # PPTP: key (payload length, call id), sequence, ack, then PPP
        if et != _PPP or not fl & 0x2000:
            return q, 0, _GRE, 0, DECAP_BAD
        if q + 4 > e:
            return q, 0, _GRE, 0, DECAP_TRUNCATED
        tid = _u16(buf, q + 2)
        q += 4
        if fl & 0x1000:
            q += 4
        if fl & 0x0080:
            q += 4
        if not fl & 0x1000:                # an acknowledgement alone carries no packet
            return q, 0, _GRE, tid, DECAP_NOT_DATA
        q, why = _ppp(buf, q, e)
        return q, _IP, _GRE, tid, why
    else:
        return q, 0, _GRE, 0, DECAP_BAD
    if q > e:
        return q, 0, _GRE, tid, DECAP_TRUNCATED
    if et == _V4 or et == _V6:
        return q, _IP, _GRE, tid, DECAP_OK
    if et == _TEB:
        return q, _ETH, _GRE, tid, DECAP_OK
    if et == _ERSPAN_2 or et == _ERSPAN_3:
        if not enabled[_ERSPAN]:
            return q, 0, _ERSPAN, 0, DECAP_NOT_DATA
        if et == _ERSPAN_2 and not fl & 0x1000:
            return q, _ETH, _ERSPAN, 0, DECAP_OK          # type I: the frame follows GRE at once
        n = 8 if et == _ERSPAN_2 else 12
        if q + n > e:
            return q, 0, _ERSPAN, 0, DECAP_TRUNCATED
        if (buf[q] >> 4) != (1 if et == _ERSPAN_2 else 2):
            return q, 0, _ERSPAN, 0, DECAP_BAD
        session = _u16(buf, q + 2) & 0x3FF
        if et == _ERSPAN_3 and buf[q + 11] & 1:           # a platform-specific subheader follows
            n += 8
        return q + n, _ETH, _ERSPAN, session, DECAP_OK
    if et == _MPLS_U or et == _MPLS_M:
        if not enabled[_MPLS]:
            return q, 0, _MPLS, 0, DECAP_NOT_DATA
        q, link, label, why = _mpls(buf, q, e)
        return q, link, _MPLS, label, why
    return q, 0, _GRE, tid, DECAP_NOT_DATA


@njit(cache=True, nogil=True, aot=["void(u1[::1], i8[::1], i8[::1], u1[::1], b1[::1], i8[::1], u2[::1], u1[::1], "
                                    "u4[::1], u1[::1])"])
def decapsulate(buf, pos, end, kind, enabled, inner, link, out_kind, tid, why):
    """For carrier i whose tunnel header starts at pos[i] (end[i]: its packet's captured end) and
    whose kind[i] (TUNNEL_*) its outer headers said: the inner frame's offset and link type
    (Ethernet or raw IP), the innermost kind found (GRE may hold ERSPAN or MPLS), the tunnel id,
    and why[i] (DECAP_*). `enabled[k]`: kind k is taken out."""
    for i in range(pos.shape[0]):
        p = pos[i]
        e = end[i]
        k = np.int64(kind[i])
        q = p
        lk = 0
        t = 0
        w = DECAP_OK
        if k == _VXLAN:
            if p + 8 > e:
                w = DECAP_TRUNCATED
            elif not buf[p] & 0x08:
                w = DECAP_BAD
            else:
                t = (_u16(buf, p + 4) << 8) | buf[p + 6]
                q, lk = p + 8, _ETH
        elif k == _GENEVE:
            if p + 8 > e:
                w = DECAP_TRUNCATED
            elif buf[p] >> 6:
                w = DECAP_BAD
            else:
                t = (_u16(buf, p + 4) << 8) | buf[p + 6]
                et = _u16(buf, p + 2)
                q = p + 8 + (buf[p] & 0x3F) * 4
                if et == _TEB:
                    lk = _ETH
                elif et == _V4 or et == _V6:
                    lk = _IP
                else:
                    w = DECAP_NOT_DATA
        elif k == _GTPU:
            if p + 8 > e:
                w = DECAP_TRUNCATED
            elif (buf[p] >> 5) != 1 or not buf[p] & 0x10:
                w = DECAP_BAD
            elif buf[p + 1] != 0xFF:
                w = DECAP_NOT_DATA           # signalling: echo, error indication, end marker
            else:
                t = _u32(buf, p + 4)
                q, lk = p + 8, _IP
                if buf[p] & 0x07:            # sequence number, N-PDU number, next extension type
                    if q + 4 > e:
                        w = DECAP_TRUNCATED
                    else:
                        nxt = buf[q + 3]
                        q += 4
                        for _ in range(MAX_GTP_EXTENSIONS):
                            if nxt == 0 or w != DECAP_OK:
                                break
                            if q + 1 > e:
                                w = DECAP_TRUNCATED
                            elif buf[q] == 0:
                                w = DECAP_BAD
                            else:
                                n = np.int64(buf[q]) * 4
                                if q + n > e:
                                    w = DECAP_TRUNCATED
                                else:
                                    nxt = buf[q + n - 1]
                                    q += n
                        if nxt != 0 and w == DECAP_OK:
                            w = DECAP_BAD
        elif k == _GRE:
            q, lk, k, t, w = _gre(buf, p, e, enabled)
        elif k == _IPIP:
            lk = _IP
        elif k == _MPLS:
            q, lk, t, w = _mpls(buf, p, e)
        elif k == _PPPOE:
            if p + 6 > e:
                w = DECAP_TRUNCATED
            elif buf[p] != 0x11 or buf[p + 1] != 0:
                w = DECAP_BAD
            else:
                t = _u16(buf, p + 2)
                q, w = _ppp(buf, p + 6, e)
                lk = _IP
        else:
            w = DECAP_BAD
        if w == DECAP_OK and q >= e:
            w = DECAP_TRUNCATED
        inner[i] = q
        link[i] = lk
        out_kind[i] = k
        tid[i] = t
        why[i] = w


KINDS = {name: kind for kind, name in TUNNEL_NAMES.items() if name}


@dataclass(frozen=True)
class Decap:
    """Which tunnels the decoder takes packets out of (all by default), and on which UDP ports.
    Tables indexed by IP protocol and by UDP destination port give a carrier's kind (0: none),
    read by the fast path (fast.py) and the reference decoder alike."""
    off: frozenset = frozenset()                  # TUNNEL_NAMES of the kinds left as they are ("all": every one)
    vxlan_ports: tuple = (P.VXLAN_PORT,)
    geneve_ports: tuple = (P.GENEVE_PORT,)
    gtpu_ports: tuple = (P.GTPU_PORT,)

    def __post_init__(self):
        if "all" in self.off:
            object.__setattr__(self, "off", frozenset(KINDS))
        unknown = set(self.off) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown tunnel kind {sorted(unknown)[0]!r} (known: {', '.join(KINDS)}, or all)")
        enabled = np.zeros(len(TUNNEL_NAMES), bool)
        for name, k in KINDS.items():
            enabled[k] = name not in self.off
        by_proto = np.zeros(256, np.uint8)
        for proto, k in ((P.IPPROTO_GRE, TUNNEL_GRE), (P.IPPROTO_IPIP, TUNNEL_IPIP), (P.IPPROTO_IPV6, TUNNEL_IPIP)):
            by_proto[proto] = k if enabled[k] else 0
        by_port = np.zeros(65536, np.uint8)
        for ports, k in ((self.gtpu_ports, TUNNEL_GTPU), (self.geneve_ports, TUNNEL_GENEVE),
                         (self.vxlan_ports, TUNNEL_VXLAN)):
            for port in ports:
                if not 0 < int(port) < 65536:
                    raise ValueError(f"tunnel port {port} is not a UDP port (1-65535)")
                by_port[int(port)] = k if enabled[k] else 0
        object.__setattr__(self, "enabled", enabled)
        object.__setattr__(self, "by_proto", by_proto)
        object.__setattr__(self, "by_port", by_port)
        ports = np.flatnonzero(by_port).astype(np.int64)         # for the fast path: the ports and their kinds
        object.__setattr__(self, "ports", ports)
        object.__setattr__(self, "port_kinds", by_port[ports])

    @classmethod
    def none(cls) -> "Decap":
        return cls(off=frozenset(KINDS))
