"""The HTTP/JSON transport of the query API (FastAPI), plus a Grafana JSON-datasource shape.

Routes mirror the gRPC methods (POST bodies are the same models, api/models.py). api/openapi.json
is the committed OpenAPI document; tests check it equals what this app serves.

Errors: 401 without a valid bearer token, 403 for a role that may not, 400 with a readable
message for bad parameters, 404 when there is nothing to answer with, 503 when a backend the
request needs is not configured or does not answer, 413 / 408 for a body over
the limit or too slow (api/guard.py: decided before the body is read), 500 "internal error"
(logged; never a traceback). Messages are capped at a few hundred characters.
"""
from __future__ import annotations

import itertools
import json
import logging
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from api import models as m
from api.ai.config import NOT_CONFIGURED
from api.ai.errors import AiError
from api.config import AiServerConfig, ApiConfig, allowed
from api.guard import BodyGuard, cap
from api.metrics import HttpMetrics
from api.queries import QueryError
from api.service import Busy, NotFound, QueryService, Unavailable

log = logging.getLogger(__name__)


class Problem(BaseModel):
    error: str


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        self.status, self.message = status, message


# ---- Grafana JSON datasource (simpod-json-datasource / "Infinity"-style shapes) -------------------
class GrafanaRange(BaseModel):
    model_config = ConfigDict(extra="allow")
    from_: datetime = Field(alias="from")
    to: datetime

    @field_validator("from_", "to", mode="before")
    @classmethod
    def _text(cls, v):
        # pydantic would take a number, or a number as text ("+0.0"), as epoch seconds
        try:
            datetime.fromisoformat(v.replace("Z", "+00:00"))
        except (AttributeError, TypeError, ValueError):
            raise ValueError("an ISO 8601 time") from None
        return v

    @model_validator(mode="after")
    def _ordered(self):
        if self.to <= self.from_:
            raise ValueError("range: 'to' must be after 'from'")
        return self


class GrafanaTarget(BaseModel):
    model_config = ConfigDict(extra="allow")
    target: Literal["bytes", "packets", "flows", "top_talkers", "top_flows", "top_ports", "spreaders"]
    refId: str = "A"
    payload: dict[str, Any] = Field(default_factory=dict, description="source, filter, limit")


class GrafanaQuery(BaseModel):
    model_config = ConfigDict(extra="allow")
    range: GrafanaRange
    intervalMs: int = Field(default=60_000, ge=0, le=m.MAX_BUCKET_S * 1000, strict=True)
    maxDataPoints: int = Field(default=1000, ge=0, strict=True)
    targets: list[GrafanaTarget] = Field(max_length=20)


GRAFANA_MAX_ROWS = 1000
MAX_STREAMS = 16         # concurrent alert streams (SSE); Starlette runs each in a pool thread
GRAFANA_METRICS = ["bytes", "packets", "flows", "top_talkers", "top_flows", "top_ports", "spreaders"]
ERRORS = {400: {"model": Problem}, 401: {"model": Problem}, 403: {"model": Problem}, 404: {"model": Problem},
          500: {"model": Problem}, 503: {"model": Problem}}


def _ms(t: datetime) -> int:
    """Epoch ms of a Grafana time (naive times are UTC)."""
    return int((t if t.tzinfo else t.replace(tzinfo=timezone.utc)).timestamp() * 1000)


