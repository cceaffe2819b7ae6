"""Detectors: planted attacks raise the right alert, benign look-alikes raise none, on generated
traffic over seeds and window lengths and on the public captures; the exact group counts
against brute force."""
from __future__ import annotations

import collections
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collectors import synth
from flows.detect import _has_match, distinct_per_group
from tests.conftest import shared_pcap
from tests.support import capture_alerts, write_dns_capture

SCAN_OR_FLOOD = {"port_scan", "host_scan", "syn_flood", "udp_reflection"}


def _raised(alerts) -> set[tuple]:
    return {(a.detector, tuple(sorted(a.entity.items()))) for a in alerts}


def _planted(truth) -> set[tuple]:
    return {(a["detector"], tuple(sorted(a["entity"].items()))) for a in truth["attacks"]}


@pytest.mark.parametrize("seed,window_s", [(1, 10.0), (2, 30.0), (3, 60.0), (4, 0.0)])
def test_planted_attacks_alert_and_benign_lookalikes_do_not(tmp_path, seed, window_s):
    path = tmp_path / "mix.pcap"
    truth = synth.write(str(path), synth.SynthConfig(
        packets=120_000, duration=60.0, hosts=500, seed=seed, spreaders=2, spread=1500, scans=1, scan_ports=800,
        connect_scans=1, syn_flood=15_000, reflection=200, busy_server=8000, resolver=2000, download_mb=60))
    alerts = capture_alerts(path, window_s)
    raised = _raised(a for a in alerts if a.detector in SCAN_OR_FLOOD)
    assert raised == _planted(truth)          # recall 1 and precision 1 over scans and floods
    benign_hosts = {b["host"] for b in truth["benign"]}
    for a in alerts:
        assert not (a.detector in SCAN_OR_FLOOD and set(a.entity.values()) & benign_hosts), a


def test_public_captures_raise_what_they_hold():
    cases = {
        "stopddos_pkt.TCP.synflood.spoofed.pcap": {("syn_flood", (("dst", "10.10.10.10"),))},
        "evilfingers_nmap_TCP_SYN_SCAN.pcap": {("port_scan", (("dst", "192.168.1.25"), ("src", "192.168.1.10")))},
        "stopddos_amp.dns.RRSIG.fragmented.pcap": {("udp_reflection", (("dst", "10.10.10.10"), ("port", 53),
                                                                      ("proto", "udp")))},
        "stopddos_amp.UDP.bacnet.IOT.37810.pcapng": {("udp_reflection", (("dst", "10.10.10.1"), ("port", 37810),
                                                                         ("proto", "udp")))},
    }
    for name, want in cases.items():
        got = _raised(a for a in capture_alerts(shared_pcap(name), 60.0) if a.detector in SCAN_OR_FLOOD)
        assert got == want, name


@pytest.mark.parametrize("name", ["cs_http_espn.pcapng", "ppp_DnsPackets.pcap", "zeek_echo-connections.pcap",
                                  "zeek_http-methods.pcap", "ppp_many-protocols.pcap", "ppp_ip-frag.pcap",
                                  "suricata_http-mime-truncated_cutshort.pcap", "ppp_sll_linux-cooked.pcap"])
def test_benign_public_captures_raise_no_scan_or_flood(name):
    for window_s in (10.0, 60.0):
        alerts = [a for a in capture_alerts(shared_pcap(name), window_s) if a.detector in SCAN_OR_FLOOD]
        assert alerts == [], name


def test_fragments_of_reflected_datagrams_count(tmp_path):
    """Every other reflected datagram is sent as two IPv4 fragments: the alert's bytes include both."""
    path = tmp_path / "refl.pcap"
    synth.write(str(path), synth.SynthConfig(packets=1000, hosts=50, spreaders=0, scans=0, heavy_hitters=0,
                                             reflection=100, reflection_packets=30, seed=5))
    (a,) = [a for a in capture_alerts(path, 0.0) if a.detector == "udp_reflection"]
    assert a.evidence["packets"] == 3000 + 1500           # 3,000 datagrams, 1,500 of them in two pieces
    assert a.evidence["bytes"] == 3000 * 468 + 1500 * 20  # one more IP header per fragmented datagram


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 5)), min_size=1, max_size=60))
def test_distinct_per_group_matches_brute_force(rows):
    a = np.array(rows, np.uint64)
    gid, rep, counts = distinct_per_group([a[:, 0], a[:, 1]], [a[:, 2]])
    want = collections.defaultdict(set)
    for x, y, z in rows:
        want[(x, y)].add(z)
    got = {(int(a[r, 0]), int(a[r, 1])): int(c) for r, c in zip(rep, counts)}
    assert got == {k: len(v) for k, v in want.items()}
    assert all(tuple(a[i, :2]) == tuple(a[rep[g], :2]) for i, g in enumerate(gid))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), max_size=30),
       st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), max_size=30))
def test_semi_join_matches_brute_force(keys, other):
    k = np.array(keys, np.uint64).reshape(-1, 2)
    o = np.array(other, np.uint64).reshape(-1, 2)
    got = _has_match([k[:, 0], k[:, 1]], [o[:, 0], o[:, 1]])
    assert got.tolist() == [tuple(r) in set(other) for r in keys]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(1, 5)), min_size=1, max_size=300), st.integers(1, 30))
def test_could_reach_never_drops_a_group_that_reaches(rows, need):
    from flows.detect import could_reach
    a = np.array(rows, np.uint64)
    keep = could_reach([a[:, 0]], need, a[:, 1])
    total = collections.Counter()
    for k, w in rows:
        total[k] += w
    assert all(keep[i] for i, (k, _) in enumerate(rows) if total[k] >= need)


def test_dns_anomalies(tmp_path):
    path = tmp_path / "dns.pcap"
    write_dns_capture(path)
    from tests.pipeline import run
    res = run("analyze", str(path), "--window", "0", "--json")
    assert res.returncode == 0, res.stderr
    found = {(a["entity"]["src"], a["entity"]["kind"]): a for a in json.loads(res.stdout)["alerts"]
             if a["detector"] == "dns_anomaly"}
    assert set(found) == {("10.0.0.66", "nxdomain"), ("10.0.0.99", "query_rate")}
    nx = found[("10.0.0.66", "nxdomain")]
    assert (nx["value"], nx["evidence"]["answers"], nx["evidence"]["nxdomain"]) == (0.9, 200, 180)
    rate = found[("10.0.0.99", "query_rate")]
    assert rate["value"] == 3000 and rate["evidence"]["median_queries"] == 20 and rate["evidence"]["hosts_querying"] == 12
