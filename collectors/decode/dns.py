"""DNS message header and first question (RFC 1035), for DNS, mDNS and LLMNR payloads, and the
records that name addresses (dns_records: A, AAAA, CNAME).

Only the fields NetSpectra reports are parsed, so a truncated or odd message still yields its
name; dpkt's full parser would reject messages whose answers are cut by the capture."""
from __future__ import annotations

import ipaddress
import struct
from typing import NamedTuple

MAX_POINTER_JUMPS = 16


MAX_QUESTIONS = 16
MAX_RECORDS = 64            # resource records read of one message (every section)
A, CNAME, AAAA = 1, 5, 28   # the record types that name an address
_RR = struct.Struct(">HHIH")      # type, class, TTL, data length, after the owner name


class DnsInfo(NamedTuple):
    qname: str | None   # several questions are joined with "," (as tshark prints them)
    qtype: int          # -1 when there is no question
    rcode: int
    response: bool
    records: list[DnsRecord] | None = None      # a response's dns_records, when asked for


class DnsRecord(NamedTuple):
    name: str       # the record's owner
    rtype: int      # A, AAAA or CNAME
    value: str      # the address (IPv6 as RFC 5952 text) or the canonical name


def parse_dns(msg: bytes, records: bool = False) -> DnsInfo | None:
    """Parse a DNS message; None when it is not plausibly DNS (too short, no question).
    `records`: a response's address records too (dns_records), in the same pass."""
    if len(msg) < 12:
        return None
    flags, qdcount = struct.unpack_from(">HH", msg, 2)
    response, rcode = bool(flags & 0x8000), flags & 0x000F
    if not any(msg[4:12]):          # no question and no record: nothing that makes it DNS
        return None
    names: dict[int, tuple[str, int]] = {}
    qnames, qtype, pos = _questions(msg, qdcount, names)
    recs = _records(msg, pos, names) if records and response else None
    return DnsInfo(",".join(qnames) if qnames else None, qtype, rcode, response, recs)


def _questions(msg: bytes, qdcount: int, names: dict) -> tuple[list[str], int, int]:
    """The question section: its names (the first MAX_QUESTIONS, up to one cut short), the first
    question's type (-1 without one), and where the records begin (-1 when the section was not
    read whole)."""
    qnames, qtype, pos = [], -1, 12
    for _ in range(min(qdcount, MAX_QUESTIONS)):
        name, pos = read_name(msg, pos, names)
        if name is None:
            return qnames, qtype, -1
        qnames.append(name)
        if pos + 4 > len(msg):
            return qnames, qtype, -1
        if qtype < 0:
            qtype = int.from_bytes(msg[pos:pos + 2], "big")
        pos += 4
    return qnames, qtype, pos if qdcount <= MAX_QUESTIONS else -1


def read_name(msg: bytes, pos: int, names: dict | None = None) -> tuple[str | None, int]:
    """Read a possibly compressed name; returns (name, position after it in the original stream).
    `names`: the message's names read so far, {offset: (labels joined, pointers followed)}: a pointer to
    one of them (most records point at the question) takes it instead of walking its labels
    again, when that walk stays within MAX_POINTER_JUMPS (the result is the walk's own)."""
    labels: list[str] = []
    after = -1
    jumps = 0
    start = pos
    n = len(msg)
    while True:
        if pos >= n:
            return None, pos
        ln = msg[pos]
        if ln == 0:
            pos += 1
            break
        if ln & 0xC0 == 0xC0:
            if pos + 1 >= n or jumps >= MAX_POINTER_JUMPS:
                return None, pos
            if after < 0:
                after = pos + 2
            pos = ((ln & 0x3F) << 8) | msg[pos + 1]
            jumps += 1
            known = names.get(pos) if names is not None else None
            if known is not None and jumps + known[1] <= MAX_POINTER_JUMPS:
                if known[0]:
                    labels.append(known[0])
                jumps += known[1]
                break
            continue
        if ln & 0xC0:
            return None, pos   # reserved label types
        if pos + 1 + ln > n:
            return None, pos
        labels.append(msg[pos + 1:pos + 1 + ln].decode("ascii", "backslashreplace"))
        pos += 1 + ln
    joined = ".".join(labels)
    if names is not None and msg[start] & 0xC0 != 0xC0:
        names[start] = (joined, jumps)
    return joined or "<Root>", (after if after >= 0 else pos)


def dns_records(msg: bytes) -> list[DnsRecord]:
    """The A, AAAA and CNAME records of a message, in its answer, authority and additional
    sections alike (any of them says which name an address has; tshark's dns.a, dns.aaaa and
    dns.cname list all three), in order, from the first MAX_RECORDS records; reading stops at
    the first record cut short by the capture or malformed (what came before it is kept)."""
    if len(msg) < 12:
        return []
    names: dict[int, tuple[str, int]] = {}
    return _records(msg, _questions(msg, int.from_bytes(msg[4:6], "big"), names)[2], names)


def _records(msg: bytes, pos: int, names: dict) -> list[DnsRecord]:
    """dns_records from `pos`, where the question section ends (-1: not read whole: none)."""
    if pos < 0:
        return []
    ancount, nscount, arcount = struct.unpack_from(">3H", msg, 6)
    out: list[DnsRecord] = []
    n = len(msg)
    for _ in range(min(ancount + nscount + arcount, MAX_RECORDS)):
        name, pos = read_name(msg, pos, names)
        if name is None or pos + _RR.size > n:
            break
        rtype, _cls, _ttl, rdlen = _RR.unpack_from(msg, pos)
        pos += _RR.size
        end = pos + rdlen
        if end > n:
            break
        if rtype == A and rdlen == 4:
            out.append(DnsRecord(name, A, "%d.%d.%d.%d" % (msg[pos], msg[pos + 1], msg[pos + 2], msg[pos + 3])))
        elif rtype == AAAA and rdlen == 16:
            out.append(DnsRecord(name, AAAA, str(ipaddress.IPv6Address(msg[pos:end]))))
        elif rtype == CNAME:
            target, _ = read_name(msg, pos, names)       # may point back into the message
            if target is None:
                break
            out.append(DnsRecord(name, CNAME, target))
        pos = end
    return out
