"""Every Prometheus metric of NetSpectra, in one table: the contract with the pipeline's
dashboard (dashboards/) and alerting rules (k8s/base/alert-rules.yaml). docs/metrics.md lists them.

Services call `serve(host, port)` to expose /metrics; code counts with `inc`, `set` and `observe`
by name. Until `serve` (or `enable`) runs they are no-ops and prometheus_client is not even
imported: `analyze` pays nothing for metrics. Counting happens per batch, message or window,
never per packet. Labels are bounded: partition numbers, sink and notifier names, decode status
names, alert detectors, API method names and status codes.
"""
from __future__ import annotations

import threading

SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
FLOWS_BUCKETS = (10, 100, 1e3, 1e4, 1e5, 1e6, 4e6, 1e7)

# name: (kind, help, labels[, buckets])
METRICS: dict[str, tuple] = {
    # collector
    "netspectra_collector_packets_captured_total": ("counter", "Frames read from the interface or capture file", ()),
    "netspectra_collector_bytes_captured_total": ("counter", "Captured bytes (as stored, after snaplen)", ()),
    "netspectra_collector_kernel_drops_total": ("counter", "Frames the kernel dropped: capture ring or buffer full", ()),
    "netspectra_collector_interface_drops_total": ("counter", "Frames the captured interface dropped before capture (rx_dropped, missed, fifo)", ()),
    "netspectra_collector_decoded_packets_total": ("counter", "Decoded frames by outcome (ok, or why not an IP packet)", ("status",)),
    "netspectra_collector_ip_bytes_total": ("counter", "IP bytes (total length) of decoded IP packets", ()),
    "netspectra_collector_published_messages_total": ("counter", "Kafka messages handed to the producer", ()),
    "netspectra_collector_published_packets_total": ("counter", "Packets in those messages", ()),
    "netspectra_collector_published_bytes_total": ("counter", "Message bytes handed to the producer", ()),
    "netspectra_collector_delivered_messages_total": ("counter", "Messages the broker acknowledged", ()),
    "netspectra_collector_delivery_failures_total": ("counter", "Messages that failed after librdkafka's retries", ()),
    # engine
    "netspectra_engine_messages_total": ("counter", "Kafka messages read", ("partition",)),
    "netspectra_engine_message_bytes_total": ("counter", "Bytes of the Kafka messages read", ("partition",)),
    "netspectra_engine_duplicate_messages_total": ("counter", "Messages dropped as a producer's retry of one already read", ("partition",)),
    "netspectra_engine_dead_letters_total": ("counter", "Messages that were not packet batches, or consumer errors, sent to the dead-letter topic", ("reason",)),
    "netspectra_engine_consumer_lag_messages": ("gauge", "Messages between the read position and the partition's high watermark", ("partition",)),
    "netspectra_engine_read_ahead_waiting": ("gauge", "1 while the partition waits for slower ones of its process (read-ahead bound)", ("partition",)),
    "netspectra_engine_packets_total": ("counter", "Frames of the packet batches taken into windows", ()),
    "netspectra_engine_late_packets_total": ("counter", "Packets for windows already past their grace: counted and dropped", ()),
    "netspectra_engine_windows_total": ("counter", "Windows closed (first result), by whether every shard reported", ("complete",)),
    "netspectra_engine_window_revisions_total": ("counter", "Closed windows written again: late packets within the grace", ()),
    "netspectra_engine_window_flows": ("histogram", "Exact flow records per closed window", (), FLOWS_BUCKETS),
    "netspectra_engine_capped_flows_total": ("counter", "Flow records beyond max_flows: counted and sketched, not kept", ()),
    "netspectra_engine_heap_trim_seconds": ("histogram", "Time of one malloc_trim that hands the heap's free pages back (flows/heap.py)", (), SECONDS_BUCKETS),
    "netspectra_engine_sketch_bytes": ("gauge", "Serialized size of the newest closed window's sketches (heavy hitters, spread)", ()),
    "netspectra_engine_alerts_total": ("counter", "Alert changes: firing, update, resolved", ("change", "detector")),
    # sinks and notifiers (in the engine's process)
    "netspectra_sink_write_seconds": ("histogram", "Time to write a batch of windows or alerts, retries included", ("sink",), SECONDS_BUCKETS),
    "netspectra_sink_windows_total": ("counter", "Window versions written", ("sink",)),
    "netspectra_sink_retries_total": ("counter", "Writes retried while the store was away", ("sink",)),
    "netspectra_sink_dropped_total": ("counter", "Windows or alerts dropped from a full backlog", ("sink",)),
    "netspectra_notifier_sent_total": ("counter", "Alert notifications delivered", ("notifier",)),
    "netspectra_notifier_failures_total": ("counter", "Failed delivery attempts (retried)", ("notifier",)),
    "netspectra_notifier_dropped_total": ("counter", "Notifications dropped from a full outbox", ("notifier",)),
    "netspectra_notifier_analyses_failed_total": ("counter", "Alert analyses given up (the AI gateway away or failing)", ()),
    # API
    "netspectra_api_requests_total": ("counter", "API requests by transport, method and status", ("transport", "method", "status")),
    "netspectra_api_request_seconds": ("histogram", "API request latency", ("transport", "method"), SECONDS_BUCKETS),
    # the AI gateway (in the API's process, or its own: netspectra ai)
    "netspectra_ai_upstream_requests_total": ("counter", "Requests to the LLM endpoint by outcome: HTTP status, timeout, unreachable", ("status",)),
    "netspectra_ai_upstream_retries_total": ("counter", "Requests to the LLM endpoint sent again (429, 5xx, timeouts) after backoff or Retry-After", ()),
    "netspectra_ai_upstream_seconds": ("histogram", "From a request to the end of the LLM's answer, retries included, by mode (answer, stream)", ("mode",), SECONDS_BUCKETS),
    "netspectra_ai_tokens_total": ("counter", "Tokens used by kind (prompt, completion): the endpoint's count, else estimated", ("kind",)),
    "netspectra_ai_budget_refusals_total": ("counter", "Requests refused: the day's token budget would be exceeded", ()),
    "netspectra_ai_tool_calls_total": ("counter", "Queries the model made while answering a question, by tool", ("tool",)),
}

