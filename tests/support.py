"""Helpers shared by tests: small packet batches and window results, waiting on conditions,
stopping processes, a TCP forwarder that can cut every connection through it (a network fault
between two processes on 127.0.0.1)."""
from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np

S = 10**9
# small public captures kept in the repository (their sources and licences: MANIFEST.tsv there)
TEST_DATA = Path(__file__).resolve().parent / "data"
# The captures of tests/data with TLS, QUIC or DTLS hellos (the others hold SIP, zeek_sip*, or tunnels, zeek_tun*)
TLS_CAPTURES = sorted(p.name for p in TEST_DATA.iterdir()
                      if p.suffix in (".pcap", ".pcapng") and not p.name.startswith(("zeek_sip", "zeek_tun")))
TUNNEL_CAPTURES = sorted(p.name for p in TEST_DATA.glob("zeek_tun_*.pcap"))


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
        # shutdown() before close(): close() alone leaves a socket open while another thread is
        # blocked in accept() or recv() on it, so a peer waiting for an answer would wait on
        # (seen: an engine waiting 60 s for ClickHouse through a "cut" forwarder)
        with self.lock:
            listener, self.listener = self.listener, None
            conns, self.conns = self.conns, []
        for c in ([listener] if listener is not None else []) + conns:
            try:
                if c is not listener:
                    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()

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


def capture_windows(path, window_s: float, shards: int = 1) -> list:
    """A capture's window results, as `analyze` computes them (flows.window.LocalPipeline)."""
    from flows.capture_reader import CaptureReader
    from flows.config import WindowConfig
    from flows.window import LocalPipeline

    pipe = LocalPipeline(WindowConfig(window_s=window_s, shards=shards))
    out = []
    for b in CaptureReader(str(path), l7=True):        # DNS rows too, as analyze reads them
        out += pipe.feed(b)
    return out + pipe.flush()


def capture_alerts(path, window_s: float, rules=None) -> list:
    """The alerts `analyze` raises on a capture (flows.alerts.CaptureAlerts over its windows)."""
    from flows.alerts import CaptureAlerts
    from flows.rules import load_rules

    found = CaptureAlerts(rules or load_rules(None), window_s)
    for r in capture_windows(path, window_s):
        found.add(r)
    return found.alerts()


def numbered_pcap(path, n: int, payload: int = 18) -> None:
    """n UDP packets of one host pair, the i-th (from 1) with source port i: each is its own flow."""
    import dpkt
    with open(path, "wb") as f:
        w = dpkt.pcap.Writer(f)
        for i in range(1, n + 1):
            udp = dpkt.udp.UDP(sport=i, dport=9999, data=b"x" * payload)
            ip = dpkt.ip.IP(src=bytes([10, 9, 0, 1]), dst=bytes([10, 9, 0, 2]), p=17, data=udp, ttl=64)
            w.writepkt(bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, data=ip)), ts=i / 1000)


