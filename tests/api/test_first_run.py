"""What a new user and their tools meet first: a liveness answer without a token that says
nothing, 503 (UNAVAILABLE) naming the missing backend, API docs that load with no network
(assets from the installed package), and gRPC server reflection (grpcurl without the .proto)."""
from __future__ import annotations

import re

import grpc
import httpx
import pytest

from api.config import ApiConfig
from schemas.v1 import query_pb2 as pb
from schemas.v1 import query_pb2_grpc as pb_grpc
from tests.api.conftest import READ_TOKEN, TOKENS, serve
from tests.conftest import _free_ports


@pytest.fixture(scope="module")
def bare(tmp_path_factory):
    """The API on an empty chDB store and no Redis."""
    cfg = ApiConfig(store=str(tmp_path_factory.mktemp("bare-store")), grpc_port=0, http_port=_free_ports(1)[0],
                    tokens=TOKENS)
    for _, target, url in serve(cfg):
        yield target, url


def test_liveness_needs_no_token_and_reveals_nothing(bare):
    _, url = bare
    r = httpx.get(f"{url}/livez", timeout=10)
    assert r.status_code == 200 and r.text == "ok"
    assert httpx.get(f"{url}/v1/health", timeout=10).status_code == 401     # health is for the token holders


def test_live_state_without_redis_is_503_naming_the_setting(bare):
    target, url = bare
    r = httpx.get(f"{url}/v1/live/top", headers={"Authorization": f"Bearer {READ_TOKEN}"}, timeout=10)
    assert r.status_code == 503 and "--redis" in r.json()["error"], r.text
    stub = pb_grpc.QueryStub(grpc.insecure_channel(target))
    with pytest.raises(grpc.RpcError) as e:
        stub.LiveTop(pb.LiveTopRequest(), metadata=[("authorization", f"Bearer {READ_TOKEN}")], timeout=10)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE and "--redis" in e.value.details()


def test_docs_load_their_assets_from_this_server(bare):
    _, url = bare
    page = httpx.get(f"{url}/docs", timeout=10)
    assert page.status_code == 200
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text) + re.findall(r"url: ?'([^']+)'", page.text)
    assert assets and all(a.startswith("/") for a in assets), assets       # nothing from another host
    for a in assets:
        r = httpx.get(f"{url}{a}", timeout=10)
        assert r.status_code == 200 and r.content, a
    assert "SwaggerUIBundle" in httpx.get(f"{url}/docs/static/swagger-ui-bundle.js", timeout=10).text


def test_grpc_reflection_lists_the_services(bare):
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
    target, _ = bare
    stub = reflection_pb2_grpc.ServerReflectionStub(grpc.insecure_channel(target))
    answers = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10)
    names = {s.name for a in answers for s in a.list_services_response.service}
    assert {"netspectra.v1.Query", "grpc.health.v1.Health"} <= names
    answers = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(
        file_containing_symbol="netspectra.v1.Query")]), timeout=10)
    assert any(a.file_descriptor_response.file_descriptor_proto for a in answers)
