"""The AI gateway's analysis of an alert, on the API's chDB store of the generated capture and a
local OpenAI-compatible endpoint: the facts it sends are the query API's own answers to the same
requests (asked again here over HTTP), internal addresses leave as names and come back in the
answer, an unknown alert is a 404 line, and the system prompt asks for the five parts."""
from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import threading
import time

import grpc
import httpx
import pytest

from api import models as m
from api.ai import tools
from api.ai.config import AiConfig
from api.ai.gateway import AiGateway
from api.ai.prompts import ALERT_SYSTEM
from api.ai.upstream import AiError, ChatUpstream
from api.config import ApiConfig
from api.server import ApiStartError, build
from schemas.alerts import Alert, AlertEvent
from schemas.v1 import query_pb2 as pb, query_pb2_grpc as pb_grpc
from sinks import notifiers
from sinks.notifiers import outboxes
from tests.api.conftest import READ_TOKEN, TOKENS, serve
from tests.conftest import ROOT, _free_ports
from tests.fake_openai import FakeOpenAI, Reply, tool_call_stream
from tests.support import Alertmanager, HookReceiver, SmtpServer, wait_for

S = 10**9


def _api_config(store: str, ai_url: str, **ai) -> ApiConfig:
    """`netspectra api` on `store` with a gateway to `ai_url` (its key in NS_TEST_AI_KEY)."""
    return ApiConfig(store=store, grpc_port=0, http_port=_free_ports(1)[0], tokens=TOKENS,
                     ai={"base_url": ai_url, "model": "m-1", "api_key_env": "NS_TEST_AI_KEY",
                         "internal_networks": ["10.0.0.0/8"], **ai})


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


def test_analyze_over_http_and_grpc_and_the_errors(alert_api, monkeypatch):
    """`netspectra api` with an `ai` section: POST /v1/ai/analyze and gRPC AnalyzeAlert answer
    with the analysis and its facts; an unknown alert is 404 / NOT_FOUND, the endpoint failing
    502 / UNAVAILABLE, one line each; without the section 503 / UNAVAILABLE; without a key the
    API does not start."""

    api, addr = alert_api
    store = api.service.backend.store.path
    monkeypatch.setenv("NS_TEST_AI_KEY", "sk-test-0123456789abcdef")
    with FakeOpenAI() as ai:
        ai.script.append(Reply(text="HOST-1 sent the most.", usage={"prompt_tokens": 900, "completion_tokens": 20,
                                                                   "total_tokens": 920}))
        cfg = _api_config(store, ai.url, max_retries=0)
        for _service, target, url in serve(cfg):
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {READ_TOKEN}"}, timeout=60) as c:
                r = c.post("/v1/ai/analyze", json={"alert_id": "ai1"})
                assert r.status_code == 200, r.text
                body = r.json()
                assert body["text"] == f"{addr} sent the most." and body["model"] == "m-1"
                assert (body["prompt_tokens"], body["completion_tokens"]) == (900, 20) and body["pseudonymised"] >= 1
                assert json.loads(body["facts_json"])["alert"]["id"] == "ai1"
                assert ai.requests[0]["headers"]["Authorization"] == "Bearer sk-test-0123456789abcdef"
                r = c.post("/v1/ai/analyze", json={"alert_id": "nope"})
                assert r.status_code == 404 and r.json()["error"] == "no alert with id 'nope'"
                ai.script.append(Reply(status=500))
                r = c.post("/v1/ai/analyze", json={"alert_id": "ai1"})
                assert r.status_code == 502 and r.json()["error"] == "AI endpoint answered 500: fake error 500"
                assert httpx.post(f"{url}/v1/ai/analyze", json={"alert_id": "ai1"}).status_code == 401
            stub, md = pb_grpc.QueryStub(grpc.insecure_channel(target)), [("authorization", f"Bearer {READ_TOKEN}")]
            ai.script.append(Reply(text="HOST-1 again."))
            g = stub.AnalyzeAlert(pb.AnalyzeAlertRequest(alert_id="ai1"), metadata=md, timeout=60)
            assert g.text == f"{addr} again." and json.loads(g.facts_json)["alert"]["id"] == "ai1"
            for alert_id, code in (("nope", grpc.StatusCode.NOT_FOUND), ("", grpc.StatusCode.INVALID_ARGUMENT)):
                with pytest.raises(grpc.RpcError) as e:
                    stub.AnalyzeAlert(pb.AnalyzeAlertRequest(alert_id=alert_id), metadata=md, timeout=60)
                assert e.value.code() == code
            ai.script.append(Reply(status=503))
            with pytest.raises(grpc.RpcError) as e:
                stub.AnalyzeAlert(pb.AnalyzeAlertRequest(alert_id="ai1"), metadata=md, timeout=60)
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE and e.value.details().startswith("AI endpoint answered 503")
    assert not [t for t in threading.enumerate() if t.name == "ai-gateway"]    # stopped with the HTTP server
    plain = ApiConfig(store=store, grpc_port=0, http_port=_free_ports(1)[0], tokens=TOKENS)
    for _service, target, url in serve(plain):
        r = httpx.post(f"{url}/v1/ai/analyze", json={"alert_id": "ai1"},
                       headers={"Authorization": f"Bearer {READ_TOKEN}"})
        assert r.status_code == 503 and "add an `ai` section" in r.json()["error"]
        with pytest.raises(grpc.RpcError) as e:
            pb_grpc.QueryStub(grpc.insecure_channel(target)).AnalyzeAlert(
                pb.AnalyzeAlertRequest(alert_id="ai1"), metadata=[("authorization", f"Bearer {READ_TOKEN}")], timeout=30)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    monkeypatch.delenv("NS_TEST_AI_KEY")
    with pytest.raises(ApiStartError) as e:
        build(ApiConfig(store=store, grpc_port=0, tokens=TOKENS, ai={"api_key_env": "NS_TEST_AI_KEY"}))
    assert str(e.value) == "ai: no API key: set the environment variable NS_TEST_AI_KEY or ai.api_key_file"


