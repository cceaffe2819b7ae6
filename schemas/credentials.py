"""Passwords of the services a client connects to, by address: the local stack's contract.

`netspectra stack up` generates a password for Redis and for ClickHouse's `default` user and
keeps them in `<stack dir>/credentials.json` (mode 0600), keyed by the address each service
listens on:

    {"127.0.0.1:16379": {"password": "…"},
     "127.0.0.1:19000": {"user": "default", "password": "…"}}

Clients (the engine's sinks, the API, the tests) look up the address they were given, so
`--redis 127.0.0.1:16379` works without a password on the command line (where every local user
could read it in the process list). Files searched: those in $NETSPECTRA_CREDENTIALS (separated
by ':'), then `credentials.json` of the default stack directory ($NETSPECTRA_STACK_DIR, `.stack`).
A password written in the address itself (redis://:pw@host:port) wins.

For real deployments write such a file yourself (mode 0600) with the ClickHouse user and
password, and "secure": true (TLS on the native port, e.g. 9440) with "ca_certs": a CA file;
give Redis a URL: rediss://USER:PASSWORD@host:6380 (an ACL user, TLS). docs/live.md, Security.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

ENV = "NETSPECTRA_CREDENTIALS"
FILE_NAME = "credentials.json"
STACK_DIR = Path(os.environ.get("NETSPECTRA_STACK_DIR", ".stack"))


def _files() -> list[Path]:
    listed = [Path(p) for p in os.environ.get(ENV, "").split(os.pathsep) if p]
    return listed + [STACK_DIR / FILE_NAME]


def lookup(address: str) -> dict:
    """{"user": …, "password": …} (either may be missing) for host:port; {} when nothing is known."""
    host, _, port = address.rpartition(":")
    keys = {address, f"{'127.0.0.1' if host in ('', 'localhost') else host}:{port}"}
    for f in _files():
        try:
            entries = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        for k in keys:
            if k in entries:
                return entries[k]
    return {}


def use(path: Path) -> None:
    """Make this process and the ones it starts find the credentials in `path` first."""
    listed = [p for p in os.environ.get(ENV, "").split(os.pathsep) if p and p != str(path)]
    os.environ[ENV] = os.pathsep.join([str(path)] + listed)


def ensure(path: Path, addresses: dict[str, str]) -> dict[str, dict]:
    """The credentials kept in `path`, with a new password for each address of `addresses`
    ({address: user or ""}) that has none yet; the file is written with mode 0600."""
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError):
        entries = {}
    missing = [a for a in addresses if a not in entries]
    import secrets      # here, not at the top: every command imports this module for its paths
    for address in missing:
        user = addresses[address]
        entries[address] = {"password": secrets.token_urlsafe(24), **({"user": user} if user else {})}
    if missing or not path.exists():
        # Written aside and renamed over: clients read this file whenever they (re)connect, and a
        # reader catching it half-written would log in without a password (seen: a ClickHouse
        # sink reconnecting while `stack up` restarted the server).
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(entries, f, indent=1)
        os.replace(tmp, path)
    os.chmod(path, 0o600)
    return entries


def redis_client(address: str, **kw):
    """A redis.Redis for host:port or a redis:// URL. Without a password in the URL, each new
    connection looks up the one known for the address then (the stack may start after us)."""
    import redis
    from redis.credentials import CredentialProvider

    url = address if "://" in address else f"redis://{address}"
    client = redis.Redis.from_url(url, **kw)
    if client.connection_pool.connection_kwargs.get("password"):
        return client
    hostport = url.split("://", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]

    class Known(CredentialProvider):
        def get_credentials(self):
            password = lookup(hostport).get("password")
            return (password,) if password else ()     # () : connect without AUTH

    return redis.Redis.from_url(url, credential_provider=Known(), **kw)


def clickhouse_client(address: str, **kw):
    """A clickhouse_driver Client for host:port, logged in as the user known for it (else default)."""
    import logging

    from clickhouse_driver import Client
    # The driver logs every failed connection attempt with a traceback; callers report their own
    # one line (schemas/probes.py at start, sinks/retry.py while retrying).
    logging.getLogger("clickhouse_driver.connection").setLevel(logging.ERROR)
    host, _, port = address.rpartition(":") if ":" in address else (address, "", "9000")
    known = lookup(f"{host or '127.0.0.1'}:{port}")
    tls = {"secure": True, "ca_certs": known.get("ca_certs")} if known.get("secure") else {}
    return Client(host=host or "127.0.0.1", port=int(port), user=known.get("user", "default"),
                  password=known.get("password", ""), **tls, **kw)
