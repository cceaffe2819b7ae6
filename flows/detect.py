"""Detectors over one closed window's exact flow records: pure, vectorised, no I/O.

Every detector groups the window's flow table with the compiled hash group-by of flows/table.py
and compares whole columns with its threshold; only the entities over it become Python objects,
so a flood of millions of one-packet flows costs a few array passes, not a call per flow.

Counting is exact over the window's flow records (one row per unidirectional 5-tuple and VLAN),
so nothing here has sketch error. What bounds it is the flow cap (WindowConfig.max_flows):
records folded into sketches beyond it are not seen by the detectors, so a window over the cap
can only under-count (never raise a false alert from the cap). The report's `capped` section
says when a window was.

What counts as a connection attempt (port_scan, host_scan):
- a TCP flow record with SYN and without ACK in the OR of its flags: every packet of it was a SYN
  without ACK (a SYN scan's probe, a flood's spoofed SYN, a connection nobody answered);
- a handshake-only probe (a connect scan): SYN, ACK and FIN or RST, at most 4 packets, none
  longer than its headers could be (60 bytes IPv4, 80 IPv6), and the initiator: its reverse flow
  record (a SYN-ACK) exists and started later. A capture that sees one direction only shows no
  such probe.
Established traffic carries payload past the handshake, so however busy, it never counts.
syn_flood counts only the first kind (SYN-only packets). UDP and ICMP scans are not detected yet.

traffic_spike needs history: `Baselines` keeps an exponentially weighted mean and mean absolute
deviation per entity across windows (in the engine's state and recovery snapshots).
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import numpy as np

from flows.rules import Filter, Rule
from flows.table import FlowTable, _counting_order, group_ids, sum_by_address, top_by
from schemas.addresses import to_text
from schemas.flow_key import mix, words_to_addr

FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10
PROBE_MAX_PACKETS = 4
HEADERS_MAX = (60, 80)       # IPv4, IPv6: IP + TCP headers with options, no payload
TCP, UDP = 6, 17
EVIDENCE_ROWS = 5            # top ports, sources or flows kept with an alert
MAX_FINDINGS = 1000          # per rule and window, the largest first (an alert storm stays bounded)


@dataclass
class Finding:
    """A rule's condition holding for one entity in one window."""
    rule: str
    detector: str
    severity: str
    entity: dict                 # src / dst / port / proto, as text and numbers
    value: float
    threshold: float
    evidence: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The entity as a canonical string: what an alert is deduplicated on."""
        return " ".join(f"{k}={self.entity[k]}" for k in sorted(self.entity))


@dataclass
class WindowFindings:
    """What detection says about one window: findings of the stateless detectors and the
    observations traffic_spike compares with its baselines."""
    start: int
    length_ns: int
    end: int                     # last packet time + 1 ns for a whole-capture window
    findings: list[Finding]
    observations: dict[str, dict[str, float]]     # rule -> entity key -> value


def detect(res, rules, window_s: float) -> WindowFindings:
    """Every rule's findings over one WindowResult (`res`); window_s 0 = a whole capture."""
    t: FlowTable = res.flows
    end = res.start + res.length_ns if res.length_ns else (int(t.last_ns.max()) + 1 if len(t) else res.start)
    seconds = window_s or 0.0
    out = WindowFindings(res.start, res.length_ns, end, [], {})
    if not len(t) and res.dns is None:
        return out
    cols = _Columns(t, res.heavy, res.dns)
    for rule in rules:
        rows = cols.filtered(rule.filter)
        fn = _DETECTORS[rule.detector]
        if rule.detector == "traffic_spike":
            out.observations[rule.name] = fn(cols, rows, rule, seconds)
        else:
            out.findings.extend(fn(cols, rows, rule, seconds))
    return out


