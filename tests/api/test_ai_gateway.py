"""The AI gateway's analysis of an alert, on the API's chDB store of the generated capture and a
local OpenAI-compatible endpoint: the facts it sends are the query API's own answers to the same
requests (asked again here over HTTP), internal addresses leave as names and come back in the
answer, an unknown alert is a 404 line, and the system prompt asks for the five parts."""
from __future__ import annotations

import asyncio
import json

import pytest

from api import models as m
from api.ai.config import AiConfig
from api.ai.gateway import AiGateway
from api.ai.prompts import ALERT_SYSTEM
from api.ai.upstream import AiError, ChatUpstream
from schemas.alerts import Alert
from tests.fake_openai import FakeOpenAI, Reply

S = 10**9


@pytest.fixture(scope="module")
def alert_api(chdb_api):
    """The API with one alert about the capture's busiest internal source, in its last window."""
    svc = chdb_api.service
    wide = m.TimeRange(start_ms=0, end_ms=2**52)
    top = svc.aggregate_flows(m.AggregateFlowsRequest(range=wide, group_by=["src"], limit=50,
                                                      filter=m.Filter(src=["10.0.0.0/8"], source=chdb_api.source)))
    addr = top.groups[0].src
    series = svc.aggregate_flows(m.AggregateFlowsRequest(range=wide, bucket_seconds=10,
                                                         filter=m.Filter(src=[addr], source=chdb_api.source)))
    last = series.groups[-1].bucket_ms * 10**6
    alert = Alert("ai1", "big_talker", "host_volume", "warning", {"src": addr}, 5e6, 1e6, last - 10 * S, last,
                  last - 60 * S, last, "firing", 3, evidence={"bytes": 5_000_000}, version=1)
    svc.backend.store.write_alerts([alert], chdb_api.source)
    return chdb_api, addr


def _gateway(url: str, service, **cfg) -> AiGateway:
    c = AiConfig(base_url=url, model="m-1", internal_networks=["10.0.0.0/8"], **cfg)
    return AiGateway(c, service, ChatUpstream(c, key="sk-test-0123456789abcdef"))


async def _analyze(gw: AiGateway, alert_id: str):
    try:
        return await gw.analyze_alert(alert_id)
    finally:
        await gw.aclose()


def test_an_alert_analysis_is_grounded_in_the_query_api_and_pseudonymised(alert_api):
    api, addr = alert_api
    with FakeOpenAI() as ai:
        ai.script.append(Reply(text="HOST-1 sent 5 MB; HOST-99999 is unknown."))
        got = asyncio.run(_analyze(_gateway(ai.url, api.service), "ai1"))
        (req,) = ai.requests
    system, user = req["body"]["messages"]
    assert system == {"role": "system", "content": ALERT_SYSTEM}
    for part in ("What is happening", "How sure", "Likely cause", "Impact", "Next steps", "Cite the numbers"):
        assert part in ALERT_SYSTEM
    sent = user["content"]
    assert sent.startswith("Facts (JSON):\n") and addr not in sent and "HOST-1" in sent
    assert "10." not in json.dumps(json.loads(sent.split("\n", 1)[1])["alert"]["entity"])
    assert got.text == f"{addr} sent 5 MB; HOST-99999 is unknown." and got.pseudonymised >= 1
    facts = got.facts
    assert facts["alert"]["id"] == "ai1" and facts["alert"]["evidence"] == {"bytes": 5_000_000}
    assert facts["names"]["available"] is False
    assert len(facts["queries"]) == 9
    sent_total = next(q for q in facts["queries"] if q["name"] == f"{addr}: traffic sent, last hour")
    assert sent_total["answer"]["groups"][0]["bytes"] > 0
    with api.http() as c:                        # the same questions, asked by a client
        for q in facts["queries"]:
            if q["method"] == "AggregateFlows":
                r = c.post("/v1/flows/aggregate", json=q["request"])
            else:
                p = q["request"]
                r = c.get("/v1/alerts", params={"start_ms": p["range"]["start_ms"], "end_ms": p["range"]["end_ms"],
                                                "address": p["address"], "source": p["source"], "limit": p["limit"]})
            assert r.status_code == 200, r.text
            assert r.json() == q["answer"], q["name"]


def test_without_pseudonymising_addresses_leave_as_they_are(alert_api):
    api, addr = alert_api
    with FakeOpenAI() as ai:
        got = asyncio.run(_analyze(_gateway(ai.url, api.service, pseudonymise=False), "ai1"))
        assert addr in ai.requests[0]["body"]["messages"][1]["content"] and got.pseudonymised == 0


def test_an_unknown_alert_is_one_line_and_asks_nothing(alert_api):
    api, _ = alert_api
    with FakeOpenAI() as ai:
        with pytest.raises(AiError) as e:
            asyncio.run(_analyze(_gateway(ai.url, api.service), "nope"))
        assert e.value.status == 404 and str(e.value) == "no alert with id 'nope'" and ai.requests == []
