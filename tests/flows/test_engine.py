"""The live engine end to end on the local stack: collect -> Kafka (Tansu) -> Bytewax engine
(2 workers, and 2 processes) -> chDB, the ClickHouse server and Redis; exact flows per window,
bad messages to the dead-letter topic."""
from __future__ import annotations

import subprocess
import sys

from collectors.capture_file import CaptureFile
from collectors.decode.decoder import Decoder
from collectors.publish import KafkaPublisher
from tests.conftest import ROOT, reference_windows
from tests.pipeline import (message_at, WINDOW_S, clickhouse_records, clickhouse_totals, consume_raw, create_topic,
                            engine_log, run_engine_cluster, store_records, wait_all)


def test_engine_from_kafka_equals_reference(local_stack, synth_pcap, tmp_path):
    from confluent_kafka import Producer
    _, ports, _ = local_stack
    boot = f"127.0.0.1:{ports['kafka']}"
    create_topic(boot, "engine-e2e", 4)
    create_topic(boot, "engine-dlq", 1)
    pub = KafkaPublisher(boot, "engine-e2e")
    dec = Decoder()
    for raw in CaptureFile(str(synth_pcap)).batches():
        pub.publish(dec.decode(raw))
    junk = Producer({"bootstrap.servers": boot})
    junk.produce("engine-e2e", b"not a packet batch", partition=0)
    junk.produce("engine-e2e", b"NSPB\x01\x00truncated", partition=1)
    assert pub.flush(30) == 0 and junk.flush(30) == 0
    # a producer retry after a lost acknowledgement: the first message again, same headers
    value, headers = message_at(boot, "engine-e2e", 2, 0)
    junk.produce("engine-e2e", value, partition=2, headers=headers)
    assert junk.flush(30) == 0

    store = str(tmp_path / "store")
    # Partitions are read unevenly, so event time jumps back and forth between them; the
    # per-partition watermark keeps every packet on time with a 1 s lateness.
    # the engine from its config file, as a StatefulSet pod starts it
    conf = tmp_path / "engine.yaml"
    conf.write_text(f"kafka: '{boot}'\ntopic: engine-e2e\nstore: '{store}'\ndead_letter_topic: engine-dlq\n"
                    f"stop_at_end: true\nwindow: {WINDOW_S}\nlateness: 1\n")
    spec = f"flows.engine:from_config({str(conf)!r})"
    p = subprocess.run([sys.executable, "-m", "bytewax.run", spec, "-w", "2"], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert store_records(store) == reference_windows(synth_pcap, WINDOW_S)
    dead = consume_raw(boot, "engine-dlq", 2)
    assert sorted(dead) == sorted([b"not a packet batch", b"NSPB\x01\x00truncated"])


def test_collect_then_two_engine_processes_fill_clickhouse_and_redis_exactly(local_stack, synth_pcap):
    """The acceptance run: `collect` replays a generated capture into 4 partitions, `engine` runs as
    2 processes; ClickHouse (server, native protocol) and Redis hold the exact packets, bytes and
    flows of every window, and Redis's top talkers are the exact ones. Windows close on the
    per-partition watermark with the default 5 s lateness, though partitions are read unevenly."""
    import collections
    import json
    import re
    from schemas.credentials import redis_client
    from tests.pipeline import run
    _, ports, _ = local_stack
    boot, topic = f"127.0.0.1:{ports['kafka']}", "engine-cluster"
    res = run("collect", "--pcap", str(synth_pcap), "--kafka", boot, "--topic", topic, "--partitions", "4")
    assert res.returncode == 0, res.stderr
    published = json.loads(res.stderr.strip().splitlines()[-1])["published"]
    assert published["failed_packets"] == 0
    engines = run_engine_cluster(boot, topic, ports, ["--stop-at-end"])
    wait_all(engines)
    # each process ends with a line of what it counted: together, everything that was published
    stats = [json.loads([ln for ln in engine_log(p).splitlines() if ln.startswith('{"engine"')][-1]) for p in engines]
    assert sum(s["engine_messages_total"] for s in stats) == published["messages"]
    assert sum(s["engine_packets_total"] for s in stats) == published["packets"]
    assert sum(s["engine_dead_letters_total"] + s["engine_late_packets_total"] for s in stats) == 0

    ref = reference_windows(synth_pcap, WINDOW_S)
    assert len(ref) > 3
    # one INFO line per closed window (in whichever process merged it), and the sinks' writes
    logs = "".join(engine_log(p) for p in engines)
    closed = [int(m) for m in re.findall(r"INFO flows.dataflow: window \S+ closed: (\d+) packets", logs)]
    assert len(closed) == len(ref) and sum(closed) == published["packets"], logs[-3000:]
    assert re.search(r"INFO sinks.bytewax_sinks: clickhouse: wrote window \S+.* s after it closed", logs)
    assert re.search(r"INFO sinks.bytewax_sinks: redis: wrote window ", logs)
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


def test_engine_warns_when_workers_exceed_partitions(local_stack):
    from flows.engine_config import EngineConfig
    from flows.engine_service import Engine
    _, ports, _ = local_stack
    boot = f"127.0.0.1:{ports['kafka']}"
    create_topic(boot, "engine-narrow", 1)
    cfg = EngineConfig(kafka=boot, topic="engine-narrow", workers=2, process_id=0, addresses="a:1;b:2")
    assert "1 partitions for 4 workers" in Engine(cfg).partition_warning()
    assert Engine(EngineConfig(kafka=boot, topic="engine-narrow")).partition_warning() is None


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


def test_engine_refuses_a_missing_topic_and_a_run_without_sinks(local_stack):
    """One line each, exit 2; and the missing topic is not created by asking for it (Tansu, like
    Kafka by default, creates a topic that a metadata request names)."""
    from confluent_kafka.admin import AdminClient
    from tests.pipeline import run
    _, ports, _ = local_stack
    boot = f"127.0.0.1:{ports['kafka']}"
    res = run("engine", "--kafka", boot, "--topic", "never.written", "--clickhouse", f"127.0.0.1:{ports['clickhouse']}")
    ours = [ln for ln in res.stderr.splitlines() if ln.startswith("netspectra engine:")]
    assert res.returncode == 2 and len(ours) == 1 and "never.written" in ours[0], res.stderr
    assert "Traceback" not in res.stderr
    assert "never.written" not in AdminClient({"bootstrap.servers": boot}).list_topics(timeout=10).topics
    res = run("engine", "--kafka", boot, "--topic", "never.written")
    assert res.returncode == 2 and "no sink" in res.stderr, res.stderr
    from tests.conftest import _free_ports
    nobody = f"127.0.0.1:{_free_ports(1)[0]}"          # a broker address nothing answers on
    res = run("engine", "--kafka", nobody, "--redis", f"127.0.0.1:{ports['redis']}")
    assert res.returncode == 2 and res.stderr.strip().splitlines() == [res.stderr.strip()], res.stderr
    assert res.stderr.startswith(f"netspectra engine: Kafka at {nobody} does not answer") and "stack up" in res.stderr