class HookReceiver:
    """An HTTP server on 127.0.0.1:`port` recording every POST (path, headers, JSON body): a
    webhook receiver, and Alertmanager's webhook receiver. `down()` closes it, `up()` listens
    again on the same port."""

    def __init__(self, port: int | None = None):
        from stack.local import free_ports
        self.port = port or free_ports(1)[0]
        self.posts: list[tuple[str, dict, object, bytes]] = []      # path, headers, JSON, raw body
        self.server = None
        self.up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        import json
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        posts = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                posts.append((self.path, dict(self.headers), json.loads(body) if body else None, body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a):
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


class _PromServer:
    """A Debian Prometheus-family server (Prometheus, Alertmanager) on 127.0.0.1 at a free port,
    its log in `workdir`: started, and waited for until /-/ready answers."""

    NAME = ""
    EXES: tuple[str, ...] = ()

    def __init__(self, workdir, flags: list[str], package: str):
        import shutil
        from stack.local import free_ports
        exe = next((e for e in map(shutil.which, self.EXES) if e), None)
        if exe is None:
            import pytest
            pytest.fail(f"no {self.NAME}: apt-get install {package} (make deps)")
        self.port = free_ports(1)[0]
        self.proc = subprocess.Popen([exe, *flags, f"--web.listen-address=127.0.0.1:{self.port}"],
                                     stdout=open(workdir / f"{self.NAME.lower()}.log", "wb"), stderr=subprocess.STDOUT)
        import httpx
        wait_for(lambda: self._ready(httpx), 60, f"{self.NAME} to answer")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _ready(self, httpx) -> bool:
        assert self.proc.poll() is None, f"{self.NAME} exited at start"
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        stop([self.proc])


class Alertmanager(_PromServer):
    """Debian's prometheus-alertmanager on 127.0.0.1 (no cluster listener), routing every alert
    at once to a HookReceiver."""

    NAME, EXES = "Alertmanager", ("prometheus-alertmanager", "alertmanager")

    def __init__(self, workdir, hook: HookReceiver):
        conf = workdir / "alertmanager.yml"
        conf.write_text(f"""route:
  receiver: hook
  group_by: [alert_id]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: {hook.url}/am
        send_resolved: true
""")
        super().__init__(workdir, [f"--config.file={conf}", f"--storage.path={workdir / 'am-data'}",
                                   "--cluster.listen-address="], "prometheus-alertmanager")

    def alerts(self) -> list[dict]:
        import httpx
        return httpx.get(f"{self.url}/api/v2/alerts", timeout=5).json()



class Prometheus(_PromServer):
    """Debian's Prometheus server on 127.0.0.1, scraping `targets` ({job: "host:port"}) every
    0.5 s and evaluating `rules` (a rules file) every second, with its own TSDB directory."""

    NAME, EXES = "Prometheus", ("prometheus",)

    def __init__(self, workdir, targets: dict[str, str], rules=None):
        jobs = "".join(f"  - job_name: {job}\n    static_configs:\n      - targets: ['{addr}']\n"
                       for job, addr in targets.items())
        conf = workdir / "prometheus.yml"
        rule_files = f"rule_files: ['{rules}']\n" if rules else ""
        conf.write_text(f"global:\n  scrape_interval: 500ms\n  scrape_timeout: 400ms\n  evaluation_interval: 1s\n"
                        f"{rule_files}scrape_configs:\n{jobs}")
        super().__init__(workdir, [f"--config.file={conf}", f"--storage.tsdb.path={workdir / 'prom-data'}"],
                         "prometheus")

    def query(self, promql: str) -> dict[tuple, float]:
        """An instant query: {label items (without __name__): value}."""
        import httpx
        r = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10).json()
        assert r["status"] == "success", r
        return {tuple(sorted((k, v) for k, v in s["metric"].items() if k not in ("__name__", "instance"))):
                float(s["value"][1]) for s in r["data"]["result"]}

    def rules(self) -> dict[str, tuple[str, str]]:
        """Alerting rule -> (health, state: inactive, pending or firing)."""
        import httpx
        r = httpx.get(f"{self.url}/api/v1/rules", timeout=10).json()
        return {rule["name"]: (rule["health"], rule["state"]) for g in r["data"]["groups"] for rule in g["rules"]}

    def value(self, promql: str) -> float:
        """The single value of a query that sums to one series (0 when there is none)."""
        got = self.query(f"sum({promql})")
        return next(iter(got.values()), 0.0)


class SmtpServer:
    """aiosmtpd on 127.0.0.1, keeping every message it receives."""

    def __init__(self):
        from aiosmtpd.controller import Controller
        from stack.local import free_ports

        self.messages: list = []
        outer = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                import email
                from email import policy
                outer.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
                return "250 OK"

        self.port = free_ports(1)[0]
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


