"""`netspectra api`: the gRPC service and the HTTP/JSON app in one process, on one store.

    netspectra api --store out/store --redis 127.0.0.1:16379 --config api.yaml
    netspectra api --store clickhouse://127.0.0.1:19000 --allow-anonymous      # loopback trials only

The gRPC server runs on its own thread pool; uvicorn serves HTTP in the main thread. SIGINT or
SIGTERM stops both. With chDB, this process owns the data directory (chDB allows one process per
directory): run analyze/engine with the same --store only while the API is down, or point the
engine at a ClickHouse server and the API at that server.
"""
from __future__ import annotations

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


class ApiServer:
    """The API service: gRPC on its own thread pool, HTTP (uvicorn) in the thread that calls run()."""

    def __init__(self, config: ApiConfig):
        self.config = config
        self.service = self.grpc = self.http = None
        self.grpc_port = 0

    def start(self) -> dict:
        """Open the store, start gRPC; the addresses it serves, for the log."""
        import uvicorn
        from schemas import metrics as M
        c = self.config
        M.enable("api")             # counted in any case: stats() reads them
        if c.metrics_port:
            M.serve("api", c.metrics_host, c.metrics_port)
        self.service, self.grpc, self.grpc_port, app = build(c)
        self.grpc.start()
        self.http = uvicorn.Server(http_config(app, c))
        return {"grpc": f"{c.host}:{self.grpc_port}", "http": f"{c.host}:{c.http_port}",
                "store": self.service.backend.name, "redis": c.redis, "tls": bool(c.tls)}

    def run(self) -> None:
        """Serve HTTP until SIGINT/SIGTERM (uvicorn's handlers) or stop(); then stop gRPC."""
        try:
            self.http.run()
        finally:
            self.grpc.stop(grace=2).wait()

    def stop(self) -> None:
        if self.http is not None:
            self.http.should_exit = True

    def stats(self) -> dict:
        """Requests served (gRPC and HTTP, every status), by metric name without netspectra_."""
        from schemas import metrics as M
        return M.totals("api")
