"""`netspectra ask "question"`: the AI gateway's answer streamed to the terminal (api/ai/client.py)."""
from __future__ import annotations

import os
import sys


def cmd_ask(args) -> int:
    from api.ai.client import AskFailed, ask
    from schemas.settings import API_TOKEN_ENV

    try:
        for c in ask(args.url, os.environ.get(API_TOKEN_ENV, ""), args.question, args.last):
            if c.get("tool_name"):
                print(f"[query: {c['tool_name']} {c['tool_arguments']}]", file=sys.stderr, flush=True)
            elif c.get("text"):
                print(c["text"], end="", flush=True)
    except AskFailed as e:
        print(f"\nnetspectra ask: {e}", file=sys.stderr)
        return 1
    print()
    return 0
