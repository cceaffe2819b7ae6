"""The live engine: the same window pipeline as `analyze`, fed from Kafka.

    python -m bytewax.run "flows.engine:kafka_flow('127.0.0.1:19092', 'netspectra.packets', store='out/store')" -w 2

Each Kafka partition is a Bytewax input partition (Bytewax's KafkaSource assigns partitions
itself, no consumer group). A message that is not a packet batch (foreign producer, corrupt
bytes, a newer wire version) is logged and copied to a dead-letter topic, never raised.
With `tail=False` the flow stops at the end of the topic, which the tests and replays use.
"""
from __future__ import annotations

import logging
from typing import Optional

import bytewax.operators as op
from bytewax.connectors.kafka import KafkaSink, KafkaSinkMessage, KafkaSource
from bytewax.dataflow import Dataflow

from flows.config import WindowConfig
from flows.dataflow import window_config, window_pipeline
from flows.sketches import SketchConfig
from schemas.packet_batch import PacketBatch, WireFormatError

log = logging.getLogger(__name__)

CONSUMER_CONFIG = {"max.partition.fetch.bytes": "16000000"}


def parse(msg) -> tuple[Optional[tuple[int, PacketBatch]], object]:
    """((partition, batch), None) for a packet batch; (None, msg) for anything else."""
    try:
        if msg.value is None:
            raise WireFormatError("empty message")
        return (msg.partition, PacketBatch.from_bytes(msg.value)), None
    except (WireFormatError, ValueError, TypeError) as e:
        log.warning("bad message at %s[%s]@%s: %s", msg.topic, msg.partition, msg.offset, e)
        return None, msg


def topic_partitions(brokers: str, topic: str, timeout: float = 30.0) -> int:
    """Partitions of the topic: the inputs whose watermarks every shard waits for."""
    from confluent_kafka.admin import AdminClient
    meta = AdminClient({"bootstrap.servers": brokers}).list_topics(topic, timeout=timeout)
    t = meta.topics.get(topic)
    if t is None or t.error is not None or not t.partitions:
        raise RuntimeError(f"topic {topic!r} not available on {brokers}: {t.error if t else 'missing'}")
    return len(t.partitions)


def kafka_flow(brokers: str, topic: str, store: Optional[str] = None, redis: Optional[str] = None,
               clickhouse: Optional[str] = None,
               dead_letter_topic: Optional[str] = None,
               tail: bool = True, window_s: float = 60.0, lateness_s: float = 5.0,
               idle_s: float = WindowConfig.idle_s, shards: int = 4,
               top_n: int = 100, hll_lg_k: int = SketchConfig.hll_lg_k,
               hh_lg_max_map: int = SketchConfig.hh_lg_max_map, source_name: str = "kafka") -> Dataflow:
    from sinks.bytewax_sinks import ClickHouseSink, RedisSink, StoreSink

    cfg = window_config(window_s, lateness_s, shards, top_n, hll_lg_k, hh_lg_max_map,
                        inputs=topic_partitions(brokers, topic), idle_s=idle_s)
    flow = Dataflow("netspectra_engine")
    msgs = op.input("kafka", flow, KafkaSource(brokers.split(","), [topic], tail=tail, add_config=CONSUMER_CONFIG,
                                               raise_on_errors=False))
    parsed = op.map("parse", msgs, parse)
    good = op.filter_map("batches", parsed, lambda r: r[0])
    bad = op.filter_map("bad_messages", parsed, lambda r: r[1])
    if dead_letter_topic:
        dead = op.map("dead_letter", bad, lambda m: KafkaSinkMessage(key=m.key, value=m.value or b"",
                                                                       headers=[("source_topic", topic.encode())]))
        op.output("dead_letter_out", dead, KafkaSink(brokers.split(","), dead_letter_topic))
    sinks = [StoreSink(store, source_name, cfg)] if store else []
    if clickhouse:
        sinks.append(ClickHouseSink(clickhouse, source_name, cfg))
    if redis:
        sinks.append(RedisSink(redis, source_name, cfg))
    window_pipeline(good, cfg, sinks)
    return flow
