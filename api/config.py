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

`netspectra ai` (AiServerConfig, NETSPECTRA_AI_*): the AI gateway in a process of its own, with
the same listening, token, TLS and limit settings, an `ai` section (required), and where it reads:

    {"grpc_port": 50052, "http_port": 8082, "tokens": […],
     "query_api": "http://127.0.0.1:8080",       # `netspectra api`'s HTTP address (https: give query_ca)
     "query_token_env": "NETSPECTRA_API_TOKEN",  # the variable holding a read token of that API
     "query_ca": "ca.pem",                       # set when that API serves TLS
     "ai": {"base_url": "…", "model": "…"}}
"""
from __future__ import annotations

import hmac
import os
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.ai.config import AiConfig, http_url
from api.cache import MAX_ENTRIES
from schemas.settings import API_TOKEN_ENV

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


class ServedConfig(BaseModel):
    """What every served process (the query API, the AI gateway) shares: its addresses, who may
    call it, TLS, the HTTP limits (api/guard.py), metrics, and the AI gateway's settings."""
    model_config = ConfigDict(extra="forbid")
    host: str = "127.0.0.1"
    grpc_port: int = Field(default=50051, ge=0, le=65535)
    http_port: int = Field(default=8080, ge=0, le=65535)
    tokens: list[Token] = Field(default_factory=list)
    allow_anonymous: bool = False
    tls: Optional[Tls] = None
    max_body_bytes: int = Field(default=1_000_000, ge=1024)      # larger HTTP bodies: 413, never read
    header_timeout_s: float = Field(default=10.0, gt=0)          # a connection's request headers, complete
    body_timeout_s: float = Field(default=10.0, gt=0)            # a request body, complete (else 408)
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


class ApiConfig(ServedConfig):
    store: Optional[str] = None          # required: a chDB directory, or clickhouse://host:port
    redis: Optional[str] = None
    ingest_dir: Optional[str] = None
    cache_entries: int = Field(default=MAX_ENTRIES, ge=0)        # api/cache.py; 0 turns the cache off
    query_slots: int = Field(default=QUERY_SLOTS, ge=1)          # queries computed at once (QUERY_SLOTS)


class AiServerConfig(ServedConfig):
    """`netspectra ai`: the AI gateway in a process of its own, reading through the query API."""
    grpc_port: int = Field(default=50052, ge=0, le=65535)
    http_port: int = Field(default=8082, ge=0, le=65535)
    query_api: str = "http://127.0.0.1:8080"     # `netspectra api`'s HTTP/JSON (api/ai/remote.py)
    query_token_env: str = API_TOKEN_ENV         # the variable holding a read token of that API
    query_ca: Optional[str] = None               # https: the CA that signed that API's certificate
    ai: AiConfig                                 # required here

    @field_validator("query_api")
    @classmethod
    def _url(cls, v: str) -> str:
        return http_url(v)


def allowed(role: Optional[Role], needed: Role) -> bool:
    return role is not None and ROLE_RANK[role] >= ROLE_RANK[needed]
