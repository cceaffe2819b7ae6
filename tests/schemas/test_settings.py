"""Service settings: file < environment < flags, one line per problem, --print-config round trip."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from collectors.service import CollectorConfig
from flows.engine_config import EngineConfig
from schemas.settings import ConfigError, load_settings
from tests.conftest import ROOT


def test_file_then_environment_then_flags(tmp_path):
    f = tmp_path / "engine.yaml"
    f.write_text("window: 10\nlateness: 2\nworkers: 2\nredis: 127.0.0.1:6379\n")
    env = {"NETSPECTRA_ENGINE_LATENESS": "3", "NETSPECTRA_ENGINE_WORKERS": "4", "NETSPECTRA_ENGINE_DETECT": "false"}
    cfg = load_settings(EngineConfig, "engine", str(f), {"workers": 8, "window": None}, environ=env)
    assert (cfg.window, cfg.lateness, cfg.workers, cfg.detect, cfg.redis) == (10, 3, 8, False, "127.0.0.1:6379")
    assert cfg.kafka == EngineConfig().kafka            # untouched: the default


def test_json_file_is_read_too(tmp_path):
    f = tmp_path / "collect.json"
    f.write_text(json.dumps({"pcap": "x.pcap", "rate": 1000}))
    assert load_settings(CollectorConfig, "collect", str(f), environ={}).rate == 1000


@pytest.mark.parametrize("text, expected", [
    ("windw: 3\n", ["windw: unknown setting (see `netspectra engine --print-config`)"]),
    ("window: -1\nworkers: two\n", ["window: Input should be greater than or equal to 0",
                                    "workers: Input should be a valid integer, unable to parse string as an integer"]),
    ("- a\n- b\n", ["must be a mapping of settings, not list"]),
    ("window: [\n", ["not YAML or JSON"]),
    ("process_id: 1\n", ["process_id and addresses go together"]),
])
def test_bad_settings_are_one_line_each(tmp_path, text, expected):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_settings(EngineConfig, "engine", str(f), environ={})
    assert len(e.value.lines) == len(expected)
    for line, want in zip(e.value.lines, expected):
        assert line.startswith(f"{f}: ") and want in line and "\n" not in line


def test_missing_file_names_it(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_settings(EngineConfig, "engine", str(tmp_path / "nope.yaml"), environ={})
    assert e.value.lines == [f"{tmp_path / 'nope.yaml'}: No such file or directory"]


@pytest.mark.parametrize("service, flags", [("engine", ["--window", "7", "--no-detect", "-w", "2"]),
                                            ("collect", ["--pcap", "a.pcap", "--rate", "500", "--no-l7"])])
def test_print_config_is_the_effective_config_and_reads_back(tmp_path, service, flags):
    run = lambda *a: subprocess.run([sys.executable, "-m", "netspectra.cli", service, *a],  # noqa: E731
                                    capture_output=True, text=True, cwd=ROOT, timeout=60)
    first = run(*flags, "--print-config")
    assert first.returncode == 0, first.stderr
    cfg = json.loads(first.stdout)
    f = tmp_path / "effective.json"
    f.write_text(first.stdout)
    again = run("--config", str(f), "--print-config")
    assert again.returncode == 0 and json.loads(again.stdout) == cfg
    if service == "engine":
        assert (cfg["window"], cfg["detect"], cfg["workers"]) == (7, False, 2)
    else:
        assert (cfg["pcap"], cfg["rate"], cfg["l7"]) == ("a.pcap", 500, False)


def test_a_bad_flag_value_exits_2_with_one_line():
    p = subprocess.run([sys.executable, "-m", "netspectra.cli", "engine", "--window", "-1"], capture_output=True,
                       text=True, cwd=ROOT, timeout=60)
    assert p.returncode == 2 and p.stderr.strip().splitlines() == [
        "netspectra engine: window: Input should be greater than or equal to 0"]


def test_every_service_flag_is_a_setting():
    """A flag that names no setting would be ignored without a word."""
    import argparse

    from api.config import ApiConfig
    from netspectra.cli import FLAG_FIELDS, parser
    sub = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    for service, model in (("engine", EngineConfig), ("collect", CollectorConfig), ("api", ApiConfig)):
        # --list-interfaces: a question answered instead of running, not a setting
        flags = {a.dest for a in sub.choices[service]._actions} - {"help", "config", "print_config", "list_interfaces"}
        assert flags and not {FLAG_FIELDS.get(f, f) for f in flags} - set(model.model_fields), service
