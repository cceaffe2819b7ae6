"""TLS and mutual TLS on both transports: certificates made here with openssl (a CA, a server
certificate for 127.0.0.1, a client certificate)."""
from __future__ import annotations

import shutil
import ssl
import subprocess

import grpc
import httpx
import pytest

from api.config import ApiConfig
from api.grpc_service import channel_credentials
from schemas.v1 import query_pb2 as pb
from schemas.v1 import query_pb2_grpc as pb_grpc
from tests.api.conftest import READ_TOKEN, TOKENS, serve
from tests.conftest import _free_ports


def _certs(d):
    if not shutil.which("openssl"):
        pytest.skip("openssl not installed")

    def run(*a):
        subprocess.run(["openssl", *a], cwd=d, check=True, capture_output=True)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=netspectra-test-ca")
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name in ("server", "client"):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.pem", "-days", "2", "-extfile", "san.ext")
    return {n: str(d / n) for n in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")}


def _context(ca: str, cert=None) -> ssl.SSLContext:
    """httpx takes client certificates through an SSLContext (its `cert=` argument is deprecated)."""
    ctx = ssl.create_default_context(cafile=ca)
    if cert:
        ctx.load_cert_chain(*cert)
    return ctx


@pytest.mark.parametrize("mutual", [False, True])
def test_tls(tmp_path, mutual, chdb_api):
    c = _certs(tmp_path)
    tls = {"cert": c["server.pem"], "key": c["server.key"], **({"client_ca": c["ca.pem"]} if mutual else {})}
    cfg = ApiConfig(store=chdb_api.service.backend.store.path, grpc_port=0, http_port=_free_ports(1)[0],
                    tokens=TOKENS, tls=tls)
    md = [("authorization", f"Bearer {READ_TOKEN}")]
    for _service, target, url in serve(cfg):
        client_cert = (c["client.pem"], c["client.key"]) if mutual else None
        creds = channel_credentials(c["ca.pem"], *(client_cert or ()))
        stub = pb_grpc.QueryStub(grpc.secure_channel(target, creds))
        assert stub.Health(pb.HealthRequest(), metadata=md, timeout=10).store_ok
        with httpx.Client(base_url=url, verify=_context(c["ca.pem"], client_cert),
                          headers={"Authorization": f"Bearer {READ_TOKEN}"}) as h:
            assert h.get("/v1/health").status_code == 200
        if mutual:      # no client certificate: refused on both transports
            bare = pb_grpc.QueryStub(grpc.secure_channel(target, channel_credentials(c["ca.pem"])))
            with pytest.raises(grpc.RpcError):
                bare.Health(pb.HealthRequest(), metadata=md, timeout=10)
            with pytest.raises(httpx.HTTPError):
                with httpx.Client(base_url=url, verify=_context(c["ca.pem"])) as h:
                    h.get("/v1/health")
