"""The alerts API: ListAlerts / GET /v1/alerts on chDB and on the 18.16 server (filters, newest
version wins), WatchAlerts / GET /v1/alerts/stream (SSE) following the engine's changes in Redis."""
from __future__ import annotations

import json
import threading
from dataclasses import replace

import pytest

from schemas.alerts import Alert
from schemas.v1 import query_pb2 as pb

S = 10**9
T = 1_700_000_000
FLOOD = Alert("flood1", "syn_flood", "syn_flood", "critical", {"dst": "10.10.10.10"}, 5000.0, 1000.0,
              (T + 60) * S, (T + 70) * S, T * S, (T + 70) * S, "firing", 7, evidence={"sources": 900}, version=7)
SCAN = Alert("scan1", "port_scan", "port_scan", "warning", {"src": "198.51.100.1", "dst": "10.0.0.2"}, 300.0, 16.7,
             (T + 20) * S, (T + 30) * S, (T + 10) * S, (T + 30) * S, "resolved", 2, resolved_at=(T + 50) * S, version=3)
OLD = replace(SCAN, id="old1", first_seen=(T - 7200) * S, last_seen=(T - 7000) * S, window_start=(T - 7010) * S,
              window_end=(T - 7000) * S)
RANGE = {"start_ms": T * 1000, "end_ms": (T + 3600) * 1000}


def _write(api, ports, alerts):
    if api.service.dialect.legacy:
        from sinks.clickhouse_native import ClickHouseNative
        ClickHouseNative(f"127.0.0.1:{ports['clickhouse']}").write_alerts(alerts, api.source)
    else:
        api.service.backend.store.write_alerts(alerts, api.source)


@pytest.fixture(params=["chdb_api", "server_api"])
def alerts_api(request, local_stack):
    api = request.getfixturevalue(request.param)
    _, ports, _ = local_stack
    # an older version of the flood written after the newest: the newest still wins
    _write(api, ports, [replace(FLOOD, version=1, value=1200.0), SCAN, OLD])
    _write(api, ports, [FLOOD])
    _write(api, ports, [replace(FLOOD, version=2, value=1500.0)])
    return api


def _ids(items) -> list[str]:
    return [a["id"] for a in items]


def test_list_alerts_filters_and_newest_version(alerts_api):
    api = alerts_api
    with api.http() as c:
        get = lambda **p: c.get("/v1/alerts", params={**RANGE, "source": api.source, **p})
        r = get()
        assert r.status_code == 200, r.text
        items = r.json()["alerts"]
        assert _ids(items) == ["scan1", "flood1"]          # latest first seen first; the old one ended before the range
        flood = items[1]
        assert (flood["value"], flood["state"], flood["entity"], flood["windows"]) == (5000.0, "firing",
                                                                                      {"dst": "10.10.10.10"}, 7)
        assert flood["first_seen_ms"] == T * 1000 and json.loads(flood["evidence_json"]) == {"sources": 900}
        assert items[0]["resolved_at_ms"] == (T + 50) * 1000
        assert _ids(get(state="firing").json()["alerts"]) == ["flood1"]
        assert _ids(get(severity=["warning", "info"]).json()["alerts"]) == ["scan1"]
        assert _ids(get(rule="syn_flood").json()["alerts"]) == ["flood1"]
        assert _ids(get(address="10.0.0.2").json()["alerts"]) == ["scan1"]
        assert _ids(get(address="198.51.100.1").json()["alerts"]) == ["scan1"]
        assert _ids(get(address="10.9.9.9").json()["alerts"]) == []
        assert _ids(get(start_ms=(T - 7500) * 1000, end_ms=(T - 6000) * 1000).json()["alerts"]) == ["old1"]
        assert _ids(get(limit=1).json()["alerts"]) == ["scan1"]
        assert _ids(get(id="flood1").json()["alerts"]) == ["flood1"]
        assert _ids(get(id=["flood1", "scan1", "nope"]).json()["alerts"]) == ["scan1", "flood1"]
        for bad in ({"state": "loud"}, {"address": "10.0.0.0/8"}, {"severity": "x"}, {"start_ms": 5, "end_ms": 5}):
            r = get(**bad)
            assert r.status_code == 400 and r.json()["error"], (bad, r.text)
    stub, md = api.stub()
    g = stub.ListAlerts(pb.ListAlertsRequest(range=pb.TimeRange(**RANGE), source=api.source, state=["firing"]),
                        metadata=md, timeout=10)
    assert [a.id for a in g.alerts] == ["flood1"] and dict(g.alerts[0].entity) == {"dst": "10.10.10.10"}
    assert g.alerts[0].value == 5000.0
    g = stub.ListAlerts(pb.ListAlertsRequest(range=pb.TimeRange(**RANGE), source=api.source, id=["scan1"]),
                        metadata=md, timeout=10)
    assert [a.id for a in g.alerts] == ["scan1"]


