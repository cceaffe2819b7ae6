"""Helpers for the tests that run the pipeline's processes: the command line, Kafka topics, the
engine as a Bytewax cluster, a paced collector, and readers of what reached ClickHouse, chDB and
Redis, for comparison with the independent reference (tests/oracle.py)."""
from __future__ import annotations

import subprocess
import sys
import tempfile

from tests.conftest import ROOT, reference_windows
from tests.support import stop, wait_for


def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "netspectra.cli", *args], capture_output=True, text=True, timeout=300)


def create_topic(boot, name, partitions):
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": boot})
    for f in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        f.result(15)


def consume_raw(boot, topic, n, timeout=30):
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


def store_records(store: str) -> dict:
    from sinks.chdb_store import ChdbStore, address_text
    rows = ChdbStore(store).rows(
        f"SELECT toUnixTimestamp64Nano(window_start), {address_text('src')}, {address_text('dst')}, sport, dport, proto, vlan, "
        "packets, bytes, toUnixTimestamp64Nano(first_seen), toUnixTimestamp64Nano(last_seen), tcp_flags "
        "FROM netspectra.flows FINAL")
    out: dict = {}
    for w, s, d, sp, dp, p, v, pk, by, f, l, fl in rows:
        out.setdefault(int(w), {})[(s, d, sp, dp, p, v)] = [int(pk), int(by), int(f), int(l), fl]
    return out


WINDOW_S = 10


RATE = 4_000           # packets/s the collector publishes: the 60k-packet capture takes ~15 s, so the faults


                       # land mid-stream although the first window may take 4 s and stopping ClickHouse 2 s
ENGINE_OPTS = ["--idle", "2", "--lateness", "1"]


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


def start_collector(boot: str, topic: str, pcap, rate: float = RATE, extra=()) -> subprocess.Popen:
    pace = ["--rate", str(rate)] if rate else []
    return subprocess.Popen([sys.executable, "-m", "netspectra.cli", "collect", "--pcap", str(pcap), "--kafka", boot,
                             "--topic", topic, *pace, *extra],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def windows_written(port: int, topic: str) -> int:
    from schemas.credentials import clickhouse_client
    try:
        return clickhouse_client(f"127.0.0.1:{port}").execute(
            "SELECT count() FROM netspectra.window_totals FINAL WHERE source = %(s)s", {"s": topic})[0][0]
    except Exception:        # table not created yet, or server stopped
        return 0


def redis_windows(port: int, topic: str) -> dict:
    """{window start ns: (packets, bytes, flows)} as Redis holds it."""
    from schemas.credentials import redis_client
    r = redis_client(f"127.0.0.1:{port}", decode_responses=True)
    out = {}
    for ms in r.zrange(f"ns:{topic}:windows", 0, -1):
        h = r.hgetall(f"ns:{topic}:window:{ms}")
        if h:
            out[int(ms) * 10**6] = (int(h["packets"]), int(h["bytes"]), int(h["flows"]))
    return out


def ref_totals(ref: dict) -> dict:
    return {w: (sum(v[0] for v in f.values()), sum(v[1] for v in f.values()), len(f)) for w, f in ref.items()}


def make_topic(boot: str, topic: str) -> None:
    create_topic(boot, topic, 4)
    create_topic(boot, f"{topic}-dlq", 1)


def wait_until_consuming(boot: str, topic: str, partitions: int = 4) -> None:
    """Block until every engine worker reads its partitions: one junk message per partition, each
    of which the engine copies to the dead-letter topic. Starting the collector only then keeps
    the faults mid-stream however slowly the engine processes start on a loaded machine."""
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": boot})
    for part in range(partitions):
        p.produce(topic, b"readiness probe, not a packet batch", partition=part)
    assert p.flush(30) == 0
    assert len(consume_raw(boot, f"{topic}-dlq", partitions, timeout=120)) == partitions, "engine not consuming"


def start_stream(boot: str, topic: str, ports: dict, started: list, pcap, opts=ENGINE_OPTS, processes: int = 2,
                 recovery: str | None = None, rate: float = RATE, first_window: bool = True):
    """Topic, engine cluster (consuming), then the collector publishing `pcap`; with `first_window`,
    returns once the first window is in ClickHouse (a fault after that is mid-stream).
    Returns (engines, collector, reference windows)."""
    make_topic(boot, topic)
    ref = reference_windows(pcap, WINDOW_S)
    engines = run_engine_cluster(boot, topic, ports, opts, processes=processes, recovery=recovery)
    started += engines
    wait_until_consuming(boot, topic)
    collector = start_collector(boot, topic, pcap, rate)
    started.append(collector)
    if first_window:
        wait_for(lambda: windows_written(ports["clickhouse"], topic) >= 1, 120, "the first window")
    return engines, collector, ref


def finish_exact(collector, engines, ports: dict, topic: str, ref: dict, timeout: float = 180,
                 redis_lost=()) -> None:
    """Wait for the collector, then until ClickHouse's flows and Redis's window totals equal the
    reference (windows may be written more than once on the way); stop the engines. `redis_lost`:
    windows Redis held only in memory when it was restarted (the local stack keeps no Redis data)."""
    _, err = collector.communicate(timeout=300)
    assert collector.returncode == 0, err[-2000:]
    totals = ref_totals(ref)

    def redis_exact() -> bool:
        have = redis_windows(ports["redis"], topic)
        return (all(have.get(w) == t for w, t in totals.items() if w not in redis_lost)
                and all(totals.get(w) == t for w, t in have.items()))
    try:
        wait_for(lambda: windows_written(ports["clickhouse"], topic) >= len(ref)
                 and clickhouse_records(ports["clickhouse"], topic) == ref, timeout, "exact windows in ClickHouse",
                 every=1.0)
        wait_for(redis_exact, 60, "exact windows in Redis", every=0.5)
    finally:
        stop(engines)
    assert clickhouse_records(ports["clickhouse"], topic) == ref


def message_at(boot, topic, partition, offset):
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
