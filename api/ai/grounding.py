"""The facts an analysis of an alert stands on, fetched by the gateway itself through the query
API (the same requests a client could make, with their validation): the alert and its evidence,
each address it is about over the hour up to its last window (totals, five-minute series, top
peers and ports either way), and the alerts about those addresses over the week before. Every
query is kept with its answer, so the prompt shows the model exactly what it may cite, and a
test can ask the API the same questions."""
from __future__ import annotations

import ipaddress
import json

from api import models as m
from api.ai.errors import AiError

HOUR_MS = 3_600_000
HISTORY_MS = 7 * 86_400_000
SERIES_S = 300
TOP = 10
NAMES = {"available": False, "why": "DNS answers are not decoded yet (names seen in DNS come with issue 19)"}


def find_alert(service, alert_id: str, now_ms: int) -> m.AlertItem:
    got = service.list_alerts(m.ListAlertsRequest(range=m.TimeRange(start_ms=0, end_ms=now_ms + 86_400_000),
                                                  id=[alert_id], limit=1)).alerts
    if not got:
        raise AiError(f"no alert with id {alert_id!r}", 404)
    return got[0]


def addresses(entity: dict) -> list[tuple[str, str]]:
    """(role, address) of each src/dst of an alert's entity that is an address."""
    out = []
    for role in ("src", "dst"):
        v = entity.get(role, "")
        try:
            ipaddress.ip_address(v)
        except ValueError:
            continue
        out.append((role, v))
    return out


def _ask(service, name: str, req) -> dict:
    method = {m.AggregateFlowsRequest: service.aggregate_flows, m.ListAlertsRequest: service.list_alerts}[type(req)]
    return {"name": name, "method": type(req).__name__.removesuffix("Request"),
            "request": req.model_dump(mode="json"), "answer": method(req).model_dump(mode="json")}


def alert_facts(service, alert: m.AlertItem) -> dict:
    end = alert.last_seen_ms - alert.last_seen_ms % 1000 + 1000
    hour = m.TimeRange(start_ms=max(end - HOUR_MS, 0), end_ms=end)
    week = m.TimeRange(start_ms=max(end - HISTORY_MS, 0), end_ms=end)
    src = alert.source
    queries = []
    for _role, a in addresses(alert.entity):
        net = [a]
        queries += [
            _ask(service, f"{a}: traffic sent, last hour", m.AggregateFlowsRequest(
                range=hour, filter=m.Filter(src=net, source=src))),
            _ask(service, f"{a}: traffic received, last hour", m.AggregateFlowsRequest(
                range=hour, filter=m.Filter(dst=net, source=src))),
            _ask(service, f"{a}: bytes sent per {SERIES_S // 60} minutes", m.AggregateFlowsRequest(
                range=hour, filter=m.Filter(src=net, source=src), bucket_seconds=SERIES_S)),
            _ask(service, f"{a}: bytes received per {SERIES_S // 60} minutes", m.AggregateFlowsRequest(
                range=hour, filter=m.Filter(dst=net, source=src), bucket_seconds=SERIES_S)),
            _ask(service, f"{a}: top destinations it sent to", m.AggregateFlowsRequest(
                range=hour, filter=m.Filter(src=net, source=src), group_by=["dst"], limit=TOP)),
            _ask(service, f"{a}: top destination ports it sent to", m.AggregateFlowsRequest(
                range=hour, filter=m.Filter(src=net, source=src), group_by=["dport", "proto"], limit=TOP)),
            _ask(service, f"{a}: top sources that sent to it", m.AggregateFlowsRequest(
                range=hour, filter=m.Filter(dst=net, source=src), group_by=["src"], limit=TOP)),
            _ask(service, f"{a}: top destination ports it received on", m.AggregateFlowsRequest(
                range=hour, filter=m.Filter(dst=net, source=src), group_by=["dport", "proto"], limit=TOP)),
            _ask(service, f"{a}: alerts about it in the week before", m.ListAlertsRequest(
                range=week, address=a, source=src, limit=20)),
        ]
    alert_doc = alert.model_dump(mode="json")
    alert_doc["evidence"] = json.loads(alert.evidence_json or "{}")
    alert_doc.pop("evidence_json")
    return {"alert": alert_doc, "range_ms": {"start_ms": hour.start_ms, "end_ms": hour.end_ms},
            "queries": queries, "names": NAMES}
