"""The live engine end to end on the local stack: collect -> Kafka (Tansu) -> Bytewax engine
(2 workers, and 2 processes) -> chDB, the ClickHouse server and Redis; exact flows per window,
bad messages to the dead-letter topic."""
from __future__ import annotations

import subprocess
import sys
import tempfile

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
    # a producer retry after a lost acknowledgement: the first message again, same headers
    value, headers = _message_at(boot, "engine-e2e", 2, 0)
    junk.produce("engine-e2e", value, partition=2, headers=headers)
    assert junk.flush(30) == 0

    store = str(tmp_path / "store")
    # Partitions are read unevenly, so event time jumps back and forth between them; the
    # per-partition watermark keeps every packet on time with a 1 s lateness.
    spec = (f"flows.engine:kafka_flow({boot!r}, 'engine-e2e', store={store!r}, dead_letter_topic='engine-dlq', "
            f"tail=False, window_s={WINDOW_S}, lateness_s=1)")
    p = subprocess.run([sys.executable, "-m", "bytewax.run", spec, "-w", "2"], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert store_records(store) == reference_windows(synth_pcap, WINDOW_S)
    dead = _consume_raw(boot, "engine-dlq", 2)
    assert sorted(dead) == sorted([b"not a packet batch", b"NSPB\x01\x00truncated"])


def _message_at(boot, topic, partition, offset):
    """(value, headers) of one message."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": boot, "group.id": f"one-{topic}", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, partition, offset)])
    try:
        for _ in range(60):
            m = c.poll(0.5)
            if m is not None and not m.error():
                return m.value(), m.headers()
    finally:
        c.close()
    raise AssertionError(f"no message at {topic}[{partition}]@{offset}")


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


def run_engine_cluster(boot: str, topic: str, ports: dict, extra=(), processes: int = 2,
                       recovery: str | None = None) -> list[subprocess.Popen]:
    """`netspectra engine` as a cluster of `processes` Bytewax processes, one worker each."""
    from tests.conftest import _free_ports
    addrs = ";".join(f"127.0.0.1:{p}" for p in _free_ports(processes))
    out = []
    for i in range(processes):
        cmd = [sys.executable, "-m", "netspectra.cli", "engine", "--kafka", boot, "--topic", topic,
               "--window", str(WINDOW_S), "--workers", "1", "-i", str(i), "-a", addrs,
               "--clickhouse", f"127.0.0.1:{ports['clickhouse']}", "--redis", f"127.0.0.1:{ports['redis']}",
               "--dead-letter-topic", f"{topic}-dlq", *extra]
        if recovery:
            cmd += ["-r", recovery]
        log = tempfile.TemporaryFile("w+")      # a file, not a pipe: a chatty engine must never block
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True)
        proc.log = log
        out.append(proc)
    return out


def engine_log(p: subprocess.Popen) -> str:
    p.log.seek(0)
    return p.log.read()[-3000:]


def wait_all(procs, timeout=300) -> None:
    """Wait for every process to exit cleanly; whichever still runs after a failure is killed."""
    try:
        for p in procs:
            p.wait(timeout=timeout)
            assert p.returncode == 0, engine_log(p)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()


def test_collect_then_two_engine_processes_fill_clickhouse_and_redis_exactly(local_stack, synth_pcap):
    """The acceptance run: `collect` replays a generated capture into 4 partitions, `engine` runs as
    2 processes; ClickHouse (server, native protocol) and Redis hold the exact packets, bytes and
    flows of every window, and Redis's top talkers are the exact ones. Windows close on the
    per-partition watermark with the default 5 s lateness, though partitions are read unevenly."""
    import collections
    import json
    from schemas.credentials import redis_client
    from tests.test_cli import run
    _, ports, _ = local_stack
    boot, topic = f"127.0.0.1:{ports['kafka']}", "engine-cluster"
    res = run("collect", "--pcap", str(synth_pcap), "--kafka", boot, "--topic", topic, "--partitions", "4")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stderr.strip().splitlines()[-1])["published"]["failed_packets"] == 0
    wait_all(run_engine_cluster(boot, topic, ports, ["--stop-at-end"]))

    ref = reference_windows(synth_pcap, WINDOW_S)
    assert len(ref) > 3
    assert clickhouse_records(ports["clickhouse"], topic) == ref
    totals = clickhouse_totals(ports["clickhouse"], topic)
    r = redis_client(f"127.0.0.1:{ports['redis']}", decode_responses=True)
    p = f"ns:{topic}:"
    for w, flows in ref.items():
        exact = (sum(v[0] for v in flows.values()), sum(v[1] for v in flows.values()), len(flows))
        assert totals[w] == exact
        h = r.hgetall(f"{p}window:{w // 10**6}")
        assert (int(h["packets"]), int(h["bytes"]), int(h["flows"])) == exact
        by_src = collections.Counter()
        for (s, *_), v in flows.items():
            by_src[s] += v[1]
        top = r.zrevrange(f"{p}window:{w // 10**6}:talkers", 0, 4, withscores=True)
        assert [(a, int(b)) for a, b in top] == by_src.most_common(5)
    latest = r.hgetall(p + "latest")
    assert int(latest["window_start_ms"]) == max(ref) // 10**6
    assert r.ttl(p + "latest") > 0 and r.ttl(p + "talkers") > 0
    assert r.zcard(p + "hosts") == len({a for flows in ref.values() for k in flows for a in k[:2]})


def clickhouse_totals(port: int, source: str) -> dict:
    from schemas.credentials import clickhouse_client
    rows = clickhouse_client(f"127.0.0.1:{port}").execute(
        "SELECT toUInt64(window_start), packets, bytes, flows FROM netspectra.window_totals FINAL "
        "WHERE source = %(s)s", {"s": source})
    return {w * 10**9: (pk, by, fl) for w, pk, by, fl in rows}


def clickhouse_records(port: int, source: str) -> dict:
    """Flows of one source from the ClickHouse server (18.16 types: FixedString(16), UInt64 ns)."""
    from schemas.credentials import clickhouse_client
    from schemas.addresses import to_text
    rows = clickhouse_client(f"127.0.0.1:{port}").execute(
        "SELECT toUInt64(window_start), src, dst, sport, dport, proto, vlan, packets, bytes, first_seen, last_seen, "
        "tcp_flags FROM netspectra.flows FINAL WHERE source = %(s)s", {"s": source})
    out: dict = {}
    for w, s, d, sp, dp, p, v, pk, by, f, l, fl in rows:
        out.setdefault(w * 10**9, {})[(to_text(s), to_text(d), sp, dp, p, v)] = [pk, by, f, l, fl]
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


def test_consumer_errors_and_bad_messages_are_dead_lettered_and_the_flow_goes_on():
    """KafkaError items (what the source emits for consumer errors) and undecodable messages are
    counted, dead-lettered with the reason, and the batches around them still reach the windows."""
    import bytewax.operators as op
    from bytewax.connectors.kafka import KafkaError, KafkaSourceMessage
    from bytewax.dataflow import Dataflow
    from bytewax.testing import TestingSink, TestingSource, run_main
    from confluent_kafka import KafkaError as ConfluentError

    from flows import engine
    from flows.window import Progress
    from tests.support import batch

    def msg(value, offset):
        return KafkaSourceMessage(key=None, value=value, topic="t", partition=1, offset=offset)

    good = batch([1, 2, 3])
    items = [msg(good.to_bytes(), 0),
             KafkaError(ConfluentError(ConfluentError._TRANSPORT, "broker gone"), msg(None, 1)),
             msg(b"junk", 2),
             KafkaError(ConfluentError(ConfluentError._TRANSPORT, "broker gone"), msg(None, 3)),
             Progress(1, True, 5.0),
             msg(good.to_bytes(), 4)]
    engine.REJECTED.clear()
    flow = Dataflow("parse")
    ok, bad = engine.split_input(op.input("in", flow, TestingSource(items)), "t")
    got_ok, got_bad = [], []
    op.output("ok", ok, TestingSink(got_ok))
    op.output("bad", bad, TestingSink(got_bad))
    run_main(flow)
    assert [type(x).__name__ if isinstance(x, Progress) else (x[0], len(x[1])) for x in got_ok] == \
        [(1, 3), "Progress", (1, 3)]
    reasons = [dict(m.headers)["error"].decode() for m in got_bad]
    assert len(reasons) == 3 and "broker gone" in reasons[0] and "broker gone" in reasons[2]
    assert [dict(m.headers)["source_offset"] for m in got_bad] == [b"1", b"2", b"3"]
    assert engine.REJECTED == {"_TRANSPORT": 2, "bad_message": 1}
