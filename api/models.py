"""Requests and answers of the query API: one set of validated models for gRPC and HTTP.

The gRPC service (schemas/v1/query.proto) converts its messages into these models, so both
transports validate the same way and run the same queries (api/queries.py). Enum values are the
short lowercase names here ("src", "bytes"); the proto's enums map onto them in api/grpc_service.
"""
from __future__ import annotations

import ipaddress
import re
import time
from datetime import datetime, timedelta, timezone
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from schemas.packet_batch import TUNNEL_NAMES

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
MAX_BUCKET_S = 366 * 86400
MAX_BUCKETS = 10_000        # time buckets in one answer (a chart's points, not a data export)

TUNNELS = [TUNNEL_NAMES[k] for k in sorted(TUNNEL_NAMES)]       # "" (none) first
Dimension = Literal["src", "dst", "sport", "dport", "proto", "vlan", "tls_sni", "tls_ja4", "tls_alpn", "tunnel",
                    "tunnel_id"]
Metric = Literal["bytes", "packets", "flows"]
HHDimension = Literal["src", "dst", "flow", "port", "proto"]
HHMetric = Literal["bytes", "packets"]
Port = Field(ge=0, le=65535)


class _Model(BaseModel):
    # strict: a number sent as text, or true as 1, is refused like any other wrong type
    model_config = ConfigDict(extra="forbid", strict=True)


