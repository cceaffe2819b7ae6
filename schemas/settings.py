"""How every service is configured: one pydantic model per service (its defaults and checks in
one place), filled from a YAML or JSON file, then environment variables, then command-line flags.

    netspectra engine --config engine.yaml --window 10 --print-config

Environment variables are `NETSPECTRA_<SERVICE>_<FIELD>` (e.g. NETSPECTRA_ENGINE_KAFKA) for
fields that are plain values. A bad configuration is a ConfigError: one line per problem,
naming the field and what it must be.
"""
from __future__ import annotations

import json
import os
from typing import Mapping, Optional, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


API_TOKEN_ENV = "NETSPECTRA_API_TOKEN"   # a client's API bearer token (`netspectra ask`, the alerts' analyst)


class ConfigError(Exception):
    def __init__(self, lines: list[str]):
        super().__init__("; ".join(lines))
        self.lines = lines


def env_name(service: str, field: str) -> str:
    return f"NETSPECTRA_{service.upper()}_{field.upper()}"


def load_settings(model: type[M], service: str, path: Optional[str] = None, overrides: Optional[dict] = None,
                  environ: Mapping[str, str] = os.environ) -> M:
    """The service's effective configuration: file < environment < overrides (None = not given)."""
    data: dict = {}
    if path:
        data = _read(path)
    for name in model.model_fields:
        value = environ.get(env_name(service, name))
        if value is not None:
            data[name] = value
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ConfigError([_line(err, path, service) for err in e.errors()]) from None


def _read(path: str) -> dict:
    import yaml
    try:
        with open(path) as f:
            data = yaml.safe_load(f)      # JSON is YAML too
    except OSError as e:
        raise ConfigError([f"{path}: {e.strerror}"]) from None
    except yaml.YAMLError as e:
        raise ConfigError([f"{path}: not YAML or JSON: {str(e).splitlines()[0]}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: must be a mapping of settings, not {type(data).__name__}"])
    return data


def _line(err: dict, path: Optional[str], service: str) -> str:
    field = ".".join(str(x) for x in err["loc"]) or "config"
    where = f"{path}: " if path else ""
    if err["type"] == "extra_forbidden":
        return f"{where}{field}: unknown setting (see `netspectra {service} --print-config`)"
    return f"{where}{field}: {err['msg'].removeprefix('Value error, ')}"


def dump(cfg: BaseModel) -> str:
    """The effective configuration as JSON (also valid YAML): what --print-config shows and what
    a service hands to its worker processes."""
    return json.dumps(cfg.model_dump(mode="json"), indent=1)
