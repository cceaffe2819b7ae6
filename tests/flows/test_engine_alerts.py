"""Alerts from the live engine: collect -> Kafka -> engine -> webhook receiver, Alertmanager and
an SMTP server, with the engine SIGKILLed after its first alert and resumed from its recovery
snapshots, and the webhook receiver down for the first 10 s. Every planted attack is delivered
once per firing by each notifier, nothing benign alerts, and the alerts land in ClickHouse and
Redis."""
from __future__ import annotations

import collections
import json
import signal
import time

import pytest

from collectors import synth
from tests.pipeline import (ENGINE_OPTS, finish_exact, make_topic, run_engine_cluster, start_collector,
                            wait_until_consuming)
from tests.support import Alertmanager, HookReceiver, SmtpServer, stop, wait_for

SCAN_OR_FLOOD = {"port_scan", "host_scan", "syn_flood", "udp_reflection"}


@pytest.fixture(scope="module")
def attack_pcap(tmp_path_factory):
    path = tmp_path_factory.mktemp("attacks") / "attacks.pcap"
    truth = synth.write(str(path), synth.SynthConfig(
        packets=60_000, duration=60.0, hosts=300, seed=11, spreaders=2, spread=600, scans=1, scan_ports=600,
        syn_flood=6000, reflection=60, reflection_packets=60, busy_server=3000, resolver=500))
    return path, truth


def _key(detector, entity) -> tuple:
    return detector, tuple(sorted((k, str(v)) for k, v in entity.items()))


def test_live_alerts_delivered_once_through_a_kill_and_resume(local_stack, attack_pcap, tmp_path, started):
    pcap, truth = attack_pcap
    planted = {_key(a["detector"], a["entity"]) for a in truth["attacks"]}
    _, ports, _ = local_stack
    boot, topic = f"127.0.0.1:{ports['kafka']}", "engine-alerts"
    hook, am_hook = HookReceiver(), HookReceiver()     # ours, and Alertmanager's receiver
    am = Alertmanager(tmp_path, am_hook)
    smtp = SmtpServer()
    rules = tmp_path / "rules.yaml"
    rules.write_text(f"notifiers:\n  smtp: {{host: 127.0.0.1, port: {smtp.port}, from: ns@example.org, "
                     f"to: [noc@example.org]}}\n")
    opts = ENGINE_OPTS + ["--snapshot-interval", "1", "--rules", str(rules), "--alert-webhook", hook.url + "/hook",
                          "--alertmanager", am.url]
    recovery = str(tmp_path / "recovery")
    try:
        make_topic(boot, topic)
        from tests.conftest import reference_windows
        ref = reference_windows(pcap, 10)
        engines = run_engine_cluster(boot, topic, ports, opts, processes=1, recovery=recovery)
        started += engines
        wait_until_consuming(boot, topic)
        hook.down()                              # the webhook receiver is away for the first 10 s
        collector = start_collector(boot, topic, pcap)
        started.append(collector)
        down_since = time.monotonic()
        webhook = lambda: [p[2] for p in hook.posts if p[0] == "/hook"]
        wait_for(lambda: smtp.messages, 120, "the first alert by mail")
        # Kill between deliveries: a kill inside one (after the server took the mail, before the
        # delivered-log has it) re-sends that one after the restart, the documented gap that
        # receivers close with the Message-ID / X-NetSpectra-Event-Id. Mails come in bursts as
        # windows close; half a second without one is between bursts.
        quiet_since, seen = time.monotonic(), len(smtp.messages)
        while time.monotonic() - quiet_since < 0.5:
            time.sleep(0.05)
            if len(smtp.messages) != seen:
                quiet_since, seen = time.monotonic(), len(smtp.messages)
        stop(engines, signal.SIGKILL)            # mid-stream, alerts already delivered
        assert collector.poll() is None, "the kill came too late to be mid-stream"
        engines = run_engine_cluster(boot, topic, ports, opts, processes=1, recovery=recovery)
        started += engines
        time.sleep(max(0.0, 10 - (time.monotonic() - down_since)))
        assert webhook() == []
        hook.up()
        finish_exact(collector, engines, ports, topic, ref)
        wait_for(lambda: len({b["alert"]["id"] for b in webhook()}) >= len(planted), 60, "the webhook deliveries")

        # every notifier: each planted attack once, as firing, and nothing else that looks like an attack
        fired = collections.Counter(_key(b["alert"]["detector"], b["alert"]["entity"]) for b in webhook()
                                    if b["change"] == "firing" and b["alert"]["detector"] in SCAN_OR_FLOOD)
        assert set(fired) == planted and set(fired.values()) == {1}, fired
        wait_for(lambda: len([m for m in smtp.messages if "firing" in m["Subject"]]) >= len(planted), 30, "the mails")
        wait_for(lambda: len(_am_firing(am_hook)) >= len(planted), 60, "Alertmanager's notifications")
        time.sleep(2)                            # anything duplicated would have arrived by now
        mails = collections.Counter(m["Subject"] for m in smtp.messages if "firing" in m["Subject"])
        assert len(mails) == len(planted) and set(mails.values()) == {1}, mails
        am_fired = collections.Counter(_am_firing(am_hook))
        assert len(am_fired) >= len(planted) and set(am_fired.values()) == {1}, am_fired
        assert {_key(a["labels"]["detector"], {k: a["labels"][k] for k in ("src", "dst", "port", "proto")
                                                if k in a["labels"]}) for a in am.alerts()} >= planted

        # the stores: ClickHouse's alerts table and Redis's alert state hold the same alerts
        from schemas.credentials import clickhouse_client, redis_client
        rows = clickhouse_client(f"127.0.0.1:{ports['clickhouse']}").execute(
            "SELECT detector, entity, state FROM netspectra.alerts FINAL WHERE source = %(s)s", {"s": topic})
        in_ch = {_key(d, json.loads(e)) for d, e, st in rows if d in SCAN_OR_FLOOD}
        assert in_ch == planted
        r = redis_client(f"127.0.0.1:{ports['redis']}", decode_responses=True)
        in_redis = {_key(a["detector"], a["entity"]) for a in map(json.loads, r.hgetall(f"ns:{topic}:alerts").values())
                    if a["detector"] in SCAN_OR_FLOOD}
        assert in_redis == planted
    finally:
        smtp.stop()
        am.stop()
        hook.down()
        am_hook.down()


def _am_firing(hook) -> list[str]:
    """alert_id of each alert in each firing notification Alertmanager sent its receiver."""
    return [a["labels"]["alert_id"] for p in hook.posts if p[0] == "/am" for a in p[2]["alerts"]
            if a["status"] == "firing"]
