"""`netspectra collect`: the collector service (collectors/service.py) from its config file, the
environment and these flags, until the capture ends, `--count`/`--duration`, or SIGINT/SIGTERM.

    netspectra collect --interface eth0 [--method pcap|afpacket] [--bpf EXPR] [--fanout G]
    netspectra collect --pcap FILE [--speed X | --rate PPS] [--retime]

Prints a JSON report on stderr: packets captured, dropped by the kernel, decoded, published,
delivered and failed. Exit 0, 1 (cannot start), 2 (bad config), 3 (deliveries failed).
"""
from __future__ import annotations

import json
import logging
import signal
import sys



def cmd_collect(args) -> int:
    from collectors.service import Collector, CollectorConfig, CollectorError
    from netspectra.cli import log_to_stderr, problems, service_config

    if args.list_interfaces:
        from collectors.interfaces import format_table, list_interfaces
        print(format_table(list_interfaces()))
        return 0
    cfg = service_config(CollectorConfig, "collect", args)
    if isinstance(cfg, int):
        return cfg
    log_to_stderr(logging.WARNING)
    collector = Collector(cfg)
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, lambda *_: collector.stop())
    try:
        collector.start()
    except CollectorError as e:
        return problems("collect", [str(e)])
    if cfg.interface:
        print(f"netspectra collect: capturing on {cfg.interface} ({cfg.method})", file=sys.stderr, flush=True)
    report = collector.run()
    print(json.dumps(report), file=sys.stderr, flush=True)
    collector.hold_metrics()
    return 0 if report["pending"] == 0 and collector.delivered_all else 3
