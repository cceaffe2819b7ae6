"""Request metrics of both transports (schemas/metrics.py: netspectra_api_requests_total and
netspectra_api_request_seconds): by method (the HTTP route template or the gRPC method, both
bounded) and status (HTTP code or gRPC status name). Counted always (the server's stats); served with metrics_port."""
from __future__ import annotations

import time

import grpc

from schemas import metrics as M


def _record(transport: str, method: str, status: str, started: float) -> None:
    M.inc("netspectra_api_requests_total", transport=transport, method=method, status=status)
    M.observe("netspectra_api_request_seconds", time.perf_counter() - started, transport=transport, method=method)


class HttpMetrics:
    """ASGI middleware: counts every HTTP request when its response starts, times it to its end
    (a stream's whole life)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), ["500"]

        async def sending(message):
            if message["type"] == "http.response.start":
                status[0] = str(message["status"])
            await send(message)
        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            _record("http", getattr(route, "path", "unmatched"), status[0], started)


class GrpcMetrics(grpc.ServerInterceptor):
    def intercept_service(self, continuation, details):
        handler = continuation(details)
        if handler is None:
            return None
        method = details.method.rsplit("/", 1)[-1]
        if handler.unary_unary:
            inner = handler.unary_unary

            def unary(request, ctx):
                started = time.perf_counter()
                try:
                    return inner(request, ctx)
                finally:
                    _record("grpc", method, _code(ctx), started)
            return grpc.unary_unary_rpc_method_handler(unary, handler.request_deserializer, handler.response_serializer)
        if handler.unary_stream:
            inner_stream = handler.unary_stream

            def stream(request, ctx):
                started = time.perf_counter()
                try:
                    yield from inner_stream(request, ctx)
                finally:
                    _record("grpc", method, _code(ctx), started)
            return grpc.unary_stream_rpc_method_handler(stream, handler.request_deserializer,
                                                        handler.response_serializer)
        return handler


def _code(ctx) -> str:
    code = ctx.code() if hasattr(ctx, "code") else None
    return code.name if isinstance(code, grpc.StatusCode) else "OK"
