"""SIP (RFC 3261) start lines and the headers that name a call: method or status code, Call-ID,
and the From and To addresses, from a UDP datagram or the first bytes of a TCP segment on the
SIP port (collectors/protocols.py SIP_PORTS), as tshark's `sip.Method`, `sip.Status-Code`,
`sip.Call-ID`, `sip.from.addr` and `sip.to.addr` read them.

A request is `METHOD SP Request-URI SP SIP/2.0` (a method starts with an upper-case letter, as
every registered one does: what l7_scan.py looks for in a TCP payload), a response `SIP/2.0 SP code`; headers follow
until an empty line, in long or compact form (Call-ID / i, From / f, To / t; names in any case).
An address is the URI between < and > when there are angle brackets, else the value up to its
parameters (";tag=..."). The whole header is searched (a datagram is at most 64 kB; long Via
and Record-Route paths push Call-ID far in); one header of each kind is read (the first), as
tshark gives the first. Python per message, on the SIP port only.
"""
from __future__ import annotations

import re
from typing import NamedTuple

_REQUEST = re.compile(rb"([A-Z][A-Za-z0-9.!%*_+`'~\-]{0,31}) ([^ \r\n]{1,4096}) SIP/2\.0\r?\n")
_RESPONSE = re.compile(rb"SIP/2\.0 (\d{3})[ \r\n]")
_HEADER = re.compile(rb"\n(call-id|i|from|f|to|t)[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE)
_NAMES = {b"call-id": "call_id", b"i": "call_id", b"from": "from_uri", b"f": "from_uri", b"to": "to_uri", b"t": "to_uri"}


class SipInfo(NamedTuple):
    method: str | None       # a request's method
    status: int              # a response's status code, -1 for requests
    call_id: str | None
    from_uri: str | None
    to_uri: str | None


def _address(value: bytes) -> str:
    """The URI of a From/To value: `"Alice" <sip:a@x>;tag=1` -> sip:a@x; `sip:a@x;tag=1` -> sip:a@x."""
    lt = value.find(b"<")
    if lt >= 0:
        gt = value.find(b">", lt)
        value = value[lt + 1:gt if gt >= 0 else len(value)]
    else:
        value = value.split(b";", 1)[0]
    return value.strip().decode("utf-8", "replace")


def parse_sip(payload: bytes) -> SipInfo | None:
    """A SIP request or response at the start of `payload`, with its call's headers; else None."""
    m = _RESPONSE.match(payload)
    if m:
        method, status = None, int(m.group(1))
    else:
        m = _REQUEST.match(payload)
        if not m:
            return None
        method, status = m.group(1).decode("ascii"), -1
    head = payload[m.end() - 1:]
    end = head.find(b"\n\r\n")
    if end < 0:
        end = head.find(b"\n\n")
    found: dict[str, str] = {}
    for h in _HEADER.finditer(head if end < 0 else head[:end + 1]):
        name = _NAMES[h.group(1).lower()]
        if name not in found:
            found[name] = h.group(2).strip().decode("utf-8", "replace") if name == "call_id" else _address(h.group(2))
    return SipInfo(method, status, found.get("call_id"), found.get("from_uri"), found.get("to_uri"))
