"""The OpenAI-compatible Chat Completions endpoint, as the gateway uses it: one pooled httpx
client, at most `max_concurrency` requests at once, retries with backoff on 429 and 5xx
(Retry-After honoured, in seconds or as a date) and on connection failures, a per-answer and a
per-day token budget, and streaming that passes each text delta on as it arrives. Closing a
stream (the client went away) closes the upstream connection: the endpoint stops generating.

Every failure is an AiError with one line for the client; the key is never in it."""
from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import json
import logging
import time
from dataclasses import dataclass, field
from typing import AsyncIterator, Optional

import httpx

from api.ai.config import AiConfig
from api.ai.errors import AiError
from api.ai.sse import DONE, SseParser
from schemas import metrics as M

log = logging.getLogger(__name__)
RETRY_STATUS = (429, 500, 502, 503, 504)
ERROR_TEXT = 300            # characters of an upstream error body quoted back


@dataclass
class Completion:
    text: str
    tool_calls: list = field(default_factory=list)      # as the endpoint gave them
    finish_reason: Optional[str] = None
    usage: dict = field(default_factory=dict)


class TokenBudget:
    """Tokens used per UTC day (what the endpoint reports; an estimate where it reports none)."""

    def __init__(self, daily: int, clock=time.time):
        self.daily, self.clock = daily, clock
        self.day, self.used = None, 0

    def _today(self) -> None:
        day = dt.datetime.fromtimestamp(self.clock(), dt.timezone.utc).date()
        if day != self.day:
            self.day, self.used = day, 0

    def check(self, wanted: int) -> None:
        """AiError (429) unless `wanted` more tokens fit in today's budget."""
        self._today()
        if self.daily and self.used + wanted > self.daily:
            M.inc("netspectra_ai_budget_refusals_total")
            raise AiError(f"AI token budget for today spent ({self.used:,} of {self.daily:,} used; "
                                "it resets at 00:00 UTC)", 429)

    def add(self, tokens: int) -> None:
        self._today()
        self.used += tokens


