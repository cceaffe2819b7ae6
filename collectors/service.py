"""The collector service: capture (live or from a file), decode, publish to Kafka partitioned
by flow (`netspectra collect`).

    c = Collector(CollectorConfig(interface="eth0"))
    c.start()        # broker and source opened; CollectorError (one line) if they cannot be
    report = c.run() # until the capture ends, `count`/`duration`, or stop()
    c.stop()         # from a signal handler or another thread

The report: packets captured, dropped by the kernel, decoded, published, delivered, failed.
`dry_run` captures and decodes without Kafka (checking a capture host, the live-capture tests).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Literal, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from collectors import protocols as P
from schemas import metrics as M
from schemas.packet_batch import STATUS_NAMES, STATUS_OK
from schemas.probes import PROBE_TIMEOUT_S, kafka_problem
from schemas.topics import LOCAL_KAFKA, PACKETS_TOPIC



class CollectorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # source: one of
    interface: Optional[str] = None
    pcap: Optional[str] = None
    # live capture
    method: Literal["pcap", "afpacket"] = "afpacket"
    bpf: str = ""
    snaplen: int = Field(default=262144, ge=64)
    buffer_mb: int = Field(default=64, ge=1)
    fanout: Optional[int] = Field(default=None, ge=0, le=65535)   # PACKET_FANOUT group id
    promisc: bool = True
    # replay
    speed: float = Field(default=0.0, ge=0)          # recorded pace times X; 0 = as fast as possible
    rate: float = Field(default=0.0, ge=0)           # packets per second
    retime: bool = False
    loop: int = Field(default=1, ge=0)               # 0 = until stopped
    # stop after
    count: int = Field(default=0, ge=0)
    duration: float = Field(default=0.0, ge=0)
    # output
    dry_run: bool = False
    l7: bool = True
    # tunnels left in their carrier (collectors/decode/tunnels.py KINDS), and VXLAN's UDP ports
    decap_off: list[str] = Field(default_factory=list)
    vxlan_ports: list[int] = Field(default_factory=lambda: [P.VXLAN_PORT])
    kafka: str = LOCAL_KAFKA
    topic: str = PACKETS_TOPIC
    partitions: int = Field(default=0, ge=0)         # create the topic with this many if missing
    connect_timeout: float = Field(default=15.0, gt=0)
    # a message the broker has not acknowledged this long after it was produced fails (counted);
    # librdkafka retries until then
    delivery_timeout_s: float = Field(default=300.0, gt=0)
    flush_timeout: float = Field(default=60.0, ge=0)
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=0, ge=0, le=65535)    # Prometheus /metrics; 0 = none
    metrics_hold_s: float = Field(default=0.0, ge=0)        # keep serving them this long after the end

    @model_validator(mode="after")
    def _one_source(self):
        if bool(self.pcap) == bool(self.interface):
            raise ValueError("give one of pcap (a capture file) or interface (live capture)")
        self.decap()            # unknown tunnel kinds, ports out of range: one line naming the fix
        return self

    def decap(self):
        from collectors.decode.tunnels import Decap
        return Decap(off=frozenset(self.decap_off), vxlan_ports=tuple(self.vxlan_ports))


class CollectorError(Exception):
    """The collector cannot start: one line that names the fix."""


@dataclass
class DecodedTotals:
    frames: int = 0
    ip_packets: int = 0
    ip_bytes: int = 0          # IP total length, the flow byte convention

    def add(self, batch) -> None:
        ok = batch.status == STATUS_OK
        ip_packets, ip_bytes = int(np.count_nonzero(ok)), int(batch.ip_len[ok].sum(dtype=np.int64))
        self.frames += len(batch)
        self.ip_packets += ip_packets
        self.ip_bytes += ip_bytes
        if len(batch) > ip_packets:
            for status, n in enumerate(np.bincount(batch.status)):
                if n and status != STATUS_OK:
                    M.inc("netspectra_collector_decoded_packets_total", int(n), status=STATUS_NAMES[status])
        M.inc("netspectra_collector_decoded_packets_total", ip_packets, status=STATUS_NAMES[STATUS_OK])
        M.inc("netspectra_collector_ip_bytes_total", ip_bytes)


# capture and publish statistics -> counters (collectors/live.py LiveStats, capture_file.py
# ReaderStats, publish.py PublishStats)
CAPTURE_COUNTERS = {"packets": "netspectra_collector_packets_captured_total",
                    "bytes_captured": "netspectra_collector_bytes_captured_total",
                    "kernel_drops": "netspectra_collector_kernel_drops_total",
                    "iface_drops": "netspectra_collector_interface_drops_total"}
PUBLISH_COUNTERS = {"messages": "netspectra_collector_published_messages_total",
                    "packets": "netspectra_collector_published_packets_total",
                    "bytes": "netspectra_collector_published_bytes_total",
                    "delivered_messages": "netspectra_collector_delivered_messages_total",
                    "failed_messages": "netspectra_collector_delivery_failures_total"}


class StopFlag:
    """True after stop(), `duration` or `count`."""

    def __init__(self, duration: float = 0.0, count: int = 0):
        self.stopped = False
        self.duration, self.deadline = duration, None
        self.count, self.seen = count, 0

    def arm(self) -> None:
        """Start the `duration` clock."""
        self.deadline = time.monotonic() + self.duration if self.duration else None

    @property
    def drain(self) -> bool:
        """Whether a live capture hands over what the kernel already took when stopping: yes on a
        stop or `duration` (those packets arrived in time), no at `count` (it has them all)."""
        return not (self.count > 0 and self.seen >= self.count)

    def __call__(self) -> bool:
        return (self.stopped or (self.deadline is not None and time.monotonic() >= self.deadline)
                or (self.count > 0 and self.seen >= self.count))


class Collector:
    def __init__(self, cfg: CollectorConfig):
        self.cfg = cfg
        self.pub = None
        self.flag: StopFlag | None = None
        self.totals = DecodedTotals()
        self._source = None
        self.pacer = None
        self.metrics_port = 0
        self._counted: dict[str, int] = {}      # counter -> value it was last synced at

    def start(self) -> None:
        from collectors.publish import KafkaPublisher, ensure_topic
        c = self.cfg
        if c.metrics_port:
            self.metrics_port = M.serve("collect", c.metrics_host, c.metrics_port)
        if c.pcap:          # a missing or foreign file fails at once, before the broker is tried
            from collectors.capture_file import CaptureFormatError, sniff_format
            try:
                sniff_format(c.pcap)
            except (CaptureFormatError, OSError) as e:
                raise CollectorError(str(e)) from None
        if not c.dry_run:
            problem = kafka_problem(c.kafka, min(c.connect_timeout, PROBE_TIMEOUT_S))
            if problem:
                raise CollectorError(problem)
            try:
                if c.partitions:
                    ensure_topic(c.kafka, c.topic, c.partitions, c.connect_timeout)
                self.pub = KafkaPublisher(c.kafka, c.topic, timeout=c.connect_timeout,
                                          producer_conf={"message.timeout.ms": int(c.delivery_timeout_s * 1000)})
            except Exception as e:      # broker unreachable, topic missing: a clean message, not a trace
                raise CollectorError(str(e)) from None
        if c.interface:     # compiled before the ring fills and the clock runs
            from collectors.decode.decoder import warm_up
            warm_up(c.l7)
        self.flag = StopFlag(c.duration, c.count)
        self._source = self._open_source()
        self.flag.arm()         # --duration counts from here: capturing, not compiling or opening

    def stop(self) -> None:
        if self.flag is not None:
            self.flag.stopped = True

    def _open_source(self):
        """(batches, stats object with as_dict, closer) for the capture file or interface."""
        c, stop = self.cfg, self.flag
        if c.pcap:
            from collectors.capture_file import CaptureFile, CaptureFormatError
            from collectors.replay import Pacer
            try:
                cap = CaptureFile(c.pcap)
            except (CaptureFormatError, OSError) as e:
                raise CollectorError(str(e)) from None
            self.pacer = Pacer(speed=c.speed, rate=c.rate, retime=c.retime)
            return self.pacer.pace(_loop(cap, c.loop), stop), cap.stats, lambda: None
        from collectors.live import CaptureError, open_live
        try:
            live = open_live(c.method, c.interface, bpf=c.bpf, snaplen=c.snaplen, buffer_mb=c.buffer_mb,
                             promisc=c.promisc, fanout=c.fanout)
        except CaptureError as e:
            raise CollectorError(str(e)) from None
        return live.batches(stop), live.stats, live.close

    def run(self) -> dict:
        """Capture, decode and publish until the source ends or the collector is stopped; then
        flush Kafka and return the report."""
        from collectors.decode.decoder import Decoder
        c, stop = self.cfg, self.flag
        batches, capture_stats, close = self._source
        dec, totals, pub = Decoder(l7=c.l7, decap=c.decap()), self.totals, self.pub
        t, cpu = time.perf_counter(), time.process_time()
        for raw in batches:
            if c.count:     # stop exactly at `count`
                raw = raw if stop.seen + len(raw) <= c.count else _head(raw, c.count - stop.seen)
                stop.seen += len(raw)
            batch = dec.decode(raw)
            totals.add(batch)
            if pub is not None:
                pub.publish(batch)
            self._sync_metrics(capture_stats)
        close()
        pending = pub.flush(c.flush_timeout) if pub is not None else 0
        secs, cpu = time.perf_counter() - t, time.process_time() - cpu
        self._sync_metrics(capture_stats)
        return {"source": c.pcap or c.interface, "topic": None if pub is None else c.topic,
                "partitions": None if pub is None else pub.partitions, "seconds": round(secs, 3),
                "cpu_seconds": round(cpu, 3), "capture": capture_stats.as_dict(),
                # a replay reads ahead: stopped by --duration or --count, it read more than it sent
                **({"replayed": self.pacer.sent} if self.pacer is not None else {}), "decoded": asdict(totals),
                "published": None if pub is None else pub.stats.as_dict(), "pending": pending}

    def hold_metrics(self) -> None:
        """Keep serving the final counts for `metrics_hold_s` (or until stop()): a capture file
        ends sooner than Prometheus's next scrape."""
        deadline = time.monotonic() + self.cfg.metrics_hold_s
        while self.metrics_port and time.monotonic() < deadline and not self.flag.stopped:
            time.sleep(0.1)

    def _sync_metrics(self, capture_stats) -> None:
        """Counters up to the statistics (what grew since the last sync): once per batch."""
        values = {m: getattr(capture_stats, f, 0) for f, m in CAPTURE_COUNTERS.items()}
        if self.pub is not None:
            values.update({m: getattr(self.pub.stats, f) for f, m in PUBLISH_COUNTERS.items()})
        for name, v in values.items():
            M.inc(name, v - self._counted.get(name, 0))
            self._counted[name] = v

    @property
    def delivered_all(self) -> bool:
        return self.pub is None or self.pub.stats.failed_messages == 0


def _loop(cap, times: int):
    """The capture's batches, `times` times over (0 = forever); the reader counts every pass."""
    from collectors.capture_file import CaptureFile
    n = 0
    while times == 0 or n < times:
        yield from cap.batches() if n == 0 else CaptureFile(cap.path, stats=cap.stats).batches()
        n += 1


def _head(raw, n: int):
    from collectors.replay import take
    return take(raw, slice(0, n))