_live: dict[str, object] = {}
_lock = threading.Lock()


# what each service's /metrics shows
SERVICE_GROUPS = {"collect": ("collector",), "engine": ("engine", "sink", "notifier"), "api": ("api", "ai")}


def enable(service: str) -> None:
    """Create the service's metrics in prometheus_client's registry (once per process)."""
    groups = tuple(f"netspectra_{g}_" for g in SERVICE_GROUPS[service])
    with _lock:
        import prometheus_client as pc
        pc.disable_created_metrics()          # no `_created` series beside every counter
        kinds = {"counter": pc.Counter, "gauge": pc.Gauge, "histogram": pc.Histogram}
        for name, (kind, doc, labels, *rest) in METRICS.items():
            if name.startswith(groups) and name not in _live:
                kw = {"buckets": rest[0]} if rest else {}
                _live[name] = kinds[kind](name, doc, labels, **kw)


def serve(service: str, host: str, port: int) -> int:
    """Expose the service's metrics on http://host:port/metrics (port 0: any free one); the port."""
    enable(service)
    import prometheus_client as pc
    server, _ = pc.start_http_server(port, addr=host)
    return server.server_port


def totals(service: str) -> dict[str, float]:
    """What the service's metrics counted, summed over their labels: {name without netspectra_:
    value} (a histogram: its count). Empty unless enable()d."""
    groups = tuple(f"netspectra_{g}_" for g in SERVICE_GROUPS[service])
    out = {}
    for name, m in list(_live.items()):
        if name.startswith(groups):
            kind = METRICS[name][0]
            want = name + "_count" if kind == "histogram" else name
            out[name.removeprefix("netspectra_")] = sum(s.value for fam in m.collect() for s in fam.samples
                                                        if s.name == want)
    return out


def enabled() -> bool:
    """Whether this process exposes metrics (for counts that cost something to take)."""
    return bool(_live)


def _metric(name: str, labels: dict):
    m = _live.get(name)
    if m is None:
        if name not in METRICS:
            raise KeyError(f"no metric {name} in schemas/metrics.py")
        return None
    return m.labels(**labels) if labels else m


def inc(name: str, value: float = 1, **labels) -> None:
    m = _metric(name, labels)
    if m is not None and value:
        m.inc(value)


def set(name: str, value: float, **labels) -> None:   # noqa: A001 - the gauge verb
    m = _metric(name, labels)
    if m is not None:
        m.set(value)


def observe(name: str, value: float, **labels) -> None:
    m = _metric(name, labels)
    if m is not None:
        m.observe(value)


def touch(name: str, **labels) -> None:
    """Make a labelled series exist at 0 (a scrape shows it before its first event)."""
    _metric(name, labels)
