"""Shared fixtures: the public captures in ../shared/pcaps (when present), generated captures,
and the peer tools (pmacctd, tshark) that `make test` installs."""
from __future__ import annotations

import collections
import functools
import csv
import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from collectors import synth
from collectors.capture_file import CaptureFile
from collectors.decode.decoder import Decoder
from stack import local as stack
from schemas.addresses import column_to_text
from schemas.packet_batch import FRAG_LATER_UNMATCHED

ROOT = Path(__file__).resolve().parent.parent
SHARED_PCAPS = Path(os.environ.get("NETSPECTRA_SHARED_PCAPS", ROOT.parent / "shared" / "pcaps"))


def shared_manifest() -> list[dict]:
    path = SHARED_PCAPS / "MANIFEST.tsv"
    if not path.exists():
        return []
    with open(path) as f:
        return list(csv.DictReader(f, delimiter="\t"))


SHARED = shared_manifest()
SHARED_NAMES = [r["file"] for r in SHARED]


def shared_pcap(name: str) -> Path:
    if not (SHARED_PCAPS / name).exists():
        pytest.skip(f"public capture {name} not present (../shared/pcaps)")
    return SHARED_PCAPS / name


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: `make test` installs the peer tools (make deps)")
    return path


@pytest.fixture(scope="session")
def synth_pcap(tmp_path_factory) -> Path:
    """A 60k-packet capture exercising every planted pattern and encapsulation."""
    path = tmp_path_factory.mktemp("synth") / "mix.pcap"
    synth.write(str(path), synth.SynthConfig(packets=60_000, hosts=300, vlan=0.1, ipv6=0.15, fragments=0.05,
                                             syn_flood=3000, spreaders=2, spread=500, scans=1, scan_ports=300, seed=7))
    return path


FlowKey = tuple  # (src, dst, sport, dport, proto)


def decode_flows(path, drop_unmatched_fragments=False, iface=None, decap=None):
    """Per unidirectional 5-tuple packets and bytes (IP total length), straight from the decoder.

    drop_unmatched_fragments leaves out later fragments whose first fragment never appeared
    (pmacct drops them; NetSpectra counts them with ports 0); iface keeps one interface only;
    decap: the decoder's tunnels (collectors/decode/tunnels.py Decap; default all)."""
    pk, by = collections.Counter(), collections.Counter()
    dec = Decoder(decap=decap)
    for raw in CaptureFile(str(path)).batches():
        b = dec.decode(raw)
        ok = b.status == 0
        if drop_unmatched_fragments:
            ok &= b.frag != FRAG_LATER_UNMATCHED
        if iface is not None:
            ok &= b.iface == iface
        keys = zip(column_to_text(b.src[ok]), column_to_text(b.dst[ok]), b.sport[ok].tolist(),
                   b.dport[ok].tolist(), b.proto[ok].tolist())
        for k, ln in zip(keys, b.ip_len[ok].tolist()):
            pk[k] += 1
            by[k] += ln
    return pk, by, dec


# pmacct reads a pcapng through libpcap, which refuses interfaces of different link types:
# it reads nothing of the first file and only interface 0 of the second. NetSpectra reads all.
PMACCT_UNREADABLE = {"ppp_many_interfaces-1.pcapng": None, "ppp_pcapng-example_2if_snaplen.pcapng": 0}


def pmacct_flows(path, workdir: Path) -> tuple[collections.Counter, collections.Counter]:
    """pmacctd's per-5-tuple packets/bytes (the configuration of ../shared/peers/pmacctd.conf).
    Run once per capture in a session (pmacctd takes ~4 s to exit, whatever the capture); copies."""
    if str(path) not in _PMACCT:
        _PMACCT[str(path)] = _pmacct_flows(path, workdir)
    pk, by = _PMACCT[str(path)]
    return pk.copy(), by.copy()


_PMACCT: dict[str, tuple] = {}


