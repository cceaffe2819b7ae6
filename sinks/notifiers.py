"""Alert notifications: a generic webhook, Prometheus Alertmanager (API v2) and e-mail (SMTP).

Each notifier has its own outbox and thread, so a notifier that is down never blocks the engine's
windows or the other notifiers: its messages wait (bounded; beyond `max_pending` the oldest is
dropped and counted) and are retried with exponential backoff until it is back.

A notification goes out once per state change of an alert (`firing`, `resolved`). Alertmanager
also gets a firing alert's updates, at most once a minute, because it expires an alert that is
not re-sent (its `endsAt`); it de-duplicates on labels itself, so its receivers still hear once.

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

    def __init__(self, conf: dict):
        self.url = conf["url"]
        self.timeout = float(conf.get("timeout") or 5)
        env = conf.get("secret_env")
        self.secret = os.environ.get(env, "").encode() if env else b""

    def send(self, change: str, alert, source: str, client) -> None:
        body = json.dumps({"source": source, "change": change, "summary": summary(alert, source),
                           "alert": alert.to_dict()}, sort_keys=True).encode()
        headers = {"Content-Type": "application/json", "X-NetSpectra-Event-Id": f"{alert.id}:{change}"}
        if self.secret:
            headers["X-NetSpectra-Signature"] = "sha256=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        client.post(self.url, content=body, headers=headers, timeout=self.timeout).raise_for_status()


class Alertmanager:
    name = "alertmanager"
    wants_updates = True

    def __init__(self, conf: dict):
        self.url = conf["url"].rstrip("/") + "/api/v2/alerts"
        self.timeout = float(conf.get("timeout") or 5)

    def send(self, change: str, alert, source: str, client) -> None:
        labels = {"alertname": alert.rule, "severity": alert.severity, "detector": alert.detector,
                  "source": source, "alert_id": alert.id, **{k: str(v) for k, v in alert.entity.items()}}
        now = time.time()
        # Alertmanager's clock is the wall clock: a firing alert holds for 5 minutes past this send
        ends = now if alert.state == "resolved" else now + 300
        body = [{"labels": labels,
                 "annotations": {"summary": summary(alert, source),
                                 "value": str(alert.value), "threshold": str(alert.threshold),
                                 "evidence": json.dumps(alert.evidence, sort_keys=True),
                                 "first_seen": iso_utc(alert.first_seen), "last_seen": iso_utc(alert.last_seen)},
                 "startsAt": iso_utc(min(alert.first_seen / 1e9, now), ns=False), "endsAt": iso_utc(ends, ns=False)}]
        client.post(self.url, json=body, timeout=self.timeout).raise_for_status()


class Smtp:
    name = "smtp"
    wants_updates = False

    def __init__(self, conf: dict):
        self.conf = conf

    def send(self, change: str, alert, source: str, client) -> None:
        import html
        import smtplib
        from email.message import EmailMessage

        c = self.conf
        msg = EmailMessage()
        msg["Subject"] = summary(alert, source)
        msg["From"] = c["from"]
        msg["To"] = ", ".join(c["to"])
        msg["Message-ID"] = f"<{alert.id}.{change}@netspectra>"
        rows = [("rule", alert.rule), ("severity", alert.severity), ("state", alert.state),
                *((k, v) for k, v in alert.entity.items()), ("value", f"{alert.value:,}"),
                ("threshold", f"{alert.threshold:,}"), ("first seen", iso_utc(alert.first_seen)),
                ("last seen", iso_utc(alert.last_seen)), ("evidence", json.dumps(alert.evidence, sort_keys=True))]
        msg.set_content("\n".join(f"{k}: {v}" for k, v in rows) + f"\n\nalert id {alert.id}\n")
        msg.add_alternative("<html><body><h3>" + html.escape(summary(alert, source)) + "</h3><table>"
                            + "".join(f"<tr><th align=left>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                                      for k, v in rows) + "</table></body></html>", subtype="html")
        timeout = float(c.get("timeout") or 10)
        with smtplib.SMTP(c["host"], int(c.get("port") or 25), timeout=timeout) as s:
            if c.get("starttls"):
                s.starttls()
            if c.get("username"):
                s.login(c["username"], os.environ.get(c.get("password_env") or "", ""))
            s.send_message(msg)


KINDS = {"webhook": Webhook, "alertmanager": Alertmanager, "smtp": Smtp}


class Outbox:
    """One notifier's queue, delivery thread and delivered-log."""

    def __init__(self, notifier, source: str, state_dir: str | None = None, max_pending: int = 10_000):
        self.n, self.source, self.max_pending = notifier, source, max_pending
        self.pending: collections.deque = collections.deque()
        self.cond = threading.Condition()
        self.sent = self.failures = self.dropped = self.skipped = 0
        for what in ("sent", "failures", "dropped"):
            M.touch(f"netspectra_notifier_{what}_total", notifier=notifier.name)
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
                try:
                    self.n.send(ev.change, ev.alert, self.source, client)
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
                with self.cond:
                    if self.pending and self.pending[0] is ev:
                        self.pending.popleft()

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

    def stats(self) -> dict:
        return {"sent": self.sent, "failures": self.failures, "dropped": self.dropped,
                "pending": len(self.pending), "skipped_as_delivered": self.skipped}


def outboxes(conf: dict, source: str, state_dir: str | None) -> list[Outbox]:
    """An outbox per configured notifier (flows/notify_config.py)."""
    return [Outbox(KINDS[kind](c), source, state_dir, **({"max_pending": c["max_pending"]} if c.get("max_pending") else {}))
            for kind, c in conf.items()]