def test_a_question_is_answered_with_the_query_api_as_tools(alert_api):
    """The model asks aggregate_flows about HOST-1 (the address in the question, pseudonymised);
    the gateway runs it with the address put back, sends the API's answer back pseudonymised,
    and streams the model's answer with the name put back."""
    api, addr = alert_api
    args = json.dumps({"range": {"start_ms": 0, "end_ms": 2**52}, "filter": {"src": ["HOST-1"]}})
    with FakeOpenAI() as ai:
        ai.script += [Reply(raw=tool_call_stream(args)), Reply(stream=["HOS", "T-1 sent ", "many bytes."])]
        gw = _gateway(ai.url, api.service)

        async def run():
            try:
                return [ev async for ev in gw.ask(f"How much did {addr} send?")]
            finally:
                await gw.aclose()
        events = asyncio.run(run())
        first, second = (r["body"] for r in ai.requests)
    assert addr not in json.dumps(first) and "HOST-1" in first["messages"][1]["content"]
    assert [t["function"]["name"] for t in first["tools"]] == ["aggregate_flows", "list_alerts", "trace_flow"]
    assert first["stream"] is True
    tool = next(e["tool"] for e in events if "tool" in e)
    assert tool == {"name": "aggregate_flows", "arguments": args.replace("HOST-1", addr)}
    assert "".join(e.get("text", "") for e in events) == f"{addr} sent many bytes."
    assert events[-1] == {"done": {"rounds": 2}}
    call, result = second["messages"][2], second["messages"][3]
    assert call["tool_calls"][0]["function"] == {"name": "aggregate_flows", "arguments": args}
    assert result["role"] == "tool" and result["tool_call_id"] == "call_1" and addr not in result["content"]
    expected = api.service.aggregate_flows(m.AggregateFlowsRequest(range=m.TimeRange(start_ms=0, end_ms=2**52),
                                                                   filter=m.Filter(src=[addr])))
    assert json.loads(result["content"]) == expected.model_dump(mode="json")
    assert expected.groups[0].bytes > 0


def test_a_bad_tool_call_goes_back_to_the_model_as_one_line():
    assert tools.run(None, "drop_tables", "{}", None).startswith("error: no tool 'drop_tables'")
    assert tools.run(None, "aggregate_flows", "{not json", None).startswith("error: arguments:")
    got = tools.run(None, "aggregate_flows", json.dumps({"range": {"last": "1h"}, "filter": {"src": ["10.0.0.300"]}}),
                    None)
    assert got.startswith("error: filter.src") and "\n" not in got