def network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """An address or CIDR; host bits set in a CIDR are allowed ("10.1.2.3/8" is 10.0.0.0/8)."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ValueError(f"not an address or CIDR: {text!r}") from None


def problems(e, whole: str) -> str:
    """A pydantic ValidationError as one line: `field.path: message; ...` (`whole` when the
    error is about the request as a whole)."""
    return "; ".join(f"{'.'.join(str(x) for x in err['loc']) or whole}: {err['msg']}" for err in e.errors())


# Addresses or CIDRs, each as its network's text ("10.1.2.3/8" -> "10.0.0.0/8")
Networks = Annotated[list[str], AfterValidator(lambda v: [str(network(x)) for x in v])]


def single_address(text: str) -> str:
    net = network(text)
    if net.num_addresses != 1:
        raise ValueError(f"a single address, not a network: {text!r}")
    return str(net.network_address)


class TimeRange(_Model):
    """Windows whose start lies in [start, end). Each bound as milliseconds since the Unix epoch
    (start_ms, end_ms) or as RFC 3339 text (start, end: "2026-11-30T18:00:00Z"); or `last`, a
    span ending at `end` (default: now): "90s", "15m", "6h", "7d". They are resolved into start_ms
    and end_ms at once: queries, caches and answers see only those."""
    start_ms: int = Field(default=-1, ge=-1, le=2**53)
    end_ms: int = Field(default=-1, ge=-1, le=2**53)
    start: str = Field(default="", max_length=64)
    end: str = Field(default="", max_length=64)
    last: str = Field(default="", max_length=16)

    @model_validator(mode="after")
    def _resolve(self):
        end = _bound(self.end_ms, self.end, "end")
        if end < 0:
            if not self.last:
                raise ValueError("range: give end_ms or end (or last, which ends now)")
            end = int(time.time() * 1000)
        start = _bound(self.start_ms, self.start, "start")
        if self.last:
            if start >= 0:
                raise ValueError("range: give start or last, not both")
            start = max(end - span_ms(self.last), 0)
        if start < 0:
            raise ValueError("range: give start_ms or start (or last)")
        if end <= start:
            raise ValueError("range: end must be after start")
        for k, v in (("start_ms", start), ("end_ms", end), ("start", ""), ("end", ""), ("last", "")):
            object.__setattr__(self, k, v)          # resolved: nothing else left to read
        return self


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_SPAN = re.compile(r"^(\d{1,9})(s|m|h|d|w)$")
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 7 * 86_400_000}


def span_ms(text: str) -> int:
    got = _SPAN.match(text.strip())
    if not got:
        raise ValueError(f"range: last must be a number and a unit s, m, h, d or w (e.g. 15m), not {text!r}")
    return int(got.group(1)) * _UNIT_MS[got.group(2)]


def _bound(ms: int, text: str, name: str) -> int:
    """One bound in ms from either form; -1 when neither is given."""
    if text and ms >= 0:
        raise ValueError(f"range: give {name}_ms or {name}, not both")
    if not text:
        return ms
    try:
        t = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"range: {name} is not RFC 3339 time (e.g. 2026-11-30T18:00:00Z): {text!r}") from None
    if t.tzinfo is None:
        raise ValueError(f"range: {name} needs a time zone (Z or +hh:mm): {text!r}")
    ms = (t - _EPOCH) // timedelta(milliseconds=1)      # exact: no float on the way
    if not 0 <= ms <= 2**53:
        raise ValueError(f"range: {name} is out of range: {text!r}")
    return ms


class Filter(_Model):
    src: Networks = Field(default_factory=list, max_length=256)
    dst: Networks = Field(default_factory=list, max_length=256)
    sport: list[int] = Field(default_factory=list, max_length=1024)
    dport: list[int] = Field(default_factory=list, max_length=1024)
    proto: list[int] = Field(default_factory=list, max_length=256)
    source: str = Field(default="", max_length=4096)
    vlan: list[int] = Field(default_factory=list, max_length=4096, description="outermost VLAN id, 0 = untagged")
    tls_sni: list[str] = Field(default_factory=list, max_length=256,
                               description='TLS/QUIC server names: "example.com", or "*.example.com" for every name '
                                           "under it (flow records only: no roll-up keeps names)")

    tls_ja4: list[str] = Field(default_factory=list, max_length=256, description="JA4 fingerprints, exactly")
    tls_alpn: list[str] = Field(default_factory=list, max_length=256,
                                description='offered ALPN lists as text ("h2,http/1.1"), exactly')
    tunnel: list[str] = Field(default_factory=list, max_length=16,
                              description=f"the tunnel the packets came out of: {', '.join(TUNNELS[1:])}, or '' for "
                                          "none (flow records only: no roll-up keeps tunnels)")
    tunnel_id: list[int] = Field(default_factory=list, max_length=4096,
                                 description="VNI, GRE key, ERSPAN session, MPLS bottom label, PPPoE session or TEID")

    @field_validator("tunnel")
    @classmethod
    def _tunnels(cls, v: list[str]) -> list[str]:
        bad = [x for x in v if x not in TUNNELS]
        if bad:
            raise ValueError(f"unknown tunnel {bad[0][:40]!r} (known: {', '.join(TUNNELS[1:])}, or '' for none)")
        return v

    @field_validator("tls_sni")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        bad = [x for x in v if not x or len(x) > 255 or "*" in x[1:] or (x[0] == "*" and not x.startswith("*."))]
        if bad:
            raise ValueError(f"a server name is 1-255 characters, with '*.' only as its start: {bad[0][:80]!r}")
        return v

    @field_validator("sport", "dport", "proto", "vlan", "tunnel_id")
    @classmethod
    def _in_range(cls, v: list[int], info) -> list[int]:
        name, top = _INT_RANGES[info.field_name]
        if any(not 0 <= x <= top for x in v):
            raise ValueError(f"{name} are 0-{top}")
        return v


_INT_RANGES = {"sport": ("ports", 65535), "dport": ("ports", 65535), "proto": ("protocols", 255),
               "vlan": ("VLAN ids", 4095), "tunnel_id": ("tunnel ids", 2**32 - 1)}


def _limit() -> int:
    return Field(default=0, ge=0, le=MAX_LIMIT, description=f"0 = {DEFAULT_LIMIT}")


class AggregateFlowsRequest(_Model):
    range: TimeRange
    filter: Filter = Field(default_factory=Filter)
    group_by: list[Dimension] = Field(default_factory=list, max_length=6)
    bucket_seconds: int = Field(default=0, ge=0, le=MAX_BUCKET_S,
                                description=f"0 = no time buckets; at most {MAX_BUCKETS:,} of them between the "
                                            "range's first and last window")
    order_by: Metric = "bytes"
    limit: int = _limit()


class FlowGroup(_Model):
    bucket_ms: int = 0
    src: str = ""
    dst: str = ""
    sport: int = 0
    dport: int = 0
    proto: int = 0
    packets: int
    bytes: int
    flows: int
    vlan: int = 0
    tls_sni: str = ""
    tls_ja4: str = ""
    tls_alpn: str = ""
    tunnel: str = ""
    tunnel_id: int = 0


class AggregateFlowsResponse(_Model):
    groups: list[FlowGroup]
    table: str = Field(default="flows", description="what answered: flows (the records) or a roll-up "
                                                     "(flows_1m/1h/1d; hosts_* without ports; traffic_* without addresses; ...), "
                                                     "several joined by + when parts of the range came from each "
                                                     "(coarsest first), exact either way")
    resolution_seconds: int = Field(default=0, description="the coarsest table's time resolution (0: the records' windows)")


class TraceFlowRequest(_Model):
    range: TimeRange
    src: str
    dst: str
    sport: int = Port
    dport: int = Port
    proto: int = Field(ge=0, le=255)
    source: str = Field(default="", max_length=4096)

    @field_validator("src", "dst")
    @classmethod
    def _address(cls, v: str) -> str:
        return single_address(v)


class FlowWindow(_Model):
    window_start_ms: int
    source: str
    packets: int
    bytes: int
    first_seen_ns: int
    last_seen_ns: int
    tcp_flags: int
    vlan: int
    tunnel: str = Field(default="", description="the tunnel the packets came out of ('' none): one record a tunnel")
    tunnel_id: int = 0


class TraceFlowResponse(_Model):
    windows: list[FlowWindow]
    packets: int
    bytes: int
    first_seen_ns: int
    last_seen_ns: int
    tcp_flags: int


class QueryHeavyHittersRequest(_Model):
    range: TimeRange
    filter: Filter = Field(default_factory=Filter)
    dimension: HHDimension = "src"
    metric: HHMetric = "bytes"
    limit: int = _limit()
    exact: bool = False


class HeavyHitter(_Model):
    item: str
    src: str = ""
    dst: str = ""
    sport: int = 0
    dport: int = 0
    proto: int = 0
    value: int
    lower_bound: int
    upper_bound: int


class QueryHeavyHittersResponse(_Model):
    items: list[HeavyHitter]
    exact: bool
    table: str = Field(default="", description="where they were summed from: exact ones from flows (the records) "
                                                "or a roll-up keeping what they need; the sketches' from heavy_hitters "
                                                "(their windows' results) or heavy_hitters_1h/_1d; several joined by +")


class QuerySpreadersRequest(_Model):
    range: TimeRange
    filter: Filter = Field(default_factory=Filter)
    limit: int = _limit()
    exact: bool = False
    # peers: by distinct peers (the spread sketches, or exact); ports: by distinct destination
    # ports (sources: port scanners; destinations: hosts probed on many ports), exact from flows
    count: Literal["peers", "ports"] = "peers"


class Spreader(_Model):
    addr: str
    distinct: float
    lower_bound: float
    upper_bound: float


class QuerySpreadersResponse(_Model):
    sources: list[Spreader]
    destinations: list[Spreader]
    exact: bool
    table: str = Field(default="", description="where they were counted: exact counts from flows (the records) "
                                                "or a roll-up keeping what they need; the sketches' from spreaders "
                                                "(their windows' results) or spreaders_1h/_1d; several joined by +")


class LiveTopRequest(_Model):
    source: str = Field(default="", max_length=4096)
    limit: int = Field(default=10, ge=0, le=1000)


class Ranked(_Model):
    key: str
    value: float


class LiveTopResponse(_Model):
    source: str
    window_start_ms: int
    packets: int
    bytes: int
    flows: int
    complete: bool
    updated_at: float
    talkers: list[Ranked]
    flows_top: list[Ranked]
    active_hosts: int


class SourcesResponse(_Model):
    live: list[str] = Field(description="sources with live state in Redis (empty without Redis)")
    stored: list[str] = Field(description="sources with windows in the store")
    redis: bool = Field(description="whether the API has Redis (live data) configured")


class LiveSeriesRequest(_Model):
    source: str = Field(default="", max_length=4096)
    last: str = Field(default="1h", max_length=16, description="how far back from the newest window, e.g. 15m")

    @field_validator("last")
    @classmethod
    def _span(cls, v: str) -> str:
        span_ms(v)          # raises the one-line message
        return v


class WindowPoint(_Model):
    start_ms: int
    seconds: float
    packets: int
    bytes: int
    flows: int
    late_packets: int


class LiveSeriesResponse(_Model):
    source: str
    live: bool = Field(description="from Redis (true) or, without Redis, from the store's history")
    windows: list[WindowPoint]


class ProtocolShare(_Model):
    proto: int
    name: str
    packets: int
    bytes: int


class PortShare(_Model):
    port: str = Field(description="proto/port")
    packets: int
    bytes: int


class LiveWindowResponse(_Model):
    """The newest window of a source: totals, exact top talkers and breakdowns, sketch tops."""
    source: str
    live: bool
    window_start_ms: int
    seconds: float
    packets: int
    bytes: int
    flows: int
    hosts: int = Field(description="distinct addresses (0 when unknown: from the store)")
    frames: int
    late_packets: int
    complete: bool
    talkers: list[Ranked] = Field(description="sources by bytes, exact")
    flows_top: list[Ranked] = Field(description="'src sport dst dport proto' by bytes")
    protocols: list[ProtocolShare]
    ports: list[PortShare]
    spreaders: list[Ranked] = Field(description="sources by distinct destinations (HLL estimate)")
    fan_in: list[Ranked] = Field(description="destinations by distinct sources (HLL estimate)")
    status: dict[str, int] = Field(description="decode outcomes and other counters of the window")


class HealthResponse(_Model):
    status: Literal["ok", "degraded"]
    store: str
    store_ok: bool
    redis_ok: bool
    version: str


class DeleteSourceRequest(_Model):
    source: str = Field(min_length=1, max_length=4096)


class DeleteSourceResponse(_Model):
    tables: int


class IngestCaptureRequest(_Model):
    path: str = Field(min_length=1, max_length=4096, description="relative to the server's ingest_dir")
    window_seconds: float = Field(default=0.0, ge=0, le=86400, description="0 = 60")
    lateness_seconds: float = Field(default=0.0, ge=0, le=3600, description="0 = 5")


class IngestCaptureResponse(_Model):
    source: str
    windows: int
    packets: int
    bytes: int
    flows: int
    seconds: float
    truncated: bool = False      # the capture ends inside a packet record (every complete one was read)
    corrupt: bool = False        # an impossible record header stopped the read early


AlertState = Literal["firing", "resolved"]
Severity = Literal["info", "warning", "critical"]


class LookupNamesRequest(_Model):
    """The names DNS responses gave addresses in the range (the dns_names table): per address,
    the A or AAAA record's owner and the question asked (a CNAME chain's start), with the records
    that said so. Both filters are optional and combine."""
    range: TimeRange
    addresses: Networks = Field(default_factory=list, max_length=256, description="addresses or networks; empty = any")
    name: str = Field(default="", max_length=255, description="part of the owner or question, any case; empty = any")
    source: str = Field(default="", max_length=4096)
    limit: int = _limit()


class DnsName(_Model):
    address: str
    name: str = Field(description="the A or AAAA record's owner")
    query: str = Field(description="the response's question (several joined by ','); equal to name but for CNAME chains")
    answers: int = Field(description="records in the range that said so")
    first_window_ms: int
    last_window_ms: int


class LookupNamesResponse(_Model):
    names: list[DnsName]


class ListSipCallsRequest(_Model):
    """The SIP calls seen in the range (the sip_calls table, flows/sip.py), one per Call-ID over
    the range's windows, earliest first. The filters are optional and combine; each is about the
    call as a whole (its first message, first request, last final response)."""
    range: TimeRange
    call_id: list[str] = Field(default_factory=list, max_length=256, description="exact Call-IDs; empty = any")
    uri: str = Field(default="", max_length=255, description="part of the From or To URI, any case; empty = any")
    method: list[str] = Field(default_factory=list, max_length=32,
                              description="the first request's method (INVITE, REGISTER...); empty = any")
    status: list[int] = Field(default_factory=list, max_length=64,
                              description="the last final response's code, 0 for none; empty = any")
    addresses: Networks = Field(default_factory=list, max_length=256,
                                 description="the first message's source or destination in these addresses or networks")
    source: str = Field(default="", max_length=4096)
    limit: int = _limit()

    @field_validator("status")
    @classmethod
    def _codes(cls, v: list[int]) -> list[int]:
        for c in v:
            if not (c == 0 or 100 <= c <= 699):
                raise ValueError(f"not a SIP status code (100-699, or 0 for none): {c}")
        return v


class SipCall(_Model):
    call_id: str
    method: str = Field(description="the first request's method ('' when only responses were seen)")
    from_uri: str = Field(description="the first message's From address")
    to_uri: str
    src: str = Field(description="the first message's source address")
    dst: str
    first_seen_ns: int
    last_seen_ns: int
    requests: int = Field(description="requests seen, retransmissions too")
    responses: int
    status: int = Field(description="the last final response's code (200 or more), 0 for none")


class ListSipCallsResponse(_Model):
    calls: list[SipCall]


class ListAlertsRequest(_Model):
    """Alerts active at some time in the range (first seen before its end, last seen after its start)."""
    range: TimeRange
    state: list[AlertState] = Field(default_factory=list, max_length=2, description="empty = any")
    severity: list[Severity] = Field(default_factory=list, max_length=3, description="empty = any")
    rule: list[str] = Field(default_factory=list, max_length=256)
    address: str = Field(default="", max_length=64, description="an address the alert is about (its src or dst)")
    id: list[str] = Field(default_factory=list, max_length=256, description="alert ids; empty = any")
    source: str = Field(default="", max_length=4096)
    limit: int = _limit()

    @field_validator("address")
    @classmethod
    def _address(cls, v: str) -> str:
        return single_address(v) if v else v


class AlertItem(_Model):
    id: str
    source: str
    rule: str
    detector: str
    severity: str
    state: str
    entity: dict[str, str]
    value: float
    threshold: float
    first_seen_ms: int
    last_seen_ms: int
    resolved_at_ms: int = 0
    windows: int
    evidence_json: str = Field(description="what the alert is based on: top ports, sources, counts (JSON)")


class ListAlertsResponse(_Model):
    alerts: list[AlertItem]


class AnalyzeAlertRequest(_Model):
    alert_id: str = Field(min_length=1, max_length=64)


class AskRequest(_Model):
    question: str = Field(min_length=1, max_length=4000)
    default_range: str = Field(default="24h", max_length=16,
                               description="the span before now the model uses when the question names none")

    @field_validator("default_range")
    @classmethod
    def _span(cls, v: str) -> str:
        if not v:
            return "24h"    # gRPC's unset string
        span_ms(v)          # ValueError names the form
        return v


class AskChunk(_Model):
    """One piece of a streamed answer: text, or a query the model made, or the end."""
    text: str = ""
    tool_name: str = ""
    tool_arguments: str = ""
    done: bool = False


class AskQuery(_Model):
    tool_name: str
    tool_arguments: str = Field(description="JSON, as the model asked (names put back)")


class AskResponse(_Model):
    """A whole answer to a question: its text, the queries the model made, its turns."""
    text: str
    queries: list[AskQuery] = Field(default_factory=list)
    rounds: int = 0


class AnalyzeAlertResponse(_Model):
    """An LLM's analysis of an alert (what is happening, how sure, likely cause, impact, next
    steps), grounded in the query answers it was given (`facts_json`)."""
    alert_id: str
    text: str
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    pseudonymised: int = Field(default=0, description="internal addresses sent to the model as names")
    facts_json: str = Field(description="the alert and the query API's answers the analysis was given (JSON)")


class WatchAlertsRequest(_Model):
    source: str = Field(default="", max_length=4096)


class AlertChange(_Model):
    """One change of an alert as the engine made it: `firing`, `update` or `resolved` (the
    current ones are sent first as `firing`)."""
    change: Literal["firing", "update", "resolved"]
    alert: AlertItem
    cursor: str = Field(description="position in the change stream (SSE id; resume after it)")


def alert_item(a: dict, source: str) -> AlertItem:
    """An alert as the engine writes it to Redis (flows/alerts.py Alert.to_dict) -> AlertItem."""
    import json
    return AlertItem(id=a["id"], source=source, rule=a["rule"], detector=a["detector"], severity=a["severity"],
                     state=a["state"], entity={k: str(v) for k, v in a["entity"].items()}, value=float(a["value"]),
                     threshold=float(a["threshold"]), first_seen_ms=a["first_seen"] // 10**6,
                     last_seen_ms=a["last_seen"] // 10**6, resolved_at_ms=a.get("resolved_at", 0) // 10**6,
                     windows=a["windows"], evidence_json=json.dumps(a.get("evidence", {}), sort_keys=True))


def limit_of(n: int) -> int:
    return n or DEFAULT_LIMIT
