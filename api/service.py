"""The query service: one object that answers every API method, whatever the transport.

api/grpc_service.py and api/http_app.py translate their requests into api/models.py models and
call these methods; they never build SQL or read Redis themselves.
"""
from __future__ import annotations

import logging
import threading
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Optional

from redis.exceptions import RedisError

from api import models as m
from api import queries as q
from api.cache import MAX_ENTRIES, ResultCache
from api.config import QUERY_SLOTS
from api.store import delete_source
from schemas.fifo import FifoSemaphore
from schemas.redis_keys import PREFIX, prefix

log = logging.getLogger(__name__)


class NotFound(LookupError):
    """Nothing to answer with (-> 404 / NOT_FOUND)."""


class Unavailable(RuntimeError):
    """A backend the request needs is not configured or does not answer (-> 503 / UNAVAILABLE)."""


class Busy(RuntimeError):
    """Try again later (-> 409 / RESOURCE_EXHAUSTED)."""


class Ambiguous(q.QueryError):
    """The request needs a choice the caller did not make (-> 400 / FAILED_PRECONDITION)."""


def _version() -> str:
    try:
        return version("netspectra")
    except PackageNotFoundError:
        return "dev"


EXTENTS_KEPT = 256          # ranges whose sources' first and last windows are kept (_extents)


