"""Every service asks its external services before it starts (schemas/probes.py): a wrong
address is one line per service naming it and the likely fix, exit code 2, no traceback and no
client library's log lines, in seconds (each probe waits at most PROBE_TIMEOUT_S; the bound
below is loose on purpose: the behaviour replaced took 15-42 s or retried forever)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

from schemas.probes import PROBE_TIMEOUT_S
from tests.conftest import ROOT, _free_ports

LOOSE_S = 4 * PROBE_TIMEOUT_S


def run(*args, cwd=None) -> tuple[subprocess.CompletedProcess, float]:
    t = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "netspectra.cli", *args], capture_output=True, text=True, timeout=120,
                         cwd=cwd, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return res, time.monotonic() - t


def nobody() -> str:
    return f"127.0.0.1:{_free_ports(1)[0]}"


def one_line_each(res, command: str, n: int) -> list[str]:
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == n, res.stderr
    assert all(ln.startswith(f"netspectra {command}: ") for ln in lines), res.stderr
    assert "Traceback" not in res.stderr and res.stdout == "", (res.stdout, res.stderr)
    return lines


def test_collect_with_a_wrong_broker_address(tmp_path):
    from tests.support import numbered_pcap
    pcap = tmp_path / "x.pcap"
    numbered_pcap(pcap, 10)
    broker = nobody()
    res, took = run("collect", "--pcap", str(pcap), "--kafka", broker)
    [line] = one_line_each(res, "collect", 1)
    assert f"Kafka at {broker} does not answer" in line and "netspectra stack up" in line
    assert took < LOOSE_S, took


def test_engine_names_every_server_that_does_not_answer():
    kafka, ch, redis = nobody(), nobody(), nobody()
    res, took = run("engine", "--kafka", kafka, "--clickhouse", ch, "--redis", redis)
    lines = one_line_each(res, "engine", 3)
    for kind, addr, line in zip(("Kafka", "ClickHouse", "Redis"), (kafka, ch, redis), lines):
        assert f"{kind} at {addr} does not answer" in line, line
    assert took < LOOSE_S, took        # asked at once, not one after another


def test_api_refuses_a_missing_store_a_dead_server_and_a_busy_port(tmp_path):
    res, _ = run("api", "--allow-anonymous", cwd=tmp_path)      # no store created where it runs
    [line] = one_line_each(res, "api", 1)
    assert "no store" in line and "--store" in line
    assert not (tmp_path / "out").exists()
    ch = nobody()
    res, _ = run("api", "--store", f"clickhouse://{ch}", "--allow-anonymous")
    [line] = one_line_each(res, "api", 1)
    assert f"ClickHouse at {ch} does not answer" in line
    held = socket.create_server(("127.0.0.1", 0))
    port = held.getsockname()[1]
    for flag in ("--http-port", "--grpc-port"):
        other = "--grpc-port" if flag == "--http-port" else "--http-port"
        res, _ = run("api", "--store", str(tmp_path / "store"), "--allow-anonymous", flag, str(port), other, "0")
        [line] = one_line_each(res, "api", 1)       # nothing announced before it
        assert f"127.0.0.1:{port}: Address already in use; give another {flag}" in line, line
    held.close()


def test_a_server_that_refuses_the_login_is_named_with_where_its_password_is(local_stack, tmp_path):
    """The stack's Redis and ClickHouse with no credentials found (another stack directory): one
    line each saying the login was refused and where the stack keeps the password, not "does not
    answer" (a first run from another directory met exactly that)."""
    _, ports, _ = local_stack
    ch, redis = f"127.0.0.1:{ports['clickhouse']}", f"127.0.0.1:{ports['redis']}"
    env = {k: v for k, v in os.environ.items() if k != "NETSPECTRA_CREDENTIALS"}
    res = subprocess.run([sys.executable, "-m", "netspectra.cli", "engine", "--kafka", f"127.0.0.1:{ports['kafka']}",
                          "--clickhouse", ch, "--redis", redis], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT), "NETSPECTRA_STACK_DIR": str(tmp_path)})
    lines = one_line_each(res, "engine", 2)
    for kind, addr, line in zip(("ClickHouse", "Redis"), (ch, redis), lines):
        assert f"{kind} at {addr} refused the login" in line and "credentials.json" in line, line
