"""HTTP/1.x start lines and the Host header, from the first bytes of a TCP segment (or an
SSDP/HTTPU datagram).

A request is a line that starts with a registered method token followed by a space or the end
of the line (as Wireshark accepts, so malformed requests like "OPTIONS\\n" still count), or any
upper-case token followed by a target and "HTTP/1.x"."""
from __future__ import annotations

import re
from typing import NamedTuple

HEADER_SCAN_BYTES = 8192   # headers beyond this are not searched for Host
# Methods of RFC 9110, WebDAV, SSDP/GENA, RPC-over-HTTP and Cisco CCM, as Wireshark's HTTP dissector knows them.
KNOWN_METHODS = (
    "GET|HEAD|POST|PUT|DELETE|CONNECT|OPTIONS|TRACE|PATCH|PROPFIND|PROPPATCH|MKCOL|COPY|MOVE|LOCK|UNLOCK|"
    "SEARCH|REPORT|CHECKOUT|CHECKIN|LABEL|MERGE|MKACTIVITY|MKWORKSPACE|UPDATE|VERSION-CONTROL|BASELINE-CONTROL|"
    "ACL|BIND|UNBIND|REBIND|MKREDIRECTREF|UPDATEREDIRECTREF|ORDERPATCH|MKCALENDAR|NOTIFY|SUBSCRIBE|UNSUBSCRIBE|"
    "M-SEARCH|POLL|BCOPY|BDELETE|BMOVE|BPROPFIND|BPROPPATCH|CCM_POST|RPC_CONNECT|RPC_IN_DATA|RPC_OUT_DATA|"
    "PRI|SSTP_DUPLEX_POST"
)
_KNOWN = re.compile(rb"(" + KNOWN_METHODS.encode() + rb")(?: ([^ \r\n]*)[^\r\n]*)?\r?\n")
_GENERIC = re.compile(rb"([A-Z][A-Z0-9_\-]{0,31}) ([^ \r\n]{1,8000}) HTTP/1\.[019]\r?\n")
_RESPONSE = re.compile(rb"HTTP/1\.[019] (\d{3})[ \r\n]")
_HOST = re.compile(rb"\nhost:[ \t]*([^\r\n]*)", re.IGNORECASE)


class HttpInfo(NamedTuple):
    method: str | None
    host: str | None
    path: str | None
    status: int          # -1 for requests


def parse_http(payload: bytes) -> HttpInfo | None:
    """A request or response start line at the start of `payload`, else None."""
    m = _RESPONSE.match(payload)
    if m:
        return HttpInfo(None, None, None, int(m.group(1)))
    m = _KNOWN.match(payload) or _GENERIC.match(payload)
    if not m:
        return None
    head = payload[m.end() - 1:HEADER_SCAN_BYTES]
    end = head.find(b"\n\r\n")
    if end < 0:
        end = head.find(b"\n\n")
    h = _HOST.search(head if end < 0 else head[:end + 1])
    host = h.group(1).strip().decode("latin-1") if h else None
    path = m.group(2).decode("latin-1") if m.group(2) else None
    if path is not None and path.startswith("HTTP/1."):
        path = None   # "OPTIONS HTTP/1.1": the target is missing
    return HttpInfo(m.group(1).decode("ascii"), host, path, -1)
