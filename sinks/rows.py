"""Window results as table columns, ready for any ClickHouse writer (chDB, native protocol).

Columns follow schemas/clickhouse.py. Addresses are (n, 16) uint8, times int64 ns since the
epoch; writers convert to their own types.
"""
from __future__ import annotations

import numpy as np

from flows.sketches import HH_DIMENSIONS, HH_METRICS, SPREAD_KINDS, parse_key
from flows.window import WindowResult
from schemas.clickhouse import WINDOW_TABLES, columns

_ZERO16 = bytes(16)


def _fill(table: str, n: int, window_start: int, source: str, cols: dict) -> dict:
    out = {"window_start": np.full(n, window_start, np.int64), "source": [source] * n}
    out.update(cols)
    missing = set(columns(table)) - set(out)
    if missing:
        raise KeyError(f"{table}: no values for {sorted(missing)}")
    return {c: out[c] for c in columns(table)}


def result_tables(r: WindowResult, source: str, top_n: int) -> dict[str, dict]:
    t = r.flows
    n = len(t)
    tables = {"flows": _fill("flows", n, r.start, source, {
        "src": t.src_addr(), "dst": t.dst_addr(), "sport": t.sport, "dport": t.dport, "proto": t.proto,
        "vlan": t.vlan, "packets": t.packets, "bytes": t.bytes, "first_seen": t.first_ns, "last_seen": t.last_ns,
        "tcp_flags": t.tcp_flags})}

    c = r.counters
    tables["window_totals"] = _fill("window_totals", 1, r.start, source, {
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
    rows += [("status", k, v, 0) for k, v in sorted(c.items())]
    tables["window_counters"] = _fill("window_counters", len(rows), r.start, source, {
        "kind": [x[0] for x in rows], "name": [x[1] for x in rows],
        "packets": np.array([x[2] for x in rows], np.uint64), "bytes": np.array([x[3] for x in rows], np.uint64)})

    hh = []
    for d in HH_DIMENSIONS:
        for m in HH_METRICS:
            for rank, (item, est, lb, ub) in enumerate(r.heavy.top(d, m, top_n), 1):
                f = parse_key(d, item)
                hh.append((d, m, item, rank, f.get("src", _ZERO16), f.get("dst", _ZERO16), f.get("sport", 0),
                           f.get("dport", 0), f.get("proto", 0), est, lb, ub))
    tables["heavy_hitters"] = _fill("heavy_hitters", len(hh), r.start, source, _columns(hh, [
        ("dimension", None), ("metric", None), ("item", None), ("rank", np.uint16), ("src", "addr"),
        ("dst", "addr"), ("sport", np.uint16), ("dport", np.uint16), ("proto", np.uint8),
        ("estimate", np.uint64), ("lower_bound", np.uint64), ("upper_bound", np.uint64)]))

    sp = []
    for kind in SPREAD_KINDS:
        for rank, (addr, est, lo, hi) in enumerate(r.spread[kind].top(top_n), 1):
            sp.append((kind, addr, rank, est, lo, hi))
    tables["spreaders"] = _fill("spreaders", len(sp), r.start, source, _columns(sp, [
        ("kind", None), ("addr", "addr"), ("rank", np.uint16), ("estimate", np.float64),
        ("lower_bound", np.float64), ("upper_bound", np.float64)]))
    return tables


def results_tables(results: list[WindowResult], source: str, top_n: int) -> dict[str, dict]:
    """The rows of several windows, concatenated per table (tables without rows left out)."""
    per = [result_tables(r, source, top_n) for r in results]
    out = {}
    for table in WINDOW_TABLES:
        parts = [t[table] for t in per if len(t[table]["window_start"])]
        if parts:
            out[table] = {c: _concat([p[c] for p in parts]) for c in parts[0]}
    return out


def _concat(parts: list):
    if isinstance(parts[0], list):
        return [x for p in parts for x in p]
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


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


def alert_tables(alerts: list, source: str) -> dict[str, dict]:
    """Alerts (flows.alerts.Alert) as rows of the alerts table."""
    import json
    if not alerts:
        return {}
    ts = lambda f: np.array([f(a) for a in alerts], np.int64)
    text = lambda f: [f(a) for a in alerts]
    return {"alerts": _fill("alerts", len(alerts), 0, source, {
        "window_start": ts(lambda a: a.first_seen), "id": text(lambda a: a.id), "rule": text(lambda a: a.rule),
        "detector": text(lambda a: a.detector), "severity": text(lambda a: a.severity),
        "state": text(lambda a: a.state), "src": text(lambda a: str(a.entity.get("src", ""))),
        "dst": text(lambda a: str(a.entity.get("dst", ""))),
        "port": np.array([int(a.entity.get("port", 0) or 0) for a in alerts], np.uint16),
        "entity": text(lambda a: json.dumps(a.entity, sort_keys=True)),
        "value": np.array([a.value for a in alerts], np.float64),
        "threshold": np.array([a.threshold for a in alerts], np.float64),
        "last_window": ts(lambda a: a.window_start), "last_seen": ts(lambda a: a.last_seen),
        "resolved_at": ts(lambda a: a.resolved_at), "windows": np.array([a.windows for a in alerts], np.uint32),
        "evidence": text(lambda a: json.dumps(a.evidence, sort_keys=True)),
        "version": np.array([a.version for a in alerts], np.uint32)})}
