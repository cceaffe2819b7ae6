"""Live capture for real: a network namespace with a veth pair, tcpreplay on one end, `netspectra
collect --interface` (libpcap and AF_PACKET, and two AF_PACKET collectors in one fanout group) on
the other. Counts must equal the file's, with kernel drops reported.

Also the replay pacer, on a fake clock."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from collectors import synth
from collectors.capture_file import CaptureFile
from collectors.decode.decoder import Decoder
from collectors.replay import PACE_SLICE_S, Pacer
from collectors.service import DecodedTotals
from tests.conftest import ROOT, require_tool

REPLAY_PPS = 40_000


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, text=True)


@pytest.fixture(scope="module")
def veth_ns():
    """A namespace holding a veth pair va <-> vb, quiet (no IPv6 autoconf, no addresses)."""
    if os.geteuid() != 0:
        pytest.skip("live capture needs root (CI runs as root)")
    require_tool("ip")
    require_tool("tcpreplay")
    ns = f"nstest{os.getpid()}"
    sh("ip", "netns", "add", ns)
    try:
        for key in ("all", "default"):
            sh("ip", "netns", "exec", ns, "sysctl", "-qw", f"net.ipv6.conf.{key}.disable_ipv6=1")
        sh("ip", "-n", ns, "link", "add", "va", "mtu", "9000", "type", "veth", "peer", "name", "vb", "mtu", "9000")
        for dev in ("va", "vb"):
            sh("ip", "-n", ns, "link", "set", dev, "up")
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@pytest.fixture(scope="module")
def replay_pcap(tmp_path_factory):
    path = tmp_path_factory.mktemp("live") / "replay.pcap"
    synth.write(str(path), synth.SynthConfig(packets=20_000, hosts=200, vlan=0.1, ipv6=0.15, fragments=0.03,
                                             syn_flood=1000, seed=11))
    return path


def file_totals(path) -> tuple[int, DecodedTotals]:
    cap, dec, tot = CaptureFile(str(path)), Decoder(l7=False), DecodedTotals()
    for raw in cap.batches():
        tot.add(dec.decode(raw))
    return cap.stats.packets, tot


def start_collectors(ns: str, n: int, *args: str, env: dict | None = None) -> list[subprocess.Popen]:
    procs = [subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m", "netspectra.cli", "collect",
                               "--interface", "vb", "--dry-run", "--no-l7", *args],
                              cwd=ROOT, stderr=subprocess.PIPE, text=True, env=env) for _ in range(n)]
    for p in procs:      # wait until each has its socket open
        line = p.stderr.readline()
        assert "capturing on vb" in line, line + p.stderr.read()
    return procs


def replay(ns: str, path) -> int:
    out = subprocess.run(["ip", "netns", "exec", ns, "tcpreplay", "-i", "va", f"--pps={REPLAY_PPS}", str(path)],
                         capture_output=True, text=True, check=True).stdout
    sent = [int(line.split()[-1]) for line in out.splitlines() if line.strip().startswith("Successful packets:")]
    return sent[0]


def reports(procs: list[subprocess.Popen]) -> list[dict]:
    out = []
    for p in procs:
        err = p.communicate(timeout=60)[1]
        assert p.returncode == 0, err
        out.append(json.loads(err.strip().splitlines()[-1]))
    return out


@pytest.mark.parametrize("method", ["pcap", "afpacket"])
def test_live_capture_counts_every_packet(veth_ns, replay_pcap, method):
    n, expected = file_totals(replay_pcap)
    procs = start_collectors(veth_ns, 1, "--method", method, "--count", str(n), "--duration", "30")
    sent = replay(veth_ns, replay_pcap)
    [rep] = reports(procs)
    cap = rep["capture"]
    assert sent == n
    # every packet the kernel took is either ours or counted as dropped
    assert cap["packets"] + cap["kernel_drops"] >= n
    assert cap["kernel_drops"] == 0, cap
    assert cap["packets"] == n
    # same frames: VLAN tags the kernel stripped are back, so IP totals equal the file's
    assert rep["decoded"] == expected.__dict__


@pytest.mark.parametrize("method", ["pcap", "afpacket"])
def test_bpf_filter(veth_ns, tmp_path, method):
    """`--bpf udp` keeps exactly the file's UDP packets, IPv4 and IPv6 (no VLAN tags here: libpcap
    and the kernel differ on whether an untagged filter matches tagged frames)."""
    path = tmp_path / "plain.pcap"
    synth.write(str(path), synth.SynthConfig(packets=20_000, hosts=200, ipv6=0.15, vlan=0.0, fragments=0.0, seed=3))
    udp = sum(int((b.proto == 17).sum()) for b in map(Decoder(l7=False).decode, CaptureFile(str(path)).batches()))
    assert 0 < udp < 20_000
    procs = start_collectors(veth_ns, 1, "--method", method, "--bpf", "udp", "--count", str(udp), "--duration", "20")
    replay(veth_ns, path)
    [rep] = reports(procs)
    assert rep["capture"]["packets"] == rep["decoded"]["ip_packets"] == udp


def test_two_afpacket_collectors_share_an_interface(veth_ns, replay_pcap, tmp_path):
    """Stopped by SIGTERM once the replay is done, each hands over what its ring holds. With a cold
    numba cache (compiling while the ring fills), as on a fresh clone."""
    import signal
    n, expected = file_totals(replay_pcap)
    cold = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}
    procs = start_collectors(veth_ns, 2, "--method", "afpacket", "--fanout", "4242", env=cold)
    assert replay(veth_ns, replay_pcap) == n
    for p in procs:
        p.send_signal(signal.SIGTERM)
    reps = reports(procs)
    got = [r["capture"]["packets"] for r in reps]
    assert all(g > 0 for g in got), got                   # the kernel split the traffic
    assert sum(r["capture"]["kernel_drops"] for r in reps) == 0
    assert sum(got) == n
    assert sum(r["decoded"]["ip_bytes"] for r in reps) == expected.ip_bytes


def test_missing_interface_is_a_clean_error():
    from tests.pipeline import run
    for method in ("pcap", "afpacket"):
        res = run("collect", "--interface", "nosuchif0", "--method", method, "--dry-run")
        assert res.returncode == 2 and res.stderr == ("netspectra collect: nosuchif0: no such interface; "
                                                      "`netspectra collect --list-interfaces` lists them\n"), res.stderr


class FakeClock:
    def __init__(self):
        self.now = 1000.0
        self.slept = 0.0

    def __call__(self):
        return self.now

    def sleep(self, s):
        self.now += s
        self.slept += s


def test_pacer_rate_and_retime(synth_pcap):
    clock = FakeClock()
    pacer = Pacer(rate=10_000, retime=True, clock=clock, sleep=clock.sleep)
    cap = CaptureFile(str(synth_pcap))
    raws = list(cap.batches())
    out = list(pacer.pace(iter(raws)))
    n = sum(len(r) for r in out)
    assert n == cap.stats.packets
    # every slice leaves when its last packet is due: the last one when the last packet is
    assert clock.slept == pytest.approx((n - 1) / 10_000)
    assert len(out) <= n / (10_000 * PACE_SLICE_S) + len(raws)
    ts = [t for r in out for t in r.ts_ns.tolist()]
    assert ts == sorted(ts) and ts[0] == int(1000.0 * 1e9)
    assert ts[-1] - ts[0] == pytest.approx((n - 1) / 10_000 * 1e9, rel=1e-6)


def test_pacer_speed_keeps_recorded_gaps(synth_pcap):
    clock = FakeClock()
    raws = list(CaptureFile(str(synth_pcap)).batches())
    span = (raws[-1].ts_ns[-1] - raws[0].ts_ns[0]) / 1e9
    out = list(Pacer(speed=4.0, clock=clock, sleep=clock.sleep).pace(iter(raws)))
    assert sum(len(r) for r in out) == sum(len(r) for r in raws)
    assert clock.slept == pytest.approx(span / 4)
    assert out[0].ts_ns[0] == raws[0].ts_ns[0]           # not re-stamped


@pytest.mark.parametrize("method", ["afpacket", "pcap"])
def test_duration_counts_capture_not_compiling(tmp_path, method):
    """With numba's cache empty (a fresh install), compiling the decoder takes seconds; it happens
    before the --duration clock starts, so the capture itself lasts the whole duration."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    res = subprocess.run([sys.executable, "-m", "netspectra.cli", "collect", "--interface", "lo", "--method", method,
                          "--dry-run", "--duration", "2"], capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stderr.strip().splitlines()[-1])["seconds"] >= 2


def test_a_stopped_replay_reports_what_it_read_and_what_it_sent():
    """Reading runs ahead of pacing: stopped by --count, the report says both, and what was
    decoded is what was sent."""
    import tempfile

    from tests.support import numbered_pcap
    with tempfile.TemporaryDirectory() as d:
        pcap = f"{d}/n.pcap"
        numbered_pcap(pcap, 5000)
        res = subprocess.run([sys.executable, "-m", "netspectra.cli", "collect", "--pcap", pcap, "--dry-run",
                              "--rate", "100000", "--count", "1234"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    rep = json.loads(res.stderr.strip().splitlines()[-1])
    assert rep["replayed"] >= rep["decoded"]["frames"] == 1234 and rep["capture"]["packets"] == 5000
