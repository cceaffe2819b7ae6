"""A Bytewax source over one Kafka topic that also says how far each partition has been read.

Each Kafka partition is a Bytewax input partition with its own consumer, assigned directly (no
consumer group; the offsets live in Bytewax's recovery snapshots), like Bytewax's KafkaSource.
It emits that source's item types, `KafkaSourceMessage` and `KafkaError`, and, while a partition
delivers nothing, a `flows.window.Progress` report every `PROGRESS_EVERY_S`:

- `caught_up` is a fact from the broker, not a guess from silence: the partition's high
  watermark from the latest fetch response is at our read position, and that response is fresh
  (librdkafka's statistics: the partition leader's connection is UP and received something within
  `FRESH_S`; consumers long-poll, so a connected idle consumer hears from the broker every
  `fetch.wait.max.ms`). A cut connection, a broker that is down, or a consumer still catching up
  after a restart is never caught up. (ListOffsets would be the obvious question to ask, but the
  local test broker, Tansu, answers it wrongly; the fetch response's high watermark is right.)
- `quiet_s` is how long the partition has delivered no message.

Read-ahead is bounded (`ReadAlignment`): a partition more than `READ_AHEAD_S` (broker timestamps)
past the slowest partition of this process still reading waits for it. Windows close on the
slowest input, so reading further ahead buys nothing but open windows: when one worker stalls (a
sink waiting for ClickHouse, a roll-up), the others would otherwise keep reading and hold every
packet since in memory. The broker is the buffer; the engine holds a bounded span of time. Each
consumer's prefetch is bounded too (`queued.max.messages.kbytes`).

A message the collector sent twice (a retry after a lost acknowledgement: same producer id and
sequence number in its headers, collectors/publish.py) is dropped here and counted; the recent
sequence numbers of each producer are part of the partition's recovery state, with its offset.
"""
from __future__ import annotations

import collections
import json
import logging
import struct
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Optional

from bytewax.connectors.kafka import KafkaError, KafkaSourceMessage
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import OFFSET_BEGINNING, TIMESTAMP_NOT_AVAILABLE, Consumer, TopicPartition
from confluent_kafka import KafkaError as ConfluentError

from collectors.publish import PRODUCER_HEADER, SEQUENCE_HEADER
from flows.window import Progress
from schemas import metrics as M
from schemas.kafka_logging import with_logger

log = logging.getLogger(__name__)

BATCH_MESSAGES = 256          # messages per poll (each holds up to 16k packets)
PROGRESS_EVERY_S = 0.25       # progress reports per quiet partition
FRESH_S = 2.0                 # a fetch response older than this says nothing about now
STATS_INTERVAL_MS = 250       # librdkafka statistics: where the freshness comes from
POLL_PAUSE_S = 0.005          # pause after an empty poll (Bytewax would call again at once)
WAIT_PAUSE_S = 0.02           # pause between two looks while a partition waits for slower ones
READ_AHEAD_S = 5.0            # how far a partition may read past the slowest of this process
# A fetch may return a partition's 16 MB (a message holds up to 16k packets); the prefetch queue
# of each consumer (one per partition) holds about that much, not librdkafka's default 64 MB.
CONSUMER_CONFIG = {"max.partition.fetch.bytes": "16000000", "queued.max.messages.kbytes": "16384"}
DEDUP_WINDOW = 4096           # sequence numbers remembered per producer (a retry comes back far sooner)
DEDUP_PRODUCERS = 64          # producers remembered per partition (each collector run is a new one)
DUPLICATES: collections.Counter = collections.Counter()     # partition -> messages dropped as repeats


class Dedup:
    """Which (producer, sequence) pairs a partition has delivered recently."""

    def __init__(self, state: dict | None = None):
        self.seen: collections.OrderedDict[bytes, set] = collections.OrderedDict(state or {})

    def repeat(self, headers) -> bool:
        """True for a message already delivered; records the others. Messages without the
        headers (other producers) always pass."""
        h = dict(headers or ())
        pid, raw = h.get(PRODUCER_HEADER), h.get(SEQUENCE_HEADER)
        if pid is None or raw is None or len(raw) != 8:
            return False
        seq = struct.unpack(">Q", raw)[0]
        seqs = self.seen.pop(pid, None) or set()
        self.seen[pid] = seqs                        # most recently used last
        if seq in seqs:
            return True
        seqs.add(seq)
        if len(seqs) > 2 * DEDUP_WINDOW:             # keep the newest DEDUP_WINDOW
            keep = sorted(seqs)[-DEDUP_WINDOW:]
            seqs.clear()
            seqs.update(keep)
        while len(self.seen) > DEDUP_PRODUCERS:
            self.seen.popitem(last=False)
        return False

    def state(self) -> dict:
        return {pid: set(seqs) for pid, seqs in self.seen.items()}


