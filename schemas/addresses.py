"""16-byte address columns (IPv4 as IPv4-mapped IPv6) to and from text."""
from __future__ import annotations

import ipaddress

import numpy as np

V4_PREFIX = bytes(10) + b"\xff\xff"


def to_text(addr16: bytes) -> str:
    """'192.0.2.1' for IPv4-mapped addresses, compressed IPv6 text otherwise."""
    if addr16[:12] == V4_PREFIX:
        return ".".join(str(b) for b in addr16[12:])
    return str(ipaddress.IPv6Address(addr16))


_V4_ROW = np.frombuffer(V4_PREFIX, np.uint8)
_OCTETS = np.array([str(i) for i in range(256)])


def column_to_text(col: np.ndarray) -> list[str]:
    """Text for each row of an (n, 16) uint8 address column: IPv4 rows by numpy's string ufuncs
    (a flood window has thousands of hosts to show), IPv6 rows one by one."""
    col = np.ascontiguousarray(col, np.uint8).reshape(-1, 16)
    v4 = (col[:, :12] == _V4_ROW).all(axis=1)
    if v4.all():
        return _v4_text(col[:, 12:]).tolist()
    out = np.empty(len(col), object)
    if v4.any():
        out[v4] = _v4_text(col[v4, 12:])
    rest = np.flatnonzero(~v4)
    raw = col[rest].tobytes()
    out[rest] = [str(ipaddress.IPv6Address(raw[i:i + 16])) for i in range(0, len(raw), 16)]
    return out.tolist()


def _v4_text(octets: np.ndarray) -> np.ndarray:
    add = np.strings.add
    text = _OCTETS[octets[:, 0]]
    for i in (1, 2, 3):
        text = add(add(text, "."), _OCTETS[octets[:, i]])
    return text


def from_text(text: str) -> bytes:
    ip = ipaddress.ip_address(text)
    return V4_PREFIX + ip.packed if ip.version == 4 else ip.packed
