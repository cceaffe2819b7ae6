"""Notifiers against real receivers on 127.0.0.1: an HTTP webhook receiver, Debian's
Alertmanager, an SMTP server (aiosmtpd). Once per state change, retried while the receiver is
down, not repeated after a restart."""
from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import replace

from schemas.alerts import Alert, AlertEvent
from sinks.notifiers import Alertmanager as AmNotifier
from sinks.notifiers import Outbox, Smtp, Webhook
from tests.support import Alertmanager, HookReceiver, SmtpServer, wait_for

NOW_NS = int(time.time() * 1e9)


def _alert(state="firing", version=1, value=5000.0) -> Alert:
    return Alert("a1b2c3", "syn_flood", "syn_flood", "critical", {"dst": "10.10.10.10"}, value, 1000.0,
                 NOW_NS, NOW_NS + 10**10, NOW_NS, NOW_NS + 10**10, state, version,
                 resolved_at=NOW_NS + 2 * 10**10 if state == "resolved" else 0,
                 evidence={"sources": 900}, version=version)


FIRING, UPDATE, RESOLVED = (AlertEvent("firing", _alert()), AlertEvent("update", _alert(version=2, value=6000.0)),
                            AlertEvent("resolved", _alert("resolved", 3)))


def test_webhook_once_per_change_signed(monkeypatch):
    hook = HookReceiver()
    monkeypatch.setenv("HOOK_SECRET", "s3cret")
    box = Outbox(Webhook({"url": hook.url + "/hook", "secret_env": "HOOK_SECRET"}), "kafka-topic")
    try:
        box.submit([FIRING, UPDATE, UPDATE, RESOLVED])
        wait_for(lambda: len(hook.posts) >= 2, 20, "two deliveries")
        time.sleep(0.5)
        assert [p[2]["change"] for p in hook.posts] == ["firing", "resolved"]       # updates are not notified
        path, headers, body, raw = hook.posts[0]
        assert path == "/hook" and body["alert"]["entity"] == {"dst": "10.10.10.10"} and body["source"] == "kafka-topic"
        assert headers["X-NetSpectra-Event-Id"] == "a1b2c3:firing"
        want = "sha256=" + hmac.new(b"s3cret", raw, hashlib.sha256).hexdigest()
        assert headers["X-NetSpectra-Signature"] == want
    finally:
        box.stop()
        hook.down()


def test_receiver_down_then_back_gets_it_once(tmp_path):
    hook = HookReceiver()
    hook.down()
    box = Outbox(Webhook({"url": hook.url}), "src", state_dir=str(tmp_path))
    try:
        box.submit([FIRING])
        wait_for(lambda: box.failures >= 3, 30, "delivery attempts to fail")
        time.sleep(10 - 3)          # the receiver stays down about 10 s in all
        hook.up()
        wait_for(lambda: box.sent == 1, 60, "the delivery after the receiver came back")
        time.sleep(1)
        assert [p[2]["change"] for p in hook.posts] == ["firing"]
    finally:
        box.stop()
    # a restarted engine replays the change: the delivered-log holds it, nothing goes out again
    again = Outbox(Webhook({"url": hook.url}), "src", state_dir=str(tmp_path))
    try:
        again.submit([FIRING, RESOLVED])
        wait_for(lambda: again.sent == 1, 20, "the resolve to be delivered")
        time.sleep(0.5)
        assert [p[2]["change"] for p in hook.posts] == ["firing", "resolved"] and again.skipped == 1
    finally:
        again.stop()
        hook.down()


def test_a_receiver_that_stays_down_is_counted_and_blocks_nothing():
    hook = HookReceiver()
    hook.down()
    box = Outbox(Webhook({"url": hook.url, "timeout": 1}), "src", max_pending=3)
    try:
        t = time.monotonic()
        box.submit([AlertEvent("firing", replace(_alert(), id=str(i))) for i in range(5)])
        assert time.monotonic() - t < 1.0           # submit queues, never waits for the receiver
        wait_for(lambda: box.failures >= 1, 20, "a failed attempt")
        assert box.dropped == 2 and box.stats()["pending"] == 3
    finally:
        box.stop(timeout=0)


def test_alertmanager_receives_fires_and_resolves(tmp_path):
    hook = HookReceiver()
    am = Alertmanager(tmp_path, hook)
    box = Outbox(AmNotifier({"url": am.url}), "kafka-topic")
    try:
        box.submit([FIRING])
        wait_for(lambda: am.alerts(), 20, "the alert in Alertmanager")
        (a,) = am.alerts()
        assert a["labels"]["alertname"] == "syn_flood" and a["labels"]["dst"] == "10.10.10.10"
        assert a["labels"]["severity"] == "critical" and a["status"]["state"] == "active"
        assert "10.10.10.10" in a["annotations"]["summary"]
        wait_for(lambda: any(p[0] == "/am" for p in hook.posts), 30, "Alertmanager to notify its receiver")
        box.submit([RESOLVED])
        wait_for(lambda: any(p[0] == "/am" and p[2]["status"] == "resolved" for p in hook.posts), 30,
                 "Alertmanager to notify the resolve")
        firing = [p for p in hook.posts if p[0] == "/am" and p[2]["status"] == "firing"]
        assert len(firing) == 1
    finally:
        box.stop()
        am.stop()
        hook.down()


def test_smtp_mail_has_plain_and_html():
    smtp = SmtpServer()
    box = Outbox(Smtp({"host": "127.0.0.1", "port": smtp.port, "from": "ns@example.org", "to": ["noc@example.org"]}),
                 "kafka-topic")
    try:
        box.submit([FIRING, UPDATE, RESOLVED])
        wait_for(lambda: len(smtp.messages) >= 2, 20, "two mails")
        time.sleep(0.5)
        first, second = smtp.messages
        assert "syn_flood firing" in first["Subject"] and "10.10.10.10" in first["Subject"]
        assert "resolved" in second["Subject"] and len(smtp.messages) == 2
        plain = first.get_body(("plain",)).get_content()
        html = first.get_body(("html",)).get_content()
        assert "threshold: 1,000.0" in plain and "<table>" in html and "10.10.10.10" in html
    finally:
        box.stop()
        smtp.stop()


def test_an_analysis_that_cannot_be_had_is_given_up_and_blocks_nothing():
    """The `ai` entry's API is not there: the firing webhook goes out at once, the analyst tries
    `attempts` times, gives up and counts it; no second message."""
    from sinks.notifiers import outboxes
    from stack.local import free_ports
    hook = HookReceiver()
    boxes = outboxes({"webhook": {"url": hook.url + "/hook"},
                      "ai": {"url": f"http://127.0.0.1:{free_ports(1)[0]}", "attempts": 2, "timeout": 2}}, "src", None)
    try:
        boxes[0].submit([FIRING])
        wait_for(lambda: len(hook.posts) >= 1, 20, "the firing webhook")
        analyst = boxes[0].analyst
        wait_for(lambda: analyst.failed == 1, 30, "the analysis given up")
        assert [p[2]["change"] for p in hook.posts] == ["firing"] and analyst.done == 0
    finally:
        for box in boxes:
            box.stop()
        hook.down()
