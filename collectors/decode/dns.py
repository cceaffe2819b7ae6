"""DNS message header and first question (RFC 1035), for DNS, mDNS and LLMNR payloads.

Only the fields NetSpectra reports are parsed, so a truncated or odd message still yields its
name; dpkt's full parser would reject messages whose answers are cut by the capture."""
from __future__ import annotations

from typing import NamedTuple

MAX_POINTER_JUMPS = 16


MAX_QUESTIONS = 16


class DnsInfo(NamedTuple):
    qname: str | None   # several questions are joined with "," (as tshark prints them)
    qtype: int          # -1 when there is no question
    rcode: int
    response: bool


def parse_dns(msg: bytes) -> DnsInfo | None:
    """Parse a DNS message; None when it is not plausibly DNS (too short, no question)."""
    if len(msg) < 12:
        return None
    flags = int.from_bytes(msg[2:4], "big")
    qdcount = int.from_bytes(msg[4:6], "big")
    response, rcode = bool(flags & 0x8000), flags & 0x000F
    if not any(msg[4:12]):          # no question and no record: nothing that makes it DNS
        return None
    if qdcount == 0:
        return DnsInfo(None, -1, rcode, response)
    names, qtype, pos = [], -1, 12
    for _ in range(min(qdcount, MAX_QUESTIONS)):
        name, pos = read_name(msg, pos)
        if name is None:
            break
        names.append(name)
        if pos + 4 > len(msg):
            break
        if qtype < 0:
            qtype = int.from_bytes(msg[pos:pos + 2], "big")
        pos += 4
    return DnsInfo(",".join(names) if names else None, qtype, rcode, response)


def read_name(msg: bytes, pos: int) -> tuple[str | None, int]:
    """Read a possibly compressed name; returns (name, position after it in the original stream)."""
    labels: list[str] = []
    after = -1
    jumps = 0
    while True:
        if pos >= len(msg):
            return None, pos
        ln = msg[pos]
        if ln == 0:
            pos += 1
            break
        if ln & 0xC0 == 0xC0:
            if pos + 1 >= len(msg) or jumps >= MAX_POINTER_JUMPS:
                return None, pos
            if after < 0:
                after = pos + 2
            pos = ((ln & 0x3F) << 8) | msg[pos + 1]
            jumps += 1
            continue
        if ln & 0xC0:
            return None, pos   # reserved label types
        if pos + 1 + ln > len(msg):
            return None, pos
        labels.append(msg[pos + 1:pos + 1 + ln].decode("ascii", "backslashreplace"))
        pos += 1 + ln
    return (".".join(labels) if labels else "<Root>"), (after if after >= 0 else pos)
