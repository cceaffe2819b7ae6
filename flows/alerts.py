"""The alert lifecycle: findings of consecutive windows -> alerts that fire, update and resolve.

One alert per (rule, entity) firing, however many windows it lasts: it fires once the condition
held for `for` consecutive windows, is updated (not repeated) while it holds, and resolves after
`resolve_after` windows without it. After a resolve, the same rule and entity cannot fire again
for `cooldown` seconds (a flapping entity is held). Its id is a hash of rule, entity and the first
window of the streak that fired it, so a replayed window (recovery, a re-run) yields the same id.

Windows are taken in event-time order; a window not newer than the newest seen (a revision or
an out-of-order merge) does not move the lifecycle and is counted in `stale_windows`.
Pure: the engine keeps an AlertBook in its state (recovery snapshots) and `analyze` runs one
over the capture's windows.
"""
from __future__ import annotations

import collections
from dataclasses import dataclass, replace

from flows.detect import Baselines, Finding, WindowFindings, detect
from flows.rules import Rule, RuleSet
from schemas.alerts import FIRING, RESOLVED, Alert, AlertEvent

MAX_TRACKED = 100_000        # (rule, entity) streaks kept at once; the stalest go first
RECENT_CHANGES = 10_000      # state changes kept for re-delivery after a restart


def alert_id(rule: str, entity_key: str, first_window: int) -> str:
    import hashlib      # here: OpenSSL's load is 4 ms of a small capture's start-up
    return hashlib.sha256(f"{rule}|{entity_key}|{first_window}".encode()).hexdigest()[:20]


@dataclass
class _Track:
    streak: int = 0
    streak_start: int = 0
    last_hit: int = -1
    alert: Alert | None = None
    quiet_until: int = 0         # ns: cooldown after a resolve