class ReadAlignment:
    """The partitions of one topic read in this process and the newest broker timestamp each has
    delivered. A partition more than `ahead_ms` past the oldest of the others still reading (not
    at the end of their log) waits. The slowest never waits, so reading always goes on; a
    partition at the end of its log holds nobody back."""

    def __init__(self, ahead_ms: int):
        self.ahead_ms = ahead_ms
        self.lock = threading.Lock()              # the workers of the process read it at once
        self.newest: dict[int, int] = {}          # partition -> newest timestamp delivered (ms)
        self.ended: dict[int, bool] = {}          # partition -> at the end of its log

    def update(self, part: int, newest_ms: Optional[int], at_end: bool) -> None:
        with self.lock:
            if newest_ms is not None:
                self.newest[part] = max(self.newest.get(part, newest_ms), newest_ms)
            self.ended[part] = at_end

    def waits(self, part: int) -> bool:
        with self.lock:
            mine = self.newest.get(part)
            if mine is None:
                return False
            others = [t for p, t in self.newest.items() if p != part and not self.ended.get(p, False)]
        return bool(others) and mine - min(others) > self.ahead_ms

    def drop(self, part: int) -> None:
        with self.lock:
            self.newest.pop(part, None)
            self.ended.pop(part, None)


class PacketSource(FixedPartitionedSource):
    def __init__(self, brokers: str, topic: str, tail: bool = True, add_config: Optional[dict] = None,
                 read_ahead_s: float = READ_AHEAD_S):
        self.brokers, self.topic, self.tail = brokers, topic, tail
        self.add_config = {**CONSUMER_CONFIG, **(add_config or {})}
        self.align = ReadAlignment(int(read_ahead_s * 1000))     # shared by this process's workers

    def list_parts(self) -> list[str]:
        from flows.engine import topic_partitions
        return [str(p) for p in range(topic_partitions(self.brokers, self.topic))]

    def build_part(self, step_id: str, for_part: str, resume_state: Optional[tuple]):
        offset, seen = resume_state if resume_state is not None else (OFFSET_BEGINNING, None)
        self.align.drop(int(for_part))         # what a run that failed left of it
        return _Partition(self, int(for_part), offset, Dedup(seen), self.align)


