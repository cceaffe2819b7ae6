"""The live engine: the same window pipeline as `analyze`, fed from Kafka.

    python -m bytewax.run "flows.engine:from_config('engine.yaml')" -w 2

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
from typing import TYPE_CHECKING, Optional

import bytewax.operators as op
from bytewax.connectors.kafka import KafkaError, KafkaSink, KafkaSinkMessage
from bytewax.dataflow import Dataflow

from flows.config import WindowConfig
from flows.dataflow import window_pipeline
from flows.sketches import SketchConfig
from flows.window import Progress
from schemas import metrics as M
from schemas.kafka_logging import with_logger
from schemas.packet_batch import PacketBatch, WireFormatError

if TYPE_CHECKING:
    from flows.engine_config import EngineConfig

log = logging.getLogger(__name__)

# Rejected input by kind ("bad_message", or a librdkafka error name), in this process.
REJECTED: collections.Counter = collections.Counter()


def _reject(kind: str, msg, reason: str, topic: str) -> KafkaSinkMessage:
    REJECTED[kind] += 1
    M.inc("netspectra_engine_dead_letters_total", reason=kind)
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
    """Partitions of the topic: the inputs whose watermarks every shard waits for. Asked for
    among all topics: a request naming a missing topic would make a broker that auto-creates
    topics (Kafka's default, Tansu) create it, and the engine would tail a topic nobody writes."""
    from confluent_kafka.admin import AdminClient
    # log_level 2: the connection errors of a broker that is away are the exception, not 200 lines
    meta = AdminClient(with_logger({"bootstrap.servers": brokers, "log_level": 2})).list_topics(timeout=timeout)
    t = meta.topics.get(topic)
    if t is None or t.error is not None or not t.partitions:
        raise RuntimeError(f"topic {topic!r} not available on {brokers}: {t.error if t else 'missing'}")
    return len(t.partitions)


def from_config(path: Optional[str] = None, settings: Optional[str] = None) -> Dataflow:
    """The engine's flow for `python -m bytewax.run`: from a config file (and the environment,
    schemas/settings.py), or from `settings`, the effective config as JSON. (`netspectra engine`
    runs the same flow in-process: flows/engine_service.py.)"""
    from flows.engine_config import EngineConfig
    from schemas.settings import load_settings
    cfg = EngineConfig.model_validate_json(settings) if settings else load_settings(EngineConfig, "engine", path)
    serve_metrics(cfg)
    return kafka_flow(cfg)


def serve_metrics(cfg: "EngineConfig") -> None:
    """Serve the engine's metrics when the config gives a port, with the series that must exist
    from the start at 0 (so that increase() and rate() see their first events)."""
    if not cfg.metrics_port:
        return
    M.serve("engine", cfg.metrics_host, cfg.metrics_port + (cfg.process_id or 0))   # a cluster on one host: a port each
    for sink in ("chdb" if cfg.store else None, "clickhouse" if cfg.clickhouse else None,
                 "redis" if cfg.redis else None):
        if sink:
            for name in ("netspectra_sink_retries_total", "netspectra_sink_dropped_total"):
                M.touch(name, sink=sink)
    M.touch("netspectra_engine_dead_letters_total", reason="bad_message")
    for complete in ("true", "false"):
        M.touch("netspectra_engine_windows_total", complete=complete)
    if cfg.detect:
        from flows.rules import DETECTORS
        for detector in DETECTORS:
            for change in ("firing", "update", "resolved"):
                M.touch("netspectra_engine_alerts_total", change=change, detector=detector)


def kafka_flow(ec: "EngineConfig") -> Dataflow:
    """The engine's flow. Detection runs on every window unless `detect` is off; alerts go to
    the same stores as windows and to the notifiers of the rules file and config."""
    from flows.kafka_source import PacketSource
    from flows.rules import load_rules
    from schemas.clickhouse import retention_setting
    from sinks.bytewax_sinks import ClickHouseSink, NotifySink, RedisSink, StoreSink

    cfg = WindowConfig(window_s=ec.window, lateness_s=ec.lateness, shards=ec.shards, top_n=ec.top_n,
                       inputs=topic_partitions(ec.kafka, ec.topic), idle_s=ec.idle, grace_s=ec.grace,
                       max_flows=ec.max_flows, sketches=SketchConfig())
    source = ec.source_name
    flow = Dataflow("netspectra_engine")
    items = op.input("kafka", flow, PacketSource(ec.kafka, ec.topic, tail=not ec.stop_at_end))
    good, bad = split_input(items, ec.topic)
    if ec.dead_letter_topic:
        op.output("dead_letter_out", bad, KafkaSink(ec.kafka.split(","), ec.dead_letter_topic, add_config=with_logger({})))
    keep = retention_setting(ec.retention)
    sinks = [StoreSink(ec.store, source, rollups=ec.rollups, retention=keep)] if ec.store else []
    if ec.clickhouse:
        sinks.append(ClickHouseSink(ec.clickhouse, source, rollups=ec.rollups, retention=keep))
    if ec.redis:
        sinks.append(RedisSink(ec.redis, source, max_backlog=ec.redis_backlog))
    rules = load_rules(ec.rules) if ec.detect else None
    notify = None
    if rules is not None:
        notifiers = dict(rules.notifiers)
        if ec.alert_webhook:
            notifiers["webhook"] = {**notifiers.get("webhook", {}), "url": ec.alert_webhook}
        if ec.alertmanager:
            notifiers["alertmanager"] = {**notifiers.get("alertmanager", {}), "url": ec.alertmanager}
        if notifiers:
            notify = NotifySink(notifiers, source, alert_state_dir(ec))
    window_pipeline(good, cfg, sinks, rules, notify, source=source)
    return flow


def alert_state_dir(ec: "EngineConfig") -> Optional[str]:
    """Where notifiers log what they delivered: beside the recovery snapshots, whose replays it
    de-duplicates (or alert_state)."""
    import os
    if ec.alert_state:
        return os.path.abspath(ec.alert_state)
    return os.path.join(os.path.abspath(ec.recovery_dir), "alerts") if ec.recovery_dir else None


def split_input(items, topic: str):
    """The source's items as (pipeline stream, dead-letter stream)."""
    parsed = op.map("parse", items, lambda it: parse(it, topic))
    return op.filter_map("batches", parsed, lambda r: r[0]), op.filter_map("bad_messages", parsed, lambda r: r[1])
