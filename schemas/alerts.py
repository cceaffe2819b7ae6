"""The alert record: what detection (flows/alerts.py) produces and the sinks, notifiers and the
API store, send and serve. `to_dict()` is its JSON form everywhere (Redis, webhooks, the API)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

FIRING, RESOLVED = "firing", "resolved"


@dataclass(frozen=True)
class Alert:
    id: str
    rule: str
    detector: str
    severity: str
    entity: dict
    value: float
    threshold: float
    window_start: int            # ns: the newest window the condition held in
    window_end: int
    first_seen: int              # ns: start of the first window of the streak
    last_seen: int               # ns: end of the newest window the condition held in
    state: str
    windows: int                 # windows the condition held in while firing
    resolved_at: int = 0         # ns: end of the window the alert resolved in
    evidence: dict = field(default_factory=dict)
    version: int = 1             # grows with every change (sinks keep the newest)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class AlertEvent:
    """A change of an alert: `firing` (new), `update` (still firing, newer values), `resolved`."""
    change: str
    alert: Alert

    @property
    def notify(self) -> bool:
        """Notifiers hear of state changes only."""
        return self.change != "update"
