"""`netspectra api`: the API service (api/server.py) from its config file, the environment and
these flags."""
from __future__ import annotations

import json
import logging


def cmd_api(args) -> int:
    from api.config import ApiConfig
    from api.server import ApiServer
    from netspectra.cli import service_config

    config = service_config(ApiConfig, "api", args)
    if isinstance(config, int):
        return config
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    server = ApiServer(config)
    print(json.dumps(server.start()), flush=True)
    server.run()
    print(json.dumps({k: round(v, 3) for k, v in server.stats().items()}), flush=True)
    return 0