def write_dns_capture(path) -> None:
    """DNS queries and answers over 60 s (real DNS messages, built with dpkt): a host resolving
    random names (90% NXDOMAIN), a host querying far more than the rest, and ten ordinary hosts."""
    import random
    import socket

    import dpkt
    rnd = random.Random(5)
    resolver = "10.0.0.53"
    pkts = []

    def add(t, src, dst, sport, dport, dns):
        ip = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=17,
                        data=dpkt.udp.UDP(sport=sport, dport=dport, data=bytes(dns)))
        ip.len = len(bytes(ip))
        pkts.append((t, bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, type=0x0800, data=ip))))

    def lookup(t, host, name, rcode):
        q = dpkt.dns.DNS(id=rnd.randrange(65536), qd=[dpkt.dns.DNS.Q(name=name, type=1)])
        port = rnd.randrange(1024, 65535)
        add(t, host, resolver, port, 53, q)
        a = dpkt.dns.DNS(id=q.id, qd=q.qd, op=dpkt.dns.DNS_RA, rcode=rcode)
        a.qr = dpkt.dns.DNS_R
        add(t + 0.002, resolver, host, 53, port, a)

    for i in range(200):        # DGA-like: random names, mostly NXDOMAIN
        lookup(1000 + i * 0.29, "10.0.0.66", f"{rnd.getrandbits(48):x}.example", 3 if i % 10 else 0)
    for i in range(3000):       # a runaway client
        lookup(1000 + i * 0.019, "10.0.0.99", f"host{i % 7}.example", 0)
    for h in range(10):
        for i in range(20):
            lookup(1000 + h + i * 2.5, f"10.0.1.{h}", f"www{i}.example", 0 if i % 10 else 3)
    pkts.sort()
    with open(path, "wb") as f:
        w = dpkt.pcap.Writer(f)
        for t, p in pkts:
            w.writepkt(p, ts=t)


# What write_dns_answers_capture's responses say, per 10 s window from DNS_T0 (s since the epoch):
# {window start s: {(address, owner, question): A and AAAA records}}.
DNS_T0 = 1_750_000_000
DNS_ANSWERS = {DNS_T0: {("192.0.2.1", "edge.example.net", "www.example.org"): 2,
                   ("2001:db8::1", "edge.example.net", "www.example.org"): 2,
                   ("192.0.2.7", "mail.example.org", "mail.example.org"): 1},
               DNS_T0 + 10: {("192.0.2.1", "edge.example.net", "www.example.org"): 1,
                    ("198.51.100.9", "ns.example.org", "example.org"): 1}}


def dns_answers_written(execute, source: str) -> bool:
    """Whether a store's dns_names rows of `source` are DNS_ANSWERS (`execute(sql)` -> rows),
    after write_dns_answers_capture's windows were written to it."""
    from schemas.addresses import from_text
    got = execute(f"SELECT toUInt32(window_start), hex(addr), name, query, answers FROM netspectra.dns_names FINAL "
                  f"WHERE source = '{source}' ORDER BY 1, 2, 3, 4")
    want = sorted((w, from_text(a).hex().upper(), o, q, c) for w, names in DNS_ANSWERS.items()
                  for (a, o, q), c in names.items())
    return [tuple(r) for r in got] == want


def dns_names_rows(tmp_dir, source: str) -> list:
    """write_dns_answers_capture's windows as the sinks receive them, with their dns_names table
    only (for stores whose other tables hold another capture's windows)."""
    write_dns_answers_capture(tmp_dir / "dns.pcap")
    return only_table(rows_of(capture_windows(tmp_dir / "dns.pcap", 10), source), "dns_names")


TLS_CAPTURE = TEST_DATA / "foxio_tls-sni.pcapng"      # 79 flows with a ClientHello (TLS and QUIC)


def tls_flows_rows(source: str, start_s: int) -> list:
    """TLS_CAPTURE's windows (one of 10 s) moved to start at `start_s`, with their flows table
    only (their tls_* columns; for stores whose other tables hold another capture's windows)."""
    return capture_flows_rows(TLS_CAPTURE, source, start_s)


TUNNEL_FLOWS = ("zeek_tun_vxlan.pcap", "zeek_tun_mixed-vlan-mpls.pcap", "zeek_tun_gre-pptp.pcap")


def tunnel_flows_rows(source: str, start_s: int) -> list:
    """TUNNEL_FLOWS's windows as tls_flows_rows makes them, one capture an hour from `start_s`."""
    return [w for i, name in enumerate(TUNNEL_FLOWS) for w in capture_flows_rows(TEST_DATA / name, source,
                                                                                  start_s + 3600 * i)]


