"""`netspectra analyze` and `netspectra sql`, run as a user would, on generated and public captures."""
from __future__ import annotations

import collections
import csv
import json

import pytest

from tests.conftest import PMACCT_UNREADABLE, SHARED_NAMES, pmacct_flows, reference_windows, shared_pcap
from flows.summary import MIN_SCANNER_PORTS
from tests.pipeline import run

JSON_KEYS = {"packets", "bytes", "flows", "windows", "top_talkers", "heavy_hitters", "super_spreaders", "fan_in",
             "port_scanners", "protocols", "errors"}


def export_flows(path, vlan: bool = True) -> tuple[collections.Counter, collections.Counter]:
    """Packets and bytes per flow key of an exported flows.csv (vlan=False: per 5-tuple, as pmacct)."""
    pk, by = collections.Counter(), collections.Counter()
    with open(path) as f:
        for r in csv.DictReader(f):
            k = (r["src"], r["dst"], int(r["sport"]), int(r["dport"]), int(r["proto"]))
            k += (int(r["vlan"]),) if vlan else ()
            pk[k] += int(r["packets"])
            by[k] += int(r["bytes"])
    return pk, by


def test_analyze_json_matches_the_planted_truth_and_reference(synth_pcap, tmp_path):
    res = run("analyze", str(synth_pcap), "--window", "10", "--json", "--top", "5")
    assert res.returncode == 0, res.stderr
    rep = json.loads(res.stdout)
    assert JSON_KEYS <= set(rep)
    ref = reference_windows(synth_pcap, 10)
    assert rep["windows"] == len(ref)
    assert rep["packets"] == sum(v[0] for w in ref.values() for v in w.values())
    assert rep["bytes"] == sum(v[1] for w in ref.values() for v in w.values())
    assert rep["flows"] == sum(len(w) for w in ref.values())
    truth = json.load(open(f"{synth_pcap}.truth.json"))
    assert rep["fan_in"][0]["dst"] == truth["fan_in"][0]["dst"]
    assert {s["src"] for s in rep["super_spreaders"][:2]} == {s["src"] for s in truth["super_spreaders"]}
    ports = collections.Counter()           # exact: each source's most distinct TCP/UDP dst ports in a window
    for flows in ref.values():
        per = collections.defaultdict(set)
        for s, d, sp, dp, p, _v in flows:
            if p in (6, 17):
                per[s].add(dp)
        for s, dps in per.items():
            ports[s] = max(ports[s], len(dps))
    listed = sorted((n for n in ports.values() if n >= MIN_SCANNER_PORTS), reverse=True)[:5]
    assert listed and [s["distinct_ports"] for s in rep["port_scanners"]] == listed
    assert all(ports[s["src"]] == s["distinct_ports"] for s in rep["port_scanners"])
    by_src, pk_src, by_flow, by_proto = (collections.Counter() for _ in range(4))
    pk_proto = collections.Counter()
    for flows in ref.values():
        for (s, d, sp, dp, p, _v), (pk, by, *_r) in flows.items():
            by_src[s] += by
            pk_src[s] += pk
            by_flow[(s, d, sp, dp, p)] += by
            by_proto[p] += by
            pk_proto[p] += pk
    # top talkers are exact: the 5 sources with the most bytes, with their exact bytes and packets
    assert [(t["src"], t["bytes"], t["packets"]) for t in rep["top_talkers"]] == \
        [(s, b, pk_src[s]) for s, b in sorted(by_src.items(), key=lambda x: (-x[1], x[0]))[:5]]
    # heavy hitters are estimates: the exact bytes lie within the reported bounds, the planted
    # elephants lead
    for h in rep["heavy_hitters"]:
        exact = by_flow[(h["src"], h["dst"], h["sport"], h["dport"], h["proto"])]
        assert h["estimate"] and h["bytes_lower_bound"] <= exact <= h["bytes_upper_bound"]
    assert [(h["src"], h["dst"]) for h in rep["heavy_hitters"]][:3] == \
        [k[:2] for k, _ in sorted(by_flow.items(), key=lambda x: -x[1])[:3]]
    assert {(p["proto"], p["packets"], p["bytes"]) for p in rep["protocols"]} == \
        {(p, pk_proto[p], by_proto[p]) for p in by_proto}