def _pmacct_flows(path, workdir: Path) -> tuple[collections.Counter, collections.Counter]:
    pmacctd = require_tool("pmacctd")
    out = workdir / "pmacct.csv"
    conf = workdir / "pmacctd.conf"
    conf.write_text(f"daemonize: false\npcap_savefile: {path}\naggregate: src_host, dst_host, src_port, dst_port, proto\n"
                    f"plugins: print\nprint_output: csv\nprint_output_file: {out}\nprint_refresh_time: 3600\n"
                    "print_cache_entries: 65537\n")
    res = subprocess.run([pmacctd, "-f", str(conf)], capture_output=True, text=True, timeout=300)
    log = res.stdout + res.stderr
    # A peer that fails must fail the test, not look like an empty answer: pmacctd writes no file
    # only when its cache was empty at exit ("QN: 0/0" in its purge line).
    assert res.returncode == 0, f"pmacctd exited {res.returncode}: {log[-1000:]}"
    assert out.exists() or "QN: 0/0" in log, f"pmacctd wrote no output: {log[-1000:]}"
    pk, by = collections.Counter(), collections.Counter()
    if out.exists():
        rows = out.read_text().splitlines()[1:]
        for line in rows:
            s, d, sp, dp, proto, pkts, byts = line.split(",")[:7]
            p = int(proto) if proto.isdigit() else socket.getprotobyname(proto)
            k = (s, d, int(sp), int(dp), p)
            pk[k] += int(pkts)
            by[k] += int(byts)
    return pk, by


def tshark_fields(path, display_filter: str, *fields: str) -> list[tuple[str, ...]]:
    tshark = require_tool("tshark")
    args = [tshark, "-r", str(path), "-n", "-Y", display_filter, "-T", "fields"]
    for f in fields:
        args += ["-e", f]
    res = subprocess.run(args, capture_output=True, text=True, timeout=300)
    return [tuple((line.split("\t") + [""] * len(fields))[:len(fields)]) for line in res.stdout.splitlines()]


def tshark_sip_calls(path, window_s: float = 0) -> dict[tuple[int, str], tuple]:
    """tshark's SIP messages joined per (window start in ns, 0 for the whole capture; Call-ID) as
    flows/sip.py documents them, in a plain loop: (method of the first request, From and To and
    source and destination of the first message, first and last time in ns, requests, responses,
    last final response's code or 0)."""
    calls: dict[tuple[int, str], dict] = {}
    for t, s4, d4, s6, d6, method, status, cid, frm, to in tshark_fields(
            path, "sip", "frame.time_epoch", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "sip.Method",
            "sip.Status-Code", "sip.Call-ID", "sip.from.addr", "sip.to.addr"):
        whole, frac = t.split(".")
        ns = int(whole) * 10**9 + int(frac.ljust(9, "0")[:9])
        win = ns // int(window_s * 10**9) * int(window_s * 10**9) if window_s else 0
        c = calls.setdefault((win, cid), {"first": None, "req": None, "fin": None, "last": ns, "n": [0, 0]})
        if c["first"] is None or ns < c["first"][0]:
            c["first"] = (ns, frm, to, s4 or s6, d4 or d6)
        if method and (c["req"] is None or ns < c["req"][0]):
            c["req"] = (ns, method)
        if status and int(status) >= 200 and (c["fin"] is None or ns >= c["fin"][0]):
            c["fin"] = (ns, int(status))
        c["last"] = max(c["last"], ns)
        c["n"][0 if method else 1] += 1
    return {k: ((c["req"] or (0, ""))[1], *c["first"][1:], c["first"][0], c["last"], *c["n"], (c["fin"] or (0, 0))[1])
            for k, c in calls.items() if k[1]}


def tshark_dns_records(path, display_filter: str) -> dict[int, list[tuple[str, int, str]]]:
    """tshark's A, AAAA and CNAME records per frame (number -> [(owner, type, value)]): the owners
    of those types among every record's (dns.resp.name, dns.resp.type), each with the next value
    of its type's own field (dns.a, dns.aaaa, dns.cname)."""
    out = {}
    fields = ("frame.number", "dns.resp.name", "dns.resp.type", "dns.a", "dns.aaaa", "dns.cname")
    for number, names, types, a, aaaa, cname in tshark_fields(path, display_filter, *fields):
        values = {1: iter(a.split(",")), 28: iter(aaaa.split(",")), 5: iter(cname.split(","))}
        rows = [(n, int(t)) for n, t in zip(names.split(","), types.split(",")) if t and int(t) in values]
        out[int(number)] = [(n, t, next(values[t])) for n, t in rows]
    return out


@functools.lru_cache(maxsize=16)
def reference_windows(path, window_s: float) -> dict:
    """Brute force, one Python step per packet, with an independent decoder (tests/oracle.py: its
    own pcap reader and dpkt, no project code):
    {window_start_ns: {(src, dst, sport, dport, proto, vlan): [packets, bytes, first, last, flags]}}.

    The reference the dataflow's exact results are checked against. Cached: do not modify it."""
    from tests.oracle import flow_windows
    return flow_windows(str(path), window_s)


