"""The alerting rules' logic without a live pipeline: promtool's rule unit tests on synthetic
series (the live pipeline test in tests/test_metrics.py checks the pipeline's rules against real
faults; the AI gateway's need an LLM endpoint, so they are checked here)."""
from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from tests.conftest import ROOT

RULES = ROOT / "dashboards" / "prometheus" / "alert-rules.yml"

# the endpoint answers 500s for 20 minutes, then 200s again; the day's budget refuses twice
CASES = {
    "rule_files": [str(RULES)],
    "evaluation_interval": "1m",
    "tests": [{
        "interval": "1m",
        "input_series": [
            {"series": 'netspectra_ai_upstream_requests_total{job="netspectra-ai",status="500"}',
             "values": "0+3x20 60x20"},
            {"series": 'netspectra_ai_upstream_requests_total{job="netspectra-ai",status="200"}',
             "values": "5x20 5+2x20"},
            {"series": 'netspectra_ai_budget_refusals_total{job="netspectra-ai"}', "values": "0x30 1 2x60"},
        ],
        "alert_rule_test": [
            {"eval_time": "5m", "alertname": "NetSpectraAiEndpointFailing", "exp_alerts": []},      # pending
            {"eval_time": "19m", "alertname": "NetSpectraAiEndpointFailing",
             "exp_alerts": [{"exp_labels": {"severity": "warning"}, "exp_annotations": {
                 "summary": "the LLM endpoint has answered no request for 10 minutes: alert analyses and questions fail"}}]},
            {"eval_time": "35m", "alertname": "NetSpectraAiEndpointFailing", "exp_alerts": []},     # answering again
            {"eval_time": "20m", "alertname": "NetSpectraAiBudgetSpent", "exp_alerts": []},
            {"eval_time": "40m", "alertname": "NetSpectraAiBudgetSpent",
             "exp_alerts": [{"exp_labels": {"severity": "warning"}, "exp_annotations": {
                 "summary": "the AI gateway's daily token budget is spent: analyses and questions are refused until 00:00 UTC"}}]},
            {"eval_time": "95m", "alertname": "NetSpectraAiBudgetSpent", "exp_alerts": []},         # an hour later
        ],
    }],
}


def test_the_ai_gateways_rules_fire_on_their_faults_and_only_then(tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("no promtool: apt-get install prometheus (make deps)")
    cases = tmp_path / "ai-rules-test.yml"
    cases.write_text(yaml.safe_dump(CASES))
    out = subprocess.run([promtool, "test", "rules", str(cases)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
