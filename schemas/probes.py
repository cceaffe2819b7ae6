"""Is the external service there? One protocol-level question each (Kafka metadata, ClickHouse
SELECT 1, Redis PING), logged in with the known credentials, answered within a few seconds by
None or by one line naming the address, what went wrong and the likely fix.

Every service asks before it starts (a wrong address fails in seconds with that line and exit
code 2, not after minutes of retries and client logs); `stack up` asks of what it started.
"""
from __future__ import annotations

PROBE_TIMEOUT_S = 5.0
LOCAL_HINT = "is `netspectra stack up` running, or is the address wrong?"


def _line(kind: str, address: str, error: Exception | str) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return f"{kind} at {address} does not answer ({text[:200]}): {LOCAL_HINT}"


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
        return _line("Redis", address, e)


def problems(checks: list) -> list[str]:
    """Run (probe, address) checks at once (each within its timeout); their lines, in order."""
    from concurrent.futures import ThreadPoolExecutor
    if not checks:
        return []
    with ThreadPoolExecutor(len(checks)) as pool:
        lines = list(pool.map(lambda c: c[0](c[1]), checks))
    return [line for line in lines if line]
