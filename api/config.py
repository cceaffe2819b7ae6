"""Configuration of `netspectra api`: a YAML or JSON file, the environment (NETSPECTRA_API_*),
flags (schemas/settings.py).

    {"store": "out/store",                       # chDB directory, or "clickhouse://host:9000"
     "redis": "127.0.0.1:16379",                 # optional: live state for LiveTop/WatchLive
     "host": "127.0.0.1", "grpc_port": 50051, "http_port": 8080,
     "tokens": [{"token": "…", "role": "read"}, {"token": "…", "role": "admin"}],
     "tls": {"cert": "server.pem", "key": "server.key", "client_ca": "ca.pem"},   # client_ca: mutual TLS
     "ingest_dir": "/srv/captures",              # admin IngestCapture reads captures from here (chDB)
     "max_body_bytes": 1000000, "header_timeout_s": 10, "body_timeout_s": 10,   # HTTP limits (api/guard.py)
     "cache_entries": 512,                       # answers kept until the data changes (api/cache.py); 0: off
     "query_slots": 4,                           # queries computed at once (twice the cores), the others wait in order
     "ai": {"base_url": "…", "model": "…"}}      # the AI gateway (api/ai/config.py); absent: off

Bearer tokens authenticate both transports: "read" may query, "admin" may also delete data and,
with chDB, ingest captures from `ingest_dir` (the API process owns the chDB directory, so
ingestion into it runs here).
Without tokens the API refuses to start unless `allow_anonymous` is set (then everyone is read).
"""
from __future__ import annotations

import hmac
import os
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from api.ai.config import AiConfig
from api.cache import MAX_ENTRIES

# Answers computed at once. chDB runs each in a session of its own, in parallel; twice the cores
# lets one query's Python work (plan, rows, reply) overlap another's reading (docs/api.md).
QUERY_SLOTS = 2 * (os.cpu_count() or 2)
Role = Literal["read", "admin"]
ROLE_RANK = {"read": 1, "admin": 2}


class Token(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=16)
    role: Role = "read"


class Tls(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cert: str
    key: str
    client_ca: Optional[str] = None      # set: clients must present a certificate signed by it


class ApiConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    store: Optional[str] = None          # required: a chDB directory, or clickhouse://host:port
    redis: Optional[str] = None
    host: str = "127.0.0.1"
    grpc_port: int = Field(default=50051, ge=0, le=65535)
    http_port: int = Field(default=8080, ge=0, le=65535)
    tokens: list[Token] = Field(default_factory=list)
    allow_anonymous: bool = False
    tls: Optional[Tls] = None
    ingest_dir: Optional[str] = None
    max_body_bytes: int = Field(default=1_000_000, ge=1024)      # larger HTTP bodies: 413, never read
    header_timeout_s: float = Field(default=10.0, gt=0)          # a connection's request headers, complete
    body_timeout_s: float = Field(default=10.0, gt=0)            # a request body, complete (else 408)
    cache_entries: int = Field(default=MAX_ENTRIES, ge=0)        # api/cache.py; 0 turns the cache off
    # Queries computed at once; the others wait their turn, in order (api/service.py). Past the
    # cores, more only take turns at Python's GIL: on bench_api's 100M store, 20 clients asking
    # a dashboard's panels (cache off) on 2 cores got 108-158 requests/s with 8 at once, 192-233
    # with 2.
    query_slots: int = Field(default=QUERY_SLOTS, ge=1)
    metrics_host: str = "127.0.0.1"                              # Prometheus /metrics (0: none)
    metrics_port: int = Field(default=0, ge=0, le=65535)
    ai: Optional[AiConfig] = None                                # the AI gateway; None: its endpoints answer 503

    def role_of(self, authorization: Optional[str]) -> Optional[Role]:
        """The role of an `Authorization: Bearer <token>` value; None when it authenticates nobody."""
        if not self.tokens and self.allow_anonymous:
            return "read"
        if not authorization or not authorization.startswith("Bearer "):
            return None
        given = authorization[len("Bearer "):].strip().encode()
        role = None
        for t in self.tokens:       # compare with every token, in constant time each
            if hmac.compare_digest(given, t.token.encode()):
                role = t.role
        return role


def allowed(role: Optional[Role], needed: Role) -> bool:
    return role is not None and ROLE_RANK[role] >= ROLE_RANK[needed]
