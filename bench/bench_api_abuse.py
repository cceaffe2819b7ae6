"""The HTTP API under abusive clients: how fast it refuses, and whether /v1/health stays fast.

Starts `netspectra api` (its own process, an empty chDB store, one token), then, each while a
prober asks GET /v1/health every 20 ms on its own connection:
  - baseline: nothing else;
  - 30 MB bodies sent as fast as the socket takes them, one after another: without a token
    (401), with a token (413 on the declared length) and chunked with a token (cut at the limit);
  - 1,000 clients that open a connection, send half a request line and stop (the server closes
    them after header_timeout_s, here 2 s), held for 6 s.
Prints, per scenario, the time to each refusal and health p50/p99/max ms and failed probes.

    python bench/bench_api_abuse.py
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TOKEN = "bench-token-0123456789abcdef"
BODY = 30_000_000
SLOW_CLIENTS = 1000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Prober(threading.Thread):
    """GET /v1/health every 20 ms (keep-alive connection, reopened when needed): latency in ms."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.port, self.ms, self.failed, self.stop = port, [], 0, threading.Event()

    def run(self) -> None:
        import httpx
        with httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10,
                          headers={"Authorization": f"Bearer {TOKEN}"}) as c:
            while not self.stop.is_set():
                t = time.perf_counter()
                try:
                    ok = c.get("/v1/health").status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    self.ms.append((time.perf_counter() - t) * 1000)
                else:
                    self.failed += 1
                time.sleep(0.02)

    def result(self) -> dict:
        self.stop.set()
        self.join(15)
        a = np.array(self.ms or [0.0])
        return {"probes": len(self.ms), "failed": self.failed, "p50_ms": round(float(np.percentile(a, 50)), 1),
                "p99_ms": round(float(np.percentile(a, 99)), 1), "max_ms": round(float(a.max()), 1)}


def status_of(s: socket.socket) -> int:
    data = b""
    while b"\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            return 0
        data += chunk
    return int(data.split()[1])


def big_body(port: int, token: bool, chunked: bool) -> tuple[int, float]:
    """Send a 30 MB body as fast as possible while reading the answer: (status, seconds to it)."""
    auth = f"Authorization: Bearer {TOKEN}\r\n" if token else ""
    length = "Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {BODY}\r\n"
    head = f"POST /v1/flows/aggregate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{auth}{length}\r\n"
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    t = time.perf_counter()
    s.sendall(head.encode())

    def pump():
        piece = b"x" * 65536
        if chunked:
            piece = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
        try:
            for _ in range(BODY // 65536):
                s.sendall(piece)
        except OSError:
            pass                        # refused and closed: what we expect

    sender = threading.Thread(target=pump, daemon=True)
    sender.start()
    status = status_of(s)
    took = time.perf_counter() - t
    s.close()
    sender.join(30)
    return status, took


def scenario(port: int, name: str, action) -> dict:
    probe = Prober(port)
    probe.start()
    time.sleep(0.5)
    extra = action() or {}
    time.sleep(0.5)
    return {"scenario": name, **extra, "health": probe.result()}


def main() -> int:
    d = Path(tempfile.mkdtemp(prefix="bench-abuse-"))
    http_port, grpc_port = free_port(), free_port()
    (d / "api.json").write_text(json.dumps({"tokens": [{"token": TOKEN}], "header_timeout_s": 2,
                                            "body_timeout_s": 5}))
    api = subprocess.Popen([sys.executable, "-m", "netspectra.cli", "api", "--config", str(d / "api.json"),
                            "--store", str(d / "store"), "--http-port", str(http_port), "--grpc-port", str(grpc_port)],
                           cwd=ROOT, stdout=subprocess.PIPE, stderr=open(d / "api.log", "w"), text=True)
    try:
        api.stdout.readline()            # the address line: listening
        import httpx
        for _ in range(200):
            try:
                if httpx.get(f"http://127.0.0.1:{http_port}/v1/health", timeout=1,
                             headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        out = [scenario(http_port, "baseline", lambda: time.sleep(5))]

        def bodies(token: bool, chunked: bool):
            answers = [big_body(http_port, token, chunked) for _ in range(5)]
            return {"statuses": sorted({a[0] for a in answers}),
                    "seconds_to_answer_max": round(max(a[1] for a in answers), 3)}

        out.append(scenario(http_port, "30 MB bodies, no token", lambda: bodies(False, False)))
        out.append(scenario(http_port, "30 MB bodies, token (declared)", lambda: bodies(True, False)))
        out.append(scenario(http_port, "30 MB bodies, token, chunked", lambda: bodies(True, True)))

        def slow():
            socks = []
            for _ in range(SLOW_CLIENTS):
                s = socket.create_connection(("127.0.0.1", http_port), timeout=10)
                s.sendall(b"GET /v1/hea")
                socks.append(s)
            time.sleep(6)
            closed = 0
            for s in socks:
                s.setblocking(False)
                try:
                    closed += s.recv(1) == b""
                except BlockingIOError:
                    pass
                except OSError:
                    closed += 1
                s.close()
            return {"slow_clients": SLOW_CLIENTS, "closed_by_server_within_6s": closed}

        out.append(scenario(http_port, f"{SLOW_CLIENTS} slow clients", slow))
        rss = int(next(line.split()[1] for line in open(f"/proc/{api.pid}/status") if line.startswith("VmRSS")))
        print(json.dumps({"results": out, "api_rss_mb_after": rss // 1024}, indent=1))
    finally:
        api.terminate()
        api.wait(20)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
