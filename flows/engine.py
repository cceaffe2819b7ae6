"""The live engine: the same window pipeline as `analyze`, fed from Kafka.

    python -m bytewax.run "flows.engine:kafka_flow('127.0.0.1:19092', 'netspectra.packets', store='out/store')" -w 2

Each Kafka partition is a Bytewax input partition (flows/kafka_source.py: partitions assigned
directly, offsets in the recovery snapshots, progress reports that let windows close when
traffic stops). A message that is not a packet batch (foreign producer, corrupt bytes, a newer
wire version) and a consumer error are counted, logged once per kind and copied to a dead-letter
topic with the reason in an `error` header; the engine keeps going. With `tail=False` the flow
stops at the end of the topic, which the tests and replays use.
"""
from __future__ import annotations

import collections
import logging
from typing import Optional

import bytewax.operators as op
from bytewax.connectors.kafka import KafkaError, KafkaSink, KafkaSinkMessage
from bytewax.dataflow import Dataflow

from flows.config import WindowConfig
from flows.defaults import LIVE_GRACE_S
from flows.dataflow import window_config, window_pipeline
from flows.sketches import SketchConfig
from flows.window import Progress
from schemas.packet_batch import PacketBatch, WireFormatError

log = logging.getLogger(__name__)

# Rejected input by kind ("bad_message", or a librdkafka error name), in this process.
REJECTED: collections.Counter = collections.Counter()


def _reject(kind: str, msg, reason: str, topic: str) -> KafkaSinkMessage:
    REJECTED[kind] += 1
    if REJECTED[kind] == 1:
        log.warning("%s at %s[%s]@%s: %s (logged once per kind; all go to the dead-letter topic)",
                    kind, msg.topic, msg.partition, msg.offset, reason)
    headers = [("source_topic", topic.encode()), ("source_partition", str(msg.partition).encode()),
               ("source_offset", str(msg.offset).encode()), ("error", reason.encode()[:1000])]
    return KafkaSinkMessage(key=msg.key, value=msg.value or b"", headers=headers)


def parse(item, topic: str = "") -> tuple[object, Optional[KafkaSinkMessage]]:
    """(pipeline item, None) for a packet batch ((partition, batch)) or a progress report;
    (None, dead letter) for anything else. Never raises."""
    if isinstance(item, Progress):
        return item, None
    if isinstance(item, KafkaError):
        return None, _reject(item.err.name(), item.msg, str(item.err), topic)
    try:
        if item.value is None:
            raise WireFormatError("empty message")
        return (item.partition, PacketBatch.from_bytes(item.value)), None
    except (WireFormatError, ValueError, TypeError) as e:
        return None, _reject("bad_message", item, str(e), topic)


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
               idle_s: float = WindowConfig.idle_s, grace_s: float = LIVE_GRACE_S, shards: int = 4,
               top_n: int = 100, hll_lg_k: int = SketchConfig.hll_lg_k,
               hh_lg_max_map: int = SketchConfig.hh_lg_max_map, source_name: str = "kafka",
               max_flows: int = WindowConfig.max_flows, rules_file: Optional[str] = None,
               alert_webhook: Optional[str] = None, alertmanager: Optional[str] = None,
               alert_state_dir: Optional[str] = None, detect: bool = True) -> Dataflow:
    """The engine's flow. Detection runs on every window unless `detect` is False; alerts go to
    the same stores as windows and to the notifiers of the rules file and flags."""
    from flows.kafka_source import PacketSource
    from flows.rules import load_rules
    from sinks.bytewax_sinks import ClickHouseSink, NotifySink, RedisSink, StoreSink

    cfg = window_config(window_s, lateness_s, shards, top_n, hll_lg_k, hh_lg_max_map,
                        inputs=topic_partitions(brokers, topic), idle_s=idle_s, grace_s=grace_s, max_flows=max_flows)
    flow = Dataflow("netspectra_engine")
    items = op.input("kafka", flow, PacketSource(brokers, topic, tail=tail))
    good, bad = split_input(items, topic)
    if dead_letter_topic:
        op.output("dead_letter_out", bad, KafkaSink(brokers.split(","), dead_letter_topic))
    sinks = [StoreSink(store, source_name, cfg)] if store else []
    if clickhouse:
        sinks.append(ClickHouseSink(clickhouse, source_name, cfg))
    if redis:
        sinks.append(RedisSink(redis, source_name, cfg))
    rules = load_rules(rules_file) if detect else None
    notify = None
    if rules is not None:
        notifiers = dict(rules.notifiers)
        if alert_webhook:
            notifiers["webhook"] = {**notifiers.get("webhook", {}), "url": alert_webhook}
        if alertmanager:
            notifiers["alertmanager"] = {**notifiers.get("alertmanager", {}), "url": alertmanager}
        if notifiers:
            notify = NotifySink(notifiers, source_name, alert_state_dir)
    window_pipeline(good, cfg, sinks, rules, notify)
    return flow


def split_input(items, topic: str):
    """The source's items as (pipeline stream, dead-letter stream)."""
    parsed = op.map("parse", items, lambda it: parse(it, topic))
    return op.filter_map("batches", parsed, lambda r: r[0]), op.filter_map("bad_messages", parsed, lambda r: r[1])
