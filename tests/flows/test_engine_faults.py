"""Faults in the live pipeline, with a collector publishing while an engine tails the topic:

- the engine SIGKILLed mid-stream and restarted from its recovery snapshots (2 processes, 1, and
  2 restarted as 3);
- every connection to the broker cut for a while (a TCP forwarder between them and the broker);
- ClickHouse and Redis stopped for a while and started again;
- no fault at all, but a flow-heavy capture published at full speed, so the engine lags far behind;
- the recovery directory's disk filled mid-stream: the engine stops at its next snapshot saying
  so, refuses to start while the disk is full, and resumes once space is freed.
- a collector capturing a live interface (a veth from a network namespace, tcpreplay on the far
  end) SIGKILLed and restarted: only what it never published is lost, one run of packets.

After each, every window in ClickHouse (flows) and in Redis (totals) equals the brute-force
reference exactly: nothing lost, nothing counted twice.

`make test` runs each scenario once; `make stress` runs each NETSPECTRA_STRESS_RUNS times (10)
and the long variants (60 s outages)."""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from stack import local as stack
from tests.conftest import ROOT, _free_ports
from tests.support import TcpForwarder, numbered_pcap, stop, wait_for
from tests.pipeline import (ENGINE_OPTS, WINDOW_S, clickhouse_records, consume_raw, engine_log, finish_exact, make_topic,
                            redis_windows, run_engine_cluster, start_stream, wait_until_consuming, windows_written)

RUNS = range(int(os.environ.get("NETSPECTRA_STRESS_RUNS", "1")))
LONG = os.environ.get("NETSPECTRA_STRESS_LONG") == "1"      # the 60 s outages (make stress)
OUTAGES = [10, 60] if LONG else [10]


@pytest.mark.parametrize("processes,after", [(2, 2), (1, 1), (2, 3)], ids=["2", "1", "2to3"])
@pytest.mark.parametrize("run", RUNS)
def test_engine_killed_mid_stream_resumes_from_recovery_snapshots(local_stack, synth_pcap, tmp_path, started,
                                                                  processes, after, run):
    """SIGKILL every engine process mid-stream, start the same command again (or with one more
    process: rescaled from the same recovery directory)."""
    _, ports, _ = local_stack
    boot, topic = f"127.0.0.1:{ports['kafka']}", f"engine-recovery-{processes}-{after}-{run}"
    recovery = str(tmp_path / "recovery")
    opts = ENGINE_OPTS + ["--snapshot-interval", "1"]
    engines, collector, ref = start_stream(boot, topic, ports, started, synth_pcap, opts, processes, recovery)
    stop(engines, signal.SIGKILL)                    # mid-stream: no clean shutdown, no flush
    assert collector.poll() is None and windows_written(ports["clickhouse"], topic) < len(ref), \
        "the kill came too late to be mid-stream"
    engines = run_engine_cluster(boot, topic, ports, opts, processes=after, recovery=recovery)
    started += engines
    finish_exact(collector, engines, ports, topic, ref)
    # Resumed from the snapshots, not replayed from the start: the readiness probes at offset 0
    # of each partition were dead-lettered once, before the kill, and not again.
    assert len(consume_raw(boot, f"{topic}-dlq", 8, timeout=3)) == 4


