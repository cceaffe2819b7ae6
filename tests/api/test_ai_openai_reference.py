"""The `openai` package as the reference for the wire format (tests only): its client reads what
the tests' endpoint (tests/fake_openai.py) answers — completions, streamed deltas, streamed tool
calls, errors — as a real endpoint's, and for the same call it sends what the gateway's
upstream client (api/ai/upstream.py) sends: path, headers and body."""
from __future__ import annotations

import asyncio
import json

import openai
import pytest

from api.ai.config import AiConfig
from api.ai.upstream import ChatUpstream
from tests.fake_openai import FakeOpenAI, Reply, tool_call_stream

KEY = "sk-test-0123456789abcdef"
MESSAGES = [{"role": "system", "content": "You explain network alerts."}, {"role": "user", "content": "Why?"}]
TOOLS = [{"type": "function", "function": {"name": "aggregate_flows", "description": "Sums of flow records.",
                                           "parameters": {"type": "object", "properties": {}}}}]


def _client(ai: FakeOpenAI) -> openai.OpenAI:
    return openai.OpenAI(base_url=ai.url, api_key=KEY, organization="org-7", max_retries=0)


def _ours(ai: FakeOpenAI) -> ChatUpstream:
    return ChatUpstream(AiConfig(base_url=ai.url, model="m-1", headers={"OpenAI-Organization": "org-7"}), key=KEY)


def test_the_reference_client_reads_the_endpoints_answers():
    with FakeOpenAI() as ai:
        ai.script += [Reply(text="A SYN flood.", usage={"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}),
                      Reply(stream=["A S", "YN ", "flood."], usage={"prompt_tokens": 9, "completion_tokens": 4,
                                                                    "total_tokens": 13}),
                      Reply(raw=tool_call_stream('{"group_by": ["src"]}'))]
        c = _client(ai)
        got = c.chat.completions.create(model="m-1", messages=MESSAGES)
        assert got.choices[0].message.content == "A SYN flood." and got.usage.total_tokens == 13
        chunks = list(c.chat.completions.create(model="m-1", messages=MESSAGES, stream=True,
                                                stream_options={"include_usage": True}))
        assert [ch.choices[0].delta.content for ch in chunks if ch.choices] == ["A S", "YN ", "flood."]
        assert chunks[-1].usage.total_tokens == 13
        parts = [ch.choices[0].delta.tool_calls[0] for ch in c.chat.completions.create(
            model="m-1", messages=MESSAGES, tools=TOOLS, stream=True)]
        assert parts[0].id == "call_1" and parts[0].function.name == "aggregate_flows"
        assert "".join(p.function.arguments for p in parts) == '{"group_by": ["src"]}'


def test_the_reference_client_reads_the_endpoints_errors():
    with FakeOpenAI() as ai:
        ai.script += [Reply(status=429, headers={"Retry-After": "0"}), Reply(status=500)]
        c = _client(ai)
        with pytest.raises(openai.RateLimitError):
            c.chat.completions.create(model="m-1", messages=MESSAGES)
        with pytest.raises(openai.InternalServerError):
            c.chat.completions.create(model="m-1", messages=MESSAGES)


@pytest.mark.parametrize("stream", [False, True])
def test_the_gateway_sends_what_the_reference_client_sends(stream):
    extra = {"stream_options": {"include_usage": True}} if stream else {}
    with FakeOpenAI() as ai:
        ai.script += [Reply(stream=["ok"]) if stream else Reply()] * 2
        answer = _client(ai).chat.completions.create(model="m-1", messages=MESSAGES, tools=TOOLS, max_tokens=1024,
                                                     stream=stream, **extra)
        if stream:
            list(answer)

        async def ours():
            up = _ours(ai)
            try:
                if stream:
                    async for _ in up.stream_events(MESSAGES, TOOLS):
                        pass
                else:
                    await up.complete(MESSAGES, tools=TOOLS)
            finally:
                await up.aclose()
        asyncio.run(ours())
        ref, mine = ai.requests
    assert mine["path"] == ref["path"] == "/v1/chat/completions"
    assert json.dumps(mine["body"], sort_keys=True) == json.dumps(ref["body"], sort_keys=True)
    mine_h, ref_h = ({k.lower(): v for k, v in r["headers"].items()} for r in (mine, ref))
    for h in ("authorization", "openai-organization", "content-type"):
        assert mine_h[h].split(";")[0] == ref_h[h].split(";")[0], h
