"""Helpers shared by tests: small packet batches and window results, waiting on conditions,
stopping processes, a TCP forwarder that can cut every connection through it (a network fault
between two processes on 127.0.0.1)."""
from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time

import numpy as np

S = 10**9


def wait_for(cond, timeout: float, what: str, every: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(every)


def stop(procs, sig=signal.SIGTERM, timeout: float = 30) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(sig)
    for p in procs:
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


class TcpForwarder:
    """Listens on 127.0.0.1:`port` and forwards each connection to 127.0.0.1:`target`.

    `cut()` closes the listener and every forwarded connection (peers see resets and refused
    connects, as when a link or a firewall drops them); `restore()` listens again on the same port."""

    def __init__(self, port: int, target: int):
        self.port, self.target = port, target
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        self.listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(64)
        self.listener = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def cut(self) -> None:
        with self.lock:
            listener, self.listener = self.listener, None
            conns, self.conns = self.conns, []
        if listener is not None:
            listener.close()
        for c in conns:
            try:
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST
                c.close()
            except OSError:
                pass

    close = cut

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return                              # cut
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                if self.listener is not listener:   # cut meanwhile
                    client.close()
                    upstream.close()
                    return
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def batch(times_s, src_last=1, ip_len=100):
    """A PacketBatch of UDP packets at `times_s` (seconds) from 0.0.0.<src_last> to 200 hosts."""
    from schemas.packet_batch import PacketBatch
    n = len(times_s)
    b = PacketBatch.empty(n)
    b.ts_ns[:] = (np.asarray(times_s) * S).astype(np.int64)
    b.src[:, 10:12] = b.dst[:, 10:12] = 0xFF
    b.src[:, 15] = src_last
    b.dst[:, 15] = np.arange(n) % 200
    b.proto[:] = 17
    b.sport[:], b.dport[:] = 1000, 53
    b.ip_len[:] = ip_len
    return b


def window_results():
    """Two 10 s windows: 3 packets from 0.0.0.7, then 2 from 0.0.0.9."""
    from flows.config import WindowConfig
    from flows.window import LocalPipeline
    pipe = LocalPipeline(WindowConfig(window_s=10, lateness_s=0, shards=2))
    out = pipe.feed(batch([1, 2, 3], src_last=7))
    out += pipe.feed(batch([12, 13], src_last=9))
    return out + pipe.flush()


def capture_alerts(path, window_s: float, rules=None) -> list:
    """The alerts `analyze` raises on a capture (flows.alerts.CaptureAlerts over its windows)."""
    from flows.alerts import CaptureAlerts
    from flows.capture_reader import CaptureReader
    from flows.config import WindowConfig
    from flows.rules import load_rules
    from flows.window import LocalPipeline

    pipe = LocalPipeline(WindowConfig(window_s=window_s))
    found = CaptureAlerts(rules or load_rules(None), window_s)
    for b in CaptureReader(str(path)):
        for r in pipe.feed(b):
            found.add(r)
    for r in pipe.flush():
        found.add(r)
    return found.alerts()
