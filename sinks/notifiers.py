"""Alert notifications: a generic webhook, Prometheus Alertmanager (API v2) and e-mail (SMTP).

Each notifier has its own outbox and thread, so a notifier that is down never blocks the engine's
windows or the other notifiers: its messages wait (bounded; beyond `max_pending` the oldest is
dropped and counted) and are retried with exponential backoff until it is back.

A notification goes out once per state change of an alert (`firing`, `resolved`). With an `ai`
entry (the API's AI gateway, docs/ai.md), a firing alert's notification is sent first and its
analysis follows as a second message when the gateway has it (`analysis`: a webhook POST with
the text in `analysis`, a mail in reply to the first; Alertmanager: the alert posted again with
an `analysis` annotation, kept on every later post until it resolves or the engine restarts):
nothing waits for the LLM. Alertmanager also gets a firing alert's updates, at most once a
minute, because it expires an alert that is not re-sent (its `endsAt`); it de-duplicates on
labels itself, so its receivers still hear once (an annotation added later shows in its UI and
API, and in the notifications it sends after, not in one sent before).

Across engine restarts: after a crash the engine resumes from its last recovery snapshot and
replays the windows since, so the same alert changes come again (same ids, flows/alerts.py).
Each outbox appends every delivered (alert id, change) to a log in the engine's state directory
and skips what the log holds, so a change already delivered is not delivered again. The one gap:
a crash between a receiver's 2xx and the log write (microseconds) re-sends that one message;
webhooks carry `X-NetSpectra-Event-Id` (alert id and change) so a receiver can drop it too.
"""
from __future__ import annotations

import collections
import hashlib
import hmac
import json
import logging
import os
import threading
import time
from pathlib import Path

from schemas import metrics as M
from schemas.settings import API_TOKEN_ENV
from schemas.times import iso_utc
from sinks.retry import Backoff

log = logging.getLogger(__name__)

ALERTMANAGER_REFRESH_S = 60.0


def summary(alert, source: str) -> str:
    entity = " ".join(f"{k}={v}" for k, v in alert.entity.items())
    verb = "resolved" if alert.state == "resolved" else "firing"
    return (f"[{alert.severity}] {alert.rule} {verb}: {entity}: {alert.value:,} "
            f"(threshold {alert.threshold:,}) on {source}")


class Webhook:
    name = "webhook"
    wants_updates = False
    follows_up = True           # sends an alert's analysis when there is one
    keeps_analysis = False      # every later send of the alert carries it again (Alertmanager)

    def __init__(self, conf: dict):
        self.url = conf["url"]
        self.timeout = float(conf.get("timeout") or 5)
        env = conf.get("secret_env")
        self.secret = os.environ.get(env, "").encode() if env else b""

    def send(self, change: str, alert, source: str, client, analysis: str = "") -> None:
        doc = {"source": source, "change": change, "summary": summary(alert, source), "alert": alert.to_dict()}
        if analysis:
            doc["analysis"] = analysis
        body = json.dumps(doc, sort_keys=True).encode()
        headers = {"Content-Type": "application/json", "X-NetSpectra-Event-Id": f"{alert.id}:{change}"}
        if self.secret:
            headers["X-NetSpectra-Signature"] = "sha256=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        client.post(self.url, content=body, headers=headers, timeout=self.timeout).raise_for_status()


class Alertmanager:
    name = "alertmanager"
    wants_updates = True
    follows_up = True
    keeps_analysis = True       # each post replaces the alert's annotations

    def __init__(self, conf: dict):
        self.url = conf["url"].rstrip("/") + "/api/v2/alerts"
        self.timeout = float(conf.get("timeout") or 5)

    def send(self, change: str, alert, source: str, client, analysis: str = "") -> None:
        labels = {"alertname": alert.rule, "severity": alert.severity, "detector": alert.detector,
                  "source": source, "alert_id": alert.id, **{k: str(v) for k, v in alert.entity.items()}}
        now = time.time()
        # Alertmanager's clock is the wall clock: a firing alert holds for 5 minutes past this send
        ends = now if alert.state == "resolved" else now + 300
        body = [{"labels": labels,
                 "annotations": {"summary": summary(alert, source),
                                 "value": str(alert.value), "threshold": str(alert.threshold),
                                 "evidence": json.dumps(alert.evidence, sort_keys=True),
                                 "first_seen": iso_utc(alert.first_seen), "last_seen": iso_utc(alert.last_seen),
                                 **({"analysis": analysis} if analysis else {})},
                 "startsAt": iso_utc(min(alert.first_seen / 1e9, now), ns=False), "endsAt": iso_utc(ends, ns=False)}]
        client.post(self.url, json=body, timeout=self.timeout).raise_for_status()


