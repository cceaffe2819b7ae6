"""`netspectra api`: the gRPC service and the HTTP/JSON app in one process, on one store.

    netspectra api --store out/store --redis 127.0.0.1:16379 --config api.json
    netspectra api --store clickhouse://127.0.0.1:19000 --allow-anonymous      # loopback trials only

The gRPC server runs on its own thread pool; uvicorn serves HTTP in the main thread. SIGINT or
SIGTERM stops both. With chDB, this process owns the data directory (chDB allows one process per
directory): run analyze/engine with the same --store only while the API is down, or point the
engine at a ClickHouse server and the API at that server.
"""
from __future__ import annotations

import json
import logging
import ssl

from api.config import ApiConfig

log = logging.getLogger(__name__)


def build(config: ApiConfig):
    """(service, grpc server, grpc port, FastAPI app) for a configuration."""
    from api.grpc_service import build_server
    from api.http_app import create_app
    from api.service import QueryService
    from api.store import open_backend

    if not config.tokens and not config.allow_anonymous:
        raise SystemExit("no API tokens configured: give --config with tokens, or --allow-anonymous")
    service = QueryService(open_backend(config.store), config.redis, config.ingest_dir, config.cache_entries)
    server, port = build_server(service, config)
    return service, server, port, create_app(service, config)


def http_config(app, config: ApiConfig):
    """uvicorn's configuration for the app: address, and TLS (mutual with client_ca) when configured."""
    import uvicorn

    from api.guard import guarded_h11, raise_fd_limit

    raise_fd_limit()
    t = config.tls
    return uvicorn.Config(app, host=config.host, port=config.http_port, log_level="warning",
                          http=guarded_h11(config.header_timeout_s), timeout_keep_alive=5,
                          ssl_certfile=t.cert if t else None, ssl_keyfile=t.key if t else None,
                          ssl_ca_certs=t.client_ca if t else None,
                          ssl_cert_reqs=ssl.CERT_REQUIRED if t and t.client_ca else ssl.CERT_NONE)


def cmd_api(args) -> int:
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = ApiConfig.load(args.config, store=args.store, redis=args.redis, host=args.host,
                            grpc_port=args.grpc_port, http_port=args.http_port,
                            allow_anonymous=args.allow_anonymous or None)
    service, server, grpc_port, app = build(config)
    server.start()
    http = uvicorn.Server(http_config(app, config))
    print(json.dumps({"grpc": f"{config.host}:{grpc_port}", "http": f"{config.host}:{config.http_port}",
                      "store": service.backend.name, "redis": config.redis, "tls": bool(config.tls)}), flush=True)
    try:
        http.run()
    finally:
        server.stop(grace=2).wait()
    return 0

