"""The AI gateway's upstream client against a local OpenAI-compatible endpoint (tests/fake_openai.py,
real HTTP and SSE): the requests it sends, retries on 429/5xx with Retry-After, budgets, streamed
deltas passed on one by one, a client going away closing the upstream connection, and one-line
errors that never carry the key."""
from __future__ import annotations

import asyncio
import email.utils
import logging
import re
import threading
import time

import pytest

from api.ai.config import AiConfig
from api.ai.upstream import ChatUpstream, TokenBudget, AiError, retry_after
from schemas.settings import ConfigError
from tests.fake_openai import FakeOpenAI, Reply, chunk

KEY = "sk-test-0123456789abcdef"
MESSAGES = [{"role": "system", "content": "You explain network alerts."}, {"role": "user", "content": "Why?"}]


def _upstream(url: str, sleeps: list | None = None, clock=time.time, **cfg) -> ChatUpstream:
    async def sleep(s):
        if sleeps is not None:
            sleeps.append(s)
    c = AiConfig(base_url=url, model="m-1", headers={"OpenAI-Organization": "org-7"}, **cfg)
    return ChatUpstream(c, key=KEY, sleep=sleep, clock=clock)


def _run(coro):
    return asyncio.run(coro)


async def _complete(up: ChatUpstream, **kw):
    try:
        return await up.complete(MESSAGES, **kw)
    finally:
        await up.aclose()


async def _collect(up: ChatUpstream, take: int | None = None) -> list[str]:
    out = []
    try:
        agen = up.stream(MESSAGES)
        async for d in agen:
            out.append(d)
            if take is not None and len(out) >= take:
                await agen.aclose()
                break
        return out
    finally:
        await up.aclose()


def test_a_completion_sends_the_model_messages_key_and_headers():
    tools = [{"type": "function", "function": {"name": "aggregate_flows", "parameters": {"type": "object"}}}]
    with FakeOpenAI() as ai:
        ai.script.append(Reply(text="It is a SYN flood.", usage={"prompt_tokens": 30, "completion_tokens": 7,
                                                                 "total_tokens": 37}))
        up = _upstream(ai.url)
        got = _run(_complete(up, tools=tools))
        assert got.text == "It is a SYN flood." and got.finish_reason == "stop" and up.budget.used == 37
        (req,) = ai.requests
        assert req["path"] == "/v1/chat/completions"
        assert req["headers"]["Authorization"] == f"Bearer {KEY}" and req["headers"]["OpenAI-Organization"] == "org-7"
        assert req["body"] == {"model": "m-1", "messages": MESSAGES, "max_tokens": 1024, "stream": False, "tools": tools}


def test_tool_calls_come_back_as_the_endpoint_gave_them():
    call = [{"id": "call_1", "type": "function", "function": {"name": "aggregate_flows", "arguments": "{}"}}]
    with FakeOpenAI() as ai:
        ai.script.append(Reply(tool_calls=call))
        got = _run(_complete(_upstream(ai.url)))
        assert got.tool_calls == call and got.text == "" and got.finish_reason == "tool_calls"


def test_429_and_5xx_are_retried_with_retry_after_honoured():
    sleeps: list = []
    date = email.utils.formatdate(time.time() + 7, usegmt=True)
    with FakeOpenAI() as ai:
        ai.script += [Reply(status=429, headers={"Retry-After": "2"}), Reply(status=503, headers={"Retry-After": date}),
                      Reply(status=500), Reply(text="fine")]
        up = _upstream(ai.url, sleeps, backoff_s=0.5)
        assert _run(_complete(up)).text == "fine"
        assert len(ai.requests) == 4 and up.retries == 3
        assert sleeps[0] == 2 and 5 <= sleeps[1] <= 7 and sleeps[2] == 0.5 * 2 ** 2


def test_retries_give_up_with_one_line_and_4xx_is_not_retried():
    with FakeOpenAI() as ai:
        ai.script += [Reply(status=500)] * 3
        with pytest.raises(AiError) as e:
            _run(_complete(_upstream(ai.url, [], max_retries=2)))
        assert len(ai.requests) == 3 and e.value.status == 502
        assert str(e.value) == "AI endpoint answered 500: fake error 500"
        ai.script.append(Reply(status=400, body={"error": {"message": "bad\nmodel " + "x" * 1000}}))
        with pytest.raises(AiError) as e:
            _run(_complete(_upstream(ai.url, [])))
        assert len(ai.requests) == 4 and "\n" not in str(e.value) and len(str(e.value)) < 400


def test_retry_after_reads_seconds_and_dates():
    now = 1_000_000.0
    assert retry_after("3", now) == 3 and retry_after(None, now) is None and retry_after("soon", now) is None
    assert retry_after(email.utils.formatdate(now + 20, usegmt=True), now) == pytest.approx(20, abs=1)
    assert retry_after(email.utils.formatdate(now - 20, usegmt=True), now) == 0


def test_streamed_deltas_arrive_in_order_one_at_a_time():
    """The endpoint holds its second delta until the test has seen the first: a client that
    waited for the whole answer would never get it."""
    gate = threading.Event()
    with FakeOpenAI() as ai:
        ai.script.append(Reply(stream=["A SYN ", "flood ", "from ", "HOST-1."], gate=gate,
                               usage={"total_tokens": 42}))
        up = _upstream(ai.url)

        async def run():
            got = []
            async for d in up.stream(MESSAGES):
                got.append(d)
                if len(got) == 1:
                    gate.set()
            await up.aclose()
            return got
        assert _run(asyncio.wait_for(run(), 20)) == ["A SYN ", "flood ", "from ", "HOST-1."]
        assert ai.requests[0]["body"]["stream"] is True
        assert ai.requests[0]["body"]["stream_options"] == {"include_usage": True}
        assert up.budget.used == 42