def retry_after(value: Optional[str], now: float) -> Optional[float]:
    """Seconds a Retry-After header asks for (a number or an HTTP date), None if absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def estimate_tokens(text: str) -> int:
    """About four characters a token (English text, GPT tokenisers): for budgets only."""
    return max(1, len(text) // 4)


class ChatUpstream:
    def __init__(self, cfg: AiConfig, key: Optional[str] = None, sleep=asyncio.sleep, clock=time.time):
        self.cfg = cfg
        key = key if key is not None else cfg.api_key()
        headers = {**cfg.headers, "Authorization": f"Bearer {key}"}
        self._client = httpx.AsyncClient(
            base_url=cfg.base_url, http2=cfg.http2, headers=headers,
            timeout=httpx.Timeout(cfg.timeout_s, connect=cfg.connect_timeout_s),
            limits=httpx.Limits(max_connections=cfg.max_concurrency, max_keepalive_connections=cfg.max_concurrency))
        self._slots = asyncio.Semaphore(cfg.max_concurrency)
        self.budget = TokenBudget(cfg.daily_tokens, clock)
        self._sleep, self._clock = sleep, clock
        self.retries = 0            # requests sent again (metrics)

    async def aclose(self) -> None:
        await self._client.aclose()

    def _body(self, messages: list[dict], tools: Optional[list], stream: bool) -> dict:
        body = {"model": self.cfg.model, "messages": messages, "max_tokens": self.cfg.max_tokens, "stream": stream}
        if tools:
            body["tools"] = tools
        if stream:
            body["stream_options"] = {"include_usage": True}
        return body

    def _prompt_tokens(self, messages: list[dict], tools: Optional[list]) -> int:
        """The prompt as the budget sees it before sending: the messages and the tools' schemas
        (the three query tools are ~1,700 tokens themselves)."""
        return estimate_tokens(json.dumps(messages) + (json.dumps(tools) if tools else ""))

    async def _send(self, body: dict, stream: bool) -> httpx.Response:
        """The endpoint's 200 response (its body not yet read when streaming), after retries."""
        attempt = 0
        while True:
            wait = None
            try:
                req = self._client.build_request("POST", "/chat/completions", json=body)
                resp = await self._client.send(req, stream=stream)
            except httpx.TimeoutException:
                M.inc("netspectra_ai_upstream_requests_total", status="timeout")
                if attempt >= self.cfg.max_retries:
                    raise AiError(f"AI endpoint timed out ({self.cfg.base_url})", 504)
            except httpx.TransportError as e:
                M.inc("netspectra_ai_upstream_requests_total", status="unreachable")
                if attempt >= self.cfg.max_retries:
                    raise AiError(f"AI endpoint unreachable ({self.cfg.base_url}: {type(e).__name__})", 502)
            else:
                M.inc("netspectra_ai_upstream_requests_total", status=str(resp.status_code))
                if resp.status_code == 200:
                    return resp
                text = (await resp.aread()).decode(errors="replace")
                await resp.aclose()
                if resp.status_code not in RETRY_STATUS or attempt >= self.cfg.max_retries:
                    raise AiError(f"AI endpoint answered {resp.status_code}: {_error_text(text)}", 502)
                wait = retry_after(resp.headers.get("retry-after"), self._clock())
            if wait is None:
                wait = self.cfg.backoff_s * 2 ** attempt
            attempt += 1
            self.retries += 1
            M.inc("netspectra_ai_upstream_retries_total")
            await self._sleep(min(wait, self.cfg.max_backoff_s))

    def _used(self, usage: dict, prompt: int, text: str, mode: str, began: float) -> None:
        """An answer's tokens (the endpoint's count, else estimated) into the budget and the
        metrics, with its time."""
        p = int(usage.get("prompt_tokens") or prompt)
        c = int(usage.get("completion_tokens") or estimate_tokens(text))
        self.budget.add(int(usage.get("total_tokens") or p + c))
        M.inc("netspectra_ai_tokens_total", p, kind="prompt")
        M.inc("netspectra_ai_tokens_total", c, kind="completion")
        M.observe("netspectra_ai_upstream_seconds", time.monotonic() - began, mode=mode)

    async def complete(self, messages: list[dict], tools: Optional[list] = None) -> Completion:
        prompt = self._prompt_tokens(messages, tools)
        self.budget.check(prompt + self.cfg.max_tokens)
        began = time.monotonic()
        async with self._slots:
            resp = await self._send(self._body(messages, tools, False), stream=False)
            try:
                data = resp.json()
                choice = data["choices"][0]
                msg = choice.get("message") or {}
            except (ValueError, KeyError, IndexError, TypeError):
                raise AiError("AI endpoint answered 200 without a chat completion", 502)
        text = msg.get("content") or ""
        usage = data.get("usage") or {}
        self._used(usage, prompt, text, "answer", began)
        return Completion(text, msg.get("tool_calls") or [], choice.get("finish_reason"), usage)

    async def stream(self, messages: list[dict]) -> AsyncIterator[str]:
        """The answer's text deltas as they arrive. Closing the iterator early closes the upstream
        connection. A stream cut before [DONE] ends with AiError."""
        async for ev in self.stream_events(messages):
            if "text" in ev:
                yield ev["text"]

    async def stream_events(self, messages: list[dict], tools: Optional[list] = None) -> AsyncIterator[dict]:
        """{"text": delta} as each arrives, then, if the model called tools, one
        {"tool_calls": [...]} with each call whole (its streamed pieces joined)."""
        prompt = self._prompt_tokens(messages, tools)
        self.budget.check(prompt + self.cfg.max_tokens)
        began = time.monotonic()
        async with self._slots:
            resp = await self._send(self._body(messages, tools, True), stream=True)
            parser, text, usage, done, calls = SseParser(), [], None, False, {}
            try:
                async for piece in resp.aiter_text():
                    for data in parser.feed(piece):
                        if data == DONE:
                            done = True
                            break
                        delta, u = _chunk(data, calls)
                        usage = u or usage
                        if delta:
                            text.append(delta)
                            yield {"text": delta}
                    if done:
                        break
            except httpx.TransportError as e:
                raise AiError(f"AI endpoint stream cut ({type(e).__name__})", 502)
            finally:
                await resp.aclose()
                self._used(usage or {}, prompt, "".join(text), "stream", began)
            if not done:
                raise AiError("AI endpoint stream ended before [DONE]", 502)
            if calls:
                yield {"tool_calls": [calls[i] for i in sorted(calls)]}


_warned: set = set()


def _chunk(data: str, calls: dict) -> tuple[str, Optional[dict]]:
    """(text delta, usage) of one streamed chunk; its tool-call pieces joined into `calls` (by
    index: the id and name come first, the arguments in pieces). A chunk that is not JSON is
    skipped, said once."""
    try:
        obj = json.loads(data)
    except ValueError:
        if "not json" not in _warned:
            _warned.add("not json")
            log.warning("AI endpoint sent a stream event that is not JSON (skipped, said once): %.80s", data)
        return "", None
    choices = obj.get("choices") or []
    d = (choices[0].get("delta") or {}) if choices else {}
    for tc in d.get("tool_calls") or []:
        call = calls.setdefault(tc.get("index", 0), {"id": "", "type": "function",
                                                     "function": {"name": "", "arguments": ""}})
        call["id"] = tc.get("id") or call["id"]
        f = tc.get("function") or {}
        call["function"]["name"] += f.get("name") or ""
        call["function"]["arguments"] += f.get("arguments") or ""
    return d.get("content") or "", obj.get("usage")


def _error_text(text: str) -> str:
    """An upstream error body, one line and capped: its error.message when it is OpenAI-shaped."""
    try:
        msg = json.loads(text)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        msg = text
    msg = " ".join(str(msg).split())
    return msg[:ERROR_TEXT] + ("…" if len(msg) > ERROR_TEXT else "")
