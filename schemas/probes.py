"""Is the external service there? One protocol-level question each (Kafka metadata, ClickHouse
SELECT 1, Redis PING), logged in with the known credentials, answered within a few seconds by
None or by one line naming the address, what went wrong and the likely fix.

Every service asks before it starts (a wrong address fails in seconds with that line and exit
code 2, not after minutes of retries and client logs); `stack up` asks of what it started.
"""
from __future__ import annotations

PROBE_TIMEOUT_S = 5.0
LOCAL_HINT = "is `netspectra stack up` running, or is the address wrong?"
AUTH_HINT = ("give its password: the stack keeps it in <stack dir>/credentials.json, found through "
             "$NETSPECTRA_STACK_DIR (default .stack) or $NETSPECTRA_CREDENTIALS (docs/live.md, Security)")
CLICKHOUSE_AUTH_CODES = {192, 193, 194, 516}      # unknown user, wrong password, password required, auth failed


def _line(kind: str, address: str, error: Exception | str) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return f"{kind} at {address} does not answer ({text[:200]}): {LOCAL_HINT}"


def _auth_line(kind: str, address: str, error: Exception | str) -> str:
    text = " ".join(str(error).split()).split(" Stack trace:")[0].removeprefix("DB::Exception: ")
    return f"{kind} at {address} refused the login ({text[:160]}): {AUTH_HINT}"


def kafka_problem(brokers: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """A metadata request (which lists the brokers). librdkafka's own connection errors are
    silenced for it: this line says it once."""
    from confluent_kafka.admin import AdminClient

    from schemas.kafka_logging import with_logger
    try:
        meta = AdminClient(with_logger({"bootstrap.servers": brokers, "log_level": 2})).list_topics(timeout=timeout)
        return None if meta.brokers else _line("Kafka", brokers, "no brokers in its metadata")
    except Exception as e:
        err = e.args[0] if e.args else e        # a KafkaError: its text, without the code wrapper
        return _line("Kafka", brokers, err.str() if hasattr(err, "str") else err)


def clickhouse_problem(address: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """SELECT 1 over the native protocol (host:port, the server's TCP port)."""
    from schemas.credentials import clickhouse_client
    try:
        client = clickhouse_client(address, connect_timeout=timeout, send_receive_timeout=timeout)
        try:
            ok = client.execute("SELECT 1") == [(1,)]
        finally:
            client.disconnect()
        return None if ok else _line("ClickHouse", address, "SELECT 1 gave another answer")
    except Exception as e:
        if getattr(e, "code", None) in CLICKHOUSE_AUTH_CODES:
            return _auth_line("ClickHouse", address, getattr(e, "message", e))
        return _line("ClickHouse", address, e)


def redis_problem(address: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """PING (host:port or a redis:// URL)."""
    from schemas.credentials import redis_client
    try:
        client = redis_client(address, socket_timeout=timeout, socket_connect_timeout=timeout)
        try:
            client.ping()
        finally:
            client.close()
        return None
    except Exception as e:
        text = str(e)
        if "AUTH" in text or "authenticat" in text or "WRONGPASS" in text:
            return _auth_line("Redis", address, e)
        return _line("Redis", address, e)


def problems(checks: list) -> list[str]:
    """Run (probe, address) checks at once (each within its timeout); their lines, in order."""
    from concurrent.futures import ThreadPoolExecutor
    if not checks:
        return []
    with ThreadPoolExecutor(len(checks)) as pool:
        lines = list(pool.map(lambda c: c[0](c[1]), checks))
    return [line for line in lines if line]
