"""Prometheus metrics, scraped by a real Prometheus server: the collector, the engine (with its
sinks and a webhook notifier) and the API, live on the local stack. Every metric of
schemas/metrics.py exists; all but the fault-only ones move; the counters equal what the
pipeline reports (packets published = packets the engine windowed = frames in ClickHouse)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from collectors import synth
from schemas.metrics import METRICS
from tests.conftest import ROOT, _free_ports, reference_windows
from schemas.credentials import ENV as CREDENTIALS_ENV, lookup
from tests.pipeline import (ENGINE_OPTS, clickhouse_totals, engine_log, make_topic, ref_totals, run_engine_cluster,
                            start_collector, wait_until_consuming)
from stack import local as stack
from tests.support import HookReceiver, Prometheus, TcpForwarder, numbered_pcap, stop, wait_for

sys.path.insert(0, str(ROOT / "dashboards"))
import build  # noqa: E402

# Faults this run does not cause (kernel and interface drops: a live interface under overload,
# test_capture_drops_are_counted_and_scraped below): these must exist at 0. The faults it does
# cause: messages that are not batches, more flows than max_flows, a webhook that is down (failed
# deliveries, and notifications beyond max_pending dropped), a duplicate message, a Redis
# connection cut (retries, and windows beyond the backlog dropped), a late packet, a window
# revision, ClickHouse cut (retries; the engine waits, so its consumer lag grows), and a second
# collector whose broker is cut off (delivery failures).
# counted only on a fault this run does not have (the analyses: no AI gateway configured here;
# tests/sinks/test_notifiers.py counts one given up)
FAULT_ONLY = {"netspectra_collector_kernel_drops_total", "netspectra_collector_interface_drops_total",
              "netspectra_notifier_analyses_failed_total"}
AI = "netspectra_ai_"       # only with an LLM endpoint: tests/api/test_ai_server.py scrapes them
LAG = "netspectra_engine_consumer_lag_messages"     # a gauge: back at 0 once the engine has caught up
WAITING = "netspectra_engine_read_ahead_waiting"     # a gauge: 0 unless a partition is read far ahead
MAIN = '{job="netspectra-collector"}'                  # the collector of the pipeline, not the cut one
MAX_FLOWS = 1000                 # below the capture's flows per window: the cap moves too


@pytest.fixture(scope="module")
def attack_pcap(tmp_path_factory):
    path = tmp_path_factory.mktemp("metrics") / "attacks.pcap"
    synth.write(str(path), synth.SynthConfig(packets=40_000, duration=40.0, hosts=200, seed=5, scans=1,
                                             scan_ports=600, syn_flood=4000))
    return path


def _report(collector: subprocess.Popen) -> dict:
    """The collector's JSON report (its stderr line with "published"), read while it holds its metrics."""
    for line in collector.stderr:
        if line.startswith("{") and '"published"' in line:
            return json.loads(line)
    raise AssertionError(f"collector exited (code {collector.wait()}) without a report")


def _series(promql_name: str, prom: Prometheus) -> dict:
    kind = METRICS[promql_name][0]
    return prom.query(promql_name + ("_count" if kind == "histogram" else ""))


