"""A whole-capture summary built from window results: what `netspectra analyze` reports.

Totals, protocols, ports and top talkers are exact sums over windows (top talkers from the flow
records, summed per source as arrays). Heavy hitters (top flows) merge the windows' frequent-items
sketches (a sum over windows) and are reported as estimates with their bounds. Spread is a per-window notion (distinct peers
within one window), so the summary keeps each entity's largest per-window value.
"""
from __future__ import annotations

import collections

import numpy as np

from collectors.protocols import IPPROTO_TCP as TCP, IPPROTO_UDP as UDP, PROTOCOL_NAMES
from flows.config import WindowConfig
from flows.sketches import SPREAD_KINDS, HeavyHitters, parse_key
from flows.detect import distinct_per_group
from flows.table import FlowTable, sum_by_address, top_by
from flows.window import WindowResult
from schemas.addresses import column_to_text, to_text
from schemas.flow_key import mix, pp_dport, pp_proto, words_to_addr

_NOT_ERRORS = {"frames", "ok"}


def proto_name(p: int) -> str:
    return PROTOCOL_NAMES.get(p, str(p))


MIN_SCANNER_PORTS = 10      # a source is listed as a port scanner from this many distinct ports in one window


def top_port_spread(t: FlowTable, n: int, min_ports: int = MIN_SCANNER_PORTS) -> tuple[np.ndarray, np.ndarray]:
    """Exact: up to n sources with the most distinct destination ports (TCP and UDP) among flow
    records, at least `min_ports`, as (address words, counts), most first.

    A source has no more distinct ports than flow records. Records are first counted per hash
    bucket of their source (one bincount); only rows in buckets holding at least `min_ports`
    records can belong to a listed source, and only they are grouped exactly. Under a spoofed
    flood (a million one-record sources) that is a handful of rows, not two group-bys."""
    empty = np.zeros((0, 2), np.uint64), np.zeros(0, np.int64)
    if not len(t) or n <= 0:
        return empty
    h = mix(t.src[:, 0], t.src[:, 1])
    buckets = 1 << max(10, int(len(t) - 1).bit_length())        # about one record per bucket
    bucket = (h & np.uint64(buckets - 1)).astype(np.int64)
    rows = np.flatnonzero(np.bincount(bucket, minlength=buckets)[bucket] >= min_ports)
    proto = pp_proto(t.pp[rows])
    rows = rows[(proto == TCP) | (proto == UDP)]
    if not len(rows):
        return empty
    words = t.src[rows]
    _, first, counts = distinct_per_group([words[:, 0], words[:, 1]], [pp_dport(t.pp[rows]).astype(np.uint64)])
    w = words[first]
    keep = counts >= min_ports
    w, counts = w[keep], counts[keep]
    order = np.lexsort((w[:, 1], w[:, 0], -counts))[:n]
    return w[order], counts[order]


