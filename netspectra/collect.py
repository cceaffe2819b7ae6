"""`netspectra collect`: decode packets and publish them to Kafka, partitioned by flow.

Today it replays a capture file as fast as possible (`--pcap`); live capture (libpcap batches,
AF_PACKET with fanout) is the next step of issue 4."""
from __future__ import annotations

import json
import sys
import time


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


def cmd_collect(args) -> int:
    from collectors.decode.decoder import Decoder
    from collectors.publish import KafkaPublisher
    from netspectra.cli import open_capture

    cap = open_capture(args.pcap, "collect")
    if cap is None:
        return 1
    try:
        if args.partitions:
            ensure_topic(args.kafka, args.topic, args.partitions, args.connect_timeout)
        pub = KafkaPublisher(args.kafka, args.topic, timeout=args.connect_timeout)
    except Exception as e:      # broker unreachable, topic missing: a clean message, not a trace
        print(f"netspectra collect: {e}", file=sys.stderr)
        return 1
    dec = Decoder()
    t = time.perf_counter()
    for raw in cap.batches():
        pub.publish(dec.decode(raw))
    pending = pub.flush(args.flush_timeout)
    secs = time.perf_counter() - t
    report = {"source": args.pcap, "topic": args.topic, "partitions": pub.partitions, "seconds": round(secs, 3),
              "captured": cap.stats.packets, "reader": cap.stats.as_dict(), **pub.stats.as_dict(),
              "pending": pending}
    print(json.dumps(report), file=sys.stderr)
    return 0 if pending == 0 and pub.stats.failed_messages == 0 else 3


def engine_command(args) -> list[str]:
    """The `python -m bytewax.run` command line `netspectra engine` runs."""
    spec = (f"flows.engine:kafka_flow({args.kafka!r}, {args.topic!r}, store={args.store!r}, redis={args.redis!r}, "
            f"clickhouse={args.clickhouse!r}, "
            f"dead_letter_topic={args.dead_letter_topic!r}, tail={not args.stop_at_end!r}, "
            f"window_s={args.window!r}, lateness_s={args.lateness!r}, source_name={args.topic!r})")
    extra = []
    if args.workers:
        extra += ["-w", str(args.workers)]
    if args.process_id is not None:
        extra += ["-i", str(args.process_id)]
    if args.addresses:
        extra += ["-a", args.addresses]
    if args.recovery_dir:
        extra += ["-r", args.recovery_dir]
    return [sys.executable, "-m", "bytewax.run", spec, *extra]


def check_partitions(args) -> str | None:
    """A warning when the topic has fewer partitions than engine workers (idle workers)."""
    from confluent_kafka.admin import AdminClient
    workers = (args.workers or 1) * (len(args.addresses.split(";")) if args.addresses else 1)
    try:
        meta = AdminClient({"bootstrap.servers": args.kafka}).list_topics(args.topic, timeout=10)
        parts = len(meta.topics[args.topic].partitions)
    except Exception as e:       # the engine itself reports an unreachable broker
        return f"could not read partitions of {args.topic}: {e}"
    if parts < workers:
        return (f"topic {args.topic} has {parts} partitions for {workers} workers: "
                f"{workers - parts} workers will read nothing (use at least {workers} partitions)")
    return None


def cmd_engine(args) -> int:
    import os
    warning = check_partitions(args)
    if warning:
        print(f"netspectra engine: warning: {warning}", file=sys.stderr)
    cmd = engine_command(args)
    print(" ".join(cmd), file=sys.stderr)
    os.execv(cmd[0], cmd)      # the engine is Bytewax's process; signals and exit codes are its own
    return 0
