"""The test helpers' own faults must be real: a cut TcpForwarder ends the connections through it
at once, also one whose client is waiting for an answer (close() alone left it open while the
forwarder's threads were blocked on it, and the client waited for its timeout)."""
from __future__ import annotations

import socket
import threading

from stack.local import free_ports
from tests.support import TcpForwarder


def test_a_cut_ends_a_waiting_connection_and_refuses_new_ones():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    held = []                                   # accepts and never answers
    threading.Thread(target=lambda: held.append(server.accept()[0]), daemon=True).start()
    fwd = TcpForwarder(free_ports(1)[0], server.getsockname()[1])
    try:
        c = socket.create_connection(("127.0.0.1", fwd.port), timeout=30)
        c.sendall(b"a question")
        threading.Timer(0.5, fwd.cut).start()
        try:
            assert c.recv(10) == b""            # the end of the connection, not a timeout
        except ConnectionResetError:
            pass
        refused = socket.socket()
        try:
            refused.connect(("127.0.0.1", fwd.port))
            raise AssertionError("a cut forwarder still accepts connections")
        except ConnectionRefusedError:
            pass
        fwd.restore()
        socket.create_connection(("127.0.0.1", fwd.port), timeout=5).close()
    finally:
        fwd.close()
        server.close()
