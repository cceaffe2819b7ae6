"""TLS ClientHello and ServerHello from the first bytes of a TCP segment: the server name (SNI),
ALPN, versions, the server's cipher suite, and the JA3/JA3S and JA4 fingerprints.

parse_tls reads what it is given: a hello cut short keeps the SNI and ALPN that come before the
cut, but has no fingerprint. The decoder gives it whole hellos where it can: HelloReassembly
completes one longer than its TCP segment (a post-quantum key share makes Chrome's ~1.8 kB) from
the flow's next segments, HandshakeAssembly the pieces of QUIC CRYPTO frames and DTLS fragments;
what cannot complete counts as `tls_hello_partial`.

JA4 (FoxIO, technical_details/JA4.md) is computed as FoxIO's reference implementations compute it,
whose values fill the public fingerprint databases; where the spec's text differs they agree with
each other: the ALPN characters are those of the first ALPN value read as UTF-8, a non-ASCII
character written "9" (the text: the hex digits), and a one-character value ends in "0" (the text:
the character twice). JA3/JA3S as Salesforce's and Wireshark's (`tls.handshake.ja3`).
"""
from __future__ import annotations

from hashlib import md5, sha256
from struct import unpack_from
from typing import NamedTuple

HANDSHAKE, CHANGE_CIPHER_SPEC = 0x16, 0x14      # record types a hello's segment starts with (the second:
# TLS 1.3 middlebox compatibility, a hello may follow it)
CLIENT_HELLO, SERVER_HELLO = 1, 2
EXT_SNI, EXT_GROUPS, EXT_POINT_FORMATS, EXT_SIG_ALGS, EXT_ALPN, EXT_VERSIONS = 0, 10, 11, 13, 16, 43
# JA4's two-character version names (the spec's table); anything else is "00"
JA4_VERSIONS = {0x0304: "13", 0x0303: "12", 0x0302: "11", 0x0301: "10", 0x0300: "s3", 0x0002: "s2",
                0xFEFF: "d1", 0xFEFD: "d2", 0xFEFC: "d3"}
NO_HASH = "000000000000"          # JA4's b or c part when its list is empty
_READ = frozenset((EXT_SNI, EXT_GROUPS, EXT_POINT_FORMATS, EXT_SIG_ALGS, EXT_ALPN, EXT_VERSIONS))


class TlsInfo(NamedTuple):
    hello: int                # CLIENT_HELLO or SERVER_HELLO
    version: int              # client: highest offered; server: chosen (supported_versions, else the hello's); -1 unknown
    sni: str | None
    alpn: list | None         # a client's offered protocols, a server's chosen one
    cipher: int               # the server's chosen suite; -1 for a client
    ja3: str | None           # JA3 (client) or JA3S (server), md5 hex; None when the hello is cut off
    ja4: str | None           # client only
    complete: bool            # the whole hello was in the segment


GREASE = frozenset(0x0A0A + 0x1010 * i for i in range(16))


def grease(v: int) -> bool:
    """RFC 8701 reserved values (0x0a0a, 0x1a1a, ... 0xfafa): every fingerprint ignores them."""
    return v in GREASE


def _u16s(b: bytes, start: int, end: int) -> tuple:
    return unpack_from(f"!{(end - start) // 2}H", b, start) if end - start >= 2 else ()


def _alpn_chars(first: str) -> str:
    if not first:
        return "00"
    a, z = first[0], (first[-1] if len(first) > 1 else "0")
    return (a if a.isascii() else "9") + (z if z.isascii() else "9")


def ja4(transport: str, version: int, sni: bool, ciphers, exts, alpn: list | None, sig_algs) -> str:
    """JA4 of a ClientHello; ciphers, extensions and signature algorithms as sent (GREASE included)."""
    n_ciphers, b = _ja4_b(tuple(ciphers))
    return _ja4(transport, version, sni, n_ciphers, list(exts), alpn, _ja4_c(tuple(sorted(exts)), tuple(sig_algs)), b)


