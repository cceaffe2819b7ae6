"""`netspectra engine`: the engine service (flows/engine_service.py) from its config file, the
environment and these flags; it becomes a `python -m bytewax.run` process."""
from __future__ import annotations

import sys


def cmd_engine(args) -> int:
    from flows.engine_config import EngineConfig
    from flows.engine_service import Engine
    from netspectra.cli import problems, service_config

    cfg = service_config(EngineConfig, "engine", args)
    if isinstance(cfg, int):
        return cfg
    engine = Engine(cfg)
    errors = engine.problems()
    if errors:
        return problems("engine", errors)
    warning = engine.partition_warning()
    if warning:
        print(f"netspectra engine: warning: {warning}", file=sys.stderr)
    engine.run()
    return 0
