"""`netspectra stack`: Tansu, Redis and ClickHouse start on 127.0.0.1 only, answer, and stop."""
from __future__ import annotations

import time

import pytest

from stack import local as stack
from tests.conftest import _free_ports


def test_services_answer(local_stack):
    from schemas.credentials import clickhouse_client
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic
    from schemas.credentials import redis_client

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
    assert redis_client(f"127.0.0.1:{ports['redis']}").ping()
    assert clickhouse_client(f"127.0.0.1:{ports['clickhouse']}").execute("SELECT 1") == [(1,)]


def test_services_need_the_generated_passwords(local_stack):
    """Redis and ClickHouse refuse clients without the password kept in <dir>/credentials.json,
    which only its owner can read; no password appears on a command line."""
    import json
    import os

    import redis
    from clickhouse_driver import Client
    from clickhouse_driver.errors import ServerException

    d, ports, services = local_stack
    creds = d / "credentials.json"
    assert os.stat(creds).st_mode & 0o777 == 0o600
    for f in ("redis.conf", "clickhouse-users.xml"):
        assert os.stat(d / f).st_mode & 0o777 == 0o600
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=ports["redis"]).ping()
    with pytest.raises(ServerException):
        Client(host="127.0.0.1", port=ports["clickhouse"]).execute("SELECT 1")
    passwords = [v["password"] for v in json.loads(creds.read_text()).values()]
    assert len(passwords) == 2 and all(len(p) >= 24 for p in passwords)
    for s in stack.status(d).values():          # now: another test may have restarted ClickHouse
        cmdline = open(f"/proc/{s.pid}/cmdline", "rb").read().decode(errors="replace")
        assert not any(p in cmdline for p in passwords)


def _sockets(pid: int) -> list[tuple[str, str]]:
    """(protocol, local address) of every TCP listener and bound UDP socket that process `pid` holds,
    read from /proc (not from `ss`, whose process column may be missing)."""
    import ipaddress
    import os
    by_inode = {}
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        for line in open(f"/proc/net/{proto}").read().splitlines()[1:]:
            f = line.split()
            if proto.startswith("tcp") and f[3] != "0A":           # TCP: listeners only
                continue
            hexaddr, port = f[1].rsplit(":", 1)
            raw = bytes.fromhex(hexaddr)
            # /proc prints each 32-bit word in host (little-endian) order
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            by_inode[f[9]] = (proto, f"{ipaddress.ip_address(raw)}:{int(port, 16)}")
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:[") and link[8:-1] in by_inode:
            out.append(by_inode[link[8:-1]])
    return out


def test_listening_on_loopback_only(local_stack):
    import ipaddress
    d, _, started = local_stack
    services = stack.status(d)           # now: other tests restart services (new pids)
    assert set(services) == set(started)
    for name, svc in services.items():
        socks = _sockets(svc.pid)
        assert any(p.startswith("tcp") for p, _ in socks), f"{name}: no TCP listener found"
        for proto, addr in socks:
            host = addr.rsplit(":", 1)[0]
            assert ipaddress.ip_address(host).is_loopback, f"{name} {proto} on {addr}"


def test_status_and_down(tmp_path):
    ports = dict(zip(["kafka", "redis"], _free_ports(2)))
    services = stack.up(tmp_path, ports=ports, clickhouse=False)
    try:
        assert set(stack.status(tmp_path)) == set(services) == {"kafka", "redis"}
        assert stack.down(tmp_path, only="redis") == ["redis"]
        assert set(stack.status(tmp_path)) == {"kafka"}
    finally:
        stack.down(tmp_path)
    assert stack.status(tmp_path) == {}


def _listening(port: int) -> bool:
    import socket
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_up_fails_when_another_program_holds_a_port(tmp_path):
    """Something else listens on the Redis port: `stack up` must not take its answers for Redis."""
    import socket
    from tests.pipeline import run
    kafka, redis_port = _free_ports(2)
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", redis_port))
    squatter.listen(1)
    try:
        res = run("stack", "up", "--no-clickhouse", "--dir", str(tmp_path), "--kafka-port", str(kafka),
                  "--redis-port", str(redis_port))
        assert res.returncode != 0
        assert f"127.0.0.1:{redis_port}" in res.stderr and "redis.log" in res.stderr, res.stderr
        assert len(res.stderr.strip().splitlines()) == 1
        assert stack.status(tmp_path) == {}
        assert not _listening(kafka), "the broker started before the failure was left running"
    finally:
        squatter.close()
        stack.down(tmp_path)


def test_status_reaps_and_reports_exited_services(tmp_path):
    import os
    import signal
    from tests.pipeline import run
    ports = dict(zip(["kafka", "redis"], _free_ports(2)))
    services = stack.up(tmp_path, ports=ports, clickhouse=False)
    try:
        from tests.support import wait_for
        os.kill(services["redis"].pid, signal.SIGKILL)     # our child: a zombie until reaped
        wait_for(lambda: "redis" not in stack.status(tmp_path), 30, "redis to be seen as exited")
        assert set(stack.status(tmp_path)) == {"kafka"} and set(stack.exited(tmp_path)) == {"redis"}
        res = run("stack", "status", "--dir", str(tmp_path))
        assert res.returncode == 1 and "EXITED" in res.stdout and "redis" in res.stdout
    finally:
        stack.down(tmp_path)
