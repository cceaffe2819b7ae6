"""A window's result as the sinks receive it (schemas/window_rows.py): ClickHouse table columns
(schemas/clickhouse.py) and the live view for Redis, built once per window whatever the sinks."""
from __future__ import annotations

import numpy as np

from collectors.protocols import PROTOCOL_NAMES
from flows.dns import DnsCounts
from flows.sip import SipCalls
from flows.sketches import HH_DIMENSIONS, HH_METRICS, SPREAD_KINDS, parse_key
from flows.table import TUNNEL_SHIFT, sum_by_address, top_by
from flows.tls import TlsNames
from flows.window import WindowResult
from schemas.addresses import column_to_text, to_text
from schemas.clickhouse import table_columns
from schemas.flow_key import words_to_addr
from schemas.packet_batch import TUNNEL_NAMES
from schemas.window_rows import Coded, LiveWindow, WindowRows

_TUNNEL_VALUES = [TUNNEL_NAMES[k] for k in range(len(TUNNEL_NAMES))]     # a kind's code is its index

_ZERO16 = bytes(16)
MAX_LIVE_HOSTS = 10_000      # hosts of a window kept in the live view (Redis): the heaviest by bytes


def window_rows(r: WindowResult, source: str, top_n: int, tables: bool = True, live: bool = False,
                max_hosts: int = MAX_LIVE_HOSTS) -> WindowRows:
    return WindowRows(r.start, r.length_ns, r.complete, result_tables(r, source, top_n) if tables else {},
                      live_window(r, top_n, max_hosts) if live else None)


def live_window(res: WindowResult, top_n: int, max_hosts: int = MAX_LIVE_HOSTS) -> LiveWindow:
    """What a window puts in Redis: totals, exact talkers, top flows, its heaviest hosts."""
    sums = res.source_sums()
    addrs, _, by = res.talkers(top_n, sums)                                    # exact
    talkers = dict(zip(column_to_text(addrs), by.tolist()))
    flows = {}
    for k, est, _, _ in res.heavy.top("flow", "bytes", top_n):
        f = parse_key("flow", k)
        flows[f"{to_text(f['src'])} {f['sport']} {to_text(f['dst'])} {f['dport']} {f['proto']}"] = est
    totals = {"packets": res.packets, "bytes": res.bytes, "flows": len(res.flows),
              "frames": res.counters.get("frames", 0), "late_packets": res.counters.get("late_packets", 0),
              "complete": int(res.complete)}
    # distinct addresses with their bytes (as source and as destination), from the sources' sums
    # and the destinations' (a flood's spoofed sources are summed once); text only for the heaviest
    dst_words, dst_bytes = sum_by_address(res.flows.dst, res.flows.bytes)
    distinct, by_host = sum_by_address(np.concatenate([sums[0], dst_words]), np.concatenate([sums[2], dst_bytes]))
    totals["hosts"] = len(distinct)
    heaviest = top_by(by_host, distinct, max_hosts)
    detail = {"seconds": res.length_ns / 1e9,
              "protocols": [[p, PROTOCOL_NAMES.get(p, str(p)), pk, by] for p, pk, by in res.protocols()],
              "ports": [[f"{p}/{port}", pk, by] for p, port, pk, by in res.ports(top_n)],
              "status": dict(sorted(res.counters.items()))}
    for kind, name in zip(SPREAD_KINDS, ("spreaders", "fan_in")):
        detail[name] = [[to_text(addr), est] for addr, est, _lo, _hi in res.spread[kind].top(top_n)]
    return LiveWindow(totals, talkers, flows, column_to_text(words_to_addr(distinct[heaviest])), detail)


