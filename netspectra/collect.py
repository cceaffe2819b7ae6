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

