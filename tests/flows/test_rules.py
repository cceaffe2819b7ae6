"""Rules files: the built-ins, overrides, and one clear line per error (never a traceback)."""
from __future__ import annotations

import json

import pytest

from flows.rules import DETECTORS, RulesError, load_rules


def _errors(tmp_path, text: str, name="r.yaml") -> list[str]:
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(RulesError) as e:
        load_rules(str(p))
    return e.value.lines


def test_defaults_are_every_detector():
    rs = load_rules(None)
    assert [r.detector for r in rs.rules] == list(DETECTORS)
    assert {r.name: r.threshold for r in rs.rules}["syn_flood"] == 1000


def test_override_add_disable_and_filter(tmp_path):
    p = tmp_path / "r.json"
    p.write_text(json.dumps({"rules": [{"name": "syn_flood", "threshold": 500, "params": {"min_sources": 10}},
                                       {"name": "dmz_scans", "detector": "port_scan", "threshold": 20, "for": 2,
                                        "filter": {"dst": ["192.0.2.0/24"], "protocol": "tcp"}}],
                             "disable": ["heavy_hitter"],
                             "notifiers": {"webhook": {"url": "http://127.0.0.1:1/hook"}}}))
    rs = load_rules(str(p))
    by = {r.name: r for r in rs.rules}
    assert "heavy_hitter" not in by
    assert by["syn_flood"].threshold == 500 and by["syn_flood"].param("min_sources") == 10
    assert by["dmz_scans"].for_windows == 2 and by["dmz_scans"].filter.protocol == 6
    assert rs.notifiers == {"webhook": {"url": "http://127.0.0.1:1/hook"}}


def test_rate_thresholds_scale_with_the_window():
    r = {x.name: x for x in load_rules(None).rules}["port_scan"]
    assert r.limit(60) == 100 and r.limit(30) == 50
    assert r.limit(1) == r.limit(10)              # never below a 10 s window
    assert r.limit(0) == 100                      # a whole capture: at least a minute


@pytest.mark.parametrize("text,expect", [
    ("rules: [\n", "not valid YAML"),
    ("[1, 2]", "expected a mapping"),
    ("rules:\n  - name: x\n    detector: nope\n", "unknown detector 'nope'"),
    ("rules:\n  - name: syn_flood\n    threshold: abc\n", "threshold: expected a number > 0, got 'abc'"),
    ("rules:\n  - name: syn_flood\n    severity: loud\n", "severity: expected one of info, warning, critical"),
    ("rules:\n  - name: syn_flood\n    for: 0\n", "for: expected an integer >= 1"),
    ("rules:\n  - name: syn_flood\n    params: {min_source: 3}\n", "has no parameter 'min_source'"),
    ("rules:\n  - name: port_scan\n    filter: {dst: [10.0.0.300/8]}\n", "is not an address or CIDR"),
    ("rules:\n  - name: port_scan\n    colour: red\n", "unknown key 'colour'"),
    ("disable: [nope]\n", "'nope' is not a built-in rule"),
    ("notifiers: {pager: {}}\n", "unknown notifier 'pager'"),
    ("notifiers: {smtp: {host: h}}\n", "smtp: from is required"),
    ("rules:\n  - {name: a, detector: port_scan}\n  - {name: a, detector: host_scan}\n", "name 'a' is used twice"),
])
def test_each_error_is_one_line(tmp_path, text, expect):
    lines = _errors(tmp_path, text)
    assert any(expect in line for line in lines), lines
    assert all("\n" not in line and line.startswith(str(tmp_path)) for line in lines)


def test_all_errors_are_reported_together(tmp_path):
    lines = _errors(tmp_path, "rules:\n  - {name: syn_flood, threshold: -1, severity: x}\ndisable: [y]\n")
    assert len(lines) == 3
