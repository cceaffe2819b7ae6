from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Dimension(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DIMENSION_UNSPECIFIED: _ClassVar[Dimension]
    DIMENSION_SRC: _ClassVar[Dimension]
    DIMENSION_DST: _ClassVar[Dimension]
    DIMENSION_SPORT: _ClassVar[Dimension]
    DIMENSION_DPORT: _ClassVar[Dimension]
    DIMENSION_PROTO: _ClassVar[Dimension]
    DIMENSION_VLAN: _ClassVar[Dimension]
    DIMENSION_TLS_SNI: _ClassVar[Dimension]
    DIMENSION_TLS_JA4: _ClassVar[Dimension]
    DIMENSION_TLS_ALPN: _ClassVar[Dimension]
    DIMENSION_TUNNEL: _ClassVar[Dimension]
    DIMENSION_TUNNEL_ID: _ClassVar[Dimension]

class Metric(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    METRIC_UNSPECIFIED: _ClassVar[Metric]
    METRIC_BYTES: _ClassVar[Metric]
    METRIC_PACKETS: _ClassVar[Metric]
    METRIC_FLOWS: _ClassVar[Metric]

class HeavyHitterDimension(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HH_DIMENSION_UNSPECIFIED: _ClassVar[HeavyHitterDimension]
    HH_SRC: _ClassVar[HeavyHitterDimension]
    HH_DST: _ClassVar[HeavyHitterDimension]
    HH_FLOW: _ClassVar[HeavyHitterDimension]
    HH_PORT: _ClassVar[HeavyHitterDimension]
    HH_PROTO: _ClassVar[HeavyHitterDimension]

class SpreadCount(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SPREAD_COUNT_UNSPECIFIED: _ClassVar[SpreadCount]
    SPREAD_PEERS: _ClassVar[SpreadCount]
    SPREAD_PORTS: _ClassVar[SpreadCount]
DIMENSION_UNSPECIFIED: Dimension
DIMENSION_SRC: Dimension
DIMENSION_DST: Dimension
DIMENSION_SPORT: Dimension
DIMENSION_DPORT: Dimension
DIMENSION_PROTO: Dimension
DIMENSION_VLAN: Dimension
DIMENSION_TLS_SNI: Dimension
DIMENSION_TLS_JA4: Dimension
DIMENSION_TLS_ALPN: Dimension
DIMENSION_TUNNEL: Dimension
DIMENSION_TUNNEL_ID: Dimension
METRIC_UNSPECIFIED: Metric
METRIC_BYTES: Metric
METRIC_PACKETS: Metric
METRIC_FLOWS: Metric
HH_DIMENSION_UNSPECIFIED: HeavyHitterDimension
HH_SRC: HeavyHitterDimension
HH_DST: HeavyHitterDimension
HH_FLOW: HeavyHitterDimension
HH_PORT: HeavyHitterDimension
HH_PROTO: HeavyHitterDimension
SPREAD_COUNT_UNSPECIFIED: SpreadCount
SPREAD_PEERS: SpreadCount
SPREAD_PORTS: SpreadCount

class TimeRange(_message.Message):
    __slots__ = ("start_ms", "end_ms", "start", "end", "last")
    START_MS_FIELD_NUMBER: _ClassVar[int]
    END_MS_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    start_ms: int
    end_ms: int
    start: str
    end: str
    last: str
    def __init__(self, start_ms: _Optional[int] = ..., end_ms: _Optional[int] = ..., start: _Optional[str] = ..., end: _Optional[str] = ..., last: _Optional[str] = ...) -> None: ...

class Filter(_message.Message):
    __slots__ = ("src", "dst", "sport", "dport", "proto", "source", "vlan", "tls_sni", "tls_ja4", "tls_alpn", "tunnel", "tunnel_id")
    SRC_FIELD_NUMBER: _ClassVar[int]
    DST_FIELD_NUMBER: _ClassVar[int]
    SPORT_FIELD_NUMBER: _ClassVar[int]
    DPORT_FIELD_NUMBER: _ClassVar[int]
    PROTO_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    VLAN_FIELD_NUMBER: _ClassVar[int]
    TLS_SNI_FIELD_NUMBER: _ClassVar[int]
    TLS_JA4_FIELD_NUMBER: _ClassVar[int]
    TLS_ALPN_FIELD_NUMBER: _ClassVar[int]
    TUNNEL_FIELD_NUMBER: _ClassVar[int]
    TUNNEL_ID_FIELD_NUMBER: _ClassVar[int]
    src: _containers.RepeatedScalarFieldContainer[str]
    dst: _containers.RepeatedScalarFieldContainer[str]
    sport: _containers.RepeatedScalarFieldContainer[int]
    dport: _containers.RepeatedScalarFieldContainer[int]
    proto: _containers.RepeatedScalarFieldContainer[int]
    source: str
    vlan: _containers.RepeatedScalarFieldContainer[int]
    tls_sni: _containers.RepeatedScalarFieldContainer[str]
    tls_ja4: _containers.RepeatedScalarFieldContainer[str]
    tls_alpn: _containers.RepeatedScalarFieldContainer[str]
    tunnel: _containers.RepeatedScalarFieldContainer[str]
    tunnel_id: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, src: _Optional[_Iterable[str]] = ..., dst: _Optional[_Iterable[str]] = ..., sport: _Optional[_Iterable[int]] = ..., dport: _Optional[_Iterable[int]] = ..., proto: _Optional[_Iterable[int]] = ..., source: _Optional[str] = ..., vlan: _Optional[_Iterable[int]] = ..., tls_sni: _Optional[_Iterable[str]] = ..., tls_ja4: _Optional[_Iterable[str]] = ..., tls_alpn: _Optional[_Iterable[str]] = ..., tunnel: _Optional[_Iterable[str]] = ..., tunnel_id: _Optional[_Iterable[int]] = ...) -> None: ...

class AggregateFlowsRequest(_message.Message):
    __slots__ = ("range", "filter", "group_by", "bucket_seconds", "order_by", "limit")
    RANGE_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    BUCKET_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ORDER_BY_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    range: TimeRange
    filter: Filter
    group_by: _containers.RepeatedScalarFieldContainer[Dimension]
    bucket_seconds: int
    order_by: Metric
    limit: int
    def __init__(self, range: _Optional[_Union[TimeRange, _Mapping]] = ..., filter: _Optional[_Union[Filter, _Mapping]] = ..., group_by: _Optional[_Iterable[_Union[Dimension, str]]] = ..., bucket_seconds: _Optional[int] = ..., order_by: _Optional[_Union[Metric, str]] = ..., limit: _Optional[int] = ...) -> None: ...

class FlowGroup(_message.Message):
    __slots__ = ("bucket_ms", "src", "dst", "sport", "dport", "proto", "packets", "bytes", "flows", "vlan", "tls_sni", "tls_ja4", "tls_alpn", "tunnel", "tunnel_id")
    BUCKET_MS_FIELD_NUMBER: _ClassVar[int]
    SRC_FIELD_NUMBER: _ClassVar[int]
    DST_FIELD_NUMBER: _ClassVar[int]
    SPORT_FIELD_NUMBER: _ClassVar[int]
    DPORT_FIELD_NUMBER: _ClassVar[int]
    PROTO_FIELD_NUMBER: _ClassVar[int]
    PACKETS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    FLOWS_FIELD_NUMBER: _ClassVar[int]
    VLAN_FIELD_NUMBER: _ClassVar[int]
    TLS_SNI_FIELD_NUMBER: _ClassVar[int]
    TLS_JA4_FIELD_NUMBER: _ClassVar[int]
    TLS_ALPN_FIELD_NUMBER: _ClassVar[int]
    TUNNEL_FIELD_NUMBER: _ClassVar[int]
    TUNNEL_ID_FIELD_NUMBER: _ClassVar[int]
    bucket_ms: int
    src: str
    dst: str
    sport: int
    dport: int
    proto: int
    packets: int
    bytes: int
    flows: int
    vlan: int
    tls_sni: str
    tls_ja4: str
    tls_alpn: str
    tunnel: str
    tunnel_id: int
    def __init__(self, bucket_ms: _Optional[int] = ..., src: _Optional[str] = ..., dst: _Optional[str] = ..., sport: _Optional[int] = ..., dport: _Optional[int] = ..., proto: _Optional[int] = ..., packets: _Optional[int] = ..., bytes: _Optional[int] = ..., flows: _Optional[int] = ..., vlan: _Optional[int] = ..., tls_sni: _Optional[str] = ..., tls_ja4: _Optional[str] = ..., tls_alpn: _Optional[str] = ..., tunnel: _Optional[str] = ..., tunnel_id: _Optional[int] = ...) -> None: ...

class AggregateFlowsResponse(_message.Message):
    __slots__ = ("groups", "table", "resolution_seconds")
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    groups: _containers.RepeatedCompositeFieldContainer[FlowGroup]
    table: str
    resolution_seconds: int
    def __init__(self, groups: _Optional[_Iterable[_Union[FlowGroup, _Mapping]]] = ..., table: _Optional[str] = ..., resolution_seconds: _Optional[int] = ...) -> None: ...

class TraceFlowRequest(_message.Message):
    __slots__ = ("range", "src", "dst", "sport", "dport", "proto", "source")
    RANGE_FIELD_NUMBER: _ClassVar[int]
    SRC_FIELD_NUMBER: _ClassVar[int]
    DST_FIELD_NUMBER: _ClassVar[int]
    SPORT_FIELD_NUMBER: _ClassVar[int]
    DPORT_FIELD_NUMBER: _ClassVar[int]
    PROTO_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    range: TimeRange
    src: str
    dst: str
    sport: int
    dport: int
    proto: int
    source: str
    def __init__(self, range: _Optional[_Union[TimeRange, _Mapping]] = ..., src: _Optional[str] = ..., dst: _Optional[str] = ..., sport: _Optional[int] = ..., dport: _Optional[int] = ..., proto: _Optional[int] = ..., source: _Optional[str] = ...) -> None: ...

class FlowWindow(_message.Message):
    __slots__ = ("window_start_ms", "source", "packets", "bytes", "first_seen_ns", "last_seen_ns", "tcp_flags", "vlan", "tunnel", "tunnel_id")
    WINDOW_START_MS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    PACKETS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEEN_NS_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_NS_FIELD_NUMBER: _ClassVar[int]
    TCP_FLAGS_FIELD_NUMBER: _ClassVar[int]
    VLAN_FIELD_NUMBER: _ClassVar[int]
    TUNNEL_FIELD_NUMBER: _ClassVar[int]
    TUNNEL_ID_FIELD_NUMBER: _ClassVar[int]
    window_start_ms: int
    source: str
    packets: int
    bytes: int
    first_seen_ns: int
    last_seen_ns: int
    tcp_flags: int
    vlan: int
    tunnel: str
    tunnel_id: int
    def __init__(self, window_start_ms: _Optional[int] = ..., source: _Optional[str] = ..., packets: _Optional[int] = ..., bytes: _Optional[int] = ..., first_seen_ns: _Optional[int] = ..., last_seen_ns: _Optional[int] = ..., tcp_flags: _Optional[int] = ..., vlan: _Optional[int] = ..., tunnel: _Optional[str] = ..., tunnel_id: _Optional[int] = ...) -> None: ...

class TraceFlowResponse(_message.Message):
    __slots__ = ("windows", "packets", "bytes", "first_seen_ns", "last_seen_ns", "tcp_flags")
    WINDOWS_FIELD_NUMBER: _ClassVar[int]
    PACKETS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEEN_NS_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_NS_FIELD_NUMBER: _ClassVar[int]
    TCP_FLAGS_FIELD_NUMBER: _ClassVar[int]
    windows: _containers.RepeatedCompositeFieldContainer[FlowWindow]
    packets: int
    bytes: int
    first_seen_ns: int
    last_seen_ns: int
    tcp_flags: int
    def __init__(self, windows: _Optional[_Iterable[_Union[FlowWindow, _Mapping]]] = ..., packets: _Optional[int] = ..., bytes: _Optional[int] = ..., first_seen_ns: _Optional[int] = ..., last_seen_ns: _Optional[int] = ..., tcp_flags: _Optional[int] = ...) -> None: ...

class LookupNamesRequest(_message.Message):
    __slots__ = ("range", "addresses", "name", "source", "limit")
    RANGE_FIELD_NUMBER: _ClassVar[int]
    ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    range: TimeRange
    addresses: _containers.RepeatedScalarFieldContainer[str]
    name: str
    source: str
    limit: int
    def __init__(self, range: _Optional[_Union[TimeRange, _Mapping]] = ..., addresses: _Optional[_Iterable[str]] = ..., name: _Optional[str] = ..., source: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class DnsName(_message.Message):
    __slots__ = ("address", "name", "query", "answers", "first_window_ms", "last_window_ms")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    FIRST_WINDOW_MS_FIELD_NUMBER: _ClassVar[int]
    LAST_WINDOW_MS_FIELD_NUMBER: _ClassVar[int]
    address: str
    name: str
    query: str
    answers: int
    first_window_ms: int
    last_window_ms: int
    def __init__(self, address: _Optional[str] = ..., name: _Optional[str] = ..., query: _Optional[str] = ..., answers: _Optional[int] = ..., first_window_ms: _Optional[int] = ..., last_window_ms: _Optional[int] = ...) -> None: ...

class LookupNamesResponse(_message.Message):
    __slots__ = ("names",)
    NAMES_FIELD_NUMBER: _ClassVar[int]
    names: _containers.RepeatedCompositeFieldContainer[DnsName]
    def __init__(self, names: _Optional[_Iterable[_Union[DnsName, _Mapping]]] = ...) -> None: ...

class ListSipCallsRequest(_message.Message):
    __slots__ = ("range", "call_id", "uri", "method", "status", "addresses", "source", "limit")
    RANGE_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    URI_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    range: TimeRange
    call_id: _containers.RepeatedScalarFieldContainer[str]
    uri: str
    method: _containers.RepeatedScalarFieldContainer[str]
    status: _containers.RepeatedScalarFieldContainer[int]
    addresses: _containers.RepeatedScalarFieldContainer[str]
    source: str
    limit: int
    def __init__(self, range: _Optional[_Union[TimeRange, _Mapping]] = ..., call_id: _Optional[_Iterable[str]] = ..., uri: _Optional[str] = ..., method: _Optional[_Iterable[str]] = ..., status: _Optional[_Iterable[int]] = ..., addresses: _Optional[_Iterable[str]] = ..., source: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class SipCall(_message.Message):
    __slots__ = ("call_id", "method", "from_uri", "to_uri", "src", "dst", "first_seen_ns", "last_seen_ns", "requests", "responses", "status")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    FROM_URI_FIELD_NUMBER: _ClassVar[int]
    TO_URI_FIELD_NUMBER: _ClassVar[int]
    SRC_FIELD_NUMBER: _ClassVar[int]
    DST_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEEN_NS_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_NS_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    method: str
    from_uri: str
    to_uri: str
    src: str
    dst: str
    first_seen_ns: int
    last_seen_ns: int
    requests: int
    responses: int
    status: int
    def __init__(self, call_id: _Optional[str] = ..., method: _Optional[str] = ..., from_uri: _Optional[str] = ..., to_uri: _Optional[str] = ..., src: _Optional[str] = ..., dst: _Optional[str] = ..., first_seen_ns: _Optional[int] = ..., last_seen_ns: _Optional[int] = ..., requests: _Optional[int] = ..., responses: _Optional[int] = ..., status: _Optional[int] = ...) -> None: ...

class ListSipCallsResponse(_message.Message):
    __slots__ = ("calls",)
    CALLS_FIELD_NUMBER: _ClassVar[int]
    calls: _containers.RepeatedCompositeFieldContainer[SipCall]
    def __init__(self, calls: _Optional[_Iterable[_Union[SipCall, _Mapping]]] = ...) -> None: ...

class QueryHeavyHittersRequest(_message.Message):
    __slots__ = ("range", "filter", "dimension", "metric", "limit", "exact")
    RANGE_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    EXACT_FIELD_NUMBER: _ClassVar[int]
    range: TimeRange
    filter: Filter
    dimension: HeavyHitterDimension
    metric: Metric
    limit: int
    exact: bool
    def __init__(self, range: _Optional[_Union[TimeRange, _Mapping]] = ..., filter: _Optional[_Union[Filter, _Mapping]] = ..., dimension: _Optional[_Union[HeavyHitterDimension, str]] = ..., metric: _Optional[_Union[Metric, str]] = ..., limit: _Optional[int] = ..., exact: _Optional[bool] = ...) -> None: ...

class HeavyHitter(_message.Message):
    __slots__ = ("item", "src", "dst", "sport", "dport", "proto", "value", "lower_bound", "upper_bound")
    ITEM_FIELD_NUMBER: _ClassVar[int]
    SRC_FIELD_NUMBER: _ClassVar[int]
    DST_FIELD_NUMBER: _ClassVar[int]
    SPORT_FIELD_NUMBER: _ClassVar[int]
    DPORT_FIELD_NUMBER: _ClassVar[int]
    PROTO_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    LOWER_BOUND_FIELD_NUMBER: _ClassVar[int]
    UPPER_BOUND_FIELD_NUMBER: _ClassVar[int]
    item: str
    src: str
    dst: str
    sport: int
    dport: int
    proto: int
    value: int
    lower_bound: int
    upper_bound: int
    def __init__(self, item: _Optional[str] = ..., src: _Optional[str] = ..., dst: _Optional[str] = ..., sport: _Optional[int] = ..., dport: _Optional[int] = ..., proto: _Optional[int] = ..., value: _Optional[int] = ..., lower_bound: _Optional[int] = ..., upper_bound: _Optional[int] = ...) -> None: ...

class QueryHeavyHittersResponse(_message.Message):
    __slots__ = ("items", "exact", "table")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    EXACT_FIELD_NUMBER: _ClassVar[int]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[HeavyHitter]
    exact: bool
    table: str
    def __init__(self, items: _Optional[_Iterable[_Union[HeavyHitter, _Mapping]]] = ..., exact: _Optional[bool] = ..., table: _Optional[str] = ...) -> None: ...

class QuerySpreadersRequest(_message.Message):
    __slots__ = ("range", "filter", "limit", "exact", "count")
    RANGE_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    EXACT_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    range: TimeRange
    filter: Filter
    limit: int
    exact: bool
    count: SpreadCount
    def __init__(self, range: _Optional[_Union[TimeRange, _Mapping]] = ..., filter: _Optional[_Union[Filter, _Mapping]] = ..., limit: _Optional[int] = ..., exact: _Optional[bool] = ..., count: _Optional[_Union[SpreadCount, str]] = ...) -> None: ...

class Spreader(_message.Message):
    __slots__ = ("addr", "distinct", "lower_bound", "upper_bound")
    ADDR_FIELD_NUMBER: _ClassVar[int]
    DISTINCT_FIELD_NUMBER: _ClassVar[int]
    LOWER_BOUND_FIELD_NUMBER: _ClassVar[int]
    UPPER_BOUND_FIELD_NUMBER: _ClassVar[int]
    addr: str
    distinct: float
    lower_bound: float
    upper_bound: float
    def __init__(self, addr: _Optional[str] = ..., distinct: _Optional[float] = ..., lower_bound: _Optional[float] = ..., upper_bound: _Optional[float] = ...) -> None: ...

class QuerySpreadersResponse(_message.Message):
    __slots__ = ("sources", "destinations", "exact", "table")
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    DESTINATIONS_FIELD_NUMBER: _ClassVar[int]
    EXACT_FIELD_NUMBER: _ClassVar[int]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    sources: _containers.RepeatedCompositeFieldContainer[Spreader]
    destinations: _containers.RepeatedCompositeFieldContainer[Spreader]
    exact: bool
    table: str
    def __init__(self, sources: _Optional[_Iterable[_Union[Spreader, _Mapping]]] = ..., destinations: _Optional[_Iterable[_Union[Spreader, _Mapping]]] = ..., exact: _Optional[bool] = ..., table: _Optional[str] = ...) -> None: ...

class LiveTopRequest(_message.Message):
    __slots__ = ("source", "limit")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    source: str
    limit: int
    def __init__(self, source: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class Ranked(_message.Message):
    __slots__ = ("key", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: float
    def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...

class LiveTopResponse(_message.Message):
    __slots__ = ("source", "window_start_ms", "packets", "bytes", "flows", "complete", "updated_at", "talkers", "flows_top", "active_hosts")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    WINDOW_START_MS_FIELD_NUMBER: _ClassVar[int]
    PACKETS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    FLOWS_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    TALKERS_FIELD_NUMBER: _ClassVar[int]
    FLOWS_TOP_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_HOSTS_FIELD_NUMBER: _ClassVar[int]
    source: str
    window_start_ms: int
    packets: int
    bytes: int
    flows: int
    complete: bool
    updated_at: float
    talkers: _containers.RepeatedCompositeFieldContainer[Ranked]
    flows_top: _containers.RepeatedCompositeFieldContainer[Ranked]
    active_hosts: int
    def __init__(self, source: _Optional[str] = ..., window_start_ms: _Optional[int] = ..., packets: _Optional[int] = ..., bytes: _Optional[int] = ..., flows: _Optional[int] = ..., complete: _Optional[bool] = ..., updated_at: _Optional[float] = ..., talkers: _Optional[_Iterable[_Union[Ranked, _Mapping]]] = ..., flows_top: _Optional[_Iterable[_Union[Ranked, _Mapping]]] = ..., active_hosts: _Optional[int] = ...) -> None: ...

class HealthRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HealthResponse(_message.Message):
    __slots__ = ("status", "store", "store_ok", "redis_ok", "version")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    STORE_OK_FIELD_NUMBER: _ClassVar[int]
    REDIS_OK_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    status: str
    store: str
    store_ok: bool
    redis_ok: bool
    version: str
    def __init__(self, status: _Optional[str] = ..., store: _Optional[str] = ..., store_ok: _Optional[bool] = ..., redis_ok: _Optional[bool] = ..., version: _Optional[str] = ...) -> None: ...

class DeleteSourceRequest(_message.Message):
    __slots__ = ("source",)
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    source: str
    def __init__(self, source: _Optional[str] = ...) -> None: ...

class DeleteSourceResponse(_message.Message):
    __slots__ = ("tables",)
    TABLES_FIELD_NUMBER: _ClassVar[int]
    tables: int
    def __init__(self, tables: _Optional[int] = ...) -> None: ...

class IngestCaptureRequest(_message.Message):
    __slots__ = ("path", "window_seconds", "lateness_seconds")
    PATH_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LATENESS_SECONDS_FIELD_NUMBER: _ClassVar[int]
    path: str
    window_seconds: float
    lateness_seconds: float
    def __init__(self, path: _Optional[str] = ..., window_seconds: _Optional[float] = ..., lateness_seconds: _Optional[float] = ...) -> None: ...

class IngestCaptureResponse(_message.Message):
    __slots__ = ("source", "windows", "packets", "bytes", "flows", "seconds", "truncated", "corrupt")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    WINDOWS_FIELD_NUMBER: _ClassVar[int]
    PACKETS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    FLOWS_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    CORRUPT_FIELD_NUMBER: _ClassVar[int]
    source: str
    windows: int
    packets: int
    bytes: int
    flows: int
    seconds: float
    truncated: bool
    corrupt: bool
    def __init__(self, source: _Optional[str] = ..., windows: _Optional[int] = ..., packets: _Optional[int] = ..., bytes: _Optional[int] = ..., flows: _Optional[int] = ..., seconds: _Optional[float] = ..., truncated: _Optional[bool] = ..., corrupt: _Optional[bool] = ...) -> None: ...

class ListAlertsRequest(_message.Message):
    __slots__ = ("range", "state", "severity", "rule", "address", "source", "limit", "id")
    RANGE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    range: TimeRange
    state: _containers.RepeatedScalarFieldContainer[str]
    severity: _containers.RepeatedScalarFieldContainer[str]
    rule: _containers.RepeatedScalarFieldContainer[str]
    address: str
    source: str
    limit: int
    id: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, range: _Optional[_Union[TimeRange, _Mapping]] = ..., state: _Optional[_Iterable[str]] = ..., severity: _Optional[_Iterable[str]] = ..., rule: _Optional[_Iterable[str]] = ..., address: _Optional[str] = ..., source: _Optional[str] = ..., limit: _Optional[int] = ..., id: _Optional[_Iterable[str]] = ...) -> None: ...

class Alert(_message.Message):
    __slots__ = ("id", "source", "rule", "detector", "severity", "state", "entity", "value", "threshold", "first_seen_ms", "last_seen_ms", "resolved_at_ms", "windows", "evidence_json")
    class EntityEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    DETECTOR_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ENTITY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEEN_MS_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_MS_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    WINDOWS_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_JSON_FIELD_NUMBER: _ClassVar[int]
    id: str
    source: str
    rule: str
    detector: str
    severity: str
    state: str
    entity: _containers.ScalarMap[str, str]
    value: float
    threshold: float
    first_seen_ms: int
    last_seen_ms: int
    resolved_at_ms: int
    windows: int
    evidence_json: str
    def __init__(self, id: _Optional[str] = ..., source: _Optional[str] = ..., rule: _Optional[str] = ..., detector: _Optional[str] = ..., severity: _Optional[str] = ..., state: _Optional[str] = ..., entity: _Optional[_Mapping[str, str]] = ..., value: _Optional[float] = ..., threshold: _Optional[float] = ..., first_seen_ms: _Optional[int] = ..., last_seen_ms: _Optional[int] = ..., resolved_at_ms: _Optional[int] = ..., windows: _Optional[int] = ..., evidence_json: _Optional[str] = ...) -> None: ...

class ListAlertsResponse(_message.Message):
    __slots__ = ("alerts",)
    ALERTS_FIELD_NUMBER: _ClassVar[int]
    alerts: _containers.RepeatedCompositeFieldContainer[Alert]
    def __init__(self, alerts: _Optional[_Iterable[_Union[Alert, _Mapping]]] = ...) -> None: ...

class WatchAlertsRequest(_message.Message):
    __slots__ = ("source",)
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    source: str
    def __init__(self, source: _Optional[str] = ...) -> None: ...

class AlertChange(_message.Message):
    __slots__ = ("change", "alert", "cursor")
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    ALERT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    change: str
    alert: Alert
    cursor: str
    def __init__(self, change: _Optional[str] = ..., alert: _Optional[_Union[Alert, _Mapping]] = ..., cursor: _Optional[str] = ...) -> None: ...

class AnalyzeAlertRequest(_message.Message):
    __slots__ = ("alert_id",)
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    alert_id: str
    def __init__(self, alert_id: _Optional[str] = ...) -> None: ...

class AnalyzeAlertResponse(_message.Message):
    __slots__ = ("alert_id", "text", "model", "prompt_tokens", "completion_tokens", "pseudonymised", "facts_json")
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    PSEUDONYMISED_FIELD_NUMBER: _ClassVar[int]
    FACTS_JSON_FIELD_NUMBER: _ClassVar[int]
    alert_id: str
    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    pseudonymised: int
    facts_json: str
    def __init__(self, alert_id: _Optional[str] = ..., text: _Optional[str] = ..., model: _Optional[str] = ..., prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., pseudonymised: _Optional[int] = ..., facts_json: _Optional[str] = ...) -> None: ...

class AskRequest(_message.Message):
    __slots__ = ("question", "default_range")
    QUESTION_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_RANGE_FIELD_NUMBER: _ClassVar[int]
    question: str
    default_range: str
    def __init__(self, question: _Optional[str] = ..., default_range: _Optional[str] = ...) -> None: ...

class AskChunk(_message.Message):
    __slots__ = ("text", "tool_name", "tool_arguments", "done")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TOOL_NAME_FIELD_NUMBER: _ClassVar[int]
    TOOL_ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    text: str
    tool_name: str
    tool_arguments: str
    done: bool
    def __init__(self, text: _Optional[str] = ..., tool_name: _Optional[str] = ..., tool_arguments: _Optional[str] = ..., done: _Optional[bool] = ...) -> None: ...

class AskQuery(_message.Message):
    __slots__ = ("tool_name", "tool_arguments")
    TOOL_NAME_FIELD_NUMBER: _ClassVar[int]
    TOOL_ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    tool_name: str
    tool_arguments: str
    def __init__(self, tool_name: _Optional[str] = ..., tool_arguments: _Optional[str] = ...) -> None: ...

class AskResponse(_message.Message):
    __slots__ = ("text", "queries", "rounds")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    ROUNDS_FIELD_NUMBER: _ClassVar[int]
    text: str
    queries: _containers.RepeatedCompositeFieldContainer[AskQuery]
    rounds: int
    def __init__(self, text: _Optional[str] = ..., queries: _Optional[_Iterable[_Union[AskQuery, _Mapping]]] = ..., rounds: _Optional[int] = ...) -> None: ...
