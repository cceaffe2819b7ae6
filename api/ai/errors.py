"""The gateway's failure, one line for the client with the HTTP status to answer with. Its own
module so the transports (api/grpc_service.py, api/http_app.py) map it without loading httpx."""
from __future__ import annotations


class AiError(Exception):
    """One line for the client. `status`: the HTTP status to answer with (502 the endpoint failed,
    504 it timed out, 429 the budget is spent, 404 no such alert, 503 no facts to be had)."""

    def __init__(self, message: str, status: int = 502):
        super().__init__(message)
        self.status = status
