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
from api.ai.upstream import ChatUpstream

log = logging.getLogger(__name__)


@dataclass
class Analysis:
    alert_id: str
    text: str
    model: str
    facts: dict                 # as the query API answered (not pseudonymised)
    usage: dict = field(default_factory=dict)
    pseudonymised: int = 0      # internal addresses replaced by names in what was sent


class AiGateway:
    """`service`: the query API's QueryService (its reads run in a thread: chDB and the native
    client block)."""

    def __init__(self, cfg: AiConfig, service, upstream: Optional[ChatUpstream] = None, clock=time.time):
        self.cfg, self.service, self.clock = cfg, service, clock
        self.upstream = upstream or ChatUpstream(cfg)

    async def aclose(self) -> None:
        await self.upstream.aclose()

    async def analyze_alert(self, alert_id: str) -> Analysis:
        alert = await asyncio.to_thread(find_alert, self.service, alert_id, int(self.clock() * 1000))
        facts = await asyncio.to_thread(alert_facts, self.service, alert)
        names = Pseudonyms(self.cfg.internal_networks) if self.cfg.pseudonymise else None
        messages = alert_messages(facts, names)
        hidden = len(names.names) if names else 0
        # what was sent, without the text itself (it may hold addresses) or any secret
        log.info("ai: analyse alert %s: model %s, %d messages, %d characters, %d internal addresses pseudonymised",
                 alert_id, self.cfg.model, len(messages), sum(len(x["content"]) for x in messages), hidden)
        c = await self.upstream.complete(messages)
        text = names.reveal(c.text) if names else c.text
        return Analysis(alert_id, text, self.cfg.model, facts, c.usage, hidden)