class _Partition(StatefulSourcePartition):
    def __init__(self, src: PacketSource, part: int, offset: int, dedup: Dedup, align: ReadAlignment):
        self.topic, self.part, self.tail = src.topic, part, src.tail
        self.align = align
        self.waiting = False
        self.offset = offset                  # next offset to read: the resume state, with dedup's
        self.dedup = dedup
        self.quiet_since = time.monotonic()
        self.next_report = 0.0
        self.fact: Optional[tuple[float, int, bool]] = None     # (when, high watermark, leader connected)
        self.at_end = False
        self.awake: Optional[datetime] = None
        self.consumer = Consumer(with_logger({
            "bootstrap.servers": src.brokers, "group.id": "netspectra-engine", "enable.auto.commit": "false",
            "enable.partition.eof": "true", "statistics.interval.ms": STATS_INTERVAL_MS,
            "stats_cb": self._stats, **src.add_config}))
        self.consumer.assign([TopicPartition(self.topic, part, offset)])
        self.lock = threading.Lock()          # the lag watch's calls against close()
        self.closed = False
        M.touch("netspectra_engine_duplicate_messages_total", partition=str(part))
        M.touch("netspectra_engine_read_ahead_waiting", partition=str(part))
        if M.enabled():
            LAG_WATCH.add(self)

    def _stats(self, raw: str) -> None:
        """Keep the latest fetch-response fact for this partition (librdkafka statistics)."""
        try:
            st = json.loads(raw)
            p = st["topics"][self.topic]["partitions"][str(self.part)]
            leader = next((b for b in st["brokers"].values() if b.get("nodeid") == p.get("leader")), None)
            connected = (leader is not None and leader.get("state") == "UP"
                         and 0 <= leader.get("rxidle", -1) <= FRESH_S * 1e6)
            self.fact = (time.monotonic(), int(p.get("hi_offset", -1)), connected)
        except (KeyError, ValueError, TypeError):
            self.fact = None          # not this partition yet (before its first fetch)

    def caught_up(self, now: float) -> bool:
        if self.fact is None or self.offset < 0:
            return False
        when, high, connected = self.fact
        return connected and now - when <= FRESH_S and 0 <= high <= self.offset

    def next_batch(self) -> list:
        if self.at_end and not self.tail:
            raise StopIteration
        if self._wait():
            return []
        msgs = self.consumer.consume(BATCH_MESSAGES, 0)
        now = time.monotonic()
        out: list = []
        read = read_bytes = 0
        newest = None
        for m in msgs:
            err = m.error()
            if err is not None and err.code() == ConfluentError._PARTITION_EOF:
                self.offset = max(self.offset, m.offset())
                self.at_end = True
                continue
            wrapped = KafkaSourceMessage(key=m.key(), value=m.value(), topic=m.topic(), headers=m.headers() or [],
                                         latency=m.latency(), offset=m.offset(), partition=self.part,
                                         timestamp=m.timestamp())
            if err is not None:
                out.append(KafkaError(err, wrapped))
                continue
            self.offset = m.offset() + 1
            read += 1
            read_bytes += len(wrapped.value or b"")
            if self.dedup.repeat(wrapped.headers):
                DUPLICATES[self.part] += 1
                M.inc("netspectra_engine_duplicate_messages_total", partition=str(self.part))
                if DUPLICATES[self.part] == 1:
                    log.warning("%s[%d]@%d: a message delivered twice (producer retry), dropped; counted from now",
                                self.topic, self.part, m.offset())
                continue
            out.append(wrapped)
            self.quiet_since = now
            self.at_end = False
            kind, ts = m.timestamp()
            if kind != TIMESTAMP_NOT_AVAILABLE:
                newest = ts if newest is None else max(newest, ts)
        self.align.update(self.part, newest, self.at_end)
        if read:
            M.inc("netspectra_engine_messages_total", read, partition=str(self.part))
            M.inc("netspectra_engine_message_bytes_total", read_bytes, partition=str(self.part))
        if not out and now >= self.next_report:
            self.next_report = now + PROGRESS_EVERY_S
            out.append(Progress(self.part, self.caught_up(now), now - self.quiet_since))
        self.awake = None if msgs else datetime.now(timezone.utc) + timedelta(seconds=POLL_PAUSE_S)
        return out

    def _wait(self) -> bool:
        """Whether this partition is too far ahead of the slowest of the process (ReadAlignment):
        it reads nothing and reports no progress until the others catch up."""
        waits = self.align.waits(self.part)
        if waits != self.waiting:
            self.waiting = waits
            M.set("netspectra_engine_read_ahead_waiting", int(waits), partition=str(self.part))
        if waits:
            self.awake = datetime.now(timezone.utc) + timedelta(seconds=WAIT_PAUSE_S)
        return waits

    def next_awake(self) -> Optional[datetime]:
        return self.awake

    def snapshot(self) -> tuple:
        return self.offset, self.dedup.state()

    def lag(self) -> Optional[int]:
        """Messages between the read position and the high watermark of the latest fetch
        response (librdkafka's, kept by its own threads); None before the first fetch."""
        with self.lock:
            if self.closed or self.offset < 0:
                return None
            _, high = self.consumer.get_watermark_offsets(TopicPartition(self.topic, self.part), cached=True)
        return max(0, high - self.offset) if high >= 0 else None

    def close(self) -> None:
        LAG_WATCH.remove(self)
        self.align.drop(self.part)
        with self.lock:
            self.closed = True
            self.consumer.close()


class LagWatch:
    """Sets the consumer-lag gauge of each partition of this process every STATS_INTERVAL_MS, from
    a thread of its own: the dataflow's thread stops reading while a sink retries (ClickHouse
    away), and a lag it measured would stand still exactly while it grows. librdkafka's fetchers
    keep fetching meanwhile, until their queue is full (queued.max.messages.kbytes): beyond that
    the watermark, and so the lag shown, stops growing."""

    def __init__(self):
        self.parts: dict[int, _Partition] = {}
        self.lock = threading.Lock()
        self.thread: Optional[threading.Thread] = None

    def add(self, part: "_Partition") -> None:
        with self.lock:
            self.parts[id(part)] = part
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, daemon=True, name="consumer-lag")
                self.thread.start()

    def remove(self, part: "_Partition") -> None:
        with self.lock:
            self.parts.pop(id(part), None)

    def _run(self) -> None:
        while True:
            time.sleep(STATS_INTERVAL_MS / 1000)
            with self.lock:
                parts = list(self.parts.values())
            for p in parts:
                try:
                    lag = p.lag()
                except Exception:          # the consumer failing: its partition reports the error
                    continue
                if lag is not None:
                    M.set("netspectra_engine_consumer_lag_messages", lag, partition=str(p.part))


LAG_WATCH = LagWatch()
