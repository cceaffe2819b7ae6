"""Which packets of a batch may carry L7 fields: one compiled pass, before any Python per packet.

The L7 decoders (DNS, HTTP, SIP, TLS, QUIC, DTLS) are Python, called for a few packets a batch. Which
ones used to be found with numpy masks over every TCP and UDP packet: some sixty passes over the
batch, ~55 ns a packet, which cost as much as decoding it on traffic that holds none (a flood, a
bulk transfer). l7_kind reads a packet's transport header and first payload bytes once and
says what it may be (the L7_* bits), in the fast path's loop (fast.py) or, for the packets the
reference decoder takes, in l7_scan; the decoder (decoder.py `_l7`) then parses only the
packets a bit names, category by category, in the order it always has.
"""
from __future__ import annotations

import numpy as np

from collectors import protocols as P
from collectors.decode.quic import MIN_INITIAL_DATAGRAM, V1, V2
from collectors.decode.tls import CHANGE_CIPHER_SPEC, DTLS_HANDSHAKE, DTLS_RECORD, HANDSHAKE
from schemas.jit import njit

# What a packet may carry (kind bits): each is parsed by the decoder, in this order.
L7_DNS_UDP = 1      # a DNS port, a header counting a question or a record
L7_UDP_TEXT = 2     # a text protocol over UDP: HTTP (SSDP's port) or SIP (its port)
L7_QUIC = 4         # a QUIC v1/v2 long header in a datagram padded as an Initial is
L7_DTLS = 8         # a DTLS handshake record holding a hello or a fragment of one
L7_DNS_TCP = 16     # DNS over TCP, as L7_DNS_UDP (after the 2-byte length)
L7_HTTP = 32        # a TCP payload starting with an upper-case letter: a start line perhaps
L7_HELLO = 64       # a TCP payload starting with a TLS handshake (or change cipher spec) record
L7_TCP_DATA = 128   # any other TCP payload: what completes a hello that waits for its next segments

_UDP, _TCP = P.IPPROTO_UDP, P.IPPROTO_TCP
_SSDP = P.SSDP_UDP_PORT
_SIP = np.array(P.SIP_PORTS, np.int64)
_DTLS_MIN = DTLS_RECORD + DTLS_HANDSHAKE
_DNS_UDP = np.array(P.DNS_UDP_PORTS, np.int64)
_DNS_TCP = np.array(P.DNS_TCP_PORTS, np.int64)


@njit(cache=True, nogil=True)
def is_one_of(v, values):
    """v in values (an array), compiled: a loop over a few values."""
    for x in values:
        if v == x:
            return True
    return False


@njit(cache=True, nogil=True)
def _counts_something(buf, h):
    """A DNS header at h counts a question or a record (one with none holds nothing to read)."""
    return (buf[h + 4] | buf[h + 5] | buf[h + 6] | buf[h + 7] | buf[h + 8] | buf[h + 9] | buf[h + 10]
            | buf[h + 11]) != 0


@njit(cache=True, nogil=True)
def l7_kind(buf, pr, sp, dp, a, e, http):
    """The L7_* bits of a packet: protocol pr, ports sp and dp, its transport header at a, its IP
    packet's captured end e; `http` False: DNS only. Scalars only: a kernel calling this per
    packet with arrays to fill (a payload offset each) ran 30% slower, for its page faults and
    its arguments."""
    k = 0
    if pr == _UDP:
        h = a + 8
        if (is_one_of(sp, _DNS_UDP) or is_one_of(dp, _DNS_UDP)) and h + 12 <= e and _counts_something(buf, h):
            k |= L7_DNS_UDP
        if http:
            if (sp == _SSDP or dp == _SSDP or is_one_of(sp, _SIP) or is_one_of(dp, _SIP)) and h + 12 <= e:
                k |= L7_UDP_TEXT
            if h + _DTLS_MIN <= e:
                first = buf[h]
                if (first & 0xC0) == 0xC0 and h + MIN_INITIAL_DATAGRAM <= e:
                    v = (np.int64(buf[h + 1]) << 24) | (np.int64(buf[h + 2]) << 16) | (np.int64(buf[h + 3]) << 8) \
                        | buf[h + 4]
                    if v == V1 or v == V2:
                        k |= L7_QUIC
                if first == HANDSHAKE and buf[h + 1] == 0xFE:
                    hs = buf[h + DTLS_RECORD]
                    if hs == 1 or hs == 2:
                        k |= L7_DTLS
    elif pr == _TCP and a + 20 <= e:
        dns = is_one_of(sp, _DNS_TCP) or is_one_of(dp, _DNS_TCP)
        if http or dns:
            p = a + (np.int64(buf[a + 12]) >> 4) * 4
            n = e - p
            dns = dns and n >= 14
            if dns and _counts_something(buf, p + 2):
                k |= L7_DNS_TCP
            if http and not dns and n > 0:
                k |= L7_TCP_DATA
                if n >= 9:
                    c0 = buf[p]
                    if c0 >= 0x41 and c0 <= 0x5A and n >= 12:
                        k |= L7_HTTP
                    if (c0 == HANDSHAKE or c0 == CHANGE_CIPHER_SPEC) and buf[p + 1] == 3:
                        k |= L7_HELLO
    return k


@njit(cache=True, nogil=True, aot=["void(u1[::1], u1[::1], b1[::1], u2[::1], u2[::1], i8[::1], i8[::1], b1, u1[::1], "
                                    "i8[::1])"])
def l7_scan(buf, proto, has_ports, sport, dport, l4, ip_end, http, kind, seen):
    """kind[i]: the L7_* bits of each packet (l7_kind) with has_ports[i]; seen[0]: every bit set
    in one or more. The fast path (fast.py) does this per packet as it decodes it, while its
    headers are in the cache (a pass of its own, afterwards, misses it: ~55 ns a packet)."""
    bits = 0
    for i in range(proto.shape[0]):
        if has_ports[i]:
            k = l7_kind(buf, proto[i], sport[i], dport[i], l4[i], ip_end[i], http)
            kind[i] = k
            bits |= k
    seen[0] = bits
