"""The `netspectra` command line, run as a user would."""
from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

from collectors.decode.rows import DECODE_FIELDS
from tests.conftest import tshark_fields, shared_pcap
from tests.pipeline import run


def test_synth_then_decode_csv(tmp_path):
    out = tmp_path / "s.pcap"
    assert run("synth", str(out), "--packets", "3000", "--vlan", "0.2", "--spreaders", "1", "--spread", "100", "--scan-ports", "100").returncode == 0
    res = run("decode", str(out), "--limit", "50")
    assert res.returncode == 0
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert len(rows) == 50 and list(rows[0]) == DECODE_FIELDS
    summary = json.loads(res.stderr.strip().splitlines()[-1])
    assert summary["packets"] == 3000


def test_decode_jsonl_l7_and_non_ip():
    res = run("decode", str(shared_pcap("ppp_VlanPackets.pcap")), "--format", "jsonl")
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert len(rows) == 26
    non_ip = [r for r in rows if r["status"] == "non_ip"]
    assert len(non_ip) == 6 and all(r["src"] == "" for r in non_ip)
    # the outermost VLAN of every IP frame, as tshark reads it
    theirs = [v[0].split(",")[0] for v in tshark_fields(shared_pcap("ppp_VlanPackets.pcap"), "ip", "vlan.id")]
    assert [str(r["vlan"]) for r in rows if r["status"] == "ok"] == theirs and set(theirs) - {""}
    res = run("decode", str(shared_pcap("zeek_http-methods.pcap")), "--format", "jsonl")
    methods = {json.loads(line)["http_method"] for line in res.stdout.splitlines()}
    assert {"GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "TRACE", "CONNECT", "CCM_POST"} <= methods


def test_truncated_capture_is_not_an_error_exit():
    res = run("decode", str(shared_pcap("suricata_http-mime-truncated_cutshort.pcap")), "--summary")
    assert res.returncode == 0
    s = json.loads(res.stdout)
    assert s["packets"] == 2696 and s["reader"]["truncated"] is True


def test_not_a_capture_is_a_clean_error(tmp_path):
    p = tmp_path / "x.pcap"
    p.write_text("nope")
    res = run("decode", str(p))
    assert res.returncode == 2 and "not a pcap" in res.stderr and "Traceback" not in res.stderr


def test_every_option_has_help_and_service_flags_show_their_default():
    import importlib

    from netspectra.cli import FLAG_FIELDS, MODELS, parser
    for cmd, sp in parser().subcommands.items():
        fmt = sp._get_formatter()
        fields = {}
        if cmd in MODELS:
            module, name = MODELS[cmd].split(":")
            fields = getattr(importlib.import_module(module), name).model_fields
        for action in sp._actions:
            if action.dest == "help":
                continue
            assert action.help, f"{cmd} {action.option_strings or action.dest}: no help"
            f = fields.get(FLAG_FIELDS.get(action.dest, action.dest))
            if f is not None and action.nargs != 0 and f.default_factory is None:
                shown = fmt._get_help_string(action)
                assert "default" in shown, f"{cmd} {action.option_strings}: {shown}"
                d = f.default
                if d is not None and "default:" not in shown:
                    forms = {str(d), f"{d:g}", f"{d:,}"} if isinstance(d, (int, float)) else {str(d)}
                    assert any(x in shown for x in forms), f"{cmd} {action.option_strings}: {shown}"


def test_a_mistyped_option_prints_the_subcommands_usage():
    res = subprocess.run([sys.executable, "-m", "netspectra.cli", "engine", "--windoww", "3"], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 2 and res.stderr.startswith("usage: netspectra engine ")
    assert res.stderr.strip().endswith("netspectra engine: error: unrecognized arguments: --windoww 3")


def test_tunnels_are_taken_out_unless_switched_off():
    """decode and analyze take packets out of tunnels (envelope columns printed); --no-decap
    leaves the named kinds (or all) in their carriers; an unknown kind is one line, exit 2."""
    from tests.support import TEST_DATA
    path = str(TEST_DATA / "zeek_tun_vxlan-encapsulated-http.pcap")
    rows = list(csv.DictReader(io.StringIO(run("decode", path).stdout)))
    assert {(r["tunnel"], r["tunnel_id"], r["outer_src"], r["dport"]) for r in rows if r["src"] == "172.16.11.201"} \
        == {("vxlan", "1", "10.1.200.131", "80")}
    rows = list(csv.DictReader(io.StringIO(run("decode", path, "--no-decap", "vxlan").stdout)))
    assert {r["dport"] for r in rows} == {"4789"} and not any(r["tunnel"] for r in rows)
    talkers = {}
    for flags in ((), ("--no-decap", "all")):
        res = run("analyze", path, "--window", "0", "--json", *flags)
        assert res.returncode == 0, res.stderr
        talkers[flags] = {t["src"] for t in json.loads(res.stdout)["top_talkers"]}
    assert talkers[()] == {"172.16.11.201", "54.86.237.188"} and "10.1.200.131" in talkers[("--no-decap", "all")]
    for cmd in ("decode", "analyze"):
        res = run(cmd, path, "--no-decap", "vxlan,bogus")
        assert res.returncode == 2 and res.stderr.strip().splitlines() == [
            f"netspectra {cmd}: unknown tunnel kind 'bogus' (known: vxlan, geneve, gre, erspan, ipip, mpls, pppoe, gtpu, "
            "or all)"]