class Smtp:
    name = "smtp"
    wants_updates = False
    follows_up = True
    keeps_analysis = False

    def __init__(self, conf: dict):
        self.conf = conf

    def send(self, change: str, alert, source: str, client, analysis: str = "") -> None:
        import html
        from email.message import EmailMessage

        c = self.conf
        msg = EmailMessage()
        msg["Subject"] = ("Analysis: " if analysis else "") + summary(alert, source)
        msg["From"] = c["from"]
        msg["To"] = ", ".join(c["to"])
        msg["Message-ID"] = f"<{alert.id}.{change}@netspectra>"
        if analysis:                # a reply to the firing notification, in the same thread
            msg["In-Reply-To"] = msg["References"] = f"<{alert.id}.firing@netspectra>"
            msg.set_content(analysis + f"\n\nalert id {alert.id}\n")
            msg.add_alternative("<html><body><h3>" + html.escape(msg["Subject"]) + "</h3><pre style=\"white-space: "
                                "pre-wrap\">" + html.escape(analysis) + "</pre></body></html>", subtype="html")
        else:
            rows = [("rule", alert.rule), ("severity", alert.severity), ("state", alert.state),
                    *((k, v) for k, v in alert.entity.items()), ("value", f"{alert.value:,}"),
                    ("threshold", f"{alert.threshold:,}"), ("first seen", iso_utc(alert.first_seen)),
                    ("last seen", iso_utc(alert.last_seen)), ("evidence", json.dumps(alert.evidence, sort_keys=True))]
            msg.set_content("\n".join(f"{k}: {v}" for k, v in rows) + f"\n\nalert id {alert.id}\n")
            msg.add_alternative("<html><body><h3>" + html.escape(summary(alert, source)) + "</h3><table>"
                                + "".join(f"<tr><th align=left>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                                          for k, v in rows) + "</table></body></html>", subtype="html")
        self._deliver(msg)

    def _deliver(self, msg) -> None:
        import smtplib
        c = self.conf
        timeout = float(c.get("timeout") or 10)
        with smtplib.SMTP(c["host"], int(c.get("port") or 25), timeout=timeout) as s:
            if c.get("starttls"):
                s.starttls()
            if c.get("username"):
                s.login(c["username"], os.environ.get(c.get("password_env") or "", ""))
            s.send_message(msg)


KINDS = {"webhook": Webhook, "alertmanager": Alertmanager, "smtp": Smtp}


class Analyst:
    """Asks the API's AI gateway (POST /v1/ai/analyze) for each firing alert's analysis on a
    thread of its own, once per alert however many notifiers follow up, and hands the text to
    them. The alert may reach the API's store after its notification: a miss (404), the gateway
    down or failing are retried with backoff up to `attempts` times, then dropped and counted."""

    def __init__(self, conf: dict):
        self.url = conf["url"].rstrip("/") + "/v1/ai/analyze"
        self.token = os.environ.get(conf.get("token_env") or API_TOKEN_ENV, "")
        self.timeout = float(conf.get("timeout") or 120)
        self.attempts = int(conf.get("attempts") or 5)
        self.pending: collections.deque = collections.deque()
        self.waiting: dict[str, list] = {}
        self.cond = threading.Condition()
        self.done = self.failed = 0
        self._warned: set = set()
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True, name="notify-analyst")
        self.thread.start()

    def request(self, alert, ready) -> None:
        """`ready(alert, text)` once the analysis is there (never, if it cannot be had)."""
        with self.cond:
            if alert.id in self.waiting:
                self.waiting[alert.id].append(ready)
                return
            self.waiting[alert.id] = [ready]
            self.pending.append((alert, 0))
            self.cond.notify()

    def _run(self) -> None:
        import httpx

        backoff = Backoff(first=1.0, cap=60.0)
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        with httpx.Client(timeout=self.timeout) as client:
            while True:
                with self.cond:
                    while not self.pending and not self._stop:
                        self.cond.wait()
                    if self._stop:
                        return
                    alert, tries = self.pending.popleft()
                try:
                    r = client.post(self.url, json={"alert_id": alert.id}, headers=headers)
                    if r.status_code != 200:
                        raise RuntimeError(f"{r.status_code}: {r.json().get('error', '') if r.content else ''}")
                    text = r.json()["text"]
                except Exception as e:           # noqa: BLE001 - the gateway away or failing: retry, then give up
                    kind = str(e).split(":")[0]
                    if kind not in self._warned:
                        self._warned.add(kind)
                        log.warning("analyst: no analysis of alert %s yet (%s); retrying (said once per kind)",
                                    alert.id, e)
                    with self.cond:
                        if tries + 1 < self.attempts:
                            self.pending.append((alert, tries + 1))
                        else:
                            self.failed += 1
                            self.waiting.pop(alert.id, None)
                            M.inc("netspectra_notifier_analyses_failed_total")
                        self.cond.wait(backoff.delay())
                    continue
                backoff.reset()
                self.done += 1
                with self.cond:
                    callbacks = self.waiting.pop(alert.id, [])
                for ready in callbacks:
                    ready(alert, text)

    def stop(self) -> None:
        with self.cond:
            self._stop = True
            self.cond.notify()
        self.thread.join(1)


class Outbox:
    """One notifier's queue, delivery thread and delivered-log."""

    def __init__(self, notifier, source: str, state_dir: str | None = None, max_pending: int = 10_000,
                 analyst: Analyst | None = None):
        self.n, self.source, self.max_pending = notifier, source, max_pending
        self.analyst = analyst if getattr(notifier, "follows_up", False) else None
        self.analyses: dict[str, str] = {}      # alert id -> its analysis, until sent (kept: until resolved)
        self.pending: collections.deque = collections.deque()
        self.cond = threading.Condition()
        self.sent = self.failures = self.dropped = self.skipped = 0
        for what in ("sent", "failures", "dropped"):
            M.touch(f"netspectra_notifier_{what}_total", notifier=notifier.name)
        M.touch("netspectra_notifier_analyses_failed_total")
        self.last_error = ""
        self.delivered: set[str] = set()
        self._refreshed: dict[str, float] = {}
        self.log_path = Path(state_dir) / f"notified-{notifier.name}.log" if state_dir else None
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            if self.log_path.exists():
                self.delivered = set(self.log_path.read_text().split())
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True, name=f"notify-{notifier.name}")
        self.thread.start()

    def submit(self, events) -> None:
        with self.cond:
            for ev in events:
                if ev.change == "update":
                    if not self.n.wants_updates:
                        continue
                    last = self._refreshed.get(ev.alert.id, 0.0)
                    if time.monotonic() - last < ALERTMANAGER_REFRESH_S:
                        continue
                elif f"{ev.alert.id}:{ev.change}" in self.delivered:
                    self.skipped += 1          # delivered before a restart: the replay brings it again
                    continue
                self._refreshed[ev.alert.id] = time.monotonic()
                self.pending.append(ev)
                if len(self.pending) > self.max_pending:
                    self.pending.popleft()
                    self.dropped += 1
                    M.inc("netspectra_notifier_dropped_total", notifier=self.n.name)
                    if self.dropped == 1:
                        log.error("%s: %d notifications waiting; dropping the oldest (counted)", self.n.name, self.max_pending)
            self.cond.notify()

    def _run(self) -> None:
        import httpx

        backoff = Backoff(first=0.5, cap=30.0)
        with httpx.Client() as client:
            while True:
                with self.cond:
                    while not self.pending and not self._stop:
                        self.cond.wait()
                    if self._stop and not self.pending:
                        return
                    ev = self.pending[0]
                carries = ev.change == "analysis" or (self.n.keeps_analysis and ev.change != "resolved")
                analysis = self.analyses.get(ev.alert.id, "") if carries else ""
                try:
                    self.n.send(ev.change, ev.alert, self.source, client, **({"analysis": analysis} if analysis else {}))
                except Exception as e:           # a receiver down, refusing, timing out: retry
                    self.failures += 1
                    M.inc("netspectra_notifier_failures_total", notifier=self.n.name)
                    if self.failures == 1 or str(e) != self.last_error:
                        log.warning("%s: delivery failed (%s); retrying with backoff", self.n.name, e)
                    self.last_error = str(e)
                    with self.cond:
                        self.cond.wait(backoff.delay())
                        if self._stop:
                            return
                    continue
                backoff.reset()
                self.sent += 1
                M.inc("netspectra_notifier_sent_total", notifier=self.n.name)
                if ev.change != "update":
                    self._record(f"{ev.alert.id}:{ev.change}")
                if ev.change == "firing" and self.analyst is not None:
                    self.analyst.request(ev.alert, self._analysed)
                if (ev.change == "analysis" and not self.n.keeps_analysis) or ev.change == "resolved":
                    self.analyses.pop(ev.alert.id, None)
                with self.cond:
                    if self.pending and self.pending[0] is ev:
                        self.pending.popleft()

    def _analysed(self, alert, text: str) -> None:
        from schemas.alerts import AlertEvent
        self.analyses[alert.id] = text
        self.submit([AlertEvent("analysis", alert)])

    def _record(self, key: str) -> None:
        self.delivered.add(key)
        if self.log_path is not None:
            with open(self.log_path, "a") as f:
                f.write(key + "\n")
                f.flush()
                os.fsync(f.fileno())

    def stop(self, timeout: float = 5.0) -> None:
        """Deliver what is pending for up to `timeout` seconds, then stop."""
        deadline = time.monotonic() + timeout
        while self.pending and time.monotonic() < deadline and self.thread.is_alive():
            time.sleep(0.05)
        with self.cond:
            self._stop = True
            self.cond.notify()
        self.thread.join(1)
        if self.analyst is not None:
            self.analyst.stop()

    def stats(self) -> dict:
        return {"sent": self.sent, "failures": self.failures, "dropped": self.dropped,
                "pending": len(self.pending), "skipped_as_delivered": self.skipped}


def outboxes(conf: dict, source: str, state_dir: str | None) -> list[Outbox]:
    """An outbox per configured notifier (flows/notify_config.py); with `ai`, one analyst for all."""
    analyst = Analyst(conf["ai"]) if "ai" in conf else None
    return [Outbox(KINDS[kind](c), source, state_dir, analyst=analyst,
                   **({"max_pending": c["max_pending"]} if c.get("max_pending") else {}))
            for kind, c in conf.items() if kind in KINDS]