def create_app(service: QueryService, config: ApiConfig | AiServerConfig, ai=None, queries: bool = True) -> FastAPI:
    """`ai`: the AI gateway's thread (api/ai/gateway.py GatewayThread), None when not configured.
    `queries` False: the AI gateway's own process (`netspectra ai`), with only the AI routes and
    its health; the query routes are made on a router that is never mounted."""
    app = FastAPI(title="NetSpectra query API", version="1.0.0", docs_url=None, redoc_url=None,
                  description="Flows, heavy hitters, spreaders and live state of the NetSpectra pipeline. "
                              "Send `Authorization: Bearer <token>`.")
    _offline_docs(app)

    def role(needed: str):
        def check(request: Request) -> None:
            who = config.role_of(request.headers.get("authorization"))
            if who is None:
                raise ApiError(401, "missing or unknown bearer token")
            if not allowed(who, needed):
                raise ApiError(403, f"needs the {needed} role")
        return Depends(check)

    read, admin = role("read"), role("admin")
    routes = app if queries else APIRouter()
    streams = threading.BoundedSemaphore(MAX_STREAMS)      # each open stream holds a server thread
    app.add_middleware(BodyGuard, role_of=config.role_of, max_body_bytes=config.max_body_bytes,
                       body_timeout_s=config.body_timeout_s)
    app.add_middleware(HttpMetrics)          # outermost: sees every answer, the guard's too

    @app.exception_handler(ApiError)
    async def _api_error(request, e: ApiError):
        headers = {"WWW-Authenticate": "Bearer"} if e.status == 401 else None
        return JSONResponse({"error": cap(e.message)}, status_code=e.status, headers=headers)

    @app.exception_handler(AiError)
    async def _ai_error(request, e: AiError):       # the gateway's one line, with its status
        return JSONResponse({"error": cap(str(e))}, status_code=e.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, e: StarletteHTTPException):     # unparsable body, unknown path, ...
        return JSONResponse({"error": cap(str(e.detail))}, status_code=e.status_code, headers=e.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request, e: RequestValidationError):
        msg = "; ".join(f"{'.'.join(str(x) for x in err['loc'][1:]) or 'body'}: {err['msg']}" for err in e.errors())
        return JSONResponse({"error": cap(msg)}, status_code=400)

    @app.exception_handler(Exception)
    async def _internal(request, e: Exception):
        log.exception("request failed: %s", request.url.path)
        return JSONResponse({"error": "internal error (logged on the server)"}, status_code=500)

    @routes.post("/v1/flows/aggregate", response_model=m.AggregateFlowsResponse, responses=ERRORS, dependencies=[read])
    def aggregate_flows(req: m.AggregateFlowsRequest):
        return call(service.aggregate_flows, req)

    @routes.post("/v1/flows/trace", response_model=m.TraceFlowResponse, responses=ERRORS, dependencies=[read])
    def trace_flow(req: m.TraceFlowRequest):
        return call(service.trace_flow, req)

    @routes.post("/v1/heavy-hitters", response_model=m.QueryHeavyHittersResponse, responses=ERRORS, dependencies=[read])
    def heavy_hitters(req: m.QueryHeavyHittersRequest):
        return call(service.heavy_hitters, req)

    @routes.post("/v1/names", response_model=m.LookupNamesResponse, responses=ERRORS, dependencies=[read])
    def lookup_names(req: m.LookupNamesRequest):
        return call(service.lookup_names, req)

    @routes.post("/v1/sip/calls", response_model=m.ListSipCallsResponse, responses=ERRORS, dependencies=[read])
    def list_sip_calls(req: m.ListSipCallsRequest):
        return call(service.list_sip_calls, req)

    @routes.post("/v1/spreaders", response_model=m.QuerySpreadersResponse, responses=ERRORS, dependencies=[read])
    def spreaders(req: m.QuerySpreadersRequest):
        return call(service.spreaders, req)

    @routes.get("/v1/alerts", response_model=m.ListAlertsResponse, responses=ERRORS, dependencies=[read])
    def list_alerts(start_ms: int | None = None, end_ms: int | None = None, start: str = "", end: str = "",
                    last: str = "", state: list[str] = Query([]), severity: list[str] = Query([]),
                    rule: list[str] = Query([]), address: str = "", source: str = "", limit: int = 0,
                    id: list[str] = Query([])):
        """Alerts active at some time in the range (start_ms/start, end_ms/end or last, as in
        every request's range; default: the last 24 hours), newest first."""
        rng = {k: v for k, v in (("start_ms", start_ms), ("end_ms", end_ms), ("start", start), ("end", end),
                                  ("last", last)) if v not in (None, "")}
        if not {"start_ms", "start", "last"} & set(rng):
            rng["last"] = "24h"
        try:
            req = m.ListAlertsRequest(range=m.TimeRange(**rng), state=state, severity=severity,
                                      rule=rule, address=address, source=source, limit=limit, id=id)
        except ValidationError as e:
            raise ApiError(400, m.problems(e, "query")) from None
        return call(service.list_alerts, req)

    if ai is not None:
        app.router.on_shutdown.append(ai.close)     # its connections, with the HTTP server

    @app.post("/v1/ai/analyze", response_model=m.AnalyzeAlertResponse, dependencies=[read],
              responses={**ERRORS, **{s: {"model": Problem} for s in (429, 502, 504)}})
    async def analyze_alert(req: m.AnalyzeAlertRequest):
        """An LLM's analysis of an alert, grounded in the query API's answers about it (the AI
        gateway: docs/ai.md). 503 when no `ai` section is configured."""
        if ai is None:
            raise ApiError(503, NOT_CONFIGURED)
        return await ai.analyze_alert(req.alert_id)

    @app.post("/v1/ai/ask", dependencies=[read], response_model=m.AskResponse,
              responses={**ERRORS, 200: {"content": {"text/event-stream": {}},
                                         "description": "Server-Sent Events (the default): `chunk` events (data: "
                                                        "AskChunk JSON: text, or a query the model made, or done), or "
                                                        "one `error` event (data: {\"error\": line, \"status\": HTTP "
                                                        "status}). With `Accept: application/json` only: the whole "
                                                        "answer (AskResponse) when it is done."}})
    async def ask(req: m.AskRequest, request: Request):
        """A question about the traffic answered by an LLM with this API's queries as its tools,
        streamed as it is written, or whole when the client accepts only JSON (the AI gateway:
        docs/ai.md). 503 when not configured."""
        if ai is None:
            raise ApiError(503, NOT_CONFIGURED)
        from fastapi.responses import StreamingResponse

        accept = request.headers.get("accept", "")
        if "application/json" in accept and "text/event-stream" not in accept:
            return await ai.ask_whole(req.question, req.default_range)

        async def events():
            try:
                async for c in ai.ask(req.question, req.default_range):
                    yield f"event: chunk\ndata: {c.model_dump_json()}\n\n"
            except AiError as e:
                yield f"event: error\ndata: {json.dumps({'error': str(e), 'status': e.status})}\n\n"
        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @routes.get("/v1/alerts/stream", responses={**ERRORS, 200: {"content": {"text/event-stream": {}},
                                                                "description": "Server-Sent Events: one `alert` event "
                                                                "per change (data: AlertChange JSON, id: its cursor)"}},
                dependencies=[read])
    def watch_alerts(request: Request, source: str = ""):
        """The firing alerts, then every change as the engine makes it (Server-Sent Events). A
        reconnecting client sends Last-Event-ID and continues after it."""
        try:
            req = m.WatchAlertsRequest(source=source)
        except ValidationError as e:
            raise ApiError(400, str(e.errors()[0]["msg"])) from None
        # the source decided (or refused: 400/404) now, not mid-stream, and not again by the stream
        req = req.model_copy(update={"source": call(service.live_source, m.LiveTopRequest(source=req.source))})
        if not streams.acquire(blocking=False):
            raise ApiError(409, f"{MAX_STREAMS} alert streams are open; try again later")
        after = request.headers.get("last-event-id", "")
        state = {"open": True}
        changes = service.watch_alerts(req, after=after, alive=lambda: state["open"])
        frames = (None if c is None else f"event: alert\nid: {c.cursor}\ndata: {c.model_dump_json()}\n\n"
                  for c in changes)
        return _event_stream(frames, state, streams.release, "alert changes")

    @routes.get("/v1/live/top", response_model=m.LiveTopResponse, responses=ERRORS, dependencies=[read])
    def live_top(request: Request, source: str = "", limit: int = 10):
        unknown = set(request.query_params) - {"source", "limit"}
        if unknown:
            raise ApiError(400, f"unknown query parameters: {sorted(unknown)}")
        try:
            req = m.LiveTopRequest(source=source, limit=limit)
        except ValidationError as e:
            raise ApiError(400, "; ".join(f"{err['loc'][0]}: {err['msg']}" for err in e.errors())) from None
        return call(service.live_top, req)

    # ---- the live console (api/console/, api/live.py) ------------------------------------------
    @routes.get("/v1/sources", response_model=m.SourcesResponse, responses=ERRORS, dependencies=[read])
    def sources():
        """Sources with live state (Redis) and with windows in the store."""
        return call(lambda _req: service.sources(), None)

    @routes.get("/v1/live/series", response_model=m.LiveSeriesResponse, responses=ERRORS, dependencies=[read])
    def live_series(source: str = "", last: str = "1h"):
        """A source's windows (totals) up to `last` before its newest: from Redis, or from the
        store's history when the API has no Redis (`live: false`)."""
        try:
            req = m.LiveSeriesRequest(source=source, last=last)
        except ValidationError as e:
            raise ApiError(400, m.problems(e, "query")) from None
        return call(service.live_series, req)

    @routes.get("/v1/live/window", response_model=m.LiveWindowResponse, responses=ERRORS, dependencies=[read])
    def live_window(source: str = ""):
        """A source's newest window: totals, exact talkers and breakdowns, sketch tops."""
        try:
            req = m.LiveTopRequest(source=source)
        except ValidationError as e:
            raise ApiError(400, m.problems(e, "query")) from None
        return call(service.live_window, req)

    @routes.get("/v1/live/stream", responses={**ERRORS, 200: {"content": {"text/event-stream": {}},
                                                              "description": "Server-Sent Events: one `window` event "
                                                              "per window written (data: source, window_start_ms)"}},
                dependencies=[read])
    def live_stream(source: str = ""):
        """A `window` event each time an engine writes a window (of `source`, or of any), from
        Redis pub/sub; a keep-alive comment each second without one. 503 without Redis."""
        state = {"open": True}
        feed = call(service.live_events, lambda: state["open"])
        if not streams.acquire(blocking=False):
            raise ApiError(409, f"{MAX_STREAMS} streams are open; try again later")
        frames = (None if ev is None else f"event: window\ndata: {json.dumps(ev)}\n\n" for ev in feed
                  if ev is None or not source or ev.get("source") == source)
        return _event_stream(itertools.chain([": connected\n\n"], frames), state, streams.release, "live updates")

    if queries:
        _console(app)
    else:
        @app.get("/v1/health", dependencies=[read])
        def gateway_health() -> dict:
            """The gateway's model and whether the query API it reads through answers."""
            return ai.health()

    @app.get("/livez", include_in_schema=False)
    def livez():
        """Liveness for probes and load balancers: no token, and nothing about the service."""
        return PlainTextResponse("ok")

    @routes.get("/v1/health", response_model=m.HealthResponse, responses=ERRORS, dependencies=[read])
    def health():
        return service.health()

    @routes.post("/v1/admin/delete-source", response_model=m.DeleteSourceResponse, responses=ERRORS,
                 dependencies=[admin])
    def delete_source(req: m.DeleteSourceRequest):
        return call(service.delete_source, req)

    @routes.post("/v1/admin/ingest", response_model=m.IngestCaptureResponse, responses=ERRORS | {409: {"model": Problem}},
                 dependencies=[admin])
    def ingest_capture(req: m.IngestCaptureRequest):
        return call(service.ingest_capture, req)

    # ---- Grafana JSON datasource ----------------------------------------------------------------
    @routes.get("/grafana/", responses=ERRORS, dependencies=[read])
    def grafana_test() -> dict:
        """Connection test of the datasource."""
        return {"status": "ok"}

    @routes.post("/grafana/metrics", responses=ERRORS, dependencies=[read])
    def grafana_metrics() -> list[dict]:
        return [{"label": x, "value": x} for x in GRAFANA_METRICS]

    @routes.post("/grafana/query", responses=ERRORS, dependencies=[read])
    def grafana_query(q: GrafanaQuery) -> list[dict]:
        try:
            rng = m.TimeRange(start_ms=_ms(q.range.from_), end_ms=_ms(q.range.to))
        except ValidationError as e:
            raise ApiError(400, "range: " + "; ".join(err["msg"] for err in e.errors())) from None
        return [x for t in q.targets for x in _grafana_target(service, t, rng, q.intervalMs)]

    app.openapi = lambda: _openapi(app)
    return app


