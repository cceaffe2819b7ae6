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
import os
import ssl

from api.config import AiServerConfig, ApiConfig

log = logging.getLogger(__name__)


class ApiStartError(Exception):
    def __init__(self, lines: list[str]):
        super().__init__("; ".join(lines))
        self.lines = lines


NO_TOKENS = "no API tokens configured: give --config with tokens, or --allow-anonymous"


def problems(config: ApiConfig | AiServerConfig) -> list[str]:
    """What stops the API (or the AI gateway) from serving, one line each: settings first, then
    the backends asked."""
    from schemas.probes import clickhouse_problem, problems as probe, redis_problem
    if isinstance(config, AiServerConfig):
        return _gateway_problems(config)
    errors = []
    if not config.store:
        errors.append("no store: give --store, a chDB directory (as written by `analyze --store`) or "
                      "clickhouse://host:port (the stack's: clickhouse://127.0.0.1:19000)")
    if not config.tokens and not config.allow_anonymous:
        errors.append(NO_TOKENS)
    if errors:
        return errors
    checks = [(redis_problem, config.redis)] if config.redis else []
    if config.store.startswith("clickhouse://"):
        checks.append((clickhouse_problem, config.store[len("clickhouse://"):]))
    return probe(checks)


def _gateway_problems(config: AiServerConfig) -> list[str]:
    from api.ai.remote import RemoteQuery
    errors = [] if config.tokens or config.allow_anonymous else [NO_TOKENS]
    if not os.environ.get(config.query_token_env, "").strip():
        errors.append(f"no token for the query API: set the environment variable {config.query_token_env} "
                      f"(a read token of {config.query_api}) or query_token_env")
    elif not RemoteQuery(config.query_api, "", config.query_ca).ping():
        errors.append(f"query API {config.query_api}: not answering; start `netspectra api` or give query_api")
    return errors


def build(config: ApiConfig | AiServerConfig):
    """(service, grpc server, grpc port, FastAPI app) for a configuration. The AI gateway's own
    process (AiServerConfig) has no QueryService: it reads through the query API (service None)."""
    from api.grpc_service import build_server
    from api.http_app import create_app

    if not config.tokens and not config.allow_anonymous:
        raise ApiStartError([NO_TOKENS])
    if config.ai is not None:
        from schemas.settings import ConfigError
        try:
            config.ai.api_key()                 # a missing key stops the start, before the store opens
        except ConfigError as e:
            raise ApiStartError(e.lines) from None
    if isinstance(config, AiServerConfig):
        from api.ai.remote import RemoteQuery
        service, reads = None, RemoteQuery(config.query_api, os.environ.get(config.query_token_env, "").strip(),
                                           config.query_ca)
    else:
        from api.service import QueryService
        from api.store import open_backend
        service = reads = QueryService(open_backend(config.store), config.redis, config.ingest_dir,
                                       config.cache_entries, config.query_slots)
    ai = None
    if config.ai is not None:
        from api.ai.gateway import GatewayThread
        ai = GatewayThread(config.ai, reads)
    server, port = build_server(service, config, ai=ai)
    return service, server, port, create_app(service, config, ai, queries=service is not None)


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
    """The API service: gRPC on its own thread pool, HTTP (uvicorn) in the thread that calls run().
    With an AiServerConfig: the AI gateway alone (`netspectra ai`), the same way."""

    def __init__(self, config: ApiConfig | AiServerConfig):
        self.config = config
        self.service = self.grpc = self.http = self.socket = None
        self.grpc_port = 0

    def start(self) -> dict:
        """Check the settings and backends, open the store, bind both ports, start gRPC; the
        addresses it serves, for the log. ApiStartError (one line per problem) if it cannot."""
        import socket

        import uvicorn
        from schemas import metrics as M
        c = self.config
        errors = problems(c)
        if errors:
            raise ApiStartError(errors)
        try:        # bound before anything is announced: a busy port is this one line
            self.socket = socket.create_server((c.host, c.http_port))
            # answers go out at once: uvicorn writes a response's head and body apart, and without
            # this (asyncio sets it only on sockets it makes) the body waits for the client's
            # delayed ACK, ~40 ms on every keep-alive request; Linux gives accepted sockets the listener's
            self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if c.grpc_port:         # asked before gRPC tries it (its own failure logs a C-level line too)
                socket.create_server((c.host, c.grpc_port)).close()
        except OSError as e:
            which = "http" if self.socket is None else "grpc"
            port = c.http_port if which == "http" else c.grpc_port
            raise ApiStartError([f"{which.upper()} port {c.host}:{port}: {os.strerror(e.errno)}; "
                                 f"give another --{which}-port"]) from None
        M.enable("api")             # counted in any case: stats() reads them
        if c.metrics_port:
            M.serve("api", c.metrics_host, c.metrics_port)
        try:
            self.service, self.grpc, self.grpc_port, app = build(c)
        except RuntimeError as e:       # grpc: a port it could not bind
            raise ApiStartError([f"gRPC port {c.host}:{c.grpc_port}: {e}; give another --grpc-port"]) from None
        self.grpc.start()
        self.http = uvicorn.Server(http_config(app, c))
        where = ({"store": self.service.backend.name, "redis": c.redis} if self.service is not None
                 else {"query_api": c.query_api, "model": c.ai.model})
        return {"grpc": f"{c.host}:{self.grpc_port}", "http": f"{c.host}:{self.socket.getsockname()[1]}",
                **where, "tls": bool(c.tls)}

    def run(self) -> None:
        """Serve HTTP until SIGINT/SIGTERM (uvicorn's handlers) or stop(); then stop gRPC."""
        try:
            self.http.run(sockets=[self.socket])
        finally:
            self.grpc.stop(grace=2).wait()

    def stop(self) -> None:
        if self.http is not None:
            self.http.should_exit = True

    def stats(self) -> dict:
        """Requests served (gRPC and HTTP, every status), by metric name without netspectra_."""
        from schemas import metrics as M
        return M.totals("api")
