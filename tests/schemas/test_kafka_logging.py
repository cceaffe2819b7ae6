"""librdkafka's log lines: each kind (its text without numbers) once per period, then a count."""
from __future__ import annotations

import logging

from schemas import kafka_logging
from schemas.kafka_logging import RepeatLimit


def record(text: str, level=logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord("netspectra.kafka", level, __file__, 1, "%s [%s] %s",
                             ("FAIL", "rdkafka#producer-1", text), None)


def test_a_kind_passes_once_per_period_then_with_the_count_held_back(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(kafka_logging.time, "monotonic", lambda: now[0])
    f = RepeatLimit(every=60)
    refused = [record(f"127.0.0.1:{p}/bootstrap: Connect failed: Connection refused (after {p % 7}ms)")
               for p in range(9000, 9100)]
    passed = [r for r in refused if f.filter(r)]
    assert len(passed) == 1
    assert f.filter(record("another kind of line"))          # kinds are apart
    now[0] += 61
    again = record("127.0.0.1:9999/bootstrap: Connect failed: Connection refused (after 3ms)")
    assert f.filter(again) and again.getMessage().endswith("(99 more like it held back)")
    assert not f.filter(record("127.0.0.1:1/bootstrap: Connect failed: Connection refused (after 0ms)"))
