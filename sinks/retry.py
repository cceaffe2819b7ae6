"""The one retry policy of every writer (ClickHouse, Redis, notifiers): exponential backoff from
`first` to at most `cap` seconds, back to `first` after a success. A store that is away costs
latency; nothing is dropped for it except what a writer's bounded backlog says it drops (counted)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Backoff:
    first: float = 0.2
    cap: float = 5.0
    factor: float = 2.0
    _next: float = 0.0

    def delay(self) -> float:
        """The wait before the next attempt; each call waits longer, up to `cap`."""
        d = self._next or self.first
        self._next = min(d * self.factor, self.cap)
        return d

    def reset(self) -> None:
        self._next = 0.0
