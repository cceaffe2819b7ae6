"""`netspectra api` (the query API) and `netspectra ai` (the AI gateway alone): api/server.py's
service from its config file, the environment and these flags."""
from __future__ import annotations

import json
import logging


def cmd_api(args) -> int:
    from api.config import ApiConfig
    return _serve(ApiConfig, "api", args)


def cmd_ai(args) -> int:
    from api.config import AiServerConfig
    return _serve(AiServerConfig, "ai", args)


def _serve(model, command: str, args) -> int:
    from api.server import ApiServer, ApiStartError
    from netspectra.cli import log_to_stderr, problems, service_config

    config = service_config(model, command, args)
    if isinstance(config, int):
        return config
    log_to_stderr(logging.INFO)
    server = ApiServer(config)
    try:
        print(json.dumps(server.start()), flush=True)
    except ApiStartError as e:
        return problems(command, e.lines)
    server.run()
    print(json.dumps({k: round(v, 3) for k, v in server.stats().items()}), flush=True)
    return 0
