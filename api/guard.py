"""What keeps the HTTP API from being stalled by a client: checks before a request body is read.

- `BodyGuard` (ASGI middleware): a request with a body is refused with 401 when its token
  authenticates nobody, and 413 when it declares (Content-Length) or sends more than
  `max_body_bytes`, before the body is read or parsed; the body must arrive within
  `body_timeout_s` (408). The body is then handed to the app from memory.
- `GuardedH11`: uvicorn's HTTP/1.1 protocol with a deadline for a new connection's request
  headers (uvicorn has none: a client that never finishes its headers holds a socket forever).
- `raise_fd_limit`: a server's file descriptors up to the hard limit, so a thousand open
  sockets cannot starve it of descriptors before the deadline closes them.
"""
from __future__ import annotations

import asyncio
import json

from uvicorn.protocols.http.h11_impl import H11Protocol

MAX_ERROR_CHARS = 500      # error messages are capped: an error must not echo a large body back


def cap(message: str) -> str:
    return message if len(message) <= MAX_ERROR_CHARS else message[:MAX_ERROR_CHARS] + " …"


class BodyGuard:
    def __init__(self, app, role_of, max_body_bytes: int, body_timeout_s: float):
        self.app, self.role_of = app, role_of
        self.max_body, self.timeout = max_body_bytes, body_timeout_s

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        if self.role_of((headers.get(b"authorization") or b"").decode("latin-1")) is None:
            return await _refuse(send, 401, "missing or unknown bearer token", {"www-authenticate": "Bearer"})
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            return await _refuse(send, 413, f"request body over {self.max_body} bytes")
        try:
            body = await asyncio.wait_for(self._read(receive), self.timeout)
        except asyncio.TimeoutError:
            return await _refuse(send, 408, f"request body not received within {self.timeout:g} s")
        if body is None:
            return await _refuse(send, 413, f"request body over {self.max_body} bytes")
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()          # after the body: disconnect notices
        return await self.app(scope, replay, send)

    async def _read(self, receive) -> bytes | None:
        parts, size = [], 0
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return b"".join(parts)
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return None
            parts.append(chunk)
            if not msg.get("more_body"):
                return b"".join(parts)


async def _refuse(send, status: int, message: str, extra: dict | None = None) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close")]
    headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def guarded_h11(header_timeout_s: float) -> type:
    """uvicorn's h11 protocol, closing a connection whose next request's headers are not complete
    within `header_timeout_s` (of its opening, or of the previous response)."""
    class GuardedH11(H11Protocol):
        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm()

        def _arm(self) -> None:
            waiting_for = self.cycle            # a complete request replaces the cycle
            self._deadline = self.loop.call_later(header_timeout_s, self._expire, waiting_for)

        def _expire(self, waiting_for) -> None:
            if self.cycle is waiting_for and not self.transport.is_closing():
                self.transport.close()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._deadline.cancel()
            self._arm()

        def connection_lost(self, exc) -> None:
            self._deadline.cancel()
            super().connection_lost(exc)
    return GuardedH11


def raise_fd_limit() -> int:
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