def _sse(lines) -> list[tuple[str, dict]]:
    """(event, data) of an SSE response's events."""
    out, event = [], "message"
    for line in lines:
        if line.startswith("event: "):
            event = line[len("event: "):]
        elif line.startswith("data: "):
            out.append((event, json.loads(line[len("data: "):])))
            event = "message"
    return out


def test_ask_streams_over_http_and_grpc_and_a_client_going_away_stops_the_answer(alert_api, monkeypatch):

    api, addr = alert_api
    monkeypatch.setenv("NS_TEST_AI_KEY", "sk-test-0123456789abcdef")
    args = json.dumps({"range": {"start_ms": 0, "end_ms": 2**52}, "filter": {"src": ["HOST-1"]}})
    with FakeOpenAI() as ai:
        cfg = _api_config(api.service.backend.store.path, ai.url, max_retries=0)
        for _service, target, url in serve(cfg):
            headers = {"Authorization": f"Bearer {READ_TOKEN}"}
            ai.script += [Reply(raw=tool_call_stream(args)), Reply(stream=["HOST-1 ", "sent ", "a lot."])]
            with httpx.stream("POST", f"{url}/v1/ai/ask", json={"question": f"What did {addr} send?"},
                              headers=headers, timeout=60) as r:
                assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
                events = _sse(r.iter_lines())
            chunks = [d for e, d in events if e == "chunk"]
            assert chunks[0]["tool_name"] == "aggregate_flows" and addr in chunks[0]["tool_arguments"]
            assert "".join(c["text"] for c in chunks) == f"{addr} sent a lot." and chunks[-1]["done"] is True
            # gRPC: the same answer as a stream of AskChunk
            ai.script += [Reply(raw=tool_call_stream(args)), Reply(stream=["HOST-1 ", "again."])]
            stub, md = pb_grpc.QueryStub(grpc.insecure_channel(target)), [("authorization", f"Bearer {READ_TOKEN}")]
            got = list(stub.Ask(pb.AskRequest(question=f"And {addr}?"), metadata=md, timeout=60))
            assert got[0].tool_name == "aggregate_flows" and got[-1].done
            assert "".join(c.text for c in got) == f"{addr} again."
            # `netspectra ask`: the answer on stdout as it comes, the queries on stderr
            ai.script += [Reply(raw=tool_call_stream(args)), Reply(stream=["HOST-1 ", "sent ", "a lot."])]
            cli = subprocess.run([sys.executable, "-m", "netspectra.cli", "ask", "--url", url, f"What did {addr} send?"],
                                 cwd=ROOT, capture_output=True, text=True, timeout=120,
                                 env={**os.environ, "NETSPECTRA_API_TOKEN": READ_TOKEN})
            assert cli.returncode == 0, cli.stderr
            assert cli.stdout == f"{addr} sent a lot.\n" and cli.stderr.startswith("[query: aggregate_flows {")
            ai.script.append(Reply(status=429, headers={"Retry-After": "0"}))
            cli = subprocess.run([sys.executable, "-m", "netspectra.cli", "ask", "--url", url, "x"], cwd=ROOT,
                                 capture_output=True, text=True, timeout=120,
                                 env={**os.environ, "NETSPECTRA_API_TOKEN": READ_TOKEN})
            assert cli.returncode == 1 and cli.stderr.strip() == "netspectra ask: 502: AI endpoint answered 429: fake error 429"
            # an error after the stream began: one `error` event
            ai.script.append(Reply(status=500))
            with httpx.stream("POST", f"{url}/v1/ai/ask", json={"question": "x"}, headers=headers, timeout=60) as r:
                assert _sse(r.iter_lines()) == [("error", {"error": "AI endpoint answered 500: fake error 500",
                                                           "status": 502})]
            # a client that leaves after the first words: the endpoint's stream is closed
            ai.script.append(Reply(stream=[f"{i} " for i in range(400)], delay_s=0.02))
            with httpx.stream("POST", f"{url}/v1/ai/ask", json={"question": "count"}, headers=headers,
                              timeout=60) as r:
                for line in r.iter_lines():
                    if line.startswith("data: "):
                        break
            deadline = time.monotonic() + 20
            while not ai.disconnects and time.monotonic() < deadline:
                time.sleep(0.05)
            assert ai.disconnects == 1
            r = httpx.post(f"{url}/v1/ai/ask", json={"question": ""}, headers=headers)
            assert r.status_code == 400 and "question" in r.json()["error"]


