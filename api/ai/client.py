"""A client of the gateway's POST /v1/ai/ask (`netspectra ask`): the answer's chunks as the
API streams them (Server-Sent Events)."""
from __future__ import annotations

import json
from typing import Iterator

from api.ai.sse import SseParser


class AskFailed(Exception):
    pass


def ask(url: str, token: str, question: str, default_range: str = "24h", timeout: float = 300) -> Iterator[dict]:
    """AskChunk dicts ({"text"}, {"tool_name", "tool_arguments"}, {"done"}) as they arrive;
    AskFailed with the API's one line on an error."""
    import httpx
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {"question": question, "default_range": default_range}
    try:
        with httpx.stream("POST", url.rstrip("/") + "/v1/ai/ask", json=body, headers=headers,
                          timeout=httpx.Timeout(timeout, connect=10)) as r:
            if r.status_code != 200:
                r.read()
                try:
                    msg = r.json()["error"]
                except (ValueError, KeyError, TypeError):
                    msg = r.text[:200]
                raise AskFailed(f"{r.status_code}: {msg}")
            p = SseParser()
            for piece in r.iter_text():
                for event, data in p.feed_events(piece):
                    obj = json.loads(data)
                    if event == "error":
                        raise AskFailed(f"{obj.get('status', 502)}: {obj['error']}")
                    yield obj
    except httpx.HTTPError as e:
        raise AskFailed(f"cannot reach the API at {url} ({type(e).__name__})") from None

