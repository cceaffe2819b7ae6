"""The live engine end to end on the local stack: collect -> Kafka (Tansu) -> Bytewax engine with
2 workers -> chDB; exact flows per window, bad messages to the dead-letter topic."""
from __future__ import annotations

import subprocess
import sys

from collectors.capture_file import CaptureFile
from collectors.decode.decoder import Decoder
from collectors.publish import KafkaPublisher
from tests.collectors.test_publish import _create_topic
from tests.conftest import ROOT, reference_windows
from tests.flows.test_dataflow import store_records

WINDOW_S = 10


def test_engine_from_kafka_equals_reference(local_stack, synth_pcap, tmp_path):
    from confluent_kafka import Producer
    _, ports, _ = local_stack
    boot = f"127.0.0.1:{ports['kafka']}"
    _create_topic(boot, "engine-e2e", 4)
    _create_topic(boot, "engine-dlq", 1)
    pub = KafkaPublisher(boot, "engine-e2e")
    dec = Decoder()
    for raw in CaptureFile(str(synth_pcap)).batches():
        pub.publish(dec.decode(raw))
    junk = Producer({"bootstrap.servers": boot})
    junk.produce("engine-e2e", b"not a packet batch", partition=0)
    junk.produce("engine-e2e", b"NSPB\x01\x00truncated", partition=1)
    assert pub.flush(30) == 0 and junk.flush(30) == 0

    store = str(tmp_path / "store")
    # Partitions are read interleaved, so event time jumps back and forth between them: the
    # lateness covers the whole capture here (per-partition watermarks are a follow-up).
    spec = (f"flows.engine:kafka_flow({boot!r}, 'engine-e2e', store={store!r}, dead_letter_topic='engine-dlq', "
            f"tail=False, window_s={WINDOW_S}, lateness_s=120)")
    p = subprocess.run([sys.executable, "-m", "bytewax.run", spec, "-w", "2"], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert store_records(store) == reference_windows(synth_pcap, WINDOW_S)
    dead = _consume_raw(boot, "engine-dlq", 2)
    assert sorted(dead) == sorted([b"not a packet batch", b"NSPB\x01\x00truncated"])


def _consume_raw(boot, topic, n, timeout=30):
    import time
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": boot, "group.id": f"raw-{topic}", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    out, deadline = [], time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            out.append(m.value())
    c.close()
    return out


def test_engine_command_runs_the_same_flow(local_stack, synth_pcap, tmp_path):
    from tests.test_cli import run
    _, ports, _ = local_stack
    boot = f"127.0.0.1:{ports['kafka']}"
    assert run("collect", "--pcap", str(synth_pcap), "--kafka", boot, "--topic", "engine-cli",
               "--partitions", "2").returncode == 0
    store = str(tmp_path / "store")
    res = run("engine", "--kafka", boot, "--topic", "engine-cli", "--store", store, "--window", "0",
              "--stop-at-end", "--workers", "2", "--dead-letter-topic", "engine-cli-dlq",
              "--redis", f"127.0.0.1:{ports['redis']}", "--clickhouse", f"127.0.0.1:{ports['clickhouse']}")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "warning" not in res.stderr.split("bytewax.run")[0]       # 2 partitions, 2 workers
    ref = reference_windows(synth_pcap, 0)
    assert store_records(store) == ref
    assert clickhouse_records(ports["clickhouse"], "engine-cli") == ref
    # live state in Redis: the window's totals and top talkers equal the exact flows
    import collections
    import redis
    r = redis.Redis(host="127.0.0.1", port=ports["redis"], decode_responses=True)
    p = "ns:engine-cli:"
    latest = r.hgetall(p + "latest")
    assert int(latest["packets"]) == sum(v[0] for v in ref[0].values())
    assert int(latest["bytes"]) == sum(v[1] for v in ref[0].values())
    assert int(latest["flows"]) == len(ref[0])
    by_src = collections.Counter()
    for (s, *_), v in ref[0].items():
        by_src[s] += v[1]
    top = r.zrevrange(p + "talkers", 0, 4, withscores=True)
    assert [(a, int(b)) for a, b in top] == by_src.most_common(5)
    assert r.ttl(p + "latest") > 0 and r.ttl(p + "talkers") > 0
    assert r.zcard(p + "hosts") == len({a for k in ref[0] for a in k[:2]})


def clickhouse_records(port: int, source: str) -> dict:
    """Flows of one source from the ClickHouse server (18.16 types: FixedString(16), UInt64 ns)."""
    from clickhouse_driver import Client
    from schemas.addresses import to_text
    rows = Client(host="127.0.0.1", port=port).execute(
        "SELECT toUInt64(window_start), src, dst, sport, dport, proto, packets, bytes, first_seen, last_seen, tcp_flags "
        "FROM netspectra.flows FINAL WHERE source = %(s)s", {"s": source})
    out: dict = {}
    for w, s, d, sp, dp, p, pk, by, f, l, fl in rows:
        out.setdefault(w * 10**9, {})[(to_text(s), to_text(d), sp, dp, p)] = [pk, by, f, l, fl]
    return out


def test_engine_warns_when_workers_exceed_partitions(local_stack):
    import argparse
    from netspectra.engine import check_partitions
    _, ports, _ = local_stack
    boot = f"127.0.0.1:{ports['kafka']}"
    _create_topic(boot, "engine-narrow", 1)
    args = argparse.Namespace(kafka=boot, topic="engine-narrow", workers=2, addresses="a:1;b:2")
    assert "1 partitions for 4 workers" in check_partitions(args)
    args.workers, args.addresses = 1, None
    assert check_partitions(args) is None