def test_notifications_go_first_and_the_analysis_follows(alert_api, monkeypatch, tmp_path):
    """With an `ai` notifier entry: the webhook and the mail of a firing alert go out while the
    LLM is still answering (its answer is held until the test has seen both), then each gets
    the analysis as a second message; the gateway is asked once for both."""

    api, addr = alert_api
    monkeypatch.setenv("NS_TEST_AI_KEY", "sk-test-0123456789abcdef")
    monkeypatch.setenv("NS_TEST_API_TOKEN", READ_TOKEN)
    alert = Alert("ai1", "big_talker", "host_volume", "warning", {"src": addr}, 5e6, 1e6, 0, 10 * S, 0, 10 * S,
                  "firing", 3, evidence={"bytes": 5_000_000}, version=1)
    hook, smtp, gate = HookReceiver(), SmtpServer(), threading.Event()
    am = Alertmanager(tmp_path, hook)
    with FakeOpenAI() as ai:
        ai.script.append(Reply(text="HOST-1 is the talker.", gate=gate))
        cfg = _api_config(api.service.backend.store.path, ai.url)
        for _service, _target, url in serve(cfg):
            boxes = outboxes({"webhook": {"url": hook.url + "/hook"}, "alertmanager": {"url": am.url},
                              "smtp": {"host": "127.0.0.1", "port": smtp.port, "from": "ns@example.org",
                                       "to": ["noc@example.org"]},
                              "ai": {"url": url, "token_env": "NS_TEST_API_TOKEN", "attempts": 2}}, "src", None)
            try:
                for box in boxes:
                    box.submit([AlertEvent("firing", alert)])
                posts = lambda: [p for p in hook.posts if p[0] == "/hook"]    # noqa: E731 (not Alertmanager's)
                wait_for(lambda: len(posts()) >= 1 and len(smtp.messages) >= 1 and am.alerts(), 20,
                         "the firing notifications")
                assert [p[2]["change"] for p in posts()] == ["firing"]          # the analysis is still being written
                assert "analysis" not in am.alerts()[0]["annotations"]
                gate.set()
                wait_for(lambda: len(posts()) >= 2 and len(smtp.messages) >= 2, 30, "the analyses")
                wait_for(lambda: "analysis" in am.alerts()[0]["annotations"], 30, "the analysis in Alertmanager")
                assert am.alerts()[0]["annotations"]["analysis"] == f"{addr} is the talker."
                assert am.alerts()[0]["labels"]["alert_id"] == "ai1" and len(am.alerts()) == 1
                # Alertmanager's later posts of the alert keep the analysis (each replaces the annotations)
                monkeypatch.setattr(notifiers, "ALERTMANAGER_REFRESH_S", 0.0)
                am_box = next(b for b in boxes if b.n.name == "alertmanager")
                am_box.submit([AlertEvent("update", dataclasses.replace(alert, value=6e6, version=2))])
                wait_for(lambda: "6,000,000" in am.alerts()[0]["annotations"]["summary"], 30, "the update")
                assert am.alerts()[0]["annotations"]["analysis"] == f"{addr} is the talker."
                body = posts()[1][2]
                assert body["change"] == "analysis" and body["analysis"] == f"{addr} is the talker."
                assert posts()[1][1]["X-NetSpectra-Event-Id"] == "ai1:analysis"
                mail = smtp.messages[1]
                assert mail["Subject"].startswith("Analysis: ") and mail["In-Reply-To"] == "<ai1.firing@netspectra>"
                assert f"{addr} is the talker." in mail.get_body(("plain",)).get_content()
                assert len(ai.requests) == 1
            finally:
                for box in boxes:
                    box.stop()
                am.stop()
                hook.down()
                smtp.stop()
