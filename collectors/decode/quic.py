"""QUIC Initial packets (RFC 9000 and 9001; version 2, RFC 9369): a client's Initial is decrypted
with keys derived from its Destination Connection ID and the version's public salt, as tshark
does, and the ClientHello its CRYPTO frames carry is read like one over TCP (collectors/decode/
tls.py; JA4 with "q").

A ClientHello may take several Initial packets (and CRYPTO frames out of order, as Chrome sends
them): the decoder gathers a connection's CRYPTO data by offset until the hello is whole
(tls.py HandshakeAssembly, bounded like TCP's HelloReassembly). A server's Initial is protected
with keys derived from the client's DCID too, which its own packets do not carry: the decoder
remembers, per client Initial it opened, the DCID by the client's source connection ID (the
server's packets' destination) and its flow, and opens the server's Initials with it (the
ServerHello: version, cipher, ALPN, JA3S), as tshark does.
"""
from __future__ import annotations

import hashlib
import hmac
import re
from typing import NamedTuple

V1, V2 = 0x00000001, 0x6B3343CF
SALTS = {V1: bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a"),
         V2: bytes.fromhex("0dede3def700a6db819381be6e269dcbf9bd2ed9")}
LABELS = {V1: b"quic", V2: b"quicv2"}
INITIAL_TYPE = {V1: 0, V2: 1}           # the long header's packet type bits of an Initial
MIN_INITIAL_DATAGRAM = 1200             # a client pads its Initial datagrams to this (RFC 9000 14.1)
CRYPTO, PADDING, PING, ACK, ACK_ECN = 0x06, 0x00, 0x01, 0x02, 0x03
MAX_CID = 20
_PADDING_RUN = re.compile(b"\x00+")      # an Initial is mostly PADDING frames: skipped as one run
_KEYS: dict = {}
KEYS_MEMO = 4096                        # connections whose keys are remembered (a client sends several Initials)


def _expand_label(secret: bytes, label: bytes, length: int) -> bytes:
    """TLS 1.3 HKDF-Expand-Label with an empty context, one SHA-256 block (length <= 32)."""
    full = b"tls13 " + label
    info = length.to_bytes(2, "big") + bytes([len(full)]) + full + b"\x00"
    return hmac.new(secret, info + b"\x01", hashlib.sha256).digest()[:length]


def initial_keys(version: int, dcid: bytes, server: bool = False):
    """(AES-GCM cipher, IV, header-protection encryptor) of a client's Initial packets (or, with
    `server`, the server's), from the DCID of the client's Initial."""
    k = _KEYS.get((version, dcid, server))
    if k is None:
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        initial = hmac.new(SALTS[version], dcid, hashlib.sha256).digest()
        secret = _expand_label(initial, b"server in" if server else b"client in", 32)
        label = LABELS[version]
        key, iv, hp = (_expand_label(secret, label + b" key", 16), _expand_label(secret, label + b" iv", 12),
                       _expand_label(secret, label + b" hp", 16))
        if len(_KEYS) >= KEYS_MEMO:
            _KEYS.clear()
        k = _KEYS[(version, dcid, server)] = (AESGCM(key), iv, Cipher(algorithms.AES(hp), modes.ECB()).encryptor())
    return k


def _varint(b: bytes, p: int) -> tuple[int, int]:
    """A QUIC variable-length integer at p: (value, next position); IndexError past the end."""
    first = b[p]
    n = 1 << (first >> 6)
    v = first & 0x3F
    for i in range(1, n):
        v = (v << 8) | b[p + i]
    return v, p + n


def is_initial(first: int, version: int) -> bool:
    return first & 0xC0 == 0xC0 and version in INITIAL_TYPE and (first >> 4) & 3 == INITIAL_TYPE[version]


class Initials(NamedTuple):
    dcid: bytes                         # the first packet's connection IDs
    scid: bytes
    frames: list[tuple[int, bytes]]     # CRYPTO frames (offset, data)


def initial_crypto(datagram: bytes, client_dcid: bytes | None = None) -> Initials | None:
    """The CRYPTO frames of the Initial packets a datagram starts with (coalesced packets after
    them are left), or None when the first packet is not an Initial these keys open (another
    version, corrupt, or a server's without `client_dcid`). A client's Initials are opened with
    keys from their own DCID; a server's, given `client_dcid` (the DCID of the client's Initial),
    with the server's keys from that."""
    from cryptography.exceptions import InvalidTag
    p, n = 0, len(datagram)
    dcid0, scid0, frames = None, None, []
    try:
        while p + 7 <= n:
            first = datagram[p]
            version = int.from_bytes(datagram[p + 1:p + 5], "big")
            if not is_initial(first, version):
                break
            q = p + 5
            dl = datagram[q]
            if dl > MAX_CID:
                break
            dcid = datagram[q + 1:q + 1 + dl]
            q += 1 + dl
            scid = datagram[q + 1:q + 1 + datagram[q]]
            q += 1 + datagram[q]
            token, q = _varint(datagram, q)
            q += token
            length, q = _varint(datagram, q)
            end = q + length
            if end > n or length < 20:
                break
            aead, iv, hp = (initial_keys(version, dcid) if client_dcid is None
                            else initial_keys(version, client_dcid, server=True))
            mask = hp.update(datagram[q + 4:q + 20])
            head = bytearray(datagram[p:q + 4])
            head[0] ^= mask[0] & 0x0F
            pn_len = (head[0] & 3) + 1
            pn = 0
            for i in range(pn_len):
                head[q - p + i] ^= mask[1 + i]
                pn = (pn << 8) | head[q - p + i]
            nonce = (int.from_bytes(iv, "big") ^ pn).to_bytes(12, "big")
            try:
                plain = aead.decrypt(nonce, datagram[q + pn_len:end], bytes(head[:q - p + pn_len]))
            except InvalidTag:
                break
            if dcid0 is None:
                dcid0, scid0 = dcid, scid
            frames += _crypto_frames(plain)
            p = end
    except IndexError:
        pass
    return Initials(dcid0, scid0, frames) if dcid0 is not None else None


def _crypto_frames(plain: bytes) -> list[tuple[int, bytes]]:
    """The CRYPTO frames of a decrypted Initial payload (PADDING, PING and ACK skipped; the walk
    stops at any other frame type, which an Initial may not carry)."""
    out, p, n = [], 0, len(plain)
    while p < n:
        t = plain[p]
        if t == PADDING:
            p = _PADDING_RUN.match(plain, p).end()
        elif t == PING:
            p += 1
        elif t == CRYPTO:
            off, p = _varint(plain, p + 1)
            size, p = _varint(plain, p)
            out.append((off, plain[p:p + size]))
            p += size
        elif t == ACK or t == ACK_ECN:
            _, p = _varint(plain, p + 1)            # largest acknowledged
            _, p = _varint(plain, p)                # delay
            ranges, p = _varint(plain, p)
            _, p = _varint(plain, p)                # first range
            for _ in range(2 * ranges):
                _, p = _varint(plain, p)
            if t == ACK_ECN:
                for _ in range(3):
                    _, p = _varint(plain, p)
        else:
            break
    return out