class QueryService:
    def __init__(self, backend, redis_url: Optional[str] = None, ingest_dir: Optional[str] = None,
                 cache_entries: int = MAX_ENTRIES, query_slots: int = QUERY_SLOTS):
        self.backend = backend
        self.cache = ResultCache(backend.version, cache_entries)
        self._slots = FifoSemaphore(query_slots)        # queries computed at once (api/config.py)
        self._marks_cache: tuple | None = None       # (store write version, (roll-up spans, table rows, hours))
        self._extents_cache = ResultCache(backend.version, EXTENTS_KEPT)    # per range and source
        self.ingest_dir = Path(ingest_dir).resolve() if ingest_dir else None
        self._ingesting = threading.Lock()      # one capture at a time
        self.redis = None
        if redis_url:
            from schemas.credentials import redis_client
            self.redis = redis_client(redis_url, socket_timeout=5, decode_responses=True)

    @property
    def dialect(self) -> q.Dialect:
        return self.backend.dialect

    def _cached(self, req, compute):
        """An answer from the cache, or computed once for every concurrent caller (api/cache.py).
        Answers are shared: callers must not modify them."""
        def in_turn():
            with self._slots:
                return compute()
        return self.cache.get((type(req).__name__, req.model_dump_json()), in_turn)

    def aggregate_flows(self, req: m.AggregateFlowsRequest) -> m.AggregateFlowsResponse:
        def compute():
            extents = None
            if q.may_exceed_buckets(req):       # then count them where there are windows (a small read)
                extents = self._extents(req.range, req.filter.source)
                q.check_buckets(req, extents)
            # sums without time buckets may subtract (api/queries.py plan): on whole seconds only,
            # as the pieces then tile the range exactly without its own (millisecond) bounds
            subtract = not req.bucket_seconds and req.range.start_ms % 1000 == 0 and req.range.end_ms % 1000 == 0
            pieces = self._plan(q.used_columns(req.filter, req.group_by), req.range, req.filter.source,
                                req.bucket_seconds, extents=extents, subtract=subtract)
            return q.aggregate_rows(self.backend.rows(*q.aggregate_flows(req, self.dialect, pieces)),
                                    *q.plan_name(pieces))
        return self._cached(req, compute)

    def _extents(self, rng: m.TimeRange, source: str) -> list[tuple]:
        """Per source with windows in the range: its first and last window (api/queries.py
        extent_sql), exact: what a time series' buckets are counted between (check_buckets), and
        the planner's on a server (on chDB it reads WindowHours, _marks). Kept until the data
        changes, whether answers are or not: a dashboard's panels share their range."""
        return self._extents_cache.get((rng.start_ms, rng.end_ms, source),
                                       lambda: self.backend.rows(*q.extent_sql(rng, source, self.dialect)))

    def _plan(self, used: set[str] | None, rng: m.TimeRange, source: str, bucket_seconds: int = 0,
              base: str = "flows", extents: list[tuple] | None = None, subtract: bool = False) -> list[q.Piece]:
        """Where to read `base` from over the range: itself, or its smallest roll-ups that answer
        exactly, piece by piece (api/queries.py plan). `used`: the record columns read (None:
        no records are read; ignored for the sketch tables, whose levels keep what is read).
        `extents`: the range's, when the caller read them already. `subtract`: see plan; the
        extents then reach the coarsest level's bucket edges around the range, whose windows
        outside the range the pieces read too."""
        candidates = q.rollup_candidates(used, bucket_seconds, base) if used is not None else []
        if not candidates:
            return [q.Piece(base, 0, *q.seconds(rng))]
        marks, rows, hours = self._marks()     # small reads: the roll-ups' spans, the sources' windows
        windows = hours.extents if hours is not None else self._extents
        if subtract:
            coarsest = max(res for _, res in candidates)
            a, b = q.seconds(rng)
            extents = windows(m.TimeRange(start_ms=a // coarsest * coarsest * 1000,
                                          end_ms=-(-b // coarsest) * coarsest * 1000), source)
        elif extents is None:
            extents = windows(rng, source)
        return q.plan(candidates, marks, extents, rows, rng, base, subtract)

    def _marks(self) -> tuple[list[tuple], dict[str, int], q.WindowHours | None]:
        """The roll-ups' spans (api/queries.py MARKS_SQL), the tables' row counts and the hours
        each source has windows in, read again only after a write when every write passes
        through this process (chDB). A server's are read for every request: there the hours are
        None (the range's own extents cost one read too, and less)."""
        version = self.backend.version()
        cached = self._marks_cache
        if version is not None and cached is not None and cached[0] == version:
            return cached[1]
        got = (self.backend.rows(q.MARKS_SQL, {}), {t: int(n) for t, n in self.backend.rows(q.ROWS_SQL, {})},
               q.WindowHours(self.backend.rows(q.HOURS_SQL, {})) if version is not None else None)
        self._marks_cache = (version, got)
        return got

    def trace_flow(self, req: m.TraceFlowRequest) -> m.TraceFlowResponse:
        return self._cached(req, lambda: q.trace_rows(self.backend.rows(*q.trace_flow(req, self.dialect))))

    def heavy_hitters(self, req: m.QueryHeavyHittersRequest) -> m.QueryHeavyHittersResponse:
        def compute():
            if req.exact:
                pieces = self._plan(q.heavy_columns(req), req.range, req.filter.source)
            else:
                pieces = self._plan(set(), req.range, req.filter.source, base="heavy_hitters")
            rows = self.backend.rows(*q.heavy_hitters(req, self.dialect, pieces))
            return q.heavy_rows(req, rows, q.plan_name(pieces)[0])
        return self._cached(req, compute)

    def spreaders(self, req: m.QuerySpreadersRequest) -> m.QuerySpreadersResponse:
        def compute():
            out = {}
            exact = req.exact or req.count == "ports"
            if exact:
                pieces = self._plan(q.spreaders_columns(req), req.range, req.filter.source)
            else:
                pieces = self._plan(set(), req.range, req.filter.source, base="spreaders")
            for side, sql, params in q.spreaders(req, self.dialect, pieces):
                out[side] = q.spreader_rows(self.backend.rows(sql, params)) if sql else []
            return m.QuerySpreadersResponse(exact=exact, table=q.plan_name(pieces)[0], **out)
        return self._cached(req, compute)

    # ---- live state (Redis, written by sinks/redis_state.py) ------------------------------------
    def live_sources(self) -> list[str]:
        if self.redis is None:
            return []
        keys = self.redis.scan_iter(match=f"{PREFIX}:*:latest", count=1000)
        return sorted(k[len(PREFIX) + 1:-len(":latest")] for k in keys)

    def live_source(self, req: m.LiveTopRequest) -> str:
        """The source a live request is about: the one named, or the only one Redis has."""
        if self.redis is None:
            raise Unavailable("no Redis configured for live state (start the API with --redis)")
        if req.source:
            return req.source
        sources = self.live_sources()
        if len(sources) != 1:
            raise Ambiguous(f"name a source; Redis has live state for {len(sources)}: {sources[:20]}")
        return sources[0]

    def live_top(self, req: m.LiveTopRequest) -> m.LiveTopResponse:
        from api.live import read_latest
        source = self.live_source(req)
        try:
            latest, talkers, flows = read_latest(self.redis, source, req.limit)
        except RedisError as e:
            raise Unavailable(f"Redis does not answer ({e})") from None
        if not latest:
            raise NotFound(f"no live state for source {source!r}")
        return m.LiveTopResponse(
            source=source, window_start_ms=int(latest.get("window_start_ms", 0)),
            packets=int(latest.get("packets", 0)), bytes=int(latest.get("bytes", 0)),
            flows=int(latest.get("flows", 0)), complete=latest.get("complete", "1") == "1",
            updated_at=float(latest.get("updated_at", 0)),
            talkers=[m.Ranked(key=k, value=v) for k, v in talkers],
            flows_top=[m.Ranked(key=k, value=v) for k, v in flows], active_hosts=int(latest.get("hosts", 0)))

    # ---- the live console (api/live.py): Redis, or the store's history without it ---------------
    def sources(self) -> m.SourcesResponse:
        from api import live
        try:
            stored = live.store_sources(self.backend.rows)
        except Exception as e:          # noqa: BLE001 - the store away: say so, as the other methods
            raise Unavailable(f"the store does not answer ({str(e)[:200]})") from None
        try:
            return m.SourcesResponse(live=self.live_sources(), stored=stored, redis=self.redis is not None)
        except RedisError as e:
            raise Unavailable(f"Redis does not answer ({e})") from None

    def _console_source(self, source: str) -> str:
        if self.redis is not None:
            return self.live_source(m.LiveTopRequest(source=source))
        if source:
            return source
        from api import live
        stored = live.store_sources(self.backend.rows)
        if len(stored) != 1:
            raise Ambiguous(f"name a source; the store has {len(stored)}: {stored[:20]}")
        return stored[0]

    def live_series(self, req: m.LiveSeriesRequest) -> m.LiveSeriesResponse:
        """From Redis (its windows expire after an hour), the earlier part of a longer range from
        the store; all from the store without Redis."""
        from api import live
        source = self._console_source(req.source)
        last_ms = m.span_ms(req.last)
        if self.redis is None:
            return m.LiveSeriesResponse(source=source, live=False,
                                        windows=live.store_series(self.backend.rows, self.dialect, source, last_ms))
        try:
            recent = live.redis_series(self.redis, source, last_ms)
        except RedisError as e:
            raise Unavailable(f"Redis does not answer ({e})") from None
        if recent and recent[-1].start_ms - recent[0].start_ms < last_ms:
            try:
                older = live.store_series(self.backend.rows, self.dialect, source, last_ms)
            except Exception as e:      # noqa: BLE001 - the history is extra: the live part stands alone
                log.warning("history of %s from the store failed: %s", source, e)
                older = []
            recent = [p for p in older if p.start_ms < recent[0].start_ms] + recent
        return m.LiveSeriesResponse(source=source, live=True, windows=recent)

    def live_window(self, req: m.LiveTopRequest) -> m.LiveWindowResponse:
        from api import live
        source = self._console_source(req.source)
        try:
            got = (live.redis_window(self.redis, source) if self.redis is not None
                   else live.store_window(self.backend.rows, self.dialect, source))
        except RedisError as e:
            raise Unavailable(f"Redis does not answer ({e})") from None
        if got is None:
            raise NotFound(f"no window yet for source {source!r}")
        return got

    def live_events(self, alive):
        """One dict per window the engines write ({"source", "window_start_ms"}), None each second without."""
        from api import live
        if self.redis is None:
            raise Unavailable("no Redis configured for live state (start the API with --redis)")
        return live.events(self.redis, alive)

    # ---- DNS names (the dns_names table) -------------------------------------------------------
    def lookup_names(self, req: m.LookupNamesRequest) -> m.LookupNamesResponse:
        return self._cached(req, lambda: q.name_rows(self.backend.rows(*q.lookup_names(req, self.dialect))))

    # ---- SIP calls (the sip_calls table) --------------------------------------------------------
    def list_sip_calls(self, req: m.ListSipCallsRequest) -> m.ListSipCallsResponse:
        return self._cached(req, lambda: q.sip_call_rows(self.backend.rows(*q.list_sip_calls(req, self.dialect))))

    # ---- alerts (the engine's alerts table; live changes from Redis) ---------------------------
    def list_alerts(self, req: m.ListAlertsRequest) -> m.ListAlertsResponse:
        return self._cached(req, lambda: q.alert_rows(self.backend.rows(*q.list_alerts(req, self.dialect))))

    def watch_alerts(self, req: m.WatchAlertsRequest, after: str = "", alive=lambda: True, block_ms: int = 1000):
        """The source's firing alerts (unless resuming `after` a cursor), then every change as the
        engine writes it (Redis stream), until `alive()` turns false. Yields AlertChange, or None
        every `block_ms` without news (a transport's chance to send a keep-alive)."""
        import json
        source = self.live_source(m.LiveTopRequest(source=req.source))
        p = prefix(source)
        stream = f"{p}alerts:events"
        if not after:
            last = self.redis.xrevrange(stream, count=1)         # the cursor before the snapshot below
            after = last[0][0] if last else "0-0"
            firing = [json.loads(v) for v in self.redis.hgetall(f"{p}alerts").values()]
            for a in sorted((a for a in firing if a["state"] == "firing"), key=lambda a: (a["first_seen"], a["id"])):
                yield m.AlertChange(change="firing", alert=m.alert_item(a, source), cursor=after)
        while alive():
            got = self.redis.xread({stream: after}, count=100, block=block_ms)
            if not got:
                yield None
                continue
            for entry_id, fields in got[0][1]:
                after = entry_id
                a = json.loads(fields["alert"])
                change = "resolved" if a["state"] == "resolved" else ("firing" if a["version"] == 1 else "update")
                yield m.AlertChange(change=change, alert=m.alert_item(a, source), cursor=entry_id)

    def redis_ok(self) -> bool:
        if self.redis is None:
            return False
        try:
            return bool(self.redis.ping())
        except Exception:
            return False

    def health(self) -> m.HealthResponse:
        store_ok = self.backend.ping()
        redis_ok = self.redis_ok()
        ok = store_ok and (self.redis is None or redis_ok)
        return m.HealthResponse(status="ok" if ok else "degraded", store=self.backend.name, store_ok=store_ok,
                                redis_ok=redis_ok, version=_version())

    def ingest_capture(self, req: m.IngestCaptureRequest) -> m.IngestCaptureResponse:
        """Analyse a capture from ingest_dir into this process's chDB store (`analyze`'s dataflow)."""
        from api.store import ChdbBackend
        from collectors.capture_file import CaptureFormatError
        from flows.config import WindowConfig
        from flows.sketches import SketchConfig
        from flows.analysis import run_analysis

        if not isinstance(self.backend, ChdbBackend):
            raise q.QueryError("ingestion runs in the API only on the embedded chDB store; "
                               "feed a ClickHouse server with netspectra collect/engine")
        if self.ingest_dir is None:
            raise q.QueryError("no ingest_dir configured")
        try:
            path = (self.ingest_dir / req.path).resolve()
            exists = path.exists()
        except (ValueError, OSError, RuntimeError) as e:      # NUL byte, symlink loop, name too long
            raise q.QueryError(f"bad path {req.path[:100]!r}: {getattr(e, 'strerror', None) or e}") from None
        if not path.is_relative_to(self.ingest_dir):
            raise q.QueryError("path must stay inside ingest_dir")
        if not exists:
            raise NotFound(f"no capture {req.path[:100]!r} in ingest_dir")
        cfg = WindowConfig(window_s=req.window_seconds or 60.0, lateness_s=req.lateness_seconds or 5.0,
                           sketches=SketchConfig())
        if not self._ingesting.acquire(blocking=False):
            raise Busy("a capture is being ingested; try again when it is done")
        try:
            log.info("ingesting %s", path)
            run = run_analysis(str(path), cfg, self.backend.store.path)
        except (CaptureFormatError, OSError) as e:
            raise q.QueryError(f"not a capture: {e}") from None
        finally:
            self._ingesting.release()
        r = run.report
        return m.IngestCaptureResponse(source=str(path), windows=r["windows"], packets=r["packets"], bytes=r["bytes"],
                                       flows=r["flows"], seconds=run.seconds, truncated=r["truncated_file"],
                                       corrupt=r["corrupt_file"])

    def delete_source(self, req: m.DeleteSourceRequest) -> m.DeleteSourceResponse:
        log.warning("deleting every window of source %r", req.source)
        return m.DeleteSourceResponse(tables=delete_source(self.backend, req.source))