def test_analyze_report_export_store_and_sql(synth_pcap, tmp_path):
    store, export = tmp_path / "store", tmp_path / "csv"
    res = run("analyze", str(synth_pcap), "--window", "0", "--store", str(store), "--export", str(export))
    assert res.returncode == 0, res.stderr
    for title in ("Protocols", "Top talkers", "Top flows", "Super-spreaders", "Fan-in"):
        assert title in res.stdout
    with open(export / "flows.csv") as f:
        header = next(csv.reader(f))
    assert header == ["window_start", "src", "dst", "sport", "dport", "proto", "vlan", "packets", "bytes",
                      "first_seen", "last_seen", "tcp_flags", "tls_sni", "tls_ja4", "tls_alpn", "tunnel", "tunnel_id"]
    from schemas.clickhouse import RESULT_TABLES
    assert {p.name for p in export.iterdir()} == {f"{t}.csv" for t in RESULT_TABLES}      # alerts.csv among them
    ref = reference_windows(synth_pcap, 0)[0]
    pk, by = export_flows(export / "flows.csv")
    assert pk == collections.Counter({k: v[0] for k, v in ref.items()})
    assert by == collections.Counter({k: v[1] for k, v in ref.items()})
    q = run("sql", "--store", str(store), "--format", "TSV", "SELECT sum(packets), count() FROM netspectra.flows FINAL")
    assert q.returncode == 0, q.stderr
    assert q.stdout.split() == [str(sum(pk.values())), str(len(pk))]
    # analysing again into the same store replaces the windows instead of adding to them
    assert run("analyze", str(synth_pcap), "--window", "0", "--store", str(store), "--json").returncode == 0
    q = run("sql", "--store", str(store), "--format", "TSV", "SELECT sum(packets), count() FROM netspectra.flows FINAL")
    assert q.stdout.split() == [str(sum(pk.values())), str(len(pk))]
    q = run("sql", "--store", str(store), "--format", "TSV", "SELECT count() FROM netspectra.window_totals FINAL")
    assert q.stdout.split() == ["1"]
    # the alerts too: the planted scanners, spreaders and flood, once each however often analysed
    with open(export / "alerts.csv") as f:
        exported = sorted((r["rule"], r["entity"]) for r in csv.DictReader(f))
    assert [r for r, _ in exported] == ["host_scan", "host_scan", "port_scan", "syn_flood"]
    q = run("sql", "--store", str(store), "--format", "TSV", "SELECT rule, entity FROM netspectra.alerts FINAL ORDER BY rule, entity")
    assert [tuple(line.split("\t")) for line in q.stdout.strip().splitlines()] == exported


def test_sql_errors_are_clean(tmp_path):
    assert run("sql", "--store", str(tmp_path / "none"), "SELECT 1").returncode == 1
    (tmp_path / "s").mkdir()
    res = run("sql", "--store", str(tmp_path / "s"), "SELECT nonsense FROM nowhere")
    assert res.returncode == 1 and "netspectra sql" in res.stderr


@pytest.mark.parametrize("name", SHARED_NAMES)
def test_analyze_export_matches_pmacct(name, tmp_path):
    """Per 5-tuple packets/bytes of `analyze --window 0 --export` equal pmacctd's; the exceptions are
    the decoding ones (tests/collectors/decode/test_peer_parity.py). pmacct keys a tunnel's packets
    on its carrier: so does analyze with --no-decap all."""
    path = shared_pcap(name)
    res = run("analyze", str(path), "--window", "0", "--export", str(tmp_path / "csv"), "--json", "--no-decap", "all")
    assert res.returncode == 0, res.stderr
    rep = json.loads(res.stdout)
    ours_p, ours_b = export_flows(tmp_path / "csv" / "flows.csv", vlan=False)
    assert rep["packets"] == sum(ours_p.values()) and rep["bytes"] == sum(ours_b.values())
    theirs_p, theirs_b = pmacct_flows(path, tmp_path)
    if name in PMACCT_UNREADABLE:
        if PMACCT_UNREADABLE[name] is None:
            assert not theirs_p and sum(ours_p.values()) == 64
            return
        # pmacct reads interface 0 only: every one of its flows is ours, ours has more packets
        assert all(ours_p[k] >= v for k, v in theirs_p.items()) and sum(ours_p.values()) == 159
        return
    unmatched = rep["errors"].get("fragment_without_first", 0)
    if unmatched:        # later fragments without a first fragment: pmacct drops them, we count them with ports 0
        extra = ours_p - theirs_p
        assert sum(extra.values()) == unmatched and all(k[2] == k[3] == 0 for k in extra)
        ours_p -= extra
        ours_b = collections.Counter({k: v for k, v in ours_b.items() if k not in extra})
        theirs_b = collections.Counter({k: v for k, v in theirs_b.items() if k not in extra})
    assert ours_p == theirs_p
    assert ours_b == theirs_b