def _openapi(app: FastAPI) -> dict:
    """FastAPI's document, made true to this app: bearer auth on every route, and 400 (not 422)
    for bad parameters (the handler above turns validation errors into 400)."""
    if app.openapi_schema:
        return app.openapi_schema
    from fastapi.openapi.utils import get_openapi
    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    for path in doc["paths"].values():
        for op in path.values():
            op.get("responses", {}).pop("422", None)
    schemas = doc.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    doc.setdefault("components", {})["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    doc["security"] = [{"bearer": []}]
    app.openapi_schema = doc
    return doc


def _event_stream(frames, state: dict, release, what: str):
    """Server-Sent Events: each of `frames` is one event's text, or None for a keep-alive. If the
    feed fails (Redis away) the stream ends with an `error` event, and the client reconnects;
    either way the stream's slot is released and `state["open"]` turns false (the feed stops)."""
    from fastapi.responses import StreamingResponse

    def events():
        try:
            for frame in frames:
                yield ": keep-alive\n\n" if frame is None else frame
        except Exception:                   # noqa: BLE001 - Redis away: end the stream; the client reconnects
            log.exception("%s stream failed", what)
            yield f'event: error\ndata: {{"error": "{what} unavailable"}}\n\n'
        finally:
            state["open"] = False
            release()

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


CONSOLE_DIR = Path(__file__).resolve().parent / "console"


def _console(app: FastAPI) -> None:
    """The live console at / (static files: no data in them, so no token; every data request
    they make carries the token the person typed)."""
    from fastapi.responses import FileResponse
    from fastapi.staticfiles import StaticFiles

    app.mount("/console", StaticFiles(directory=CONSOLE_DIR), name="console")

    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(CONSOLE_DIR / "index.html", headers={"Cache-Control": "no-cache"})


def _offline_docs(app: FastAPI) -> None:
    """Swagger UI at /docs from the installed swagger-ui-bundle package, not a CDN: it works
    offline and behind a proxy that blocks the CDN."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from starlette.staticfiles import StaticFiles
    from swagger_ui_bundle import swagger_ui_path

    app.mount("/docs/static", StaticFiles(directory=swagger_ui_path), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    def docs():
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} - docs",
                                   swagger_js_url="/docs/static/swagger-ui-bundle.js",
                                   swagger_css_url="/docs/static/swagger-ui.css",
                                   swagger_favicon_url="/docs/static/favicon-32x32.png")


def openapi_document() -> dict:
    return create_app(None, ApiConfig(allow_anonymous=True)).openapi()


def call(fn, req):
    """The service's answer; its request errors as HTTP errors."""
    try:
        return fn(req)
    except QueryError as e:
        raise ApiError(400, str(e)) from None
    except NotFound as e:
        raise ApiError(404, str(e)) from None
    except Busy as e:
        raise ApiError(409, str(e)) from None
    except Unavailable as e:
        raise ApiError(503, str(e)) from None


def _grafana_target(service: QueryService, t: GrafanaTarget, rng: m.TimeRange, interval_ms: int) -> list[dict]:
    p = t.payload or {}
    try:
        flt = m.Filter.model_validate({**p.get("filter", {}), **({"source": p["source"]} if "source" in p else {})})
        limit = p.get("limit", 10)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 0 <= limit <= GRAFANA_MAX_ROWS:
            raise ValueError(f"limit: a whole number 0-{GRAFANA_MAX_ROWS}")
    except (ValidationError, ValueError, TypeError) as e:
        raise ApiError(400, f"target {t.refId}: bad payload: {str(e).splitlines()[0]}") from None
    if t.target in ("bytes", "packets", "flows"):       # time series, one bucket per interval
        bucket = max(1, interval_ms // 1000)
        res = call(service.aggregate_flows, m.AggregateFlowsRequest(range=rng, filter=flt, bucket_seconds=bucket))
        return [{"target": t.target, "refId": t.refId,
                 "datapoints": [[getattr(g, t.target), g.bucket_ms] for g in res.groups]}]
    if t.target == "spreaders":
        res = call(service.spreaders, m.QuerySpreadersRequest(range=rng, filter=flt, limit=limit))
        return [{"type": "table", "refId": t.refId,
                 "columns": [{"text": "side", "type": "string"}, {"text": "address", "type": "string"},
                             {"text": "distinct", "type": "number"}],
                 "rows": [["sources", s.addr, s.distinct] for s in res.sources]
                 + [["destinations", s.addr, s.distinct] for s in res.destinations]}]
    dim = {"top_talkers": "src", "top_flows": "flow", "top_ports": "port"}[t.target]
    res = call(service.heavy_hitters, m.QueryHeavyHittersRequest(range=rng, filter=flt, dimension=dim, limit=limit,
                                                                 exact=bool(p.get("exact", False))))
    return [{"type": "table", "refId": t.refId,
             "columns": [{"text": "item", "type": "string"}, {"text": "bytes", "type": "number"}],
             "rows": [[h.item, h.value] for h in res.items]}]
