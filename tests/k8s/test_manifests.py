"""k8s/ without a cluster: every overlay renders with `kubectl kustomize` and every object
validates against the Kubernetes schemas (kubernetes-validate, strict); every container runs a
real `netspectra` subcommand whose config, as mounted, parses; the engine's hostfile matches its
replicas; the security settings hold; the Dockerfile installs every package."""
from __future__ import annotations

import subprocess
import sys

import kubernetes_validate
import pytest

from tests.conftest import ROOT
from tests.k8s.manifests import K8S, OVERLAYS, find, literal_env, mounted_file, render, workloads

K8S_VERSION = "1.31.0"


def test_there_are_overlays():
    assert {"production", "dev"} <= set(OVERLAYS)


@pytest.mark.parametrize("overlay", ["base", *OVERLAYS])
def test_renders_and_validates(overlay):
    objs = render(K8S / "base" if overlay == "base" else K8S / "overlays" / overlay)
    assert {"DaemonSet", "StatefulSet", "Deployment", "Service", "ConfigMap", "PodDisruptionBudget"} <= {
        o["kind"] for o in objs}
    for o in objs:
        kubernetes_validate.validate(o, K8S_VERSION, strict=True)      # raises with the path of the error


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_container_runs_a_netspectra_command_whose_config_parses(overlay, tmp_path):
    from netspectra.cli import COMMANDS
    objs = render(K8S / "overlays" / overlay)
    checked = []
    for w in workloads(objs):
        for c in w["spec"]["template"]["spec"]["containers"]:
            args = c["args"]
            assert args[0] in COMMANDS, f"{w['metadata']['name']}: {args[0]} is not a netspectra command"
            conf = args[args.index("--config") + 1]
            text = mounted_file(objs, w, c, conf)
            if text is None:      # created by the operator: only the API's Secret, as documented
                assert (w["metadata"]["name"], overlay) == ("netspectra-api", "production")
                continue
            f = tmp_path / f"{w['metadata']['name']}.yaml"
            f.write_text(text)
            env = {k: v for k, v in literal_env(c).items() if k.startswith("NETSPECTRA_") and k != "NETSPECTRA_CREDENTIALS"}
            p = subprocess.run([sys.executable, "-m", "netspectra.cli", args[0], "--config", str(f), "--print-config"],
                               capture_output=True, text=True, cwd=ROOT, timeout=60,
                               env={"PATH": "/usr/bin:/bin", **env})
            assert p.returncode == 0, f"{w['metadata']['name']}: {p.stderr}"
            checked.append(args[0])
    assert {"collect", "engine"} | ({"ai"} if overlay == "dev" else set()) <= set(checked)    # dev: the AI component


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_engine_hostfile_lists_every_pod(overlay):
    objs = render(K8S / "overlays" / overlay)
    sts = find(objs, "StatefulSet", "netspectra-engine")
    hostfile = next(o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("netspectra-engine-hostfile"))
    lines = [x for x in hostfile["data"]["hostfile"].splitlines() if x.strip()]
    name, svc = sts["metadata"]["name"], sts["spec"]["serviceName"]
    assert lines == [f"{name}-{i}.{svc}.netspectra.svc.cluster.local:2101" for i in range(sts["spec"]["replicas"])]
    env = literal_env(sts["spec"]["template"]["spec"]["containers"][0])
    assert env["BYTEWAX_STATEFULSET_NAME"] == name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_security_settings(overlay):
    objs = render(K8S / "overlays" / overlay)
    for w in workloads(objs):
        spec = w["spec"]["template"]["spec"]
        assert spec.get("automountServiceAccountToken") is False
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert not sc.get("privileged") and sc["allowPrivilegeEscalation"] is False
            assert sc["readOnlyRootFilesystem"] is True
            assert c["resources"]["requests"] and c["resources"]["limits"]
            assert c["readinessProbe"] and c["livenessProbe"]
            if w["kind"] == "DaemonSet":          # capture: the host network and two capabilities, no more
                assert spec["hostNetwork"] is True
                assert sc["capabilities"] == {"drop": ["ALL"], "add": ["NET_RAW", "NET_ADMIN"]}
            else:
                assert spec["securityContext"]["runAsNonRoot"] is True and sc["capabilities"] == {"drop": ["ALL"]}
        ann = w["spec"]["template"]["metadata"]["annotations"]
        assert ann["prometheus.io/scrape"] == "true" and int(ann["prometheus.io/port"])


def test_dockerfile_installs_every_package_and_runs_as_non_root():
    import tomllib
    text = (ROOT / "Dockerfile").read_text()
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    for pkg in include:
        assert f"COPY {pkg.rstrip('*')} {pkg.rstrip('*')}" in text, pkg
    assert "USER 10001" in text and 'ENTRYPOINT ["netspectra"]' in text
