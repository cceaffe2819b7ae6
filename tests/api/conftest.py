"""Fixtures of the API tests: one generated capture analysed (the same dataflow as `analyze`)
into a chDB store, the ClickHouse server and Redis; the API served on free local ports over real
gRPC and HTTP; the brute-force reference numbers of the capture; one alert in the store for the
AI gateway's tests."""
from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass

import grpc
import httpx
import pytest

from api import models as m
from api.config import ApiConfig
from api.server import build, http_config
from schemas.alerts import Alert
from schemas.v1 import query_pb2_grpc as pb_grpc
from tests.conftest import _free_ports
from tests.support import rows_of

READ_TOKEN = "read-token-0123456789abcdef"
ADMIN_TOKEN = "admin-token-0123456789abcdef"
TOKENS = [{"token": READ_TOKEN, "role": "read"}, {"token": ADMIN_TOKEN, "role": "admin"}]


@dataclass
class Api:
    service: object
    grpc_target: str
    http_url: str
    source: str
    ref: dict                # {window_ns: {(src, dst, sport, dport, proto): [pk, by, first, last, flags]}}
    results: list
    redis: str = ""

    def stub(self, token=READ_TOKEN):
        ch = grpc.insecure_channel(self.grpc_target)
        return pb_grpc.QueryStub(ch), [("authorization", f"Bearer {token}")] if token else []

    def http(self, token=READ_TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.http_url, headers=headers, timeout=30)


def serve(config: ApiConfig):
    """Start gRPC and HTTP (uvicorn in a thread) as `netspectra api` does; yields (service, grpc target, http url)."""
    import uvicorn

    service, server, grpc_port, app = build(config)
    server.start()
    http = uvicorn.Server(http_config(app, config))
    t = threading.Thread(target=http.run, daemon=True)
    t.start()
    deadline = time.time() + 20
    while not http.started:
        if time.time() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    scheme = "https" if config.tls else "http"
    try:
        yield service, f"127.0.0.1:{grpc_port}", f"{scheme}://127.0.0.1:{config.http_port}"
    finally:
        http.should_exit = True
        t.join(10)
        server.stop(0)


@pytest.fixture(scope="module")
def chdb_api(api_results, synth_pcap, tmp_path_factory, local_stack):
    """The API on a chDB store holding the capture's windows, with Redis live state."""
    from sinks.chdb_store import ChdbStore
    from sinks.redis_state import RedisState

    results, ref = api_results
    store = tmp_path_factory.mktemp("api-chdb")
    source = str(synth_pcap)
    ChdbStore(str(store)).write(rows_of(results, source))
    _, ports, _ = local_stack
    redis_url = f"127.0.0.1:{ports['redis']}"
    RedisState(redis_url, source).write(rows_of(results, source))
    cfg = ApiConfig(store=str(store), redis=redis_url, grpc_port=0, http_port=_free_ports(1)[0], tokens=TOKENS,
                    ingest_dir=str(tmp_path_factory.mktemp("ingest")))
    for service, target, url in serve(cfg):
        yield Api(service, target, url, source, ref, results, redis_url)


@pytest.fixture(scope="module")
def server_api(api_results, synth_pcap, local_stack):
    """The API on the ClickHouse server (Debian's 18.16 here) holding the same windows."""
    from sinks.clickhouse_native import ClickHouseNative

    results, ref = api_results
    _, ports, _ = local_stack
    addr = f"127.0.0.1:{ports['clickhouse']}"
    source = str(synth_pcap) + "#server"
    ClickHouseNative(addr).write(rows_of(results, source))
    cfg = ApiConfig(store=f"clickhouse://{addr}", grpc_port=0, http_port=_free_ports(1)[0], tokens=TOKENS)
    for service, target, url in serve(cfg):
        yield Api(service, target, url, source, ref, results)


def totals(ref: dict, keep=lambda k: True) -> tuple[int, int, int]:
    pk = by = fl = 0
    for flows in ref.values():
        for k, (p, b, *_rest) in flows.items():
            if keep(k):
                pk, by, fl = pk + p, by + b, fl + 1
    return pk, by, fl


def by_entity(ref: dict, index: int) -> collections.Counter:
    c = collections.Counter()
    for flows in ref.values():
        for k, (_p, b, *_rest) in flows.items():
            c[k[index]] += b
    return c


@pytest.fixture(scope="module")
def alert_api(chdb_api):
    """The API with one alert about the capture's busiest internal source, in its last window."""
    svc = chdb_api.service
    wide = m.TimeRange(start_ms=0, end_ms=2**52)
    top = svc.aggregate_flows(m.AggregateFlowsRequest(range=wide, group_by=["src"], limit=50,
                                                      filter=m.Filter(src=["10.0.0.0/8"], source=chdb_api.source)))
    addr = top.groups[0].src
    series = svc.aggregate_flows(m.AggregateFlowsRequest(range=wide, bucket_seconds=10,
                                                         filter=m.Filter(src=[addr], source=chdb_api.source)))
    last = series.groups[-1].bucket_ms * 10**6
    s = 10**9
    alert = Alert("ai1", "big_talker", "host_volume", "warning", {"src": addr}, 5e6, 1e6, last - 10 * s, last,
                  last - 60 * s, last, "firing", 3, evidence={"bytes": 5_000_000}, version=1)
    svc.backend.store.write_alerts([alert], chdb_api.source)
    return chdb_api, addr