class CaptureSummary:
    def __init__(self, cfg: WindowConfig, rules=None):
        from flows.alerts import CaptureAlerts
        from flows.rules import load_rules

        self.cfg = cfg
        self.alerts = CaptureAlerts(rules or load_rules(None), cfg.window_s)
        self.windows = 0
        self.incomplete_windows = 0
        self.packets = self.bytes = self.flows = 0
        self.first_ns: int | None = None
        self.last_ns: int | None = None
        self.heavy = HeavyHitters(cfg.sketches)
        self.spread: dict[str, dict[bytes, float]] = {k: {} for k in SPREAD_KINDS}
        self.port_spread: dict[bytes, int] = {}     # source -> most distinct dst ports in one window
        self.counters: collections.Counter = collections.Counter()
        self.protocols: dict[int, list[int]] = collections.defaultdict(lambda: [0, 0])
        self.ports: dict[tuple[int, int], list[int]] = collections.defaultdict(lambda: [0, 0])
        # exact per-source totals over all windows, as arrays (words, packets, bytes), re-summed as they pile up
        self.sources: list[tuple] = []
        self.source_rows = self.compacted_rows = 0

    def add(self, r: WindowResult) -> None:
        self.alerts.add(r)
        self.windows += 1
        self.incomplete_windows += not r.complete
        self.packets += r.packets
        self.bytes += r.bytes
        self.flows += len(r.flows)
        if len(r.flows):
            lo, hi = int(r.flows.first_ns.min()), int(r.flows.last_ns.max())
            self.first_ns = lo if self.first_ns is None else min(self.first_ns, lo)
            self.last_ns = hi if self.last_ns is None else max(self.last_ns, hi)
        self.heavy.merge(r.heavy)
        self._add_sources(sum_by_address(r.flows.src, r.flows.packets, r.flows.bytes))
        for kind in SPREAD_KINDS:
            best = self.spread[kind]
            for addr, est, _, _ in r.spread[kind].top(self.cfg.top_n):
                best[addr] = max(best.get(addr, 0.0), est)
        words, counts = top_port_spread(r.flows, self.cfg.top_n)
        for addr, c in zip(words_to_addr(words), counts.tolist()):
            key = addr.tobytes()
            self.port_spread[key] = max(self.port_spread.get(key, 0), c)
        self.counters.update(r.counters)
        for p, pk, by in r.protocols():
            self.protocols[p][0] += pk
            self.protocols[p][1] += by
        for p, port, pk, by in r.ports(self.cfg.top_n):
            self.ports[(p, port)][0] += pk
            self.ports[(p, port)][1] += by

    def _add_sources(self, part: tuple) -> None:
        self.sources.append(part)
        self.source_rows += len(part[0])
        if self.source_rows > max(1 << 20, 2 * self.compacted_rows):
            self._compact_sources()

    def _compact_sources(self) -> tuple:
        if len(self.sources) != 1:
            words, pk, by = (np.concatenate([p[i] for p in self.sources]) for i in range(3))
            self.sources = [sum_by_address(words, pk, by)] if len(words) else []
        self.source_rows = self.compacted_rows = len(self.sources[0][0]) if self.sources else 0
        return self.sources[0] if self.sources else (np.zeros((0, 2), np.uint64), np.zeros(0), np.zeros(0))

    def top_talkers(self, n: int) -> list[dict]:
        """Exact: the sources with the most bytes over the whole capture (from the flow records)."""
        words, pk, by = self._compact_sources()
        idx = top_by(by, words, n)
        return [{"src": a, "bytes": int(b), "packets": int(p)}
                for a, b, p in zip(column_to_text(words_to_addr(words[idx])), by[idx], pk[idx])]

    def top_spread(self, kind: str, n: int) -> list[tuple[str, int]]:
        items = sorted(self.spread[kind].items(), key=lambda x: (-x[1], x[0]))[:n]
        return [(to_text(a), int(round(e))) for a, e in items]

    def report(self, top: int, source_errors: dict | None = None) -> dict:
        """The JSON report of `netspectra analyze --json`."""
        hh = self.heavy
        flows = []
        for k, est, lb, ub in hh.top("flow", "bytes", top):     # sketch estimates, with their bounds
            f = parse_key("flow", k)
            flows.append({"src": to_text(f["src"]), "dst": to_text(f["dst"]), "sport": f["sport"], "dport": f["dport"],
                          "proto": f["proto"], "bytes": est, "bytes_lower_bound": lb, "bytes_upper_bound": ub,
                          "packets": hh.estimate("flow", "packets", k), "estimate": True})
        errors = {k: v for k, v in self.counters.items() if k not in _NOT_ERRORS and not k.startswith("capped_") and v}
        for k, v in (source_errors or {}).items():
            if v:
                errors[k] = errors.get(k, 0) + v
        ports = sorted(self.ports.items(), key=lambda x: (-x[1][1], x[0]))[:top]
        return {
            "packets": self.packets, "bytes": self.bytes, "flows": self.flows, "windows": self.windows,
            "window_seconds": self.cfg.window_s, "frames": self.counters.get("frames", 0),
            "first_seen_ns": self.first_ns, "last_seen_ns": self.last_ns,
            "top_talkers": self.top_talkers(top), "heavy_hitters": flows,
            "super_spreaders": [{"src": a, "distinct_dsts": e} for a, e in self.top_spread("src_spread", top)],
            "fan_in": [{"dst": a, "distinct_srcs": e} for a, e in self.top_spread("dst_fan_in", top)],
            "port_scanners": [{"src": to_text(a), "distinct_ports": c} for a, c in
                              sorted(self.port_spread.items(), key=lambda x: (-x[1], x[0]))[:top]],
            "protocols": [{"proto": p, "name": proto_name(p), "packets": v[0], "bytes": v[1]}
                          for p, v in sorted(self.protocols.items(), key=lambda x: -x[1][1])],
            "top_ports": [{"proto": proto_name(p), "port": port, "packets": v[0], "bytes": v[1]} for (p, port), v in ports],
            "incomplete_windows": self.incomplete_windows,
            # flow records beyond max_flows: counted here and in the sketches, not in "flows" or talkers
            "capped": {k[len("capped_"):]: v for k, v in sorted(self.counters.items()) if k.startswith("capped_")},
            "errors": dict(sorted(errors.items())),
            "alerts": [a.to_dict() for a in self.alerts.alerts()],
        }
