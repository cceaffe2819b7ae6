"""`netspectra ai`: the AI gateway in a process of its own, reading through the query API's
HTTP/JSON with a read token (api/ai/remote.py), in front of a local OpenAI-compatible endpoint.
Its alert facts are the query API's answers to the same requests; it answers Ask whole
(AskUnary, and HTTP with Accept: application/json) and streamed; it refuses the query methods;
its metrics move; it will not start without what it needs, one line each."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import grpc
import httpx
import pytest

from api import models as m
from api.grpc_service import GATEWAY_ONLY
from schemas.v1 import query_pb2 as pb, query_pb2_grpc as pb_grpc
from tests.api.conftest import READ_TOKEN, TOKENS
from tests.conftest import ROOT, _free_ports
from tests.fake_openai import FakeOpenAI, Reply, tool_call_stream
from tests.support import TcpForwarder, wait_for

KEY_ENV = "NS_TEST_AI_KEY"


def _start(tmp_path, query_api: str, ai_url: str, env: dict | None = None, **extra):
    """`netspectra ai` as a process; (process, its start line or None, ports)."""
    grpc_port, http_port, metrics_port = _free_ports(3)
    cfg = {"grpc_port": grpc_port, "http_port": http_port, "metrics_port": metrics_port, "tokens": TOKENS,
           "query_api": query_api, "ai": {"base_url": ai_url, "model": "m-1", "api_key_env": KEY_ENV,
                                          "internal_networks": ["10.0.0.0/8"], "backoff_s": 0}, **extra}
    path = tmp_path / "ai.json"
    path.write_text(json.dumps(cfg))
    env = {**os.environ, KEY_ENV: "sk-test-0123456789abcdef", "NETSPECTRA_API_TOKEN": READ_TOKEN, **(env or {})}
    proc = subprocess.Popen([sys.executable, "-m", "netspectra.cli", "ai", "--config", str(path)], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, (grpc_port, http_port, metrics_port)


def _started(proc) -> dict:
    line = proc.stdout.readline()
    if not line:
        raise AssertionError(f"netspectra ai exited ({proc.wait()}): {proc.stderr.read()}")
    return json.loads(line)


def _metrics(port: int) -> dict[str, float]:
    """netspectra_ai_* samples summed over their labels (histograms: their count)."""
    out: dict[str, float] = {}
    for line in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text.splitlines():
        if not line.startswith("netspectra_ai_") or line.startswith("#"):
            continue
        name, value = line.split("{")[0].split(" ")[0], float(line.rsplit(" ", 1)[1])
        if name.endswith(("_bucket", "_sum")):
            continue
        name = name.removesuffix("_count")
        out[name] = out.get(name, 0) + value
    return out


def test_the_gateway_alone_answers_through_the_query_api(alert_api, tmp_path):
    api, addr = alert_api
    args = json.dumps({"range": {"start_ms": 0, "end_ms": 2**52}, "filter": {"src": ["HOST-1"]}})
    with FakeOpenAI() as ai:
        ai.script += [Reply(status=429, headers={"Retry-After": "0"}), Reply(text="HOST-1 sends a lot.")]
        proc, (grpc_port, http_port, metrics_port) = _start(tmp_path, api.http_url, ai.url)
        try:
            started = _started(proc)
            assert started["query_api"] == api.http_url and started["model"] == "m-1"
            http = httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=60,
                                headers={"Authorization": f"Bearer {READ_TOKEN}"})
            # an alert's analysis: the facts are the query API's own answers, through its HTTP
            r = http.post("/v1/ai/analyze", json={"alert_id": "ai1"})
            assert r.status_code == 200, r.text
            got = r.json()
            assert got["text"] == f"{addr} sends a lot." and got["pseudonymised"] >= 1
            facts = json.loads(got["facts_json"])
            assert facts["alert"]["id"] == "ai1" and facts["queries"]
            for q in facts["queries"]:
                req = getattr(m, q["method"] + "Request").model_validate(q["request"])
                method = {"AggregateFlows": api.service.aggregate_flows, "ListAlerts": api.service.list_alerts}
                assert method[q["method"]](req).model_dump(mode="json") == q["answer"], q["name"]
            assert addr not in json.dumps(ai.requests[-1]["body"])          # pseudonymised before it left
            # a question, whole: gRPC AskUnary, and HTTP asking for JSON
            stub, md = pb_grpc.QueryStub(grpc.insecure_channel(f"127.0.0.1:{grpc_port}")), \
                [("authorization", f"Bearer {READ_TOKEN}")]
            ai.script += [Reply(raw=tool_call_stream(args)), Reply(stream=["HOST-1 ", "sent ", "a lot."])]
            whole = stub.AskUnary(pb.AskRequest(question=f"What did {addr} send?"), metadata=md, timeout=60)
            assert whole.text == f"{addr} sent a lot." and whole.rounds == 2
            assert [(q.tool_name, q.tool_arguments) for q in whole.queries] == \
                [("aggregate_flows", args.replace("HOST-1", addr))]
            ai.script += [Reply(raw=tool_call_stream(args)), Reply(stream=["HOST-1 ", "again."])]
            r = http.post("/v1/ai/ask", json={"question": f"And {addr}?"}, headers={"Accept": "application/json"})
            assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
            assert r.json()["text"] == f"{addr} again." and r.json()["queries"][0]["tool_name"] == "aggregate_flows"
            # streamed, as from the API
            ai.script += [Reply(stream=["one ", "two"])]
            chunks = list(stub.Ask(pb.AskRequest(question="count"), metadata=md, timeout=60))
            assert "".join(c.text for c in chunks) == "one two" and chunks[-1].done
            # the query methods are the query API's
            with pytest.raises(grpc.RpcError) as e:
                stub.AggregateFlows(pb.AggregateFlowsRequest(), metadata=md, timeout=10)
            assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED and e.value.details() == GATEWAY_ONLY
            assert http.post("/v1/flows/aggregate", json={}).status_code == 404
            assert http.get("/v1/health").json() == {"status": "ok", "model": "m-1", "query_api": api.http_url,
                                                     "query_api_ok": True}
            assert httpx.post(f"http://127.0.0.1:{http_port}/v1/ai/ask", json={"question": "x"}).status_code == 401
            # its metrics: the endpoint's answers by status, the retry, tokens, time, the tool call
            seen = _metrics(metrics_port)
            assert seen["netspectra_ai_upstream_requests_total"] == 7       # a 429, then six answers
            assert seen["netspectra_ai_upstream_retries_total"] == 1
            assert seen["netspectra_ai_upstream_seconds"] == 6
            assert seen["netspectra_ai_tool_calls_total"] == 2
            assert seen["netspectra_ai_tokens_total"] > 0
            assert seen["netspectra_ai_budget_refusals_total"] == 0       # tests/api/test_ai_upstream.py counts one
        finally:
            proc.terminate()
            proc.wait(30)


def test_the_gateway_alone_says_what_it_lacks(tmp_path, alert_api):
    api, _ = alert_api
    lines = {}
    for name, query_api, env in (("token", api.http_url, {"NETSPECTRA_API_TOKEN": ""}),
                                 ("down", f"http://127.0.0.1:{_free_ports(1)[0]}", {}),
                                 ("key", api.http_url, {KEY_ENV: ""})):
        proc, _ = _start(tmp_path, query_api, "http://127.0.0.1:9/v1", env)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 2 and out == "", (name, err)
        lines[name] = err.strip().splitlines()
    assert lines["token"] == ["netspectra ai: no token for the query API: set the environment variable "
                              f"NETSPECTRA_API_TOKEN (a read token of {api.http_url}) or query_token_env"]
    assert len(lines["down"]) == 1 and lines["down"][0].endswith("not answering; start `netspectra api` or give query_api")
    assert lines["key"] == [f"netspectra ai: ai: no API key: set the environment variable {KEY_ENV} or ai.api_key_file"]


def test_the_query_api_going_away_is_one_line_and_the_gateway_stays(alert_api, tmp_path):
    """The gateway started against a query API that then stops answering: the analysis is a 503
    line naming it; the gateway still serves, and its health says degraded."""
    api, _ = alert_api
    port = _free_ports(1)[0]
    link = TcpForwarder(port, int(api.http_url.rsplit(":", 1)[1]))
    with FakeOpenAI() as ai:
        proc, (_, http_port, _) = _start(tmp_path, f"http://127.0.0.1:{port}", ai.url)
        try:
            _started(proc)
            link.cut()
            http = httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=60,
                                headers={"Authorization": f"Bearer {READ_TOKEN}"})
            wait_for(lambda: http.get("/v1/health").json()["status"] == "degraded", 30, "health: degraded")
            r = http.post("/v1/ai/analyze", json={"alert_id": "ai1"})
            assert r.status_code == 503 and r.json()["error"].startswith(
                f"cannot gather the alert's facts: cannot reach the query API at http://127.0.0.1:{port}")
            assert ai.requests == []            # nothing was asked upstream
        finally:
            proc.terminate()
            proc.wait(30)
            link.cut()
