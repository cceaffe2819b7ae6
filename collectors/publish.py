"""Publishing packet batches to Kafka, partitioned by flow hash.

One message holds the packets of one decoded batch that belong to one partition, in the
versioned columnar wire format of schemas/packet_batch.py (Arrow IPC, zstd inside, so Kafka
compression is off). A flow always lands in the same partition: the partition is
`shard_of(flow_hash(5-tuple), partitions)`, the function the dataflow shards its state with.
librdkafka retries failed sends itself; what still fails is counted, never raised.

A retried send whose first attempt did reach the broker (its answer was lost, e.g. in a network
cut) is a second copy of the message in the topic. Every message therefore carries this
process's producer id and a per-partition sequence number in its headers (PRODUCER_HEADER,
SEQUENCE_HEADER); the engine drops a message it has already seen (flows/kafka_source.py), so the
result stays exact on any broker.
"""
from __future__ import annotations

import logging
import secrets
import struct
from dataclasses import asdict, dataclass

import numpy as np

from schemas.flow_key import addr_words, flow_hash, port_proto, shard_of
from schemas.kafka_logging import with_logger
from schemas.packet_batch import PacketBatch

log = logging.getLogger(__name__)

PRODUCER_HEADER = "ns-producer"      # 8 random bytes per publisher process
SEQUENCE_HEADER = "ns-seq"           # big-endian u64, per partition, from 0


@dataclass
class PublishStats:
    packets: int = 0            # packets handed to Kafka
    messages: int = 0
    bytes: int = 0              # message bytes
    delivered_messages: int = 0
    delivered_packets: int = 0
    failed_messages: int = 0
    failed_packets: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def partition_of(batch: PacketBatch, partitions: int) -> np.ndarray:
    """Kafka partition of every packet (non-IP packets, with zero addresses, share one)."""
    sw, dw = addr_words(batch.src), addr_words(batch.dst)
    return shard_of(flow_hash(sw, dw, port_proto(batch.sport, batch.dport, batch.proto)), partitions)


def split_by_partition(batch: PacketBatch, partitions: int) -> list[tuple[int, PacketBatch]]:
    part = partition_of(batch, partitions)
    order = np.argsort(part, kind="stable")
    bounds = np.searchsorted(part[order], np.arange(partitions + 1))
    return [(p, batch.take(order[bounds[p]:bounds[p + 1]])) for p in range(partitions) if bounds[p + 1] > bounds[p]]


class KafkaPublisher:
    def __init__(self, bootstrap: str, topic: str, producer_conf: dict | None = None, timeout: float = 15.0):
        from confluent_kafka import Producer

        conf = {"bootstrap.servers": bootstrap, "linger.ms": 5, "message.max.bytes": 16_000_000,
                "queue.buffering.max.kbytes": 1_048_576, "message.send.max.retries": 10,
                "retry.backoff.ms": 200, "compression.type": "none"}
        conf.update(producer_conf or {})
        self.topic = topic
        self.producer = Producer(with_logger(conf))
        self.stats = PublishStats()
        meta = self.producer.list_topics(topic, timeout=timeout)
        tmeta = meta.topics.get(topic)
        if tmeta is None or tmeta.error is not None or not tmeta.partitions:
            raise RuntimeError(f"topic {topic!r} not available on {bootstrap}: {tmeta.error if tmeta else 'missing'}")
        self.partitions = len(tmeta.partitions)
        self.producer_id = secrets.token_bytes(8)
        self.sequence = [0] * self.partitions

    def publish(self, batch: PacketBatch) -> None:
        for p, part in split_by_partition(batch, self.partitions):
            value = part.to_bytes()
            n = len(part)
            self._produce(value, p, n)
            self.stats.packets += n
            self.stats.messages += 1
            self.stats.bytes += len(value)
        self.producer.poll(0)

    def _produce(self, value: bytes, partition: int, n: int) -> None:
        def done(err, msg, n=n):
            if err is None:
                self.stats.delivered_messages += 1
                self.stats.delivered_packets += n
            else:
                self.stats.failed_messages += 1
                self.stats.failed_packets += n
                log.warning("delivery to %s[%d] failed: %s", self.topic, partition, err)
        headers = [(PRODUCER_HEADER, self.producer_id), (SEQUENCE_HEADER, struct.pack(">Q", self.sequence[partition]))]
        self.sequence[partition] += 1
        while True:
            try:
                self.producer.produce(self.topic, value, partition=partition, headers=headers, on_delivery=done)
                return
            except BufferError:          # local queue full: let deliveries drain, then retry
                self.producer.poll(0.1)

    def flush(self, timeout: float = 30.0) -> int:
        """Wait for outstanding deliveries; returns how many are still pending."""
        return self.producer.flush(timeout)


def ensure_topic(bootstrap: str, topic: str, partitions: int, timeout: float = 15.0) -> None:
    """Create the topic with `partitions` partitions unless it exists."""
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient(with_logger({"bootstrap.servers": bootstrap}))
    if topic in admin.list_topics(timeout=timeout).topics:
        return
    for f in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        try:
            f.result(timeout)
        except Exception as e:   # created meanwhile by another collector
            if "TOPIC_ALREADY_EXISTS" not in str(e):
                raise