def test_prometheus_scrapes_every_metric_and_they_agree_with_the_pipeline(local_stack, attack_pcap, tmp_path,
                                                                         started, monkeypatch):
    _, ports, _ = local_stack
    boot, topic = f"127.0.0.1:{ports['kafka']}", "metrics-e2e"
    engine_m, collector_m, cut_m, api_m, http_port, grpc_port = _free_ports(6)
    prom = Prometheus(tmp_path, {"netspectra-engine": f"127.0.0.1:{engine_m}",
                                 "netspectra-collector": f"127.0.0.1:{collector_m}",
                                 "netspectra-collector-cut": f"127.0.0.1:{cut_m}",
                                 "netspectra-api": f"127.0.0.1:{api_m}"}, rules=ROOT / "dashboards/prometheus/alert-rules.yml")
    hook = HookReceiver()
    hook.down()                  # the webhook is away at first: failed deliveries, retried
    redis = TcpForwarder(_free_ports(1)[0], ports["redis"])          # the engine's way to Redis, to cut
    password = lookup(f"127.0.0.1:{ports['redis']}").get("password", "")
    clickhouse = TcpForwarder(_free_ports(1)[0], ports["clickhouse"])     # and to ClickHouse
    creds = tmp_path / "credentials.json"           # ClickHouse's password, under the forwarder's address
    creds.write_text(json.dumps({f"127.0.0.1:{clickhouse.port}": lookup(f"127.0.0.1:{ports['clickhouse']}")}))
    monkeypatch.setenv(CREDENTIALS_ENV, os.pathsep.join([str(creds), os.environ.get(CREDENTIALS_ENV, "")]))
    procs = []
    try:
        make_topic(boot, topic)
        ref = reference_windows(attack_pcap, 10)
        rules = tmp_path / "rules.yaml"          # the built-in rules; one notification held at most
        rules.write_text(f"notifiers:\n  webhook: {{url: '{hook.url}/hook', max_pending: 1}}\n")
        procs += run_engine_cluster(boot, topic, ports, ENGINE_OPTS + [
            "--metrics-port", str(engine_m), "--rules", str(rules), "--max-flows", str(MAX_FLOWS),
            "--redis", f"redis://:{password}@127.0.0.1:{redis.port}", "--redis-backlog", "1",
            "--clickhouse", f"127.0.0.1:{clickhouse.port}"], processes=1)
        started.extend(procs)
        # a first scrape of the engine, its counters at 0, before anything happens (increase() needs it)
        wait_for(lambda: prom.query('netspectra_engine_dead_letters_total'), 120, "a first scrape of the engine")
        wait_until_consuming(boot, topic)          # 4 messages that are not packet batches: dead letters
        collector = start_collector(boot, topic, attack_pcap, extra=[
            "--metrics-port", str(collector_m), "--metrics-hold-s", "300"])
        procs.append(collector)
        started.append(collector)
        report = _report(collector)
        assert report["pending"] == 0 and report["published"]["failed_messages"] == 0
        wait_for(lambda: prom.value("netspectra_notifier_failures_total") >= 1, 120, "a failed notification")
        hook.up()
        # capped: packets and bytes stay exact per window, the lightest flow records are dropped
        want = {w: (pk, by) for w, (pk, by, _) in ref_totals(ref).items()}
        wait_for(lambda: {w: t[:2] for w, t in clickhouse_totals(ports["clickhouse"], topic).items()} == want, 180,
                 "exact window totals in ClickHouse", every=1.0)
        kept = sum(t[2] for t in clickhouse_totals(ports["clickhouse"], topic).values())
        assert 0 < kept < sum(len(f) for f in ref.values())

        api = subprocess.Popen([sys.executable, "-m", "netspectra.cli", "api", "--store",
                                f"clickhouse://127.0.0.1:{ports['clickhouse']}", "--redis",
                                f"127.0.0.1:{ports['redis']}", "--allow-anonymous", "--http-port", str(http_port),
                                "--grpc-port", str(grpc_port), "--metrics-port", str(api_m)],
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(api)
        started.append(api)
        import grpc
        import httpx
        from grpc_health.v1 import health_pb2, health_pb2_grpc
        base = f"http://127.0.0.1:{http_port}"

        def api_up() -> bool:
            try:
                return httpx.get(f"{base}/v1/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False
        wait_for(api_up, 60, "the API")
        assert httpx.get(f"{base}/v1/alerts", params={"source": topic}, timeout=10).status_code == 200
        assert httpx.get(f"{base}/v1/no-such-thing", timeout=10).status_code == 404
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as ch:
            health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10)

        frames = sum(r[0] for r in _ch_frames(ports["clickhouse"], topic))
        published = report["published"]["packets"]
        assert frames == published == report["capture"]["packets"]

        def agree() -> bool:
            return (prom.value("netspectra_engine_windows_total") == len(ref)
                    and prom.value("netspectra_engine_packets_total") == published
                    and prom.value("netspectra_collector_published_packets_total" + MAIN) == published
                    and prom.value('netspectra_api_requests_total{transport="grpc"}') >= 1
                    and prom.value('netspectra_api_requests_total{status="404"}') >= 1)
        wait_for(agree, 60, "Prometheus to scrape the final counts", every=0.5)

        v = prom.value
        assert v("netspectra_collector_packets_captured_total" + MAIN) == report["capture"]["packets"]
        assert v("netspectra_collector_decoded_packets_total" + MAIN) == report["decoded"]["frames"]
        assert v('netspectra_collector_decoded_packets_total{job="netspectra-collector",status="ok"}') == \
            report["decoded"]["ip_packets"]
        assert v("netspectra_collector_ip_bytes_total" + MAIN) == report["decoded"]["ip_bytes"]
        assert v("netspectra_collector_published_messages_total" + MAIN) == report["published"]["messages"]
        assert v("netspectra_collector_delivered_messages_total" + MAIN) == report["published"]["delivered_messages"]
        assert v("netspectra_engine_messages_total") == report["published"]["messages"] + 4
        assert v('netspectra_engine_dead_letters_total{reason="bad_message"}') == 4
        assert v('netspectra_engine_window_flows_count') == len(ref)
        assert v('netspectra_engine_window_flows_sum') == kept
        assert v("netspectra_engine_capped_flows_total") == sum(len(f) for f in ref.values()) - kept
        assert v('netspectra_sink_windows_total{sink="clickhouse"}') >= len(ref)
        assert v('netspectra_sink_windows_total{sink="redis"}') >= len(ref)
        fired = v('netspectra_engine_alerts_total{change="firing"}')
        # scan and flood at least; all but the one held when the webhook came back were dropped
        assert fired >= 2 and v("netspectra_notifier_sent_total") >= 1
        assert v("netspectra_notifier_dropped_total") >= 1
        assert v('netspectra_api_requests_total{transport="http",method="/v1/health",status="200"}') >= 1

        # faults, one of each: a message again (a producer retry), then, behind a packet that moves
        # event time 300 s on (every window past its grace), a packet for the first window (late)
        # and one more for the newest window (a revision)
        from collectors.publish import KafkaPublisher
        from tests.pipeline import message_at
        from tests.support import batch
        value, headers = message_at(boot, topic, 0, 1)
        pub = KafkaPublisher(boot, topic)
        pub.producer.produce(topic, value, partition=0, headers=headers)
        assert pub.flush(30) == 0
        wait_for(lambda: v("netspectra_engine_duplicate_messages_total") == 1, 60, "the duplicate to be dropped")
        first, last = min(ref) / 1e9, max(ref) / 1e9
        # two windows (and the alert changes they bring) cannot reach Redis: retried, and all but the
        # newest dropped (a backlog of 1)
        redis.cut()
        for i, ts in enumerate((last + 300, last + 320), 1):
            pub.publish(batch([ts]))
            assert pub.flush(30) == 0
            wait_for(lambda: v("netspectra_engine_windows_total") == len(ref) + i, 60, "a window far ahead")
        wait_for(lambda: v('netspectra_sink_retries_total{sink="redis"}') >= 1
                 and v('netspectra_sink_dropped_total{sink="redis"}') >= 1, 60, "a Redis write retried, one dropped")
        redis.restore()
        for ts, what, cond in (
                               (first + 1, "a late packet", lambda: v("netspectra_engine_late_packets_total") == 1),
                               (last + 301, "a revision", lambda: v("netspectra_engine_window_revisions_total") == 1)):
            pub.publish(batch([ts]))
            assert pub.flush(30) == 0
            wait_for(cond, 60, what)
        # ClickHouse cut: the next window written cannot be; its write retries in the sink's
        # thread while the engine reads on, until the epoch ends (or the next window reaches the
        # sink): the sink then waits for that write rather than lose it, reading nothing
        # meanwhile, and the messages behind are its lag
        merged = lambda: v("netspectra_engine_windows_total") + v("netspectra_engine_window_revisions_total")  # noqa: E731
        wait_for(lambda: v('netspectra_sink_windows_total{sink="clickhouse"}') == merged(), 60,
                 "every merged window written to ClickHouse")      # so the write cut below is the next one
        clickhouse.cut()
        pub.publish(batch([last + 340]))
        assert pub.flush(30) == 0
        try:
            wait_for(lambda: v('netspectra_sink_retries_total{sink="clickhouse"}') >= 1, 60, "a ClickHouse write retried")
        except AssertionError as e:
            raise AssertionError(f"{e}; windows {v('netspectra_engine_windows_total')}, messages "
                                 f"{v('netspectra_engine_messages_total')}; engine log:\n{engine_log(procs[0])}") from None
        for i in range(120):                    # until the engine stops reading (within an epoch)
            pub.publish(batch([last + 341 + i / 1000]))
            assert pub.flush(30) == 0
            if v(LAG) >= 3:
                break
            time.sleep(0.5)
        wait_for(lambda: v(LAG) >= 3, 60, "a consumer lag of 3 messages or more")
        clickhouse.restore()
        wait_for(lambda: v(LAG) == 0, 60, "the engine to catch up")
        del pub                  # its producer would outlive the broker at the session's end

        # a second collector whose broker is cut off mid-run: its messages time out (failed, counted)
        kafka2, front = _free_ports(2)
        (tmp_path / "broker").mkdir()
        broker = subprocess.Popen([stack.tansu_binary(), "broker", "--listener-url", f"tcp://127.0.0.1:{kafka2}",
                                   "--advertised-listener-url", f"tcp://127.0.0.1:{front}", "--storage-engine",
                                   "memory://tansu/"], cwd=tmp_path / "broker", stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        procs.append(broker)
        started.append(broker)
        cut_off = TcpForwarder(front, kafka2)
        assert stack._wait_port(kafka2, 30), "the second broker did not start"
        cut = subprocess.Popen([sys.executable, "-m", "netspectra.cli", "collect", "--pcap", str(attack_pcap),
                                "--kafka", f"127.0.0.1:{front}", "--topic", "cut", "--partitions", "1",
                                "--rate", "200", "--count", "4000", "--delivery-timeout-s", "2",
                                "--flush-timeout", "10", "--metrics-port", str(cut_m), "--metrics-hold-s", "300"],
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(cut)
        started.append(cut)
        job = '{job="netspectra-collector-cut"}'
        wait_for(lambda: v("netspectra_collector_delivered_messages_total" + job) >= 1, 60, "a first delivery")
        cut_off.cut()
        wait_for(lambda: v("netspectra_collector_delivery_failures_total" + job) >= 1, 60, "failed deliveries")
        cut_off.close()

        missing, still = [], []
        for name in (n for n in METRICS if not n.startswith(AI)):
            got = _series(name, prom)
            if not got:
                missing.append(name)
            elif name not in FAULT_ONLY | {LAG, WAITING} and not any(x > 0 for x in got.values()):
                still.append(name)
            elif name in FAULT_ONLY and any(x > 0 for x in got.values()):
                still.append(f"{name} counted a fault in a run without one: {got}")
        assert not missing, f"not scraped: {missing}"
        assert not still, f"did not move as they should: {still}"

        # the pipeline dashboard: every query runs and has data
        empty = [q for _, _, queries in build.PIPELINE_PANELS for _, q in queries if not prom.query(q)]
        assert not empty, f"pipeline dashboard queries without data: {empty}"
        # the alerting rules: all evaluate; those of the faults above fire, or are pending (the
        # late-packet and sink rules wait minutes before they fire), nothing else does
        wait_for(lambda: prom.rules().get("NetSpectraDeadLetters", ("", ""))[1] == "firing"
                 and prom.rules().get("NetSpectraLatePackets", ("", ""))[1] == "pending", 30, "the fault alerts")
        rules = prom.rules()
        assert rules and all(health == "ok" for health, _ in rules.values()), rules
        assert {name for name, (_, state) in rules.items() if state != "inactive"} == {
            "NetSpectraDeadLetters", "NetSpectraLatePackets", "NetSpectraSinkFailing", "NetSpectraSinkDropping",
            "NetSpectraDeliveryFailures"}
    finally:
        stop(procs)
        prom.stop()
        hook.down()
        redis.close()
        clickhouse.close()


SENT, JUMBO = 20_000, 50      # frames within our MTU (far more than a 2 MiB ring holds); frames over it


@pytest.mark.parametrize("method", ["afpacket", "pcap"])
def test_capture_drops_are_counted_and_scraped(capture_link, tmp_path, started, method):
    """A live collector (either method, the smallest buffer: 1 MiB) is stopped (SIGSTOP) while
    20,000 frames cross the interface: the ring fills and the kernel drops the rest. 50 frames over
    the interface's MTU are dropped by the interface itself. Prometheus scrapes both drop counters;
    captured + kernel drops = frames sent, interface drops = the oversized frames, the collector's
    report agrees, and the capture-drops alerting rule goes off."""
    import signal
    ns, iface = capture_link
    pcap = tmp_path / "sent.pcap"
    numbered_pcap(pcap, SENT, payload=500)
    port = _free_ports(1)[0]
    prom = Prometheus(tmp_path, {"netspectra-collector": f"127.0.0.1:{port}"},
                      rules=ROOT / "dashboards/prometheus/alert-rules.yml")
    try:
        collector = subprocess.Popen([sys.executable, "-m", "netspectra.cli", "collect", "--interface", iface,
                                      "--method", method, "--buffer-mb", "1", "--dry-run", "--no-l7",
                                      "--metrics-port", str(port), "--metrics-hold-s", "300"],
                                     cwd=ROOT, stderr=subprocess.PIPE, text=True)
        started.append(collector)
        line = collector.stderr.readline()
        assert "capturing on" in line, line + collector.stderr.read()
        # a first scrape at 0 before anything is dropped (rate() needs it)
        wait_for(lambda: prom.query("netspectra_collector_kernel_drops_total"), 60, "a first scrape of the collector")
        collector.send_signal(signal.SIGSTOP)
        out = subprocess.run(["ip", "netns", "exec", ns, "tcpreplay", "-i", "va", "--pps=40000", str(pcap)],
                             capture_output=True, text=True, timeout=120).stdout
        assert f"Successful packets:        {SENT}" in out, out
        # tcpreplay retries a frame the interface refuses forever: these go one by one
        refused = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", _SEND_JUMBO, str(JUMBO)],
                                 capture_output=True, text=True, timeout=60, check=True).stdout
        assert refused.split() == [str(JUMBO)], refused
        collector.send_signal(signal.SIGCONT)
        v = prom.value
        wait_for(lambda: v("netspectra_collector_packets_captured_total")
                 + v("netspectra_collector_kernel_drops_total") == SENT
                 and v("netspectra_collector_interface_drops_total") == JUMBO, 60, "the drops to be scraped")
        captured, dropped = v("netspectra_collector_packets_captured_total"), v("netspectra_collector_kernel_drops_total")
        assert dropped > SENT / 2 and captured > 0, (captured, dropped)
        wait_for(lambda: prom.rules()["NetSpectraCaptureDrops"][1] in ("pending", "firing"), 30,
                 "the capture-drops rule")
        collector.send_signal(signal.SIGTERM)
        report = json.loads(collector.communicate(timeout=60)[1].strip().splitlines()[-1])
        assert collector.returncode == 0, report
        cap = report["capture"]
        assert (cap["packets"], cap["kernel_drops"], cap["iface_drops"]) == (captured, dropped, JUMBO), cap
        assert report["decoded"]["ip_packets"] == captured
    finally:
        prom.stop()


# Frames over the MTU of va's peer, sent from the namespace; prints how many were refused.
_SEND_JUMBO = """
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("va", 0))
frame = b"\\x04" * 6 + b"\\x02" * 6 + b"\\x08\\x00" + b"\\x45" + bytes(2985)
refused = 0
for _ in range(int(sys.argv[1])):
    try:
        s.send(frame)
    except OSError:
        refused += 1
print(refused)
"""


def _ch_frames(port: int, topic: str) -> list:
    from schemas.credentials import clickhouse_client
    return clickhouse_client(f"127.0.0.1:{port}").execute(
        "SELECT frames FROM netspectra.window_totals FINAL WHERE source = %(s)s", {"s": topic})


def test_the_docs_list_every_metric():
    doc = (ROOT / "docs" / "metrics.md").read_text()
    listed = {line.split("`")[1] for line in doc.splitlines() if line.startswith("| `netspectra_")}
    assert listed == set(METRICS)
