"""The AI gateway: analyses grounded in the query API's answers, through the OpenAI-compatible
endpoint (api/ai/upstream.py), with internal addresses pseudonymised before anything leaves."""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Optional

from api.ai.config import AiConfig
from api.ai.grounding import alert_facts, find_alert
from api.ai.prompts import alert_messages
from api.ai.pseudonym import Pseudonyms
from api.ai.errors import AiError
from api.ai.upstream import ChatUpstream
from schemas import metrics as M

log = logging.getLogger(__name__)
MAX_TOOL_ROUNDS = 5        # model turns that may call tools; the one after must answer


@dataclass
class Analysis:
    alert_id: str
    text: str
    model: str
    facts: dict                 # as the query API answered (not pseudonymised)
    usage: dict = field(default_factory=dict)
    pseudonymised: int = 0      # internal addresses replaced by names in what was sent


class AiGateway:
    """`service`: the query API's QueryService, or api/ai/remote.py's RemoteQuery in the gateway's
    own process (its reads run in a thread: chDB, the native client and httpx's client block)."""

    def __init__(self, cfg: AiConfig, service, upstream: Optional[ChatUpstream] = None, clock=time.time):
        self.cfg, self.service, self.clock = cfg, service, clock
        self.upstream = upstream or ChatUpstream(cfg)

    async def aclose(self) -> None:
        await self.upstream.aclose()

    def _names(self) -> Optional[Pseudonyms]:
        """A request's pseudonyms (consistent within it), or None when addresses leave as they are."""
        return Pseudonyms(self.cfg.internal_networks) if self.cfg.pseudonymise else None

    async def ask(self, question: str, default_range: str = "24h"):
        """A free question answered with the query API as tools: {"text": delta} as the answer
        streams (names put back), {"tool": {"name", "arguments"}} for each query the model asks
        (as it asked it, names put back), {"done": {"rounds": model turns}} at the end."""
        from api.ai import tools
        from api.ai.prompts import ask_messages
        from api.ai.pseudonym import RevealStream
        names = self._names()
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.clock()))
        messages = ask_messages(question, now, default_range, names)
        log.info("ai: ask: model %s, %d characters, %d internal addresses pseudonymised", self.cfg.model,
                 len(question), len(names.names) if names else 0)
        for round_ in range(MAX_TOOL_ROUNDS + 1):
            reveal = RevealStream(names) if names else None
            offered = tools.definitions() if round_ < MAX_TOOL_ROUNDS else None
            calls, said = [], []
            async for ev in self.upstream.stream_events(messages, offered):
                if "text" in ev:
                    said.append(ev["text"])
                    out = reveal.feed(ev["text"]) if reveal else ev["text"]
                    if out:
                        yield {"text": out}
                else:
                    calls = ev["tool_calls"]
            if reveal and (rest := reveal.flush()):
                yield {"text": rest}
            if not calls:
                yield {"done": {"rounds": round_ + 1}}
                return
            messages.append({"role": "assistant", "content": "".join(said) or None, "tool_calls": calls})
            for c in calls:
                f = c["function"]
                M.inc("netspectra_ai_tool_calls_total", tool=f["name"] if f["name"] in tools.FUNCTIONS else "unknown")
                yield {"tool": {"name": f["name"], "arguments": names.reveal(f["arguments"]) if names else f["arguments"]}}
                result = await asyncio.to_thread(tools.run, self.service, f["name"], f["arguments"], names)
                messages.append({"role": "tool", "tool_call_id": c["id"], "content": result})

    async def analyze_alert(self, alert_id: str) -> Analysis:
        from api.service import Busy, Unavailable
        try:
            alert = await asyncio.to_thread(find_alert, self.service, alert_id, int(self.clock() * 1000))
            facts = await asyncio.to_thread(alert_facts, self.service, alert)
        except (Busy, Unavailable) as e:        # the store, or the query API the gateway reads through
            raise AiError(f"cannot gather the alert's facts: {e}", 503) from None
        names = self._names()
        messages = alert_messages(facts, names)
        hidden = len(names.names) if names else 0
        # what was sent, without the text itself (it may hold addresses) or any secret
        log.info("ai: analyse alert %s: model %s, %d messages, %d characters, %d internal addresses pseudonymised",
                 alert_id, self.cfg.model, len(messages), sum(len(x["content"]) for x in messages), hidden)
        c = await self.upstream.complete(messages)
        text = names.reveal(c.text) if names else c.text
        return Analysis(alert_id, text, self.cfg.model, facts, c.usage, hidden)


