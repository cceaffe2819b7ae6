"""`collect --list-interfaces`: the host's interfaces from iproute2, or /sys without it."""
from __future__ import annotations

import shutil

from collectors import interfaces
from tests.pipeline import run


def test_list_interfaces_shows_loopback_with_its_addresses():
    res = run("collect", "--list-interfaces")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["interface", "state", "link", "mtu", "addresses"]
    lo = next(ln.split() for ln in lines if ln.split()[0] == "lo")
    assert lo[1:4] == ["up", "loopback", "65536"] and "127.0.0.1/8" in lo[4:]


def test_without_iproute2_the_same_interfaces_come_from_sys(monkeypatch):
    full = {r["name"]: r for r in interfaces.list_interfaces()}
    monkeypatch.setattr(shutil, "which", lambda name: None)
    bare = {r["name"]: r for r in interfaces.list_interfaces()}
    assert set(bare) == set(full)
    for name, r in bare.items():
        assert (r["state"], r["mtu"]) == (full[name]["state"], full[name]["mtu"]), name
        if r["link"] in interfaces.LINK_TYPES.values():         # the types both name alike
            assert r["link"] == full[name]["link"], name