def test_two_worker_threads_give_the_same_report(synth_pcap):
    reps = []
    for w in ("1", "2"):
        res = run("analyze", str(synth_pcap), "--window", "10", "--json", "--workers", w)
        assert res.returncode == 0, res.stderr
        rep = json.loads(res.stdout)
        reps.append({k: v for k, v in rep.items() if k not in ("seconds", "memory_mb")})
    assert reps[0] == reps[1]


def test_bad_input_is_a_clean_error_or_counted(tmp_path):
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"not a capture at all")
    res = run("analyze", str(junk), "--json")
    assert res.returncode == 1 and "netspectra analyze" in res.stderr
    res = run("analyze", str(shared_pcap("suricata_http-mime-truncated_cutshort.pcap")), "--json")
    rep = json.loads(res.stdout)
    assert res.returncode == 0 and rep["truncated_file"] and rep["errors"]["truncated_file"] == 1 and rep["packets"] > 0


def test_analyze_refuses_directories_and_fifos_in_one_line(tmp_path):
    import os
    from tests.pipeline import run
    os.mkfifo(tmp_path / "fifo.pcap")
    for target, words in ((tmp_path, "directory"), (tmp_path / "fifo.pcap", "not a regular file")):
        for cmd in ("analyze", "decode"):
            res = run(cmd, str(target))
            assert res.returncode != 0 and words in res.stderr, res.stderr
            assert len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_top_talkers_are_exact_where_the_sketch_is_not(planted_pcap):
    """300k packets with a 20k-source SYN flood: more sources than the frequent-items sketch keeps
    exactly, so its estimates carry error. Top talkers come from the flow records: exact."""
    res = run("analyze", str(planted_pcap), "--window", "10", "--json", "--top", "10")
    assert res.returncode == 0, res.stderr
    by_src, pk_src = collections.Counter(), collections.Counter()
    for flows in reference_windows(planted_pcap, 10).values():
        for k, (pk, by, *_r) in flows.items():
            by_src[k[0]] += by
            pk_src[k[0]] += pk
    got = [(t["src"], t["bytes"], t["packets"]) for t in json.loads(res.stdout)["top_talkers"]]
    assert got == [(s, b, pk_src[s]) for s, b in sorted(by_src.items(), key=lambda x: (-x[1], x[0]))[:10]]


def test_analyze_reports_alerts_in_json_and_text():
    scan = str(shared_pcap("evilfingers_nmap_TCP_SYN_SCAN.pcap"))
    res = run("analyze", scan, "--json")
    assert res.returncode == 0, res.stderr
    (alert,) = json.loads(res.stdout)["alerts"]
    assert (alert["rule"], alert["entity"], alert["state"]) == ("port_scan", {"src": "192.168.1.10", "dst": "192.168.1.25"}, "firing")
    # the 1,000 ports nmap probed (its 1,002 SYN-only flow records, two ports probed twice)
    assert alert["value"] == 1000 and alert["evidence"]["attempts"] == 1002
    res = run("analyze", scan)
    assert "Alerts" in res.stdout and "port_scan" in res.stdout and "src=192.168.1.10" in res.stdout
    res = run("analyze", str(shared_pcap("zeek_http-methods.pcap")))
    assert "Alerts: none" in res.stdout


def test_bad_rules_files_fail_with_one_line_each_and_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - {name: x, detector: nope}\n  - {name: syn_flood, threshold: abc}\n")
    for args in (("rules", "check", str(bad)), ("analyze", "--rules", str(bad), str(shared_pcap("ppp_VlanPackets.pcap")))):
        res = run(*args)
        assert res.returncode == 2 and res.stdout == ""
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 2 and "unknown detector 'nope'" in lines[0] and "threshold" in lines[1], lines
    ok = tmp_path / "ok.yaml"
    ok.write_text("rules:\n  - {name: syn_flood, threshold: 10, params: {min_sources: 2}}\n")
    res = run("rules", "check", str(ok))
    rules = {r["name"]: r for r in json.loads(res.stdout)["rules"]}
    assert res.returncode == 0 and rules["syn_flood"]["threshold"] == 10 and rules["syn_flood"]["params"]["min_sources"] == 2
