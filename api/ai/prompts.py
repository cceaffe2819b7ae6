"""What the gateway asks the model: the instructions, and the facts as JSON (internal addresses
replaced by names when pseudonymising)."""
from __future__ import annotations

import json
from typing import Optional

from api.ai.pseudonym import Pseudonyms

ALERT_SYSTEM = """You are a network security analyst. You get the facts about one alert raised by \
NetSpectra, a network traffic monitor, as JSON: the alert (rule, severity, entity, its value \
against the threshold, evidence), and for each address it is about the answers of queries over \
the hour up to its last window (packets, bytes and flows sent and received, five-minute series, \
top peers and ports) and the alerts about it in the week before. Internal addresses may be \
replaced by names such as HOST-1: use the names as they are.

Answer in five short sections with these headings: What is happening; How sure; Likely cause; \
Impact; Next steps. Cite the numbers you use from the facts and say what each measures. Next \
steps give concrete commands or filters (tcpdump/BPF filters, NetSpectra API queries, firewall \
rules). Do not state numbers that are not in the facts; say what is missing instead."""


def alert_messages(facts: dict, names: Optional[Pseudonyms]) -> list[dict]:
    text = json.dumps(facts, separators=(",", ":"))
    if names is not None:
        text = names.hide(text)
    return [{"role": "system", "content": ALERT_SYSTEM},
            {"role": "user", "content": "Facts (JSON):\n" + text}]


ASK_SYSTEM = """You answer questions about the network traffic NetSpectra recorded, using the \
tools: they are its query API (exact flow records and alerts), the only source of numbers. Times \
are UTC; now is {now}. When the question gives no time range, use the last {default_range}. \
Internal addresses may be replaced by names such as HOST-1: use the names as they are, also in \
the tools' arguments. Answer briefly, cite the numbers the tools gave (and what they measure), \
and say when the tools could not answer. Do not state numbers the tools did not give."""


def ask_messages(question: str, now: str, default_range: str, names: Optional[Pseudonyms]) -> list[dict]:
    return [{"role": "system", "content": ASK_SYSTEM.format(now=now, default_range=default_range)},
            {"role": "user", "content": names.hide(question) if names else question}]
