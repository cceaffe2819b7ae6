"""`netspectra engine`: the engine service (flows/engine_service.py) from its config file, the
environment and these flags; it becomes a `python -m bytewax.run` process."""
from __future__ import annotations

import sys


def cmd_engine(args) -> int:
    from flows.engine_config import EngineConfig
    from flows.engine_service import Engine
    from netspectra.cli import service_config
    from schemas.settings import dump

    cfg = service_config(EngineConfig, "engine", args)
    if cfg is None:
        return 2
    if args.print_config:
        print(dump(cfg))
        return 0
    engine = Engine(cfg)
    errors = engine.problems()
    if errors:
        for line in errors:
            print(f"netspectra engine: {line}", file=sys.stderr)
        return 2
    warning = engine.partition_warning()
    if warning:
        print(f"netspectra engine: warning: {warning}", file=sys.stderr)
    engine.run()
    return 0