def _ja4(transport, version, sni, n_ciphers, exts, alpn, c, b) -> str:
    n_exts = len(exts) - sum(1 for e in exts if e in GREASE)
    return (f"{transport}{JA4_VERSIONS.get(version, '00')}{'d' if sni else 'i'}{min(n_ciphers, 99):02d}"
            f"{min(n_exts, 99):02d}{_alpn_chars(alpn[0]) if alpn else '00'}_{b}_{c}")


def _ja4_b(ciphers: tuple) -> tuple[int, str]:
    """(count, hash) of the ciphers, GREASE left out."""
    hexes = sorted([f"{c:04x}" for c in ciphers if c not in GREASE])
    return len(hexes), sha256(",".join(hexes).encode()).hexdigest()[:12] if hexes else NO_HASH


def _ja4_c(sorted_exts: tuple, sig_algs: tuple) -> str:
    c = ",".join([f"{e:04x}" for e in sorted_exts if e not in GREASE and e != EXT_SNI and e != EXT_ALPN])
    sigs = ",".join([f"{s:04x}" for s in sig_algs if s not in GREASE])
    if sigs and c:
        c += "_" + sigs
    return sha256(c.encode()).hexdigest()[:12] if c else NO_HASH


def _dashed(values) -> str:
    return "-".join([str(v) for v in values if v not in GREASE])


# Fingerprint parts by the bytes they come from: one client sends the same cipher, group and
# signature lists on every connection (only the extension order may change), so most hellos
# hash nothing but their JA3 string.
_PARTS: dict = {}
PARTS_MEMO = 4096


def _memo(key, make, *args):
    v = _PARTS.get(key)
    if v is None:
        if len(_PARTS) >= PARTS_MEMO:
            _PARTS.clear()
        v = _PARTS[key] = make(*args)
    return v


def _cipher_parts(raw: bytes) -> tuple[str, int, str]:
    ciphers = _u16s(raw, 0, len(raw))
    return (_dashed(ciphers), *_ja4_b(ciphers))


