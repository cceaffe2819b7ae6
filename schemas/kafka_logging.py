"""librdkafka's own log lines through Python logging (logger `netspectra.kafka`), not printed by
the C library on stderr: each kind of line (its text with the numbers left out: ports, times,
counts) once per REPEAT_S, then how many more like it were held back.

A broker that is away makes every client log a failed connection for every retry (hundreds of
lines a minute); an operator needs the first one and a count. Every Kafka client of the project
takes its configuration through `with_logger`. The lines are served when the client is polled,
which every one of them is, all the time.
"""
from __future__ import annotations

import logging
import re
import threading
import time

REPEAT_S = 60.0
KAFKA_LOG = logging.getLogger("netspectra.kafka")
_NUMBERS = re.compile(r"\d+")


class RepeatLimit(logging.Filter):
    """Passes a line whose kind was not seen in the last `every` seconds, with the count held back."""

    def __init__(self, every: float = REPEAT_S):
        super().__init__()
        self.every = every
        self.seen: dict[tuple, list] = {}      # kind -> [when last passed, held back since]
        self.lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        kind = (record.levelno, _NUMBERS.sub("#", record.getMessage()))
        now = time.monotonic()
        with self.lock:
            last = self.seen.get(kind)
            if last is not None and now - last[0] < self.every:
                last[1] += 1
                return False
            held = last[1] if last else 0
            self.seen[kind] = [now, 0]
            if len(self.seen) > 1000:          # many kinds: forget the oldest
                for k in sorted(self.seen, key=lambda k: self.seen[k][0])[:500]:
                    del self.seen[k]
        if held:
            record.msg, record.args = f"{record.getMessage()} ({held} more like it held back)", ()
        return True


KAFKA_LOG.addFilter(RepeatLimit())


def with_logger(conf: dict) -> dict:
    """A client configuration whose log lines go to KAFKA_LOG."""
    return {**conf, "logger": KAFKA_LOG}