def table_records(t) -> dict:
    """A FlowTable as {window: {flow key text: [packets, bytes, first, last, flags]}} like reference_windows."""
    out: dict = collections.defaultdict(dict)
    keys = zip(t.window.tolist(), column_to_text(t.src_addr()), column_to_text(t.dst_addr()), t.sport.tolist(),
               t.dport.tolist(), t.proto.tolist(), t.vlan.tolist())
    for (w, *k), pk, by, f, l, fl in zip(keys, t.packets.tolist(), t.bytes.tolist(), t.first_ns.tolist(),
                                         t.last_ns.tolist(), t.tcp_flags.tolist()):
        out[w][tuple(k)] = [pk, by, f, l, fl]
    return dict(out)


@pytest.fixture(scope="session")
def planted_pcap(tmp_path_factory) -> Path:
    """300k packets with planted elephants, super-spreaders and a spoofed SYN flood (accuracy tests)."""
    path = tmp_path_factory.mktemp("planted") / "planted.pcap"
    synth.write(str(path), synth.SynthConfig(packets=300_000, hosts=2000, heavy_hitters=10, heavy_share=0.3,
                                             spreaders=3, spread=5000, scans=1, scan_ports=1000, syn_flood=20_000,
                                             ipv6=0.1, seed=11))
    return path


API_WINDOW_S = 10


@pytest.fixture(scope="session")
def api_results(synth_pcap):
    """The capture's window results (WindowResult list) and its brute-force reference."""
    from bytewax.testing import run_main
    from flows.config import WindowConfig
    from flows.dataflow import build_flow
    from flows.sources import CaptureSource

    results = []
    run_main(build_flow(CaptureSource(str(synth_pcap)), WindowConfig(window_s=API_WINDOW_S), [],
                        on_result=results.append))
    return sorted(results, key=lambda r: r.start), reference_windows(synth_pcap, API_WINDOW_S)


_free_ports = stack.free_ports


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory):
    """Tansu, Redis and ClickHouse on free 127.0.0.1 ports for the whole test session."""
    require_tool("redis-server")
    require_tool("clickhouse-server")
    d = tmp_path_factory.mktemp("stack")
    ports = dict(zip(["kafka", "redis", "clickhouse", "clickhouse_http"], _free_ports(4)))
    services = stack.up(d, ports=ports)
    yield d, ports, services
    stack.down(d)


def pytest_terminal_summary(terminalreporter):
    """One line per reason that tests were skipped, so a run without ../shared (or a tool) says so
    plainly instead of passing quietly."""
    skipped = terminalreporter.stats.get("skipped", [])
    reasons = collections.Counter()
    for rep in skipped:
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        shared_gone = "../shared/pcaps" in reason or (not SHARED and "empty parameter set" in reason)
        reasons["../shared/pcaps missing" if shared_gone else reason.removeprefix("Skipped: ")] += 1
    for reason, n in reasons.most_common():
        terminalreporter.write_line(f"netspectra: {n} tests skipped: {reason}", yellow=True)


@pytest.fixture
def capture_link():
    """A veth pair from a private network namespace into this one: senders use the namespace's
    end (va, MTU 9000), the collector captures on ours (so it reaches the broker and Prometheus on
    127.0.0.1). Ours has MTU 1500, so a frame over 1518 bytes is dropped as it arrives (an
    interface drop, in its rx_dropped); no address and no IPv6: only the frames sent cross it."""
    if os.geteuid() != 0:
        pytest.skip("live capture needs root (CI runs as root)")
    require_tool("ip")
    require_tool("tcpreplay")
    ns, ours = f"nsk{os.getpid()}", f"nsk{os.getpid()}b"
    sh = lambda *cmd: subprocess.run(cmd, check=True, capture_output=True, text=True)  # noqa: E731
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "link", "add", ours, "mtu", "1500", "type", "veth", "peer", "name", "va", "mtu", "9000", "netns", ns)
        sh("sysctl", "-qw", f"net.ipv6.conf.{ours}.disable_ipv6=1")
        sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
        sh("ip", "link", "set", ours, "up")
        sh("ip", "-n", ns, "link", "set", "va", "up")
        yield ns, ours
    finally:
        subprocess.run(["ip", "link", "del", ours], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@pytest.fixture
def started():
    """Processes a test starts; whatever still runs when it ends (a failed assertion included) is killed."""
    procs: list = []
    yield procs
    from tests.support import stop
    stop(procs, signal.SIGKILL)
