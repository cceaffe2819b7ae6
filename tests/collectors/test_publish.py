"""Publishing decoded batches to Kafka (Tansu from the local stack): every packet arrives once,
in the partition of its flow hash."""
from __future__ import annotations

import collections
import time

import numpy as np

from collectors.capture_file import CaptureFile
from collectors.decode.decoder import Decoder
from collectors.publish import KafkaPublisher, partition_of
from schemas.addresses import column_to_text
from schemas.packet_batch import PacketBatch
from tests.pipeline import create_topic
from tests.support import write_dns_capture

PARTITIONS = 4


def _consume(boot, topic, partitions, packets, timeout=60):
    """Read from offset 0 until `packets` packets arrived (Tansu's end offsets are not trusted)."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": boot, "group.id": f"check-{topic}", "enable.auto.commit": False,
                  "fetch.message.max.bytes": 16_000_000})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got, n, deadline = [], 0, time.monotonic() + timeout
    while n < packets and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        b = PacketBatch.from_bytes(m.value())
        got.append((m.partition(), b))
        n += len(b)
    c.close()
    return got


def test_publish_partitions_by_flow(local_stack, synth_pcap, tmp_path):
    _, ports, _ = local_stack
    boot = f"127.0.0.1:{ports['kafka']}"
    create_topic(boot, "packets-test", PARTITIONS)
    pub = KafkaPublisher(boot, "packets-test")
    assert pub.partitions == PARTITIONS
    dec = Decoder()
    total = l7_sent = 0
    dns = tmp_path / "dns.pcap"         # real DNS messages: L7 rows to carry (the generated mix has none)
    write_dns_capture(dns)
    for raw in [*CaptureFile(str(synth_pcap)).batches(), *CaptureFile(str(dns)).batches()]:
        b = dec.decode(raw)
        pub.publish(b)
        total += len(b)
        l7_sent += len(b.l7)
    assert pub.flush(30) == 0
    st = pub.stats
    assert st.packets == st.delivered_packets == total and st.failed_messages == 0
    got = _consume(boot, "packets-test", PARTITIONS, total)
    assert sum(len(b) for _, b in got) == total
    where = collections.defaultdict(set)
    for p, b in got:
        assert (partition_of(b, PARTITIONS) == p).all()
        ok = b.status == 0
        for k in zip(column_to_text(b.src[ok]), column_to_text(b.dst[ok]), b.sport[ok].tolist(), b.dport[ok].tolist(),
                     b.proto[ok].tolist()):
            where[k].add(p)
    assert all(len(v) == 1 for v in where.values())
    assert len({p for p, _ in got}) == PARTITIONS
    l7 = sum(len(b.l7) for _, b in got)
    assert l7 == l7_sent > 0          # DNS/HTTP fields travel with the packets, every row of them
    assert np.isfinite(st.bytes / total)


def test_collect_command(local_stack, synth_pcap):
    import json
    from tests.pipeline import run
    _, ports, _ = local_stack
    boot = f"127.0.0.1:{ports['kafka']}"
    res = run("collect", "--pcap", str(synth_pcap), "--kafka", boot, "--topic", "collect-test", "--partitions", "3")
    assert res.returncode == 0, res.stderr
    rep = json.loads(res.stderr.strip().splitlines()[-1])
    pub = rep["published"]
    assert rep["partitions"] == 3 and pub["failed_messages"] == 0 and rep["pending"] == 0
    assert pub["packets"] == pub["delivered_packets"] == rep["capture"]["packets"] == rep["decoded"]["frames"]
    got = _consume(boot, "collect-test", 3, pub["packets"])
    assert sum(len(b) for _, b in got) == pub["packets"]
