"""Times as text: RFC 3339 in UTC, the form every log line, notification and answer uses."""
from __future__ import annotations

from datetime import datetime, timezone


def iso_utc(ns_or_s: float, ns: bool = True) -> str:
    """ns (or seconds) since the epoch -> e.g. 2026-11-30T19:52:00Z."""
    t = ns_or_s / 1e9 if ns else ns_or_s
    return datetime.fromtimestamp(t, timezone.utc).isoformat().replace("+00:00", "Z")