SIP_CAPTURE = TEST_DATA / "zeek_sip_wireshark.pcap"       # 6 calls (REGISTER and INVITE) over 25 minutes of 2005


def sip_calls_rows(source: str) -> list:
    """SIP_CAPTURE's windows (one of 60 s) as the sinks receive them, with their sip_calls table only."""
    return only_table(rows_of(capture_windows(SIP_CAPTURE, 60), source), "sip_calls")


def capture_flows_rows(path, source: str, start_s: int) -> list:
    """A capture's windows (one of 10 s) moved to start at `start_s`, with their flows table only."""
    import dataclasses
    results = capture_windows(path, 10)
    shift = start_s * 10**9 - results[0].start
    return only_table(rows_of([dataclasses.replace(r, start=r.start + shift) for r in results], source), "flows")


def only_table(rows: list, table: str) -> list:
    """Window rows with one of their tables only (for stores whose other tables hold another
    capture's windows)."""
    from schemas.window_rows import WindowRows
    return [WindowRows(r.start, r.length_ns, r.complete, {table: r.tables[table]}) for r in rows]


def write_dns_answers_capture(path) -> None:
    """DNS responses with address records over two 10 s windows (DNS_ANSWERS): a CNAME chain to
    an A and an AAAA record, twice, a plain A record, a NS answer with its glue A record in the
    additional section; and an NXDOMAIN and a query, which name nothing."""
    import ipaddress
    import socket

    import dpkt
    DNS = dpkt.dns.DNS
    pkts = []

    def add(t, qname, an=(), ar=(), rcode=0, response=True):
        msg = DNS(id=len(pkts), qd=[DNS.Q(name=qname)], an=list(an), ar=list(ar), rcode=rcode)
        msg.qr = dpkt.dns.DNS_R if response else dpkt.dns.DNS_Q
        ip = dpkt.ip.IP(src=socket.inet_aton("10.0.0.53"), dst=socket.inet_aton("10.0.0.2"), p=17,
                        data=dpkt.udp.UDP(sport=53, dport=40000 + len(pkts), data=bytes(msg)))
        ip.len = len(bytes(ip))
        pkts.append((t, bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, type=0x0800, data=ip))))

    def a(name, ip):
        return DNS.RR(name=name, type=dpkt.dns.DNS_A, ip=ipaddress.IPv4Address(ip).packed)

    def aaaa(name, ip):
        return DNS.RR(name=name, type=dpkt.dns.DNS_AAAA, ip6=ipaddress.IPv6Address(ip).packed)

    chain = [DNS.RR(name="www.example.org", type=dpkt.dns.DNS_CNAME, cname="edge.example.net"),
             a("edge.example.net", "192.0.2.1"), aaaa("edge.example.net", "2001:db8::1")]
    add(1.0, "www.example.org", chain)
    add(2.0, "www.example.org", chain)
    add(3.0, "mail.example.org", [a("mail.example.org", "192.0.2.7")])
    add(4.0, "nope.example.org", rcode=3)
    add(5.0, "www.example.org", response=False)
    add(11.0, "www.example.org", chain[:2])
    add(12.0, "example.org", [DNS.RR(name="example.org", type=dpkt.dns.DNS_NS, nsname="ns.example.org")],
        ar=[a("ns.example.org", "198.51.100.9")])
    with open(path, "wb") as f:
        w = dpkt.pcap.Writer(f)
        for t, p in pkts:
            w.writepkt(p, ts=DNS_T0 + t)


def rows_of(results, source: str, top_n: int = 100) -> list:
    """Window results as the sinks receive them (schemas/window_rows.py): tables and live view."""
    from flows.rows import window_rows
    return [window_rows(r, source, top_n, tables=True, live=True) for r in results]


def revised(window):
    """The same window rows (rows_of) with every record's packets and bytes doubled: a revision
    (late packets) only grows."""
    import copy
    r = copy.deepcopy(window)
    for c in ("packets", "bytes"):
        r.tables["flows"][c] = r.tables["flows"][c] * 2
    return r
