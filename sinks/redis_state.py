"""Live state in Redis: what a dashboard reads to show "now".

Key layout: schemas/redis_keys.py (the API reads the same keys).

Every key expires `ttl_s` after its last write (default 1 hour), so a stopped pipeline leaves no
stale "live" state; hosts older than the TTL are trimmed on each write. `hosts` in a window's hash
is its exact number of distinct addresses; the hosts zset keeps only each window's
10,000 heaviest (flows/rows.py MAX_LIVE_HOSTS), because a spoofed flood brings millions of one-packet "hosts" a window and
one Redis member each would cost more than the rest of the pipeline. One window is written
in one MULTI/EXEC, so readers never see half a window. If Redis is away, windows wait in a
bounded backlog (the newest version of each window, `max_backlog` windows; beyond that the
oldest is dropped and counted), retried from every 0.5 s to every 2 s by a background thread: an outage costs
latency, not windows, never stalls the pipeline, and the backlog is written as soon as Redis is
back, also when no newer window comes.
"""
from __future__ import annotations

import logging
import threading
import time

from schemas import metrics as M
from schemas.redis_keys import LIVE_CHANNEL, prefix
from schemas.window_rows import WindowRows
from sinks.retry import Backoff

log = logging.getLogger(__name__)

MAX_BACKLOG = 256         # windows (and alerts) held while Redis is away