def parse_tls(payload: bytes, transport: str = "t") -> TlsInfo | None:
    """A ClientHello or ServerHello at the start of `payload` (a TLS record), else None. With
    transport "d" the hello is DTLS's (a ClientHello has a cookie after its session id), given
    as a TLS record (dtls_fragment gives its pieces)."""
    if len(payload) < 9 or payload[0] != HANDSHAKE or payload[1] != 3 or payload[5] not in (CLIENT_HELLO,
                                                                                             SERVER_HELLO):
        return None
    kind = payload[5]
    rec_end = 5 + ((payload[3] << 8) | payload[4])
    hs_end = 9 + ((payload[6] << 16) | (payload[7] << 8) | payload[8])
    complete = hs_end <= rec_end and hs_end <= len(payload)
    b = payload[:min(hs_end, rec_end, len(payload))]
    n = len(b)
    p = 9
    if p + 35 > n:
        return None if complete else _partial(kind)
    legacy = (b[p] << 8) | b[p + 1]
    p += 34
    p += 1 + b[p]                                   # session id
    ciphers = b""
    if kind == CLIENT_HELLO:
        if transport == "d":
            if p >= n:
                return _partial(kind)
            p += 1 + b[p]                           # cookie
        if p + 2 > n:
            return _partial(kind)
        end = p + 2 + ((b[p] << 8) | b[p + 1])
        if end > n:
            return _partial(kind)
        ciphers = b[p + 2:end]
        p = end
        if p >= n:
            return _partial(kind)
        p += 1 + b[p]                               # compression methods
        cipher = -1
    else:
        if p + 3 > n:
            return _partial(kind)
        cipher = (b[p] << 8) | b[p + 1]
        p += 3                                      # cipher suite, compression method
    exts: list[int] = []
    sni = alpn = None
    versions: tuple = ()
    groups = formats = sigs = b""
    if p + 2 <= n:
        end = min(n, p + 2 + ((b[p] << 8) | b[p + 1]))
        p += 2
        add = exts.append
        while p + 4 <= end:
            t, size = unpack_from("!HH", b, p)
            d, p = p + 4, p + 4 + size
            if p > end:             # cut off (or malformed): the extensions before it still count
                break
            add(t)
            if t not in _READ:
                continue
            if t == EXT_SNI and d + 5 <= p and b[d + 2] == 0:
                ln = (b[d + 3] << 8) | b[d + 4]
                sni = b[d + 5:min(p, d + 5 + ln)].decode("utf-8", "replace")
            elif t == EXT_ALPN:
                alpn, q, stop = [], d + 2, min(p, d + 2 + ((b[d] << 8) | b[d + 1]) if d + 2 <= p else d)
                while q < stop:
                    alpn.append(b[q + 1:min(stop, q + 1 + b[q])].decode("utf-8", "replace"))
                    q += 1 + b[q]
            elif t == EXT_VERSIONS:
                versions = _u16s(b, d + 1, min(p, d + 1 + b[d])) if kind == CLIENT_HELLO and d < p else _u16s(b, d, p)
            elif t == EXT_GROUPS and d + 2 <= p:
                groups = b[d + 2:min(p, d + 2 + ((b[d] << 8) | b[d + 1]))]
            elif t == EXT_POINT_FORMATS and d < p:
                formats = b[d + 1:min(p, d + 1 + b[d])]
            elif t == EXT_SIG_ALGS and d + 2 <= p:
                sigs = b[d + 2:min(p, d + 2 + ((b[d] << 8) | b[d + 1]))]
    offered = [v for v in versions if v not in GREASE]
    version = max(offered) if offered else legacy if complete else -1
    if not complete:
        return TlsInfo(kind, version, sni, alpn, cipher, None, None, False)
    if kind == CLIENT_HELLO:
        ja3_ciphers, n_ciphers, ja4_b = _memo(("c", ciphers), _cipher_parts, ciphers)
        ja3 = (f"{legacy},{ja3_ciphers},{_dashed(exts)},{_memo(('g', groups), _dashed_raw, groups)},"
               f"{'-'.join([str(f) for f in formats])}")
        sorted_exts = tuple(sorted(exts))
        ja4_c = _memo(("x", sorted_exts, sigs), _ja4_c_raw, sorted_exts, sigs)
        return TlsInfo(kind, version, sni, alpn, -1, md5(ja3.encode()).hexdigest(),
                       _ja4(transport, version, EXT_SNI in exts, n_ciphers, exts, alpn, ja4_c, ja4_b), True)
    ja3s = f"{legacy},{cipher},{_dashed(exts)}"
    return TlsInfo(kind, version, None, alpn, cipher, md5(ja3s.encode()).hexdigest(), None, True)


def _dashed_raw(raw: bytes) -> str:
    return _dashed(_u16s(raw, 0, len(raw)))


def _ja4_c_raw(sorted_exts: tuple, sigs: bytes) -> str:
    return _ja4_c(sorted_exts, _u16s(sigs, 0, len(sigs)))


def _partial(kind: int) -> TlsInfo:
    return TlsInfo(kind, -1, None, None, -1, None, None, False)


DTLS_RECORD, DTLS_HANDSHAKE = 13, 12           # header sizes: a DTLS record's, a handshake fragment's


def dtls_fragment(datagram: bytes) -> tuple[int, int, int, int, bytes] | None:
    """The hello fragment of a datagram's first DTLS record: (type, message sequence, length of
    the whole message, fragment offset, fragment bytes), or None."""
    if len(datagram) < DTLS_RECORD + DTLS_HANDSHAKE or datagram[0] != HANDSHAKE or datagram[1] != 0xFE:
        return None
    rec_end = min(len(datagram), DTLS_RECORD + ((datagram[11] << 8) | datagram[12]))
    h = DTLS_RECORD
    kind = datagram[h]
    if kind not in (CLIENT_HELLO, SERVER_HELLO):
        return None
    length = int.from_bytes(datagram[h + 1:h + 4], "big")
    seq = (datagram[h + 4] << 8) | datagram[h + 5]
    off = int.from_bytes(datagram[h + 6:h + 9], "big")
    size = int.from_bytes(datagram[h + 9:h + 12], "big")
    start = h + DTLS_HANDSHAKE
    return kind, seq, length, off, datagram[start:min(rec_end, start + size)]


