"""The live state's Redis keys: written by sinks/redis_state.py, read by the API.

Key layout (prefix `ns:{source}:`, source = the capture path or Kafka topic):

| key | type | content |
|---|---|---|
| `ns:{source}:window:{start_ms}` | hash | packets, bytes, flows, hosts, frames, late_packets, complete, seconds (window length), written_at; detail: JSON of protocols, ports, spreaders, fan_in, status (schemas/window_rows.py LiveWindow) |
| `ns:{source}:window:{start_ms}:talkers` | zset | source address -> bytes (exact), top N |
| `ns:{source}:window:{start_ms}:flows` | zset | "src sport dst dport proto" -> bytes, top N (heavy-hitter estimate) |
| `ns:{source}:latest` | hash | the newest window's start_ms and its window hash's fields, updated_at |
| `ns:{source}:talkers`, `ns:{source}:flows` | zset | copies of the newest window's zsets |
| `ns:{source}:hosts` | zset | address (src or dst) -> end of the last window it was among that window's `max_hosts` heaviest (bytes), epoch seconds |
| `ns:{source}:windows` | zset | start_ms -> start_ms of the windows kept |
| `ns:{source}:alerts` | hash | alert id -> the alert's newest state (JSON, flows/alerts.py), firing and recently resolved |
| `ns:{source}:alerts:seen` | zset | alert id -> when it was last written, epoch seconds (resolved alerts unchanged for the TTL are trimmed) |
| `ns:{source}:alerts:events` | stream | one entry per alert change (`alert`: JSON), ~10,000 kept: what a live view follows |

Channel `ns:live` (pub/sub): one message per window written, JSON {"source", "window_start_ms"},
in the same MULTI/EXEC as the window: a live view waits on it instead of polling keys.
"""
from __future__ import annotations

PREFIX = "ns"
LIVE_CHANNEL = f"{PREFIX}:live"


def prefix(source: str) -> str:
    return f"{PREFIX}:{source}:"
