"""The local stack's address, ports and Prometheus URL: apart from stack/local.py so that the
command line reads them for its defaults without importing the stack's machinery (start-up)."""
HOST = "127.0.0.1"
DEFAULT_PORTS = {"kafka": 19092, "redis": 16379, "clickhouse": 19000, "clickhouse_http": 18123}
PROMETHEUS_URL = f"http://{HOST}:9090"      # not started by the stack: Prometheus's own default, for Grafana
