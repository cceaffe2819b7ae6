"""The query API as the gateway's `service` when the gateway runs in a process of its own
(`netspectra ai`): the read methods grounding and tools use, over the API's HTTP/JSON with a read
token. Requests and answers are the same models (api/models.py) and pass the same validation as
in-process; the API's errors come back as the in-process exceptions."""
from __future__ import annotations

from typing import Optional

from api import models as m


class RemoteQuery:
    def __init__(self, url: str, token: str, ca: Optional[str] = None, timeout_s: float = 30.0):
        import httpx
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"} if token else {},
                                  verify=ca if ca else True, timeout=httpx.Timeout(timeout_s, connect=5))

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, answer, **kw):
        import httpx

        from api.queries import QueryError
        from api.service import Busy, NotFound, Unavailable
        try:
            r = self._http.request(method, path, **kw)
        except httpx.HTTPError as e:
            raise Unavailable(f"cannot reach the query API at {self.url} ({type(e).__name__})") from None
        if r.status_code == 200:
            return answer.model_validate(r.json())
        try:
            line = r.json()["error"]
        except (ValueError, KeyError, TypeError):
            line = r.text[:200]
        exc = {400: QueryError, 404: NotFound, 429: Busy}.get(r.status_code, Unavailable)
        raise exc(f"the query API answered {r.status_code}: {line}")

    def aggregate_flows(self, req: m.AggregateFlowsRequest) -> m.AggregateFlowsResponse:
        return self._call("POST", "/v1/flows/aggregate", m.AggregateFlowsResponse, json=req.model_dump(mode="json"))

    def trace_flow(self, req: m.TraceFlowRequest) -> m.TraceFlowResponse:
        return self._call("POST", "/v1/flows/trace", m.TraceFlowResponse, json=req.model_dump(mode="json"))

    def list_alerts(self, req: m.ListAlertsRequest) -> m.ListAlertsResponse:
        params = {"start_ms": req.range.start_ms, "end_ms": req.range.end_ms}      # resolved by the model
        params.update({k: v for k, v in req.model_dump(exclude={"range"}).items() if v not in (None, "", 0, [])})
        return self._call("GET", "/v1/alerts", m.ListAlertsResponse, params=params)

    def ping(self) -> bool:
        try:
            return self._http.get("/livez").status_code == 200
        except Exception:       # noqa: BLE001 - any failure is "not reachable"
            return False