class AlertBook:
    def __init__(self, rules: RuleSet, window_s: float):
        self.rules = {r.name: r for r in rules.rules}
        self.window_ns = int(window_s * 1e9)
        self.window_s = window_s
        self.tracks: dict[tuple[str, str], _Track] = {}
        self.baselines = Baselines()
        self.newest = None
        self.stale_windows = 0
        self.suppressed = 0          # findings held back by a cooldown
        # The newest state changes, kept in the snapshots: a resumed engine hands them to the
        # notifiers again, whose delivered-logs drop what already went out. Without this, a
        # change made before a snapshot but still waiting in an outbox at a crash (its receiver
        # down) would never be delivered: the replayed windows bring only updates.
        self.recent: collections.deque = collections.deque(maxlen=RECENT_CHANGES)

    def observe(self, wf: WindowFindings) -> list[AlertEvent]:
        """The alert changes one window brings."""
        if self.newest is not None and wf.start <= self.newest:
            self.stale_windows += 1
            return []
        self.newest = wf.start
        findings = list(wf.findings)
        for name, obs in wf.observations.items():
            rule = self.rules.get(name)
            if rule is not None:
                findings.extend(self.baselines.judge(rule, obs, wf.start, self.window_s))
        events = []
        hit = set()
        for f in findings:
            rule = self.rules.get(f.rule)
            if rule is None:
                continue
            k = (f.rule, f.key)
            if k in hit:
                continue
            hit.add(k)
            tr = self.tracks.get(k)
            if tr is None:
                tr = self.tracks[k] = _Track()
            follows = self.window_ns > 0 and tr.last_hit == wf.start - self.window_ns
            tr.streak, tr.streak_start = (tr.streak + 1, tr.streak_start) if follows else (1, wf.start)
            tr.last_hit = wf.start
            ev = self._on_hit(tr, rule, f, wf)
            if ev is not None:
                events.append(ev)
        for k, tr in self.tracks.items():
            if tr.alert is not None and k not in hit:
                rule = self.rules.get(k[0])
                missed = (wf.start - tr.last_hit) // self.window_ns - 1 if self.window_ns else 0
                # windows without the condition: the skipped ones (no traffic) and this one; a rule
                # removed from the rules file (at a restart) resolves its alerts at once
                if rule is None or missed + 1 >= rule.resolve_after:
                    events.append(self._resolve(tr, rule, wf))
        self._prune(wf.start)
        self.recent.extend(e for e in events if e.notify)
        return events

    def _on_hit(self, tr: _Track, rule: Rule, f: Finding, wf: WindowFindings) -> AlertEvent | None:
        a = tr.alert
        if a is not None:
            tr.alert = replace(a, value=f.value, threshold=f.threshold, window_start=wf.start, window_end=wf.end,
                               last_seen=wf.end, windows=a.windows + 1, evidence=f.evidence, version=a.version + 1)
            return AlertEvent("update", tr.alert)
        if tr.streak < rule.for_windows:
            return None
        if wf.start < tr.quiet_until:
            self.suppressed += 1
            return None
        tr.alert = Alert(alert_id(rule.name, f.key, tr.streak_start), rule.name, rule.detector, rule.severity,
                         f.entity, f.value, f.threshold, wf.start, wf.end, tr.streak_start, wf.end, FIRING, 1,
                         evidence=f.evidence)
        return AlertEvent("firing", tr.alert)

    def _resolve(self, tr: _Track, rule: Rule | None, wf: WindowFindings) -> AlertEvent:
        a = replace(tr.alert, state=RESOLVED, resolved_at=wf.end, version=tr.alert.version + 1)
        tr.alert = None
        tr.streak = 0
        tr.quiet_until = wf.end + int(rule.cooldown_s * 1e9) if rule is not None else 0
        return AlertEvent("resolved", a)

    def _prune(self, now: int) -> None:
        """Drop tracks with nothing left to remember: not firing, streak broken, cooldown over."""
        span = self.window_ns or 1
        dead = [k for k, tr in self.tracks.items()
                if tr.alert is None and tr.quiet_until <= now and tr.last_hit < now - span]
        for k in dead:
            del self.tracks[k]
        if len(self.tracks) > MAX_TRACKED:
            for k, _ in sorted(((k, tr.last_hit) for k, tr in self.tracks.items() if tr.alert is None),
                               key=lambda x: x[1])[:len(self.tracks) - MAX_TRACKED]:
                del self.tracks[k]

    def firing(self) -> list[Alert]:
        return [tr.alert for tr in self.tracks.values() if tr.alert is not None]

    def copy(self) -> "AlertBook":
        b = AlertBook.__new__(AlertBook)
        b.rules, b.window_ns, b.window_s = self.rules, self.window_ns, self.window_s
        b.tracks = {k: replace(tr) for k, tr in self.tracks.items()}
        b.baselines = self.baselines.copy()
        b.newest, b.stale_windows, b.suppressed = self.newest, self.stale_windows, self.suppressed
        b.recent = collections.deque(self.recent, maxlen=RECENT_CHANGES)
        return b


class CaptureAlerts:
    """Alerts over a capture's windows for `analyze`: windows may come in any order (several
    workers), so their findings are kept and the lifecycle runs over them in time order at the end."""

    def __init__(self, rules: RuleSet, window_s: float):
        self.rules, self.window_s = rules, window_s
        self.found: list[WindowFindings] = []
        self._done: tuple[int, list[Alert]] | None = None     # (windows seen, their alerts)

    def add(self, res) -> None:
        self.found.append(detect(res, self.rules.rules, self.window_s))

    def alerts(self) -> list[Alert]:
        """Every alert's last state, in the order they fired."""
        if self._done is not None and self._done[0] == len(self.found):
            return self._done[1]
        book = AlertBook(self.rules, self.window_s)
        last: dict[str, Alert] = {}
        for wf in sorted(self.found, key=lambda w: w.start):
            for ev in book.observe(wf):
                last[ev.alert.id] = ev.alert
        out = sorted(last.values(), key=lambda a: (a.first_seen, a.rule, a.id))
        self._done = (len(self.found), out)
        return out
