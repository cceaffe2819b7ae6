"""`netspectra collect`: capture (live or from a file), decode, publish to Kafka partitioned by flow.

    netspectra collect --interface eth0 [--method pcap|afpacket] [--bpf EXPR] [--fanout G]
    netspectra collect --pcap FILE [--speed X | --rate PPS] [--retime]

Runs until the capture ends, `--count`/`--duration` is reached, or SIGINT/SIGTERM; then
flushes Kafka and prints a JSON report (stderr): packets captured, dropped by the kernel,
decoded, published, delivered and failed. `--dry-run` captures and decodes without Kafka
(checking a capture host, or the live-capture tests).
"""
from __future__ import annotations

import json
import signal
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np

from schemas.packet_batch import STATUS_OK


@dataclass
class DecodedTotals:
    frames: int = 0
    ip_packets: int = 0
    ip_bytes: int = 0          # IP total length, the flow byte convention

    def add(self, batch) -> None:
        ok = batch.status == STATUS_OK
        self.frames += len(batch)
        self.ip_packets += int(np.count_nonzero(ok))
        self.ip_bytes += int(batch.ip_len[ok].sum(dtype=np.int64))


def ensure_topic(bootstrap: str, topic: str, partitions: int, timeout: float = 15.0) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap})
    if topic in admin.list_topics(timeout=timeout).topics:
        return
    for f in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        try:
            f.result(timeout)
        except Exception as e:   # created meanwhile by another collector
            if "TOPIC_ALREADY_EXISTS" not in str(e):
                raise


class StopFlag:
    """True after SIGINT/SIGTERM, `--duration` or `--count`."""

    def __init__(self, duration: float = 0.0, count: int = 0):
        self.signalled = False
        self.deadline = time.monotonic() + duration if duration else None
        self.count, self.seen = count, 0
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, self._on_signal)

    def _on_signal(self, *_):
        self.signalled = True

    @property
    def drain(self) -> bool:
        """Whether a live capture hands over what the kernel already took when stopping: yes on a
        signal or --duration (those packets arrived in time), no at --count (it has them all)."""
        return not (self.count > 0 and self.seen >= self.count)

    def __call__(self) -> bool:
        return (self.signalled or (self.deadline is not None and time.monotonic() >= self.deadline)
                or (self.count > 0 and self.seen >= self.count))


def _source(args, stop):
    """(batches, stats object with as_dict, closer) for --pcap or --interface; None on error."""
    if args.pcap:
        from collectors.replay import Pacer
        from netspectra.cli import open_capture
        cap = open_capture(args.pcap, "collect")
        if cap is None:
            return None
        pacer = Pacer(speed=args.speed, rate=args.rate, retime=args.retime)
        return pacer.pace(_loop(cap, args.loop), stop), cap.stats, lambda: None
    from collectors.live import CaptureError, open_live
    try:
        live = open_live(args.method, args.interface, bpf=args.bpf, snaplen=args.snaplen, buffer_mb=args.buffer_mb,
                         promisc=not args.no_promisc, fanout=args.fanout)
    except CaptureError as e:
        print(f"netspectra collect: {e}", file=sys.stderr)
        return None
    print(f"netspectra collect: capturing on {args.interface} ({args.method})", file=sys.stderr, flush=True)
    return live.batches(stop), live.stats, live.close


def cmd_collect(args) -> int:
    from collectors.decode.decoder import Decoder
    from collectors.publish import KafkaPublisher

    if bool(args.pcap) == bool(args.interface):
        print("netspectra collect: give one of --pcap FILE or --interface IF", file=sys.stderr)
        return 2
    pub = None
    if not args.dry_run:
        try:
            if args.partitions:
                ensure_topic(args.kafka, args.topic, args.partitions, args.connect_timeout)
            pub = KafkaPublisher(args.kafka, args.topic, timeout=args.connect_timeout)
        except Exception as e:      # broker unreachable, topic missing: a clean message, not a trace
            print(f"netspectra collect: {e}", file=sys.stderr)
            return 1
    stop = StopFlag(args.duration, args.count)
    src = _source(args, stop)
    if src is None:
        return 1
    batches, capture_stats, close = src
    dec, totals = Decoder(l7=not args.no_l7), DecodedTotals()
    t, cpu = time.perf_counter(), time.process_time()
    for raw in batches:
        if args.count:     # stop exactly at --count
            raw = raw if stop.seen + len(raw) <= args.count else _head(raw, args.count - stop.seen)
            stop.seen += len(raw)
        batch = dec.decode(raw)
        totals.add(batch)
        if pub is not None:
            pub.publish(batch)
    close()
    pending = pub.flush(args.flush_timeout) if pub is not None else 0
    secs, cpu = time.perf_counter() - t, time.process_time() - cpu
    report = {"source": args.pcap or args.interface, "topic": None if pub is None else args.topic,
              "partitions": None if pub is None else pub.partitions, "seconds": round(secs, 3),
              "cpu_seconds": round(cpu, 3), "capture": capture_stats.as_dict(), "decoded": asdict(totals),
              "published": None if pub is None else pub.stats.as_dict(), "pending": pending}
    print(json.dumps(report), file=sys.stderr, flush=True)
    return 0 if pub is None or (pending == 0 and pub.stats.failed_messages == 0) else 3


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
