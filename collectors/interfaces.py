"""The host's interfaces a collector can capture: name, state, link type, MTU, addresses.

From iproute2 (`ip -j addr`, the same view as `ip addr`); without it, from /sys/class/net (no
addresses then)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess

SYS_NET = "/sys/class/net"
# ARPHRD_* numbers of /sys/class/net/IF/type that iproute2 would name
LINK_TYPES = {1: "ether", 772: "loopback", 776: "sit", 778: "gre", 65534: "none", 801: "ieee802.11"}


def list_interfaces() -> list[dict]:
    if shutil.which("ip"):
        out = subprocess.run(["ip", "-j", "addr", "show"], capture_output=True, text=True, timeout=10)
        if out.returncode == 0:
            return [{"name": i["ifname"], "state": _state(i.get("operstate", ""), i.get("flags", [])),
                     "link": i.get("link_type", ""), "mtu": i.get("mtu", 0),
                     "addresses": [f"{a['local']}/{a['prefixlen']}" for a in i.get("addr_info", []) if "local" in a]}
                    for i in json.loads(out.stdout or "[]")]
    rows = []
    for name in sorted(os.listdir(SYS_NET)):
        kind = int(_read(name, "type") or 0)
        up = int(_read(name, "flags") or "0", 16) & 1         # IFF_UP
        rows.append({"name": name, "state": _state(_read(name, "operstate").upper(), ["UP"] if up else []),
                     "link": LINK_TYPES.get(kind, str(kind)), "mtu": int(_read(name, "mtu") or 0), "addresses": []})
    return rows


def _state(operstate: str, flags: list[str]) -> str:
    """UP/DOWN as the kernel reports it; UNKNOWN (loopback, some virtual links) by the UP flag."""
    if operstate and operstate != "UNKNOWN":
        return operstate.lower()
    return "up" if "UP" in flags else operstate.lower() or "unknown"


def _read(name: str, attr: str) -> str:
    try:
        with open(f"{SYS_NET}/{name}/{attr}") as f:
            return f.read().strip()
    except OSError:
        return ""


def format_table(rows: list[dict]) -> str:
    head = ("interface", "state", "link", "mtu", "addresses")
    lines = [head] + [(r["name"], r["state"], r["link"], str(r["mtu"]), " ".join(r["addresses"]) or "-") for r in rows]
    widths = [max(len(ln[i]) for ln in lines) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(ln[:4], widths)) + "  " + ln[4] for ln in lines)
