"""The HTTP API cannot be stalled: tokens and body sizes are checked before a body is read, slow
bodies and unfinished headers are cut off, a thousand idle sockets leave it answering, error
messages are capped. Raw sockets, so the client can stop mid-request."""
from __future__ import annotations

import socket

import pytest

from api.config import ApiConfig
from tests.api.conftest import READ_TOKEN, TOKENS, serve
from tests.conftest import _free_ports

LIVENESS_S = 20          # how long a client waits for an answer that must come (not a timing claim)


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    cfg = ApiConfig(store=str(tmp_path_factory.mktemp("guard-store")), grpc_port=0, http_port=_free_ports(1)[0],
                    tokens=TOKENS, header_timeout_s=1.0, body_timeout_s=1.0, max_body_bytes=1_000_000)
    for _, _, url in serve(cfg):
        yield cfg.http_port


def request(port: int, head: str, body: bytes = b"") -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=LIVENESS_S)
    s.sendall(head.encode() + body)
    return s


def answer(s: socket.socket) -> tuple[int, bytes]:
    """Status and body of the response (read until its Content-Length)."""
    data = b""
    while True:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if sep:
            length = next((int(x.split(b":")[1]) for x in head.split(b"\r\n") if x.lower().startswith(b"content-length")), 0)
            if len(rest) >= length:
                return int(head.split()[1]), rest
        chunk = s.recv(65536)
        assert chunk, f"connection closed after {data[:200]!r}"
        data += chunk


def post(path: str, length: int, token: str | None = READ_TOKEN, extra: str = "") -> str:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{auth}"
            f"Content-Length: {length}\r\n{extra}\r\n")


def test_no_token_is_refused_before_the_body_is_read(api):
    s = request(api, post("/v1/flows/aggregate", 30_000_000, token=None), b'{"range": ')   # 30 MB promised
    assert answer(s)[0] == 401          # answered although the body never came


def test_an_oversized_body_is_refused_before_it_is_read(api):
    s = request(api, post("/v1/flows/aggregate", 30_000_000), b'{"range": ')
    status, body = answer(s)
    assert status == 413 and b"1000000" in body


def test_an_oversized_chunked_body_is_cut_off(api):
    head = (f"POST /v1/flows/aggregate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {READ_TOKEN}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"x" * 65536
    s = request(api, head)
    try:
        for _ in range(40):             # 2.6 MB, more than the limit
            s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    except OSError:
        pass                            # the server may close while we still send
    assert answer(s)[0] == 413


def test_a_body_that_does_not_arrive_in_time_is_cut_off(api):
    s = request(api, post("/v1/flows/aggregate", 100), b'{"ran')
    assert answer(s)[0] == 408


def test_unfinished_headers_are_closed(api):
    s = request(api, "POST /v1/flows/aggregate HTTP/1.1\r\nHost: x\r\n")
    assert s.recv(100) == b""           # closed by the server, no answer


def test_a_thousand_slow_clients_leave_the_server_answering(api):
    from api.guard import raise_fd_limit
    assert raise_fd_limit() > 2200      # both ends of 1,000 sockets live in this process
    slow = [request(api, "GET /v1/health HTTP/1.1\r\nHost: x\r\n") for _ in range(1000)]
    try:
        s = request(api, f"GET /v1/health HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {READ_TOKEN}\r\n\r\n")
        assert answer(s)[0] == 200
        assert all(c.recv(10) == b"" for c in slow)     # each closed at its header deadline
    finally:
        for c in slow:
            c.close()


def test_error_messages_are_capped(api):
    body = b'{"group_by": [' + b'"nope", ' * 100_000 + b'"nope"], "range": {"start_ms": 0, "end_ms": 1}}'
    assert len(body) < 1_000_000
    status, text = answer(request(api, post("/v1/flows/aggregate", len(body)), body))
    assert status == 400 and len(text) < 1000


def test_the_api_sends_answers_without_delay(tmp_path):
    """`netspectra api` binds its HTTP port itself, where asyncio sets no TCP_NODELAY: a
    keep-alive client then waited ~40 ms (its delayed ACK) for every answer's body. The listener
    has it, and its connections with it (Linux)."""
    from api.server import ApiServer
    grpc_port, http_port = _free_ports(2)
    server = ApiServer(ApiConfig(store=str(tmp_path / "store"), grpc_port=grpc_port, http_port=http_port, tokens=TOKENS))
    server.start()
    try:
        assert server.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        c = socket.create_connection(("127.0.0.1", http_port))
        conn, _ = server.socket.accept()
        assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        conn.close()
        c.close()
    finally:
        server.grpc.stop(0)
        server.socket.close()
