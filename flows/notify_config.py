"""Notifier settings of a rules file (`notifiers:`) or of the engine's flags, validated like the
rules (one line per problem). Delivery itself is sinks/notifiers.py.

    notifiers:
      webhook: {url: http://127.0.0.1:9000/hook, secret_env: HOOK_SECRET, timeout: 5, max_pending: 10000}
      alertmanager: {url: http://127.0.0.1:9093}
      smtp: {host: 127.0.0.1, port: 25, from: netspectra@example.org, to: [noc@example.org],
             starttls: false, username: null, password_env: null}
      ai: {url: http://127.0.0.1:8080, token_env: NETSPECTRA_API_TOKEN, timeout: 120, attempts: 5}

`ai`: the API whose AI gateway analyses each firing alert; the webhook and the mail follow up
with the analysis when it is there (sent first, analysis after: nothing waits; docs/ai.md).

`max_pending` (any notifier, default 10,000): notifications held while the receiver is away;
beyond it the oldest is dropped and counted.
"""
from __future__ import annotations

from urllib.parse import urlparse

_KEYS = {
    "webhook": {"url": str, "secret_env": str, "timeout": (int, float), "max_pending": int},
    "alertmanager": {"url": str, "timeout": (int, float), "max_pending": int},
    "smtp": {"host": str, "port": int, "from": str, "to": list, "starttls": bool, "username": str,
             "password_env": str, "timeout": (int, float), "max_pending": int},
    "ai": {"url": str, "token_env": str, "timeout": (int, float), "attempts": int},
}
_REQUIRED = {"webhook": ("url",), "alertmanager": ("url",), "smtp": ("host", "from", "to"), "ai": ("url",)}


def parse_notifiers(raw, at: str, errors: list[str]) -> dict[str, dict]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        errors.append(f"{at}: expected a mapping with {', '.join(_KEYS)}")
        return {}
    out = {}
    for kind, conf in raw.items():
        if kind not in _KEYS:
            errors.append(f"{at}: unknown notifier {kind!r} (expected {', '.join(_KEYS)})")
            continue
        if not isinstance(conf, dict):
            errors.append(f"{at}: {kind}: expected a mapping")
            continue
        n = len(errors)
        for k, v in conf.items():
            typ = _KEYS[kind].get(k)
            if typ is None:
                errors.append(f"{at}: {kind}: unknown key {k!r} (expected {', '.join(_KEYS[kind])})")
            elif v is not None and (not isinstance(v, typ) or isinstance(v, bool) and typ is not bool):
                errors.append(f"{at}: {kind}: {k}: wrong type {type(v).__name__}")
        for k in _REQUIRED[kind]:
            if not conf.get(k):
                errors.append(f"{at}: {kind}: {k} is required")
        if "url" in conf and isinstance(conf["url"], str) and urlparse(conf["url"]).scheme not in ("http", "https"):
            errors.append(f"{at}: {kind}: url: expected an http:// or https:// URL, got {conf['url']!r}")
        if len(errors) == n:
            out[kind] = dict(conf)
    return out