class GatewayThread:
    """The gateway on an event loop of its own thread: its connection pool lives on one loop
    while the HTTP app (async, uvicorn's loop) and gRPC (a thread per call) both ask it."""

    def __init__(self, cfg: AiConfig, service):
        import threading
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="ai-gateway", daemon=True)
        self._thread.start()
        self.gateway = self._run(self._make(cfg, service)).result()

    @staticmethod
    async def _make(cfg: AiConfig, service) -> AiGateway:
        return AiGateway(cfg, service)

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    async def analyze_alert(self, alert_id: str):
        """From another event loop (the HTTP app's): the analysis as the API answers it."""
        a = await asyncio.wrap_future(self._run(self.gateway.analyze_alert(alert_id)))
        return response(a)

    async def ask(self, question: str, default_range: str):
        """From another event loop: the answer's chunks (api.models.AskChunk) as they come. The
        caller going away cancels the answer upstream."""
        agen = self.gateway.ask(question, default_range)
        pending = None
        try:
            while True:
                pending = self._run(_next(agen))
                ev = await asyncio.wrap_future(pending)
                if ev is None:
                    return
                yield chunk(ev)
        finally:
            self._end(agen, pending)

    def ask_blocking(self, question: str, default_range: str, alive=lambda: True):
        """From a thread (a gRPC call): the chunks, until the end or `alive()` turns false."""
        agen = self.gateway.ask(question, default_range)
        pending = None
        try:
            while alive():
                pending = self._run(_next(agen))
                ev = pending.result()
                if ev is None:
                    return
                yield chunk(ev)
        finally:
            self._end(agen, pending)

    async def ask_whole(self, question: str, default_range: str):
        """From another event loop: the whole answer (api.models.AskResponse) when it is done."""
        return await asyncio.wrap_future(self._run(_whole(self.gateway.ask(question, default_range))))

    def ask_whole_blocking(self, question: str, default_range: str, on_gone=None):
        """From a thread (a gRPC call): the whole answer. `on_gone(cancel)`: registers what
        stops the answer upstream when the caller goes away (gRPC's context.add_callback)."""
        pending = self._run(_whole(self.gateway.ask(question, default_range)))
        if on_gone is not None:
            on_gone(pending.cancel)
        return pending.result()

    def _end(self, agen, pending) -> None:
        """An answer left early or finished: cancel the step in progress (its stream to the
        endpoint closes), or close the generator."""
        if pending is not None and not pending.done():
            pending.cancel()
        else:
            self._run(agen.aclose())

    def analyze_alert_blocking(self, alert_id: str):
        """From a thread (a gRPC call): the analysis as the API answers it."""
        return response(self._run(self.gateway.analyze_alert(alert_id)).result())

    def health(self) -> dict:
        """The gateway's own process: its model, and whether the query API it reads through answers."""
        reads = self.gateway.service
        ok = reads.ping()
        return {"status": "ok" if ok else "degraded", "model": self.gateway.cfg.model,
                "query_api": getattr(reads, "url", "in-process"), "query_api_ok": ok}

    def close(self) -> None:
        self._run(self.gateway.aclose()).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


def response(a: Analysis):
    import json
    from api import models as m
    return m.AnalyzeAlertResponse(alert_id=a.alert_id, text=a.text, model=a.model,
                                  prompt_tokens=int(a.usage.get("prompt_tokens") or 0),
                                  completion_tokens=int(a.usage.get("completion_tokens") or 0),
                                  pseudonymised=a.pseudonymised, facts_json=json.dumps(a.facts))


async def _next(agen):
    """The generator's next item, None at its end (StopAsyncIteration cannot cross threads)."""
    try:
        return await agen.__anext__()
    except StopAsyncIteration:
        return None


async def _whole(agen):
    from api import models as m
    text, queries, rounds = [], [], 0
    async for ev in agen:
        if "text" in ev:
            text.append(ev["text"])
        elif "tool" in ev:
            queries.append(m.AskQuery(tool_name=ev["tool"]["name"], tool_arguments=ev["tool"]["arguments"]))
        else:
            rounds = ev["done"]["rounds"]
    return m.AskResponse(text="".join(text), queries=queries, rounds=rounds)


def chunk(ev: dict):
    from api import models as m
    if "text" in ev:
        return m.AskChunk(text=ev["text"])
    if "tool" in ev:
        return m.AskChunk(tool_name=ev["tool"]["name"], tool_arguments=ev["tool"]["arguments"])
    return m.AskChunk(done=True)
