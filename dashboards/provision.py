"""`netspectra grafana`: a directory Grafana provisions itself from: the two datasources (the
official ClickHouse plugin on the server the engine writes to, and Prometheus) and the two
dashboards (dashboards/build.py), ready to run:

    netspectra grafana --out grafana       # the local stack's ClickHouse and a local Prometheus
    GF_PATHS_PROVISIONING=$PWD/grafana/provisioning grafana-server --homepath /usr/share/grafana

The ClickHouse user and password come from the stack's credentials (schemas/credentials.py)
unless given; the datasource file holding them is written mode 0600. A chDB store has no server
Grafana can reach: serve it with `netspectra api` and use its /grafana/ JSON endpoints instead.
"""
from __future__ import annotations

import json
from pathlib import Path

from dashboards import build
from schemas import credentials
from stack.defaults import DEFAULT_PORTS, HOST, PROMETHEUS_URL

PLUGIN = build.DS["type"]
DEFAULT_CLICKHOUSE = f"{HOST}:{DEFAULT_PORTS['clickhouse']}"       # the local stack's native port


def _q(value) -> str:
    """A YAML scalar: JSON's quoting is valid YAML, so any password survives."""
    return json.dumps(value)


def datasources_yaml(clickhouse: str, prometheus: str, user: str, password: str, secure: bool = False) -> str:
    host, _, port = clickhouse.rpartition(":")
    return f"""# Written by `netspectra grafana`: the datasources the NetSpectra dashboards use.
apiVersion: 1
datasources:
  - name: NetSpectra ClickHouse
    uid: {build.DS["uid"]}
    type: {PLUGIN}
    jsonData:
      host: {_q(host)}
      port: {int(port)}
      protocol: native
      secure: {str(secure).lower()}
      defaultDatabase: netspectra
      username: {_q(user)}
    secureJsonData:
      password: {_q(password)}
  - name: NetSpectra Prometheus
    uid: {build.PROM["uid"]}
    type: prometheus
    access: proxy
    url: {_q(prometheus)}
"""


def dashboards_yaml(path: Path) -> str:
    return f"""# Written by `netspectra grafana`: load the dashboards in {path}.
apiVersion: 1
providers:
  - name: NetSpectra
    folder: NetSpectra
    type: file
    options:
      path: {_q(str(path))}
"""


def write(out: Path, clickhouse: str = DEFAULT_CLICKHOUSE, prometheus: str = PROMETHEUS_URL,
          user: str | None = None, password: str | None = None) -> list[Path]:
    """Writes out/provisioning/{datasources,dashboards}/netspectra.yaml and out/dashboards/*.json;
    returns the files written."""
    host, _, port = clickhouse.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--clickhouse {clickhouse!r}: give the server's native address as host:port")
    known = credentials.lookup(clickhouse)
    user = user if user is not None else known.get("user", "default")
    password = password if password is not None else known.get("password", "")
    out = out.resolve()
    boards = out / "dashboards"
    files = {out / "provisioning" / "datasources" / "netspectra.yaml":
             datasources_yaml(clickhouse, prometheus, user, password, bool(known.get("secure"))),
             out / "provisioning" / "dashboards" / "netspectra.yaml": dashboards_yaml(boards),
             boards / build.OUT.name: build.render(),
             boards / build.PIPELINE_OUT.name: build.render_pipeline()}
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".yaml":      # the datasources hold the password: private before it is in
            path.touch(mode=0o600)
            path.chmod(0o600)
        path.write_text(text)
    return list(files)


def how_to_run(out: Path) -> str:
    out = out.resolve()
    return (f"Run Grafana with it (the ClickHouse plugin installed: grafana cli plugins install {PLUGIN}):\n"
            f"  GF_PATHS_PROVISIONING={out}/provisioning grafana server --homepath /usr/share/grafana\n"
            f"or in a container on this host's network:\n"
            f"  docker run --network host --user $(id -u) -v {out}:{out} -e GF_PATHS_PROVISIONING={out}/provisioning "
            f"-e GF_INSTALL_PLUGINS={PLUGIN} grafana/grafana\n"
            f"then open http://127.0.0.1:3000 (admin/admin), folder NetSpectra.")