@pytest.mark.parametrize("cut_s", OUTAGES)
@pytest.mark.parametrize("run", RUNS)
def test_broker_cut_mid_stream_loses_nothing(local_stack, synth_pcap, tmp_path, started, cut_s, run):
    """Every connection to the broker cut for `cut_s` while collector and engine run: the broker
    keeps its data, both processes survive, and the engine's windows wait for the input instead
    of taking the silence for the end of traffic."""
    _, ports, _ = local_stack
    kafka, front = _free_ports(2)
    d = tmp_path / "broker"
    d.mkdir()
    url = f"tcp://127.0.0.1:{kafka}"
    broker = subprocess.Popen([stack.tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url",
                               f"tcp://127.0.0.1:{front}", "--storage-engine", "memory://tansu/"],
                              cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started.append(broker)
    forwarder = TcpForwarder(front, kafka)
    try:
        boot, topic = f"127.0.0.1:{front}", f"engine-cut-{cut_s}-{run}"
        assert stack._wait_port(kafka, 30), "the broker did not start"
        engines, collector, ref = start_stream(boot, topic, ports, started, synth_pcap)
        forwarder.cut()
        time.sleep(cut_s)
        assert collector.poll() is None, "the cut came too late to be mid-stream"
        forwarder.restore()
        finish_exact(collector, engines, ports, topic, ref)
    finally:
        forwarder.close()


@pytest.mark.parametrize("outage_s", [3] + ([60] if LONG else []))
@pytest.mark.parametrize("run", RUNS)
def test_clickhouse_and_redis_stopped_mid_stream_lose_nothing(local_stack, synth_pcap, started, outage_s, run):
    d, ports, _ = local_stack
    boot, topic = f"127.0.0.1:{ports['kafka']}", f"engine-outage-{outage_s}-{run}"
    engines, collector, ref = start_stream(boot, topic, ports, started, synth_pcap)
    try:
        # Redis keeps no data across the restart: what it held is lost, which is every window up to
        # the newest it had, and perhaps the next one if that was being written at that instant
        # (the first one, when it had none yet: its sink may run a moment after ClickHouse's).
        newest = max(redis_windows(ports["redis"], topic), default=min(ref) - WINDOW_S * 10**9)
        assert set(stack.down(d, only="redis") + stack.down(d, only="clickhouse")) == {"clickhouse", "redis"}
        lost = {w for w in ref if w <= newest + WINDOW_S * 10**9}
        assert collector.poll() is None, "the outage came too late to be mid-stream"
        time.sleep(outage_s)                         # the collector keeps publishing meanwhile
    finally:
        stack.up(d, ports=ports)
    finish_exact(collector, engines, ports, topic, ref, redis_lost=lost)


@pytest.fixture(scope="module")
def flood_pcap(tmp_path_factory):
    """Flow-heavy: 240k packets, most of them one-packet flows of a spoofed SYN flood, over 60 s."""
    from collectors import synth
    path = tmp_path_factory.mktemp("flood") / "flood.pcap"
    synth.write(str(path), synth.SynthConfig(packets=240_000, syn_flood=180_000, hosts=500, spreaders=2,
                                             spread=3000, scans=1, scan_ports=2000, seed=5))
    return path


@pytest.mark.parametrize("run", RUNS)
def test_a_lagging_engine_loses_nothing(local_stack, flood_pcap, started, run):
    """No fault: the collector publishes a flow-heavy capture at full speed into a tailing engine,
    which falls behind (collector, broker, engine and ClickHouse share 2 cores). Lag is never
    taken for idleness: every window is exact."""
    _, ports, _ = local_stack
    boot, topic = f"127.0.0.1:{ports['kafka']}", f"engine-lag-{run}"
    engines, collector, ref = start_stream(boot, topic, ports, started, flood_pcap, ["--idle", "1", "--lateness", "0.5"],
                                           rate=0, first_window=False)
    finish_exact(collector, engines, ports, topic, ref)


@pytest.fixture
def small_disk(tmp_path):
    """A 96 MB tmpfs: a recovery directory whose disk can be filled."""
    d = tmp_path / "small"
    d.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96m", "tmpfs", str(d)], check=True)
    yield d
    subprocess.run(["umount", "-l", str(d)], check=False)


def fill(directory) -> None:
    with open(directory / "filler", "wb") as f:
        try:
            while True:
                f.write(b"\0" * (1 << 20))
                f.flush()
        except OSError:
            pass


@pytest.mark.parametrize("run", RUNS)
def test_recovery_disk_full_stops_the_engine_and_a_restart_resumes_exactly(local_stack, synth_pcap, small_disk,
                                                                         started, run):
    _, ports, _ = local_stack
    boot, topic = f"127.0.0.1:{ports['kafka']}", f"engine-diskfull-{run}"
    recovery = str(small_disk / "recovery")
    opts = ENGINE_OPTS + ["--snapshot-interval", "1"]
    engines, collector, ref = start_stream(boot, topic, ports, started, synth_pcap, opts, 1, recovery)
    fill(small_disk)
    wait_for(lambda: engines[0].poll() is not None, 60, "the engine to stop at its next snapshot")
    assert engines[0].returncode != 0 and "database or disk is full" in engine_log(engines[0])
    assert collector.poll() is None, "the disk filled too late to be mid-stream"
    from tests.pipeline import run as cli
    refused = cli("engine", "--kafka", boot, "--topic", topic, "-r", recovery, "--clickhouse", "x:1")
    assert refused.returncode == 2 and "MB free" in refused.stderr     # fails fast, one line naming the fix
    (small_disk / "filler").unlink()
    engines = run_engine_cluster(boot, topic, ports, opts, processes=1, recovery=recovery)
    started += engines
    finish_exact(collector, engines, ports, topic, ref)


def published(boot: str, topic: str, partitions: int = 4) -> list:
    """Every packet batch in the topic (other messages, e.g. readiness probes, left out)."""
    from confluent_kafka import Consumer, TopicPartition

    from schemas.packet_batch import PacketBatch, WireFormatError
    c = Consumer({"bootstrap.servers": boot, "group.id": f"read-{topic}", "enable.auto.commit": False,
                  "enable.partition.eof": True})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out, at_end, deadline = [], set(), time.monotonic() + 60
    while len(at_end) < partitions and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            at_end.add(m.partition())
            continue
        try:
            out.append(PacketBatch.from_bytes(m.value()))
        except WireFormatError:
            pass
    c.close()
    assert len(at_end) == partitions, "the topic could not be read to its end"
    return out


@pytest.mark.parametrize("run", RUNS)
def test_collector_killed_on_a_live_interface_loses_only_what_it_never_published(local_stack, capture_link, tmp_path,
                                                                                 started, run):
    """A collector capturing a live interface is SIGKILLed mid-replay and started again. What it
    had not published when killed, and what crossed the wire while no collector ran, is lost: of
    each partition's packets, one run of consecutive ones in sending order (a batch goes out as a
    message per partition, and the kill may land between them). Nothing else: the restarted collector publishes
    no packet twice and counts no kernel drop, and the engine's windows equal exactly what the
    topic holds."""
    import numpy as np

    from collectors.publish import partition_of
    ns, iface = capture_link
    _, ports, _ = local_stack
    boot, topic = f"127.0.0.1:{ports['kafka']}", f"collector-kill-{run}"
    n, pps = 40_000, 4_000
    pcap = tmp_path / "numbered.pcap"
    numbered_pcap(pcap, n)
    make_topic(boot, topic)
    engines = run_engine_cluster(boot, topic, ports, ENGINE_OPTS, processes=1)
    started += engines
    wait_until_consuming(boot, topic)

    def collector() -> subprocess.Popen:
        p = subprocess.Popen([sys.executable, "-m", "netspectra.cli", "collect", "--interface", iface, "--kafka", boot,
                              "--topic", topic, "--no-l7"], cwd=ROOT, stderr=subprocess.PIPE, text=True)
        started.append(p)
        line = p.stderr.readline()
        assert "capturing on" in line, line + p.stderr.read()
        return p

    first = collector()
    replay = subprocess.Popen(["ip", "netns", "exec", ns, "tcpreplay", "-i", "va", f"--pps={pps}", str(pcap)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    started.append(replay)
    time.sleep(3)                                    # a quarter of the way: mid-replay on any machine
    first.kill()
    first.wait()
    second = collector()
    out = replay.communicate(timeout=120)[0]
    assert replay.returncode == 0 and f"Successful packets:        {n}" in out, out
    time.sleep(1)
    second.send_signal(signal.SIGTERM)               # hands over what its ring holds, then flushes
    report = json.loads(second.communicate(timeout=60)[1].strip().splitlines()[-1])
    assert second.returncode == 0 and report["capture"]["kernel_drops"] == 0, report

    batches = published(boot, topic)
    sport = np.concatenate([b.sport for b in batches]).astype(np.int64)
    assert len(sport) == len(np.unique(sport)), "a packet was published twice"
    numbers = np.arange(1, n + 1)
    lost = np.setdiff1d(numbers, sport)
    every = dataclasses.replace(batches[0].take(np.zeros(n, np.int64)), sport=numbers.astype(np.uint16))
    partition = partition_of(every, 4)          # the collector's, for every packet sent
    for p in range(4):
        gone = np.flatnonzero(np.isin(numbers[partition == p], lost))
        assert len(gone) == 0 or gone[-1] - gone[0] + 1 == len(gone), \
            f"partition {p}'s lost packets are not one run: {numbers[partition == p][gone][:50]}"
    assert report["capture"]["packets"] == report["published"]["packets"] == int((sport > (lost.max(initial=0))).sum())
    print(f"collector killed: {len(lost)} of {n} packets lost ({len(lost) / pps:.2f} s at {pps} packets/s), "
          f"{len(sport)} published once each")

    width = WINDOW_S * 10**9
    ts = np.concatenate([b.ts_ns for b in batches]).astype(np.int64)
    ip_len = np.concatenate([b.ip_len for b in batches]).astype(np.int64)
    expected: dict = {}
    for t, sp, ln in zip((ts // width * width).tolist(), sport.tolist(), ip_len.tolist()):
        expected.setdefault(t, {})[sp] = (1, ln)

    def in_clickhouse() -> dict:
        got: dict = {}
        for w, flows in clickhouse_records(ports["clickhouse"], topic).items():
            for key, (pk, by, *_) in flows.items():
                got.setdefault(w, {})[key[2]] = (pk, by)
        return got
    try:
        wait_for(lambda: in_clickhouse() == expected, 120, "ClickHouse to hold exactly what the topic holds", every=1.0)
    finally:
        stop(engines)
