"""`netspectra api`: the API service (api/server.py) from its config file, the environment and
these flags."""
from __future__ import annotations

import json
import logging


def cmd_api(args) -> int:
    from api.config import ApiConfig
    from api.server import ApiServer, ApiStartError
    from netspectra.cli import log_to_stderr, problems, service_config

    config = service_config(ApiConfig, "api", args)
    if isinstance(config, int):
        return config
    log_to_stderr(logging.INFO)
    server = ApiServer(config)
    try:
        print(json.dumps(server.start()), flush=True)
    except ApiStartError as e:
        return problems("api", e.lines)
    server.run()
    print(json.dumps({k: round(v, 3) for k, v in server.stats().items()}), flush=True)
    return 0