def test_events_split_across_network_reads_are_put_back_together():
    events = chunk("Hel") + chunk("lo") + "data: [DONE]\n\n"
    pieces = [events[i:i + 7] for i in range(0, len(events), 7)]
    with FakeOpenAI() as ai:
        ai.script.append(Reply(raw=pieces))
        assert "".join(_run(_collect(_upstream(ai.url)))) == "Hello"


def test_a_stream_cut_or_ended_early_is_an_error_after_what_arrived():
    for reply, message in ((Reply(stream=["one ", "two"], cut=True, done=False), "stream cut"),
                           (Reply(stream=["one ", "two"], done=False), "ended before [DONE]")):
        with FakeOpenAI() as ai:
            ai.script.append(reply)
            got: list = []

            async def run():
                up = _upstream(ai.url)
                try:
                    async for d in up.stream(MESSAGES):
                        got.append(d)
                finally:
                    await up.aclose()
            with pytest.raises(AiError, match=re.escape(message)):
                _run(run())
            assert got[:1] == ["one "]


def test_a_client_going_away_closes_the_upstream_stream():
    with FakeOpenAI() as ai:
        ai.script.append(Reply(stream=[f"{i} " for i in range(400)], delay_s=0.02))
        assert _run(_collect(_upstream(ai.url), take=2)) == ["0 ", "1 "]
        deadline = time.monotonic() + 20
        while not ai.disconnects and time.monotonic() < deadline:     # the endpoint's next write fails
            time.sleep(0.05)
        assert ai.disconnects == 1


def test_the_daily_budget_refuses_before_asking_and_resets_at_midnight():
    day = [86400 * 20_000 + 3600.0]
    with FakeOpenAI() as ai:
        ai.script.append(Reply(usage={"total_tokens": 900}))
        up = _upstream(ai.url, clock=lambda: day[0], daily_tokens=2000, max_tokens=500)

        async def run():
            await up.complete(MESSAGES)
            assert up.budget.used == 900
            up.budget.add(600)                       # 1,500 used: another 500-token answer does not fit
            with pytest.raises(AiError) as e:
                await up.complete(MESSAGES)
            assert e.value.status == 429 and "budget" in str(e.value) and len(ai.requests) == 1
            day[0] += 86400                          # the next UTC day
            await up.complete(MESSAGES)
            assert len(ai.requests) == 2
            await up.aclose()
        _run(run())


def test_the_budget_counts_the_tools_offered():
    big = [{"type": "function", "function": {"name": "aggregate_flows", "description": "x" * 4000,
                                             "parameters": {"type": "object"}}}]
    with FakeOpenAI() as ai:
        up = _upstream(ai.url, daily_tokens=500, max_tokens=10)

        async def run():
            await up.complete(MESSAGES)                 # ~30 tokens of messages: fits
            with pytest.raises(AiError) as e:            # ~1,000 more of the tool's schema: does not
                await up.complete(MESSAGES, tools=big)
            assert e.value.status == 429 and len(ai.requests) == 1
            await up.aclose()
        _run(run())


def test_budget_counts_per_utc_day():
    from schemas import metrics
    metrics.enable("api")                               # the counts the API's /metrics shows
    refused = metrics.totals("api")["ai_budget_refusals_total"]
    t = [0.0]
    b = TokenBudget(100, clock=lambda: t[0])
    b.add(90)
    with pytest.raises(AiError):
        b.check(20)
    assert metrics.totals("api")["ai_budget_refusals_total"] == refused + 1
    t[0] = 86400.0
    b.check(100)


def test_a_missing_key_or_an_endpoint_that_is_down_is_one_line_without_the_key(monkeypatch, caplog, tmp_path):
    monkeypatch.delenv("NS_TEST_AI_KEY", raising=False)
    with pytest.raises(ConfigError) as e:
        AiConfig(api_key_env="NS_TEST_AI_KEY").api_key()
    assert str(e.value) == "ai: no API key: set the environment variable NS_TEST_AI_KEY or ai.api_key_file"
    (tmp_path / "key").write_text(KEY + "\n")
    assert AiConfig(api_key_file=str(tmp_path / "key")).api_key() == KEY
    s = socket_port()
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AiError) as e:
        _run(_complete(_upstream(f"http://127.0.0.1:{s}/v1", [], max_retries=1)))
    assert str(e.value).startswith(f"AI endpoint unreachable (http://127.0.0.1:{s}/v1") and e.value.status == 502
    assert KEY not in str(e.value) and KEY not in caplog.text


def socket_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_http2_enabled_still_speaks_to_an_http1_endpoint():
    """`http2: true` (h2 installed with httpx[http2]): HTTP/2 where the endpoint offers it over
    TLS, HTTP/1.1 otherwise, as with this local endpoint."""
    with FakeOpenAI() as ai:
        ai.script.append(Reply(text="over h1"))
        assert _run(_complete(_upstream(ai.url, http2=True))).text == "over h1"