class _Columns:
    """The flow table's columns a detector needs, decoded once per window."""

    def __init__(self, t: FlowTable, heavy=None, dns=None):
        self.t = t
        self.dns = dns              # the window's per-host DNS counts (flows/dns.py)
        self.heavy = heavy          # the window's frequent-items sketches: lower bounds prune exact work
        self.proto = t.proto
        self.sport = t.sport
        self.dport = t.dport
        self.flags = t.tcp_flags
        self.src, self.dst = t.src, t.dst
        self.packets, self.bytes = t.packets, t.bytes
        self._attempts = self._syn_only = None
        self._filters: dict[Filter, np.ndarray] = {}

    @property
    def syn_only(self) -> np.ndarray:
        """Rows of TCP flows whose every packet was a SYN without ACK."""
        if self._syn_only is None:
            self._syn_only = (self.proto == TCP) & ((self.flags & SYN) != 0) & ((self.flags & ACK) == 0)
        return self._syn_only

    @property
    def attempts(self) -> np.ndarray:
        """Rows of connection attempts: SYN-only flows and handshake-only probes."""
        if self._attempts is None:
            self._attempts = self.syn_only | self._probes()
        return self._attempts

    def _probes(self) -> np.ndarray:
        """Handshake-only flows of the side that sent the first SYN (module docstring)."""
        f, tcp = self.flags, self.proto == TCP
        v6 = ~((self.src[:, 0] == 0) & ((self.src[:, 1] & np.uint64(0xFFFFFFFF)) == np.uint64(0xFFFF0000)))
        small = self.bytes <= self.packets * np.where(v6, HEADERS_MAX[1], HEADERS_MAX[0]).astype(np.uint64)
        cand = np.flatnonzero(tcp & ((f & SYN) != 0) & ((f & ACK) != 0) & ((f & (FIN | RST)) != 0)
                              & (self.packets <= PROBE_MAX_PACKETS) & small)
        out = np.zeros(len(self.t), bool)
        if not len(cand):
            return out
        rev = np.flatnonzero(tcp & ((f & SYN) != 0) & ((f & ACK) != 0))      # the SYN-ACK sides
        n = len(cand)
        keys = [np.concatenate([a[cand], b[rev]]).astype(np.uint64) for a, b in
                ((self.src[:, 0], self.dst[:, 0]), (self.src[:, 1], self.dst[:, 1]), (self.dst[:, 0], self.src[:, 0]),
                 (self.dst[:, 1], self.src[:, 1]), (self.sport, self.dport), (self.dport, self.sport))]
        gid, rep = _groups(keys)
        first_rev = np.full(len(rep), np.iinfo(np.int64).max, np.int64)
        np.minimum.at(first_rev, gid[n:], self.t.first_ns[rev])
        out[cand[self.t.first_ns[cand] < first_rev[gid[:n]]]] = True
        return out

    def filtered(self, f: Filter) -> np.ndarray | None:
        """The rows a filter keeps (None: all)."""
        if f.empty:
            return None
        if f not in self._filters:
            m = np.ones(len(self.t), bool)
            if f.src:
                m &= _in_networks(self.src, f.src)
            if f.dst:
                m &= _in_networks(self.dst, f.dst)
            if f.ports:
                ports = np.array(f.ports, np.uint16)
                m &= np.isin(self.sport, ports, kind="table") | np.isin(self.dport, ports, kind="table")
            if f.protocol is not None:
                m &= self.proto == f.protocol
            if f.vlan:
                m &= np.isin(self.t.vlan, np.array(f.vlan, np.uint16), kind="table")
            self._filters[f] = m
        return self._filters[f]


def _in_networks(words: np.ndarray, nets: tuple[str, ...]) -> np.ndarray:
    """Rows whose address ((n, 2) words of 16-byte addresses, IPv4 mapped) is in any network."""
    m = np.zeros(len(words), bool)
    for text in nets:
        net = ipaddress.ip_network(text, strict=False)
        if net.version == 4:
            net = ipaddress.ip_network(f"::ffff:{net.network_address}/{96 + net.prefixlen}")
        base = np.frombuffer(net.network_address.packed, np.uint64)
        mask = np.frombuffer(net.netmask.packed, np.uint64)
        m |= ((words[:, 0] & mask[0]) == base[0]) & ((words[:, 1] & mask[1]) == base[1])
    return m


