"""Configuration of the AI gateway: the `ai` section of the API's configuration file, or of
`netspectra ai`'s (api/config.py AiServerConfig; schemas/settings.py).

    {"base_url": "https://api.openai.com/v1",     # any OpenAI-compatible endpoint
     "model": "gpt-4o-mini",
     "api_key_env": "OPENAI_API_KEY",             # or "api_key_file": "/run/secrets/llm" (never the key itself)
     "headers": {"OpenAI-Organization": "org-…"}, # extra headers sent upstream
     "timeout_s": 60, "connect_timeout_s": 5,
     "max_retries": 3, "backoff_s": 1, "max_backoff_s": 30,   # on 429 and 5xx, Retry-After honoured
     "max_concurrency": 4,                        # requests upstream at once (the others wait)
     "max_tokens": 1024,                          # per answer
     "daily_tokens": 200000,                      # per UTC day, prompt and answer (0: no limit)
     "pseudonymise": true, "internal_networks": ["10.0.0.0/8", "192.168.0.0/16"]}

The key is read from the environment variable or the file when the gateway starts: a missing
one is a ConfigError that names both ways to give it. It is sent as a bearer token and never
logged or returned.
"""
from __future__ import annotations

import ipaddress
import os
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas.settings import ConfigError

NOT_CONFIGURED = "the AI gateway is not configured: add an `ai` section to the API's configuration (docs/ai.md)"
PRIVATE_NETWORKS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7", "fe80::/10")


def http_url(v: str) -> str:
    """A base URL setting: http:// or https://, without a trailing slash."""
    if not v.startswith(("http://", "https://")):
        raise ValueError("expected an http:// or https:// URL")
    return v.rstrip("/")


class AiConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    base_url: str = "https://api.openai.com/v1"
    model: str = "gpt-4o-mini"
    api_key_env: Optional[str] = "OPENAI_API_KEY"
    api_key_file: Optional[str] = None
    headers: dict[str, str] = Field(default_factory=dict)
    http2: bool = False
    timeout_s: float = Field(default=60.0, gt=0)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    max_retries: int = Field(default=3, ge=0, le=10)
    backoff_s: float = Field(default=1.0, ge=0)
    max_backoff_s: float = Field(default=30.0, ge=0)
    max_concurrency: int = Field(default=4, ge=1)
    max_tokens: int = Field(default=1024, ge=1)
    daily_tokens: int = Field(default=200_000, ge=0)
    pseudonymise: bool = True
    internal_networks: list[str] = Field(default_factory=lambda: list(PRIVATE_NETWORKS))

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        return http_url(v)

    @field_validator("internal_networks")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        for n in v:
            ipaddress.ip_network(n, strict=False)      # ValueError names the bad one
        return v

    def api_key(self) -> str:
        """The key, from the file if one is named, else from the environment variable."""
        if self.api_key_file:
            try:
                key = open(self.api_key_file).read().strip()
            except OSError as e:
                raise ConfigError([f"ai.api_key_file: cannot read {self.api_key_file} ({e.strerror})"])
            if not key:
                raise ConfigError([f"ai.api_key_file: {self.api_key_file} is empty"])
            return key
        key = os.environ.get(self.api_key_env or "", "").strip()
        if not key:
            raise ConfigError([f"ai: no API key: set the environment variable {self.api_key_env or 'OPENAI_API_KEY'} "
                               "or ai.api_key_file"])
        return key
