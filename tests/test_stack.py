"""`netspectra stack`: Tansu, Redis and ClickHouse start on 127.0.0.1 only, answer, and stop."""
from __future__ import annotations

import socket
import subprocess
import time

import pytest

from netspectra import stack
from tests.conftest import require_tool


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory):
    require_tool("redis-server")
    require_tool("clickhouse-server")
    d = tmp_path_factory.mktemp("stack")
    ports = dict(zip(["kafka", "redis", "clickhouse", "clickhouse_http"], _free_ports(4)))
    services = stack.up(d, ports=ports)
    yield d, ports, services
    stack.down(d)


def test_services_answer(local_stack):
    from clickhouse_driver import Client
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic
    import redis

    d, ports, services = local_stack
    assert set(services) == {"kafka", "redis", "clickhouse"}
    boot = f"127.0.0.1:{ports['kafka']}"
    admin = AdminClient({"bootstrap.servers": boot})     # keep it alive until the futures resolve
    for f in admin.create_topics([NewTopic("t", 2, 1)]).values():
        f.result(15)
    p = Producer({"bootstrap.servers": boot})
    for i in range(10):
        p.produce("t", f"m{i}".encode(), partition=i % 2)
    assert p.flush(15) == 0
    c = Consumer({"bootstrap.servers": boot, "group.id": "g", "enable.auto.commit": False})
    c.assign([TopicPartition("t", i, 0) for i in range(2)])
    got, deadline = set(), time.monotonic() + 20
    while len(got) < 10 and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.add(m.value())
    c.close()
    assert got == {f"m{i}".encode() for i in range(10)}
    assert redis.Redis(host="127.0.0.1", port=ports["redis"]).ping()
    assert Client(host="127.0.0.1", port=ports["clickhouse"]).execute("SELECT 1") == [(1,)]


def test_listening_on_loopback_only(local_stack):
    _, ports, services = local_stack
    out = subprocess.run(["ss", "-ltnp"], capture_output=True, text=True).stdout
    pids = {str(s.pid) for s in services.values()}
    for line in out.splitlines():
        if any(f"pid={p}," in line for p in pids):
            local = line.split()[3]
            assert local.startswith("127.0.0.1:"), line


def test_status_and_down(local_stack, tmp_path):
    d, _, services = local_stack
    assert set(stack.status(d)) == set(services)
    assert stack.down(d, only="redis") == ["redis"]
    assert set(stack.status(d)) == {"kafka", "clickhouse"}
