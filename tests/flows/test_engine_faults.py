"""Faults in the live pipeline, with a collector publishing while a 2-process engine tails the
topic: the engine killed (SIGKILL) mid-stream and restarted from its recovery snapshots, and
ClickHouse and Redis stopped for a while and started again. In both, the final flows in
ClickHouse equal the brute-force reference exactly: nothing lost, nothing counted twice."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from netspectra import stack
from tests.collectors.test_publish import _create_topic
from tests.conftest import ROOT, reference_windows
from tests.flows.test_engine import WINDOW_S, _consume_raw, clickhouse_records, run_engine_cluster

RATE = 4_000           # packets/s the collector publishes: the 60k-packet capture takes ~15 s, so the faults
                       # land mid-stream although the first window may take 4 s and stopping ClickHouse 2 s
ENGINE_OPTS = ["--idle", "2", "--lateness", "1"]


def start_collector(boot: str, topic: str, pcap) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "netspectra.cli", "collect", "--pcap", str(pcap), "--kafka", boot,
                             "--topic", topic, "--rate", str(RATE)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def windows_written(port: int, topic: str) -> int:
    from clickhouse_driver import Client
    try:
        return Client(host="127.0.0.1", port=port).execute(
            "SELECT count() FROM netspectra.window_totals FINAL WHERE source = %(s)s", {"s": topic})[0][0]
    except Exception:        # table not created yet, or server stopped
        return 0


def wait_for(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def stop(procs, sig=signal.SIGTERM) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(sig)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def wait_until_consuming(boot: str, topic: str, partitions: int = 4) -> None:
    """Block until every engine worker reads its partitions: one junk message per partition, each
    of which the engine copies to the dead-letter topic. Starting the collector only then keeps
    the faults mid-stream however slowly the engine processes start on a loaded machine."""
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": boot})
    for part in range(partitions):
        p.produce(topic, b"readiness probe, not a packet batch", partition=part)
    assert p.flush(30) == 0
    assert len(_consume_raw(boot, f"{topic}-dlq", partitions, timeout=120)) == partitions, "engine not consuming"


@pytest.fixture
def started():
    """Processes a test starts; whatever still runs when it ends (a failed assertion included) is killed."""
    procs: list[subprocess.Popen] = []
    yield procs
    stop(procs, signal.SIGKILL)


def finish(collector, engines, ch_port: int, topic: str, ref: dict, also=lambda: True) -> dict:
    """Wait for the collector, then for ClickHouse to hold every window (and for `also`); stop the engines."""
    _, err = collector.communicate(timeout=120)
    assert collector.returncode == 0, err
    try:
        wait_for(lambda: windows_written(ch_port, topic) >= len(ref), 120, "every window in ClickHouse")
        wait_for(also, 60, "the other sinks")
    finally:
        stop(engines)
    return clickhouse_records(ch_port, topic)


def test_engine_killed_mid_stream_resumes_from_recovery_snapshots(local_stack, synth_pcap, tmp_path, started):
    _, ports, _ = local_stack
    boot, topic, ch = f"127.0.0.1:{ports['kafka']}", "engine-recovery", ports["clickhouse"]
    _create_topic(boot, topic, 4)
    _create_topic(boot, f"{topic}-dlq", 1)
    ref = reference_windows(synth_pcap, WINDOW_S)
    recovery = str(tmp_path / "recovery")
    opts = ENGINE_OPTS + ["--snapshot-interval", "1"]
    engines = run_engine_cluster(boot, topic, ports, opts, recovery=recovery)
    started += engines
    wait_until_consuming(boot, topic)
    collector = start_collector(boot, topic, synth_pcap)
    started.append(collector)
    wait_for(lambda: windows_written(ch, topic) >= 1, 120, "the first window")
    stop(engines, signal.SIGKILL)                    # mid-stream: no clean shutdown, no flush
    written = windows_written(ch, topic)
    assert collector.poll() is None and written < len(ref), "the kill came too late to be mid-stream"
    engines = run_engine_cluster(boot, topic, ports, opts, recovery=recovery)
    started += engines
    assert finish(collector, engines, ch, topic, ref) == ref


def test_clickhouse_and_redis_stopped_mid_stream_lose_nothing(local_stack, synth_pcap, started):
    import redis
    d, ports, _ = local_stack
    boot, topic, ch = f"127.0.0.1:{ports['kafka']}", "engine-outage", ports["clickhouse"]
    _create_topic(boot, topic, 4)
    _create_topic(boot, f"{topic}-dlq", 1)
    ref = reference_windows(synth_pcap, WINDOW_S)
    # A worker whose sink waits for ClickHouse stalls; the other worker must not take the stalled
    # one's partitions for idle meanwhile, so --idle exceeds the stall (outage + restart + backoff).
    engines = run_engine_cluster(boot, topic, ports, ["--idle", "15", "--lateness", "1"])
    started += engines
    wait_until_consuming(boot, topic)
    collector = start_collector(boot, topic, synth_pcap)
    started.append(collector)
    try:
        wait_for(lambda: windows_written(ch, topic) >= 1, 120, "the first window")
        assert set(stack.down(d, only="clickhouse") + stack.down(d, only="redis")) == {"clickhouse", "redis"}
        assert collector.poll() is None, "the outage came too late to be mid-stream"
        time.sleep(3)                                # the collector keeps publishing meanwhile
    finally:
        stack.up(d, ports=ports)
    r = redis.Redis(host="127.0.0.1", port=ports["redis"], decode_responses=True)

    def redis_has_newest() -> bool:
        # Redis restarted empty; the windows written after the outage come back, the newest last.
        # Its sink runs beside ClickHouse's, so it may finish a moment later.
        latest = r.hget(f"ns:{topic}:latest", "window_start_ms")
        return latest is not None and int(latest) == max(ref) // 10**6

    assert finish(collector, engines, ch, topic, ref, also=redis_has_newest) == ref