def hello_length(segment: bytes) -> int:
    """Bytes from the record start to the end of the hello its header announces, or 0 when the
    hello does not fit its one record (a handshake fragmented over records is not reassembled)."""
    rec_end = 5 + ((segment[3] << 8) | segment[4])
    hs_end = 9 + ((segment[6] << 16) | (segment[7] << 8) | segment[8])
    return hs_end if hs_end <= rec_end else 0


class HelloReassembly:
    """Hellos longer than their first segment, completed from their flow's next segments in TCP
    sequence order, as tshark's reassembly would: the segment that completes a hello carries it.

    Bounded: hellos up to MAX_HELLO_BYTES, at most `size` flows waiting (the oldest given up
    first). A hello whose next segment is missing (lost, or out of order) is given up: its fields
    are lost, and the decoder counts it (tls_hello_partial)."""
    MAX_HELLO_BYTES = 16389          # one record: 5-byte header + 2^14 bytes

    def __init__(self, size: int = 4096):
        self.size = size
        self.waiting: dict[bytes, tuple[int, bytearray, int]] = {}     # flow -> (next seq, bytes so far, length)
        self.given_up = 0

    def start(self, flow: bytes, seq: int, segment: bytes) -> bool:
        """A hello that `segment` starts but does not hold whole: wait for the rest (True), or
        not (False: longer than a record or than MAX_HELLO_BYTES)."""
        need = hello_length(segment)
        if not need or need > self.MAX_HELLO_BYTES:
            return False
        if self.waiting.pop(flow, None) is not None:
            self.given_up += 1                     # a new hello on that flow replaces the unfinished one
        elif len(self.waiting) >= self.size:
            del self.waiting[next(iter(self.waiting))]
            self.given_up += 1
        self.waiting[flow] = ((seq + len(segment)) & 0xFFFFFFFF, bytearray(segment), need)
        return True

    def add(self, flow: bytes, seq: int, segment: bytes) -> bytes | None:
        """The next segment of a waiting flow: the whole hello once it is complete, else None."""
        entry = self.waiting.get(flow)
        if entry is None:
            return None
        expect, data, need = entry
        if seq != expect:
            if (expect - seq) & 0xFFFFFFFF < 0x80000000:     # a retransmission of what we hold: still waiting
                return None
            del self.waiting[flow]                          # a gap: the missing bytes never come in order
            self.given_up += 1
            return None
        data += segment
        if len(data) < need:
            self.waiting[flow] = ((seq + len(segment)) & 0xFFFFFFFF, data, need)
            return None
        del self.waiting[flow]
        return bytes(data)


class HandshakeAssembly:
    """A handshake message sent in pieces by offset (a QUIC connection's CRYPTO frames, DTLS
    handshake fragments), gathered until the message at offset 0 (type, 3-byte length, body) is
    whole. Bounded: messages up to MAX_HELLO_BYTES, at most `size` connections waiting (the
    oldest given up)."""
    MAX_HELLO_BYTES = 16384

    def __init__(self, size: int = 4096):
        self.size = size
        self.waiting: dict[bytes, dict[int, bytes]] = {}
        self.given_up = 0

    def add(self, conn: bytes, frames: list[tuple[int, bytes]]) -> bytes | None:
        """The handshake message (type, length, body) once whole, else None (kept waiting)."""
        parts = self.waiting.pop(conn, {})
        for off, data in frames:
            if off + len(data) <= self.MAX_HELLO_BYTES:
                parts[off] = data
        have, pos = [], 0
        for off in sorted(parts):
            data = parts[off]
            if off > pos:
                break
            if off + len(data) > pos:
                have.append(data[pos - off:])
                pos = off + len(data)
        stream = b"".join(have)
        if len(stream) >= 4:
            need = 4 + int.from_bytes(stream[1:4], "big")
            if len(stream) >= need:
                return stream[:need]
            if need > self.MAX_HELLO_BYTES:
                self.given_up += 1
                return None
        if parts:
            if len(self.waiting) >= self.size:
                del self.waiting[next(iter(self.waiting))]
                self.given_up += 1
            self.waiting[conn] = parts
        return None
