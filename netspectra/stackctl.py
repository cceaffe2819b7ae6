"""`netspectra stack up|down|status`: the local stack of stack/local.py."""
from __future__ import annotations

import sys
from pathlib import Path

from stack import local
from stack.defaults import DEFAULT_PORTS


def cmd_stack(args) -> int:
    d = Path(args.dir)
    try:
        if args.action == "up":
            ports = {k: getattr(args, f"{k}_port") for k in DEFAULT_PORTS if getattr(args, f"{k}_port")}
            services = local.up(d, ports=ports, clickhouse=not args.no_clickhouse)
        elif args.action == "down":
            print("stopped: " + (", ".join(local.down(d)) or "nothing was running"))
            return 0
        else:
            services = local.status(d)
    except RuntimeError as e:
        print(f"netspectra stack: {e}", file=sys.stderr)
        return 1
    gone = local.exited(d) if args.action == "status" else {}
    if not services and not gone:
        print("nothing running")
        return 0 if args.action == "status" else 1
    for s in services.values():
        print(f"{s.name:11} {s.address:22} pid {s.pid:<8} log {s.log}")
    for s in gone.values():
        print(f"{s.name:11} {s.address:22} EXITED       log {s.log}")
    if args.action == "up":
        print(f"passwords: {d.resolve() / local.credentials.FILE_NAME} (owner only; clients find them there)")
    return 1 if gone else 0