def result_tables(r: WindowResult, source: str, top_n: int) -> dict[str, dict]:
    t = r.flows
    n = len(t)
    tables = {"flows": table_columns("flows", n, r.start, source, {
        "src": t.src_addr(), "dst": t.dst_addr(), "sport": t.sport, "dport": t.dport, "proto": t.proto,
        "vlan": t.vlan, "packets": t.packets, "bytes": t.bytes, "first_seen": t.first_ns, "last_seen": t.last_ns,
        "tcp_flags": t.tcp_flags, **(r.tls or TlsNames()).columns(t),
        "tunnel": (Coded((t.tun >> TUNNEL_SHIFT).astype(np.int32), _TUNNEL_VALUES) if t.tun.any()
                   else Coded(np.zeros(n, np.int32), [""])),        # no tunnel: one value, sent once
        "tunnel_id": (t.tun & np.uint64(0xFFFFFFFF)).astype(np.uint32)})}

    c = r.counters
    tables["window_totals"] = table_columns("window_totals", 1, r.start, source, {
        "window_seconds": np.array([r.length_ns / 1e9]),
        "first_seen": np.array([t.first_ns.min() if n else 0], np.int64),
        "last_seen": np.array([t.last_ns.max() if n else 0], np.int64),
        "frames": np.array([c.get("frames", 0)], np.uint64), "packets": np.array([r.packets], np.uint64),
        "bytes": np.array([r.bytes], np.uint64), "flows": np.array([n], np.uint64),
        "late_packets": np.array([c.get("late_packets", 0)], np.uint64),
        "late_bytes": np.array([c.get("late_bytes", 0)], np.uint64),
        "complete": np.array([int(r.complete)], np.uint8)})

    rows = [("protocol", str(p), pk, by) for p, pk, by in r.protocols()]
    rows += [("port", f"{p}/{port}", pk, by) for p, port, pk, by in r.ports(top_n)]
    named = (r.dns or DnsCounts.empty()).name_rows()       # addresses, owners, questions, records, left out
    sip = r.sip or SipCalls()
    dropped = {"dns_names_dropped": named[4], "tls_names_dropped": r.tls.dropped if r.tls else 0,
               "sip_calls_dropped": sip.dropped, "sip_no_call_id": sip.no_call_id}
    rows += [("status", k, v, 0) for k, v in sorted({**c, **{k: v for k, v in dropped.items() if v}}.items())]
    tables["window_counters"] = table_columns("window_counters", len(rows), r.start, source, {
        "kind": [x[0] for x in rows], "name": [x[1] for x in rows],
        "packets": np.array([x[2] for x in rows], np.uint64), "bytes": np.array([x[3] for x in rows], np.uint64)})

    hh = []
    for d in HH_DIMENSIONS:
        for m in HH_METRICS:
            for rank, (item, est, lb, ub) in enumerate(r.heavy.top(d, m, top_n), 1):
                f = parse_key(d, item)
                hh.append((d, m, item, rank, f.get("src", _ZERO16), f.get("dst", _ZERO16), f.get("sport", 0),
                           f.get("dport", 0), f.get("proto", 0), est, lb, ub))
    tables["heavy_hitters"] = table_columns("heavy_hitters", len(hh), r.start, source, _columns(hh, [
        ("dimension", None), ("metric", None), ("item", None), ("rank", np.uint16), ("src", "addr"),
        ("dst", "addr"), ("sport", np.uint16), ("dport", np.uint16), ("proto", np.uint8),
        ("estimate", np.uint64), ("lower_bound", np.uint64), ("upper_bound", np.uint64)]))

    sp = []
    for kind in SPREAD_KINDS:
        for rank, (addr, est, lo, hi) in enumerate(r.spread[kind].top(top_n), 1):
            sp.append((kind, addr, rank, est, lo, hi))
    tables["spreaders"] = table_columns("spreaders", len(sp), r.start, source, _columns(sp, [
        ("kind", None), ("addr", "addr"), ("rank", np.uint16), ("estimate", np.float64),
        ("lower_bound", np.float64), ("upper_bound", np.float64)]))
    tables["dns_names"] = table_columns("dns_names", len(named[1]), r.start, source,
                                        dict(zip(("addr", "name", "query", "answers"), named)))
    tables["sip_calls"] = table_columns("sip_calls", len(sip), r.start, source, sip.table_columns())
    return tables


def _columns(rows: list[tuple], spec: list[tuple]) -> dict:
    out = {}
    for i, (name, kind) in enumerate(spec):
        vals = [r[i] for r in rows]
        if kind is None:
            out[name] = vals
        elif kind == "addr":
            out[name] = np.frombuffer(b"".join(vals), np.uint8).reshape(-1, 16) if vals else np.zeros((0, 16), np.uint8)
        else:
            out[name] = np.array(vals, kind)
    return out
