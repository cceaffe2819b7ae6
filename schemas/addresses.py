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


def column_to_text(col: np.ndarray) -> list[str]:
    """Text for each row of an (n, 16) uint8 address column."""
    raw = np.ascontiguousarray(col).tobytes()
    return [to_text(raw[i:i + 16]) for i in range(0, len(raw), 16)]


def from_text(text: str) -> bytes:
    ip = ipaddress.ip_address(text)
    return V4_PREFIX + ip.packed if ip.version == 4 else ip.packed