def test_watch_alerts_sse_and_grpc(chdb_api):
    """Current firing alerts first, then each change as the engine writes it to Redis; an SSE
    client resumes after its Last-Event-ID."""
    from sinks.redis_state import RedisState
    api = chdb_api
    rs = RedisState(api.redis, api.source)
    rs.write_alerts([FLOOD, SCAN])
    got: list = []
    ready = threading.Event()

    def sse():
        with api.http() as c, c.stream("GET", "/v1/alerts/stream", params={"source": api.source}, timeout=30) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            ev = {}
            for line in r.iter_lines():
                if line.startswith(("id:", "data:", "event:")):
                    k, v = line.split(":", 1)
                    ev[k] = v.strip()
                elif line == "" and ev:
                    got.append(ev)
                    ev = {}
                    ready.set()
                    if len(got) == 3:
                        return
    t = threading.Thread(target=sse, daemon=True)
    t.start()
    assert ready.wait(20), "no event from the stream"
    stub, md = api.stub()
    stream = stub.WatchAlerts(pb.WatchAlertsRequest(source=api.source), metadata=md, timeout=30)
    first = next(stream)
    assert (first.change, first.alert.id) == ("firing", "flood1")        # the firing one, not the resolved scan
    newer = replace(FLOOD, id="flood2", entity={"dst": "10.10.10.11"}, version=1)
    rs.write_alerts([newer])
    rs.write_alerts([replace(newer, state="resolved", version=2)])
    t.join(20)
    assert [(e["event"], json.loads(e["data"])["change"], json.loads(e["data"])["alert"]["id"]) for e in got] == \
        [("alert", "firing", "flood1"), ("alert", "firing", "flood2"), ("alert", "resolved", "flood2")]
    assert (next(stream).change, next(stream).change) == ("firing", "resolved")
    stream.cancel()
    # resume after the second event: only the third comes (then keep-alives)
    with api.http() as c, c.stream("GET", "/v1/alerts/stream", params={"source": api.source},
                                   headers={"Last-Event-ID": got[1]["id"]}, timeout=30) as r:
        data = next(line for line in r.iter_lines() if line.startswith("data:"))
    assert json.loads(data[5:])["change"] == "resolved"


def test_alert_stream_without_live_state_is_a_clear_error(server_api):
    with server_api.http() as c:
        r = c.get("/v1/alerts/stream", params={"source": "x"}, timeout=10)
    assert r.status_code == 503 and "Redis" in r.json()["error"]
    stub, md = server_api.stub()
    import grpc
    with pytest.raises(grpc.RpcError) as e:
        next(stub.WatchAlerts(pb.WatchAlertsRequest(source="x"), metadata=md, timeout=10))
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE


def test_text_with_newlines_and_backslashes_is_a_value_not_an_error(chdb_api):
    """chDB reads string parameters as escaped text: a raw newline or backslash in a request's
    value must still arrive as that value (found by schemathesis: a 500)."""
    with chdb_api.http() as c:
        r = c.get("/v1/alerts", params={**RANGE, "rule": "k\n", "source": "a\\b\tc"})
        assert r.status_code == 200 and r.json() == {"alerts": []}, r.text
        body = {"range": RANGE, "filter": {"source": "line\nbreak\\"}}
        r = c.post("/v1/flows/aggregate", json=body)
        assert r.status_code == 200 and sum(g["packets"] for g in r.json()["groups"]) == 0, r.text