def _rows(mask: np.ndarray, filt: np.ndarray | None) -> np.ndarray:
    return np.flatnonzero(mask if filt is None else mask & filt)


def _groups(cols: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(group id per row, first row of each group) over equal rows of uint64 columns."""
    return group_ids(mix(*cols), cols)


def could_reach(group_cols: list[np.ndarray], need: float, weights: np.ndarray | None = None,
                also: float = 0) -> np.ndarray:
    """Rows whose group may reach `need` (rows, or the sum of `weights`), and `also` rows: those
    in a hash bucket whose totals reach them. A bucket's total bounds each of its groups', so no
    group that reaches `need` is lost; in a flood of one-packet flows this drops nearly every row
    before the exact group-bys, for one hashing pass and a bincount."""
    n = len(group_cols[0])
    if n == 0 or (need <= 1 and also <= 1):
        return np.ones(n, bool)
    buckets = 1 << max(10, int(n - 1).bit_length())          # about one row per bucket
    b = (mix(*group_cols) & np.uint64(buckets - 1)).astype(np.int64)
    total = np.bincount(b, weights=None if weights is None else weights.astype(np.float64), minlength=buckets)
    keep = total[b] >= need
    if also > 1:
        keep &= np.bincount(b, minlength=buckets)[b] >= also
    return keep


def distinct_per_group(group_cols: list[np.ndarray], value_cols: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For rows grouped by group_cols: (group id per row, first row per group, distinct values of
    value_cols per group). Exact: two hash group-bys."""
    gid, grep = _groups(group_cols)
    _, pair_rep = _groups([gid.astype(np.uint64)] + value_cols)
    return gid, grep, np.bincount(gid[pair_rep], minlength=len(grep))


class _Members:
    """The rows of each group, without a pass over all rows per group."""

    def __init__(self, gid: np.ndarray, ngroups: int):
        self.order, starts = _counting_order(gid, ngroups)
        self.ends = np.append(starts[1:], len(gid))
        self.starts = starts

    def __getitem__(self, g: int) -> np.ndarray:
        return self.order[self.starts[g]:self.ends[g]]


def _over(values: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Indices where ok holds, largest value first, at most MAX_FINDINGS."""
    idx = np.flatnonzero(ok)
    return idx[np.argsort(-values[idx].astype(np.float64), kind="stable")[:MAX_FINDINGS]]


def _median(x: np.ndarray) -> float:
    """np.median of a non-empty float array, without np.median's masked-array import (7 ms of a
    small capture's start-up)."""
    s = np.sort(x)
    return float((s[(len(s) - 1) // 2] + s[len(s) // 2]) / 2)


def _w(words: np.ndarray) -> list[np.ndarray]:
    return [words[:, 0], words[:, 1]]


def _addr(words_row: np.ndarray) -> str:
    return to_text(words_to_addr(words_row.reshape(1, 2)).tobytes())


def _top_values(ports: np.ndarray, weights: np.ndarray, n: int = EVIDENCE_ROWS) -> list[tuple[int, int]]:
    """The n ports with the most weight: [(port, weight)], most first (ties: lower port first)."""
    if not len(ports):
        return []
    w = np.bincount(ports.astype(np.int64), weights=weights.astype(np.float64), minlength=65536)
    top = np.flatnonzero(w)
    top = top[np.lexsort((top, -w[top]))[:n]]
    return [(int(p), int(w[p])) for p in top]


def _port_scan(c: _Columns, filt, rule: Rule, window_s: float) -> list[Finding]:
    rows = _rows(c.attempts, filt)
    limit = rule.limit(window_s)
    rows = rows[could_reach(_w(c.src[rows]) + _w(c.dst[rows]), limit)]       # a port needs a row
    if not len(rows):
        return []
    src, dst = c.src[rows], c.dst[rows]
    gid, grep, ports = distinct_per_group(_w(src) + _w(dst), [c.dport[rows].astype(np.uint64)])
    out = []
    members = _Members(gid, len(grep))
    for g in _over(ports, ports >= limit):
        mine = members[g]
        dp = c.dport[rows][mine]
        ev = {"attempts": len(mine), "packets": int(c.packets[rows][mine].sum()),
              "ports_low": int(dp.min()), "ports_high": int(dp.max()),
              "top_ports": [p for p, _ in _top_values(dp, c.packets[rows][mine])]}
        out.append(_finding(rule, {"src": _addr(src[grep[g]]), "dst": _addr(dst[grep[g]])}, ports[g], limit, ev))
    return out


def _host_scan(c: _Columns, filt, rule: Rule, window_s: float) -> list[Finding]:
    rows = _rows(c.attempts, filt)
    limit = rule.limit(window_s)
    rows = rows[could_reach(_w(c.src[rows]), limit)]
    if not len(rows):
        return []
    src, dst = c.src[rows], c.dst[rows]
    gid, grep, hosts = distinct_per_group(_w(src), _w(dst))
    out = []
    members = _Members(gid, len(grep))
    for g in _over(hosts, hosts >= limit):
        mine = members[g]
        ev = {"attempts": len(mine), "packets": int(c.packets[rows][mine].sum()),
              "top_ports": [{"port": p, "attempts": n} for p, n in _top_values(c.dport[rows][mine], np.ones(len(mine)))]}
        out.append(_finding(rule, {"src": _addr(src[grep[g]])}, hosts[g], limit, ev))
    return out


def _syn_flood(c: _Columns, filt, rule: Rule, window_s: float) -> list[Finding]:
    rows = _rows(c.syn_only, filt)
    limit = rule.limit(window_s)
    rows = rows[could_reach(_w(c.dst[rows]), limit, c.packets[rows], also=rule.param("min_sources"))]
    if not len(rows):
        return []
    dst = c.dst[rows]
    pk = c.packets[rows]
    gid, grep, sources = distinct_per_group(_w(dst), _w(c.src[rows]))
    syns = np.bincount(gid, weights=pk.astype(np.float64), minlength=len(grep))
    out = []
    members = _Members(gid, len(grep))
    for g in _over(syns, (syns >= limit) & (sources >= rule.param("min_sources"))):
        mine = members[g]
        ev = {"sources": int(sources[g]), "bytes": int(c.bytes[rows][mine].sum()),
              "top_ports": [{"port": p, "packets": n} for p, n in _top_values(c.dport[rows][mine], pk[mine])]}
        out.append(_finding(rule, {"dst": _addr(dst[grep[g]])}, syns[g], limit, ev))
    return out


def _udp_reflection(c: _Columns, filt, rule: Rule, window_s: float) -> list[Finding]:
    ports = np.array(rule.param("ports"), np.uint16)
    udp = c.proto == UDP
    rows = _rows(udp & np.isin(c.sport, ports, kind="table"), filt)
    limit = rule.limit(window_s)
    rows = rows[could_reach(_w(c.dst[rows]) + [c.sport[rows].astype(np.uint64)], limit)]
    if not len(rows):
        return []
    # unsolicited: the destination sent no request to that reflector's port in this window
    req = np.flatnonzero(udp & np.isin(c.dport, ports, kind="table"))
    asked = _has_match(_w(c.dst[rows]) + _w(c.src[rows]) + [c.sport[rows].astype(np.uint64)],
                       _w(c.src[req]) + _w(c.dst[req]) + [c.dport[req].astype(np.uint64)])
    rows = rows[~asked]
    if not len(rows):
        return []
    dst, sport = c.dst[rows], c.sport[rows]
    gid, grep, sources = distinct_per_group(_w(dst) + [sport.astype(np.uint64)], _w(c.src[rows]))
    by = np.bincount(gid, weights=c.bytes[rows].astype(np.float64), minlength=len(grep))
    pk = np.bincount(gid, weights=c.packets[rows].astype(np.float64), minlength=len(grep))
    out = []
    members = _Members(gid, len(grep))
    for g in _over(sources, (sources >= limit) & (by >= rule.scaled(rule.param("min_bytes"), window_s))):
        mine = members[g]
        src_words, src_bytes = sum_by_address(c.src[rows][mine], c.bytes[rows][mine])
        top = top_by(src_bytes, src_words, EVIDENCE_ROWS)
        ev = {"packets": int(pk[g]), "bytes": int(by[g]),
              "top_reflectors": [{"src": _addr(src_words[i]), "bytes": int(src_bytes[i])} for i in top]}
        out.append(_finding(rule, {"dst": _addr(dst[grep[g]]), "port": int(sport[grep[g]]), "proto": "udp"},
                            sources[g], limit, ev))
    return out


def _dns_anomaly(c: _Columns, filt, rule: Rule, window_s: float) -> list[Finding]:
    """Hosts whose DNS answers are mostly NXDOMAIN, or whose query rate is far above the rest.
    A rule's `src` filter selects the hosts; its other filter fields do not apply here."""
    d = c.dns
    if d is None or not len(d):
        return []
    keep = _in_networks(d.words, rule.filter.src) if rule.filter.src else np.ones(len(d), bool)
    q, ans, nx = (x.astype(np.float64) for x in (d.queries, d.answers, d.nxdomain))
    share = nx / np.maximum(ans, 1)
    out = []
    for i in _over(share, keep & (ans >= rule.scaled(rule.param("min_answers"), window_s)) & (share >= rule.threshold)):
        out.append(_finding(rule, {"src": _addr(d.words[i]), "kind": "nxdomain"}, round(share[i], 4), rule.threshold,
                            {"answers": int(ans[i]), "nxdomain": int(nx[i]), "queries": int(q[i])}))
    asking = q[keep & (q > 0)]
    if len(asking):
        median = _median(asking)
        need = max(rule.scaled(rule.param("query_rate"), window_s), rule.param("query_factor") * median)
        for i in _over(q, keep & (q >= need)):
            out.append(_finding(rule, {"src": _addr(d.words[i]), "kind": "query_rate"}, q[i], need,
                                {"queries": int(q[i]), "median_queries": median, "hosts_querying": len(asking),
                                 "answers": int(ans[i]), "nxdomain": int(nx[i])}))
    return out


def _heavy_hitter(c: _Columns, filt, rule: Rule, window_s: float) -> list[Finding]:
    total = float(c.bytes.sum())
    rows = np.arange(len(c.t)) if filt is None else np.flatnonzero(filt)
    if not len(rows) or total <= 0:
        return []
    floor = rule.scaled(rule.param("min_bytes"), window_s)
    out = []
    if rule.param("by") == "flow":
        by = c.bytes[rows].astype(np.float64)
        for i in _over(by, (by / total >= rule.threshold) & (by >= floor)):
            r = rows[i]
            ent = {"src": _addr(c.src[r]), "dst": _addr(c.dst[r]), "sport": int(c.sport[r]),
                   "dport": int(c.dport[r]), "proto": int(c.proto[r])}
            out.append(_finding(rule, ent, round(by[i] / total, 4), rule.threshold,
                                {"bytes": int(by[i]), "packets": int(c.packets[r]), "window_bytes": int(total)}))
        return out
    rows = rows[could_reach(_w(c.src[rows]), max(rule.threshold * total, floor), c.bytes[rows])]
    words, pk, by = sum_by_address(c.src[rows], c.bytes[rows], c.packets[rows])
    by = by.astype(np.float64)
    for i in _over(by, (by / total >= rule.threshold) & (by >= floor)):
        out.append(_finding(rule, {"src": _addr(words[i])}, round(by[i] / total, 4), rule.threshold,
                            {"bytes": int(by[i]), "packets": int(pk[i]), "window_bytes": int(total)}))
    return out


def _traffic_spike(c: _Columns, filt, rule: Rule, window_s: float) -> dict[str, float]:
    """Observations: window bytes in total and for the top sources (entity key -> bytes)."""
    rows = np.arange(len(c.t)) if filt is None else np.flatnonzero(filt)
    obs = {"scope=total": float(c.bytes[rows].sum())}
    k = int(rule.param("top_sources"))
    if len(rows) and k:
        if filt is None and c.heavy is not None:
            # k sources the sketch knows weigh at least their lower bounds: the k-th largest of
            # those bounds the k-th heaviest source from below, so lighter buckets cannot matter
            lows = sorted((lb for _, _, lb, _ in c.heavy.top("src", "bytes", 4 * k)), reverse=True)
            if len(lows) >= k:
                rows = rows[could_reach(_w(c.src[rows]), lows[k - 1], c.bytes[rows])]
        words, by = sum_by_address(c.src[rows], c.bytes[rows])
        for i in top_by(by, words, k):
            obs[f"src={_addr(words[i])}"] = float(by[i])
    return obs


def _has_match(keys: list[np.ndarray], other: list[np.ndarray]) -> np.ndarray:
    """For each row of `keys`: whether some row of `other` (same columns) equals it. A semi-join
    by one hash group-by over both."""
    n = len(keys[0])
    if not len(other[0]):
        return np.zeros(n, bool)
    both = [np.concatenate([a.astype(np.uint64), b.astype(np.uint64)]) for a, b in zip(keys, other)]
    gid, rep = _groups(both)
    hit = np.zeros(len(rep), bool)
    hit[gid[n:]] = True
    return hit[gid[:n]]


def _finding(rule: Rule, entity: dict, value, threshold: float, evidence: dict) -> Finding:
    v = float(value)
    return Finding(rule.name, rule.detector, rule.severity, entity, int(v) if v.is_integer() else v,
                   round(threshold, 4), evidence)


_DETECTORS = {"port_scan": _port_scan, "host_scan": _host_scan, "syn_flood": _syn_flood,
              "udp_reflection": _udp_reflection, "dns_anomaly": _dns_anomaly, "heavy_hitter": _heavy_hitter,
              "traffic_spike": _traffic_spike}


class Baselines:
    """Learned per-entity baselines for traffic_spike: an exponentially weighted mean and mean
    absolute deviation of each observed value, with the number of windows seen. Bounded: at most
    `max_entities` per rule, the least recently seen dropped first."""

    def __init__(self, max_entities: int = 10_000):
        self.max_entities = max_entities
        self.stats: dict[str, dict[str, list[float]]] = {}     # rule -> entity -> [mean, dev, n, last_window]

    def judge(self, rule: Rule, obs: dict[str, float], window: int, window_s: float) -> list[Finding]:
        """Findings for observations over their baseline (before they are learned), then learn them."""
        table = self.stats.setdefault(rule.name, {})
        alpha, warmup, ratio = float(rule.param("alpha")), int(rule.param("warmup")), float(rule.param("ratio"))
        floor = rule.scaled(rule.param("min_bytes"), window_s)
        out = []
        for key, v in obs.items():
            st = table.get(key)
            if st is not None and st[2] >= warmup:
                mean, dev = st[0], st[1]
                limit = max(mean + rule.threshold * dev, ratio * mean, floor)
                if v > limit:
                    ent = dict(kv.split("=", 1) for kv in key.split(" "))
                    out.append(_finding(rule, ent, v, limit, {"mean_bytes": round(mean), "deviation_bytes": round(dev),
                                                              "windows_learned": int(st[2])}))
            if st is None:
                table[key] = [v, 0.0, 1, window]
            else:
                d = abs(v - st[0])
                st[0] += alpha * (v - st[0])
                st[1] += alpha * (d - st[1])
                st[2] += 1
                st[3] = window
        if len(table) > self.max_entities:
            for key, _ in sorted(table.items(), key=lambda kv: kv[1][3])[:len(table) - self.max_entities]:
                del table[key]
        return out

    def copy(self) -> "Baselines":
        b = Baselines(self.max_entities)
        b.stats = {r: {k: list(v) for k, v in t.items()} for r, t in self.stats.items()}
        return b