class RedisState:
    # the backlog is retried while Redis is away: from 0.5 s, backing off to 2 s (a live view)
    RETRY_FIRST_S, RETRY_CAP_S = 0.5, 2.0

    def __init__(self, url: str, source: str, ttl_s: int = 3600, max_backlog: int = MAX_BACKLOG):
        from schemas.credentials import redis_client

        self.r = redis_client(url, socket_timeout=5)
        self.source, self.p = source, prefix(source)
        self.ttl_s, self.max_backlog = ttl_s, max_backlog
        self.backlog: dict[int, WindowRows] = {}      # window start -> newest unwritten version
        self.written = 0
        self.dropped = 0
        self._lock = threading.Lock()
        self._retrier: threading.Thread | None = None
        self._down_logged = False
        self._alert_script = self.r.register_script(self._ALERT_LUA)      # sent at its first use

    def write(self, results: list[WindowRows]) -> None:
        """Queue the windows and try to write the backlog once; never waits for Redis. While it is
        away a background thread retries, so the backlog is written when Redis is back even if no
        newer window comes (the stream may have ended during the outage)."""
        self._queue({res.start: res for res in results})

    def write_alerts(self, alerts: list, source: str | None = None) -> None:
        """Alerts' new states, through the same backlog as windows. A state older than the one
        stored (a replay after a restart) changes nothing. (`source`: this state's own.)"""
        self._queue({("alert", a.id): a for a in alerts})

    def close(self, timeout: float = 5.0) -> None:
        """Give a backlog left by an outage a little time to be written (its thread keeps trying
        while the process lives); the connection pool closes with the process."""
        deadline = time.monotonic() + timeout
        while self.backlog and time.monotonic() < deadline:
            time.sleep(0.1)

    def _queue(self, items: dict) -> None:
        with self._lock:
            for key, item in items.items():
                self.backlog.pop(key, None)
                self.backlog[key] = item
            while len(self.backlog) > self.max_backlog:
                key = next(iter(self.backlog))
                del self.backlog[key]
                self.dropped += 1
                M.inc("netspectra_sink_dropped_total", sink="redis")
                log.error("redis: backlog full, %s dropped", f"window {key}" if isinstance(key, int) else f"alert {key[1]}")
            self._drain()
            if self.backlog and (self._retrier is None or not self._retrier.is_alive()):
                self._retrier = threading.Thread(target=self._retry, daemon=True, name="redis-backlog")
                self._retrier.start()

    def _retry(self) -> None:
        backoff = Backoff(first=self.RETRY_FIRST_S, cap=self.RETRY_CAP_S)
        while True:
            time.sleep(backoff.delay())
            with self._lock:
                self._drain()
                if not self.backlog:
                    return

    def _drain(self) -> None:
        """Write the backlog, oldest first, until done or Redis fails (caller holds the lock)."""
        import redis

        while self.backlog:
            start, res = next(iter(self.backlog.items()))
            try:
                if isinstance(res, WindowRows):
                    self._pipeline(res).execute()
                else:
                    self._alert(res)
            except (redis.ConnectionError, redis.TimeoutError) as e:
                M.inc("netspectra_sink_retries_total", sink="redis")
                if not self._down_logged:
                    hint = ("; give its password: NETSPECTRA_CREDENTIALS=<stack dir>/credentials.json or "
                            "redis://:PASSWORD@host:port" if isinstance(e, redis.AuthenticationError) else "")
                    log.error("redis unavailable (%s)%s; %d windows wait for it", e, hint, len(self.backlog))
                    self._down_logged = True
                return
            del self.backlog[start]
            self.written += 1
            self._down_logged = False

    def _pipeline(self, res: WindowRows):
        import json

        p, ttl, now = self.p, self.ttl_s, time.time()
        start_ms = res.start // 1_000_000
        wkey = f"{p}window:{start_ms}"
        end_s = (res.start + res.length_ns) / 1e9 if res.length_ns else now
        lv = res.live
        detail = json.dumps(lv.detail, default=lambda x: x.item())       # numpy scalars
        totals = {**lv.totals, "seconds": lv.detail.get("seconds", 0), "detail": detail, "written_at": now}
        talkers, flows = lv.talkers, lv.flows
        hosts = dict.fromkeys(lv.hosts, end_s)
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(wkey, mapping=totals)
        for suffix, z in ((":talkers", talkers), (":flows", flows)):
            pipe.delete(wkey + suffix)
            if z:
                pipe.zadd(wkey + suffix, z)
            pipe.expire(wkey + suffix, ttl)
        pipe.expire(wkey, ttl)
        pipe.zadd(f"{p}windows", {str(start_ms): start_ms})
        pipe.expire(f"{p}windows", ttl)
        latest = self.r.hget(f"{p}latest", "window_start_ms")
        if latest is None or int(latest) <= start_ms:       # a late or replayed window does not move "now" back
            pipe.hset(f"{p}latest", mapping={"window_start_ms": start_ms, **totals, "updated_at": now})
            for suffix, z in (("talkers", talkers), ("flows", flows)):
                pipe.delete(p + suffix)
                if z:
                    pipe.zadd(p + suffix, z)
                pipe.expire(p + suffix, ttl)
            pipe.expire(f"{p}latest", ttl)
        if hosts:
            pipe.zadd(f"{p}hosts", hosts, gt=True)
        pipe.zremrangebyscore(f"{p}hosts", "-inf", end_s - ttl)
        pipe.expire(f"{p}hosts", ttl)
        # live views wait on this instead of polling keys; sent with the window (MULTI/EXEC)
        pipe.publish(LIVE_CHANNEL, json.dumps({"source": self.source, "window_start_ms": start_ms}))
        return pipe

    # KEYS: alerts hash, seen zset, events stream. ARGV: id, version, JSON, now s, ttl s, trim before s.
    _ALERT_LUA = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur and tonumber(cjson.decode(cur)['version']) >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', 10000, '*', 'alert', ARGV[3])
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[6])) do
  local a = redis.call('HGET', KEYS[1], id)
  if (not a) or cjson.decode(a)['state'] ~= 'firing' then
    redis.call('HDEL', KEYS[1], id)
    redis.call('ZREM', KEYS[2], id)
  end
end
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[5]) end
return 1
"""

    def _alert(self, a) -> None:
        import json
        p, now = self.p, time.time()
        # firing alerts stay as long as they fire; a week of TTL on the keys covers a quiet engine
        self._alert_script(keys=[f"{p}alerts", f"{p}alerts:seen", f"{p}alerts:events"],
                           args=[a.id, a.version, json.dumps(a.to_dict(), sort_keys=True), now,
                                 max(self.ttl_s, 7 * 86400), now - self.ttl_s])
