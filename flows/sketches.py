"""Mergeable summaries of a window: heavy hitters (DataSketches frequent items) and spread
(one DataSketches HLL per entity).

Both are fed from an exact flow table, never per packet: the table is grouped by the
dimension with numpy and each distinct key goes into the sketch once with its summed weight
(frequent items) or each distinct (entity, peer) pair once (HLL). Per-shard summaries merge
into per-window ones, and per-window heavy hitters merge into per-capture ones. Both pickle
through the sketches' own compact serialisation, so they can cross Bytewax workers and sit
in recovery snapshots.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass

import datasketches as ds
import numpy as np

from flows import hll
from flows.table import FlowTable, group_ids, group_rows, top_by
from schemas.flow_key import FIVE_TUPLE_MASK, VLAN_SHIFT, flow_hash, mix, pp_dport, pp_proto, pp_sport, words_to_addr

# Heavy-hitter dimensions and the metrics each is ranked by.
HH_DIMENSIONS = ("src", "dst", "flow", "dport", "proto")
HH_METRICS = ("bytes", "packets")
SPREAD_KINDS = ("src_spread", "dst_fan_in")   # distinct dsts per src; distinct srcs per dst

_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)


@dataclass(frozen=True)
class SketchConfig:
    # Frequent items: map of 2^lg_max_map counters. With items pre-aggregated per shard, keys
    # fewer than 0.75 * 2^lg are counted exactly; beyond that the error is <= 3.5/2^lg of the weight.
    hh_lg_max_map: int = 12
    # HLL: 2^lg_k registers of 8 bits (16 KiB), built from arrays (flows/hll.py); relative
    # standard error 1.04/sqrt(2^lg_k) = 0.8%.
    hll_lg_k: int = 14
    # Spread: entities with fewer distinct peers than this in a shard are counted exactly. At
    # 24 bytes per (entity, peer) pair, 1024 pairs take about what one 16 KiB HLL does.
    exact_peers: int = 1024


def hex_rows(rows: np.ndarray) -> list[str]:
    """(n, w) uint8 -> n lowercase hex strings of 2w characters, without a Python loop over bytes."""
    n, w = rows.shape
    out = np.empty((n, 2 * w), np.uint8)
    out[:, 0::2] = _HEX[rows >> 4]
    out[:, 1::2] = _HEX[rows & 15]
    return out.view(f"S{2 * w}").ravel().astype(f"U{2 * w}").tolist()


def flow_key_bytes(t: FlowTable, rows: np.ndarray | None = None) -> np.ndarray:
    """(n, 37) uint8: src(16) dst(16) sport(2, big-endian) dport(2) proto(1); the 'flow' item key
    of the given rows (all by default)."""
    src, dst, pp = (t.src, t.dst, t.pp) if rows is None else (t.src[rows], t.dst[rows], t.pp[rows])
    out = np.empty((len(pp), 37), np.uint8)
    out[:, 0:16] = words_to_addr(src)
    out[:, 16:32] = words_to_addr(dst)
    out[:, 32:34] = pp_sport(pp).astype(">u2").view(np.uint8).reshape(-1, 2)
    out[:, 34:36] = pp_dport(pp).astype(">u2").view(np.uint8).reshape(-1, 2)
    out[:, 36] = pp_proto(pp)
    return out


def parse_key(dimension: str, key: str) -> dict:
    """Item key -> its fields: src/dst as 16 address bytes, ports and protocol as ints."""
    if dimension in ("src", "dst"):
        return {dimension: bytes.fromhex(key)}
    if dimension == "flow":
        b = bytes.fromhex(key)
        return {"src": b[0:16], "dst": b[16:32], "sport": int.from_bytes(b[32:34], "big"),
                "dport": int.from_bytes(b[34:36], "big"), "proto": b[36]}
    if dimension == "dport":
        proto, port = key.split("/")
        return {"proto": int(proto), "dport": int(port)}
    return {"proto": int(key)}


def _sum_by(t: FlowTable, key_hash: np.ndarray, key_cols: list[np.ndarray]):
    """Rows of t that represent each distinct key, with summed bytes and packets."""
    order, starts = group_rows(key_hash, key_cols)
    return order[starts], np.add.reduceat(t.bytes[order], starts), np.add.reduceat(t.packets[order], starts)


def dimension_rows(t: FlowTable, dimension: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One row of t per distinct key of a dimension, with the key's exact bytes and packets."""
    if len(t) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.uint64), np.zeros(0, np.uint64)
    if dimension in ("src", "dst"):
        w = t.src if dimension == "src" else t.dst
        return _sum_by(t, mix(w[:, 0], w[:, 1]), [w[:, 0], w[:, 1]])
    if dimension == "flow":                     # the 5-tuple, over all its VLANs
        pp5 = t.pp & FIVE_TUPLE_MASK
        if (t.window == t.window[0]).all() and not (t.pp >> VLAN_SHIFT).any():
            return np.arange(len(t)), t.bytes, t.packets         # rows are already distinct 5-tuples
        return _sum_by(t, flow_hash(t.src, t.dst, pp5), [t.src[:, 0], t.src[:, 1], t.dst[:, 0], t.dst[:, 1], pp5])
    col = t.pp & np.uint64(0xFFFFFF if dimension == "dport" else 0xFF)     # dport << 8 | proto, or proto
    return _sum_by(t, mix(col), [col])


def key_strings(t: FlowTable, dimension: str, rows: np.ndarray) -> list[str]:
    """The sketch item keys of the given rows' keys in one dimension (see parse_key)."""
    if dimension in ("src", "dst"):
        w = t.src if dimension == "src" else t.dst
        return hex_rows(np.ascontiguousarray(w[rows]).view(np.uint8).reshape(-1, 16))
    if dimension == "flow":
        return hex_rows(flow_key_bytes(t, rows))
    if dimension == "dport":
        return [f"{x & 0xFF}/{x >> 8}" for x in (t.pp[rows] & np.uint64(0xFFFFFF)).tolist()]
    return [str(x) for x in (t.pp[rows] & np.uint64(0xFF)).tolist()]


def dimension_keys(t: FlowTable, dimension: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Distinct keys of one dimension in a flow table with their exact bytes and packets."""
    rows, b, p = dimension_rows(t, dimension)
    return key_strings(t, dimension, rows), b, p


def candidates(weights: np.ndarray, capacity: int) -> tuple[np.ndarray, int]:
    """Which keys a shard feeds a frequent-items sketch, and the largest weight it leaves out.

    Keys above 1/capacity of the total weight: fewer than `capacity` of them, so the sketch counts
    them exactly (it never purges below its capacity). A key left out weighs at most the total /
    capacity, less than the error the sketch would have had if fed everything (3.5 / 2^lg_max_map
    of the total), and that weight is added to the key's upper bound (HeavyHitters.left_out)."""
    if len(weights) <= capacity:
        return np.flatnonzero(weights), 0
    keep = weights * capacity > weights.sum()
    left = weights[~keep]
    return np.flatnonzero(keep), int(left.max()) if len(left) else 0


def sorted_union(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """np.union1d by sort and diff: np.unique without counts is slow on integers and imports
    numpy.ma (7 ms of a small capture's start-up)."""
    c = np.concatenate((a, b))
    c.sort()
    return c[np.concatenate(([True], c[1:] != c[:-1]))] if len(c) else c


class HeavyHitters:
    """One frequent-items sketch per (dimension, metric), fed only the keys that can matter.

    Each shard feeds a sketch the keys above 1/capacity of its weight (`candidates`), exactly, and
    adds the largest weight it left out to `left_out`, which merging sums. For any key, the true
    weight lies within [lower_bound, upper_bound + left_out]: the sketch's bounds hold for what it
    was fed, and a key missed at most `left_out` in total. So the reported upper bound includes
    it, and a key heavier than left_out plus the sketch's own error is never missed."""

    def __init__(self, cfg: SketchConfig = SketchConfig()):
        self.cfg = cfg
        self.sketches = {(d, m): ds.frequent_strings_sketch(cfg.hh_lg_max_map) for d in HH_DIMENSIONS for m in HH_METRICS}
        self.left_out = dict.fromkeys(self.sketches, 0)

    @property
    def capacity(self) -> int:
        return 3 * (1 << self.cfg.hh_lg_max_map) // 4       # the sketch's map purges beyond this

    @classmethod
    def from_flows(cls, t: FlowTable, cfg: SketchConfig = SketchConfig()) -> "HeavyHitters":
        hh = cls(cfg)
        for d in HH_DIMENSIONS:
            rows, b, p = dimension_rows(t, d)
            kept = [(m, weights, *candidates(weights, hh.capacity)) for m, weights in (("bytes", b), ("packets", p))]
            fed = sorted_union(kept[0][2], kept[1][2])          # the keys either metric feeds, as strings once
            keys = np.array(key_strings(t, d, rows[fed]), dtype=object)
            for m, weights, keep, left in kept:
                sk = hh.sketches[(d, m)]
                for k, wt in zip(keys[np.searchsorted(fed, keep)].tolist(), weights[keep].tolist()):
                    sk.update(k, wt)
                hh.left_out[(d, m)] += left
        return hh

    def merge(self, other: "HeavyHitters") -> "HeavyHitters":
        for k, sk in self.sketches.items():
            sk.merge(other.sketches[k])
            self.left_out[k] += other.left_out[k]
        return self

    def top(self, dimension: str, metric: str, n: int) -> list[tuple[str, int, int, int]]:
        """Up to n (key, estimate, lower_bound, upper_bound), largest estimate first.

        Items whose upper bound could exceed the sketch's error are candidates (no false negatives)."""
        items = self.sketches[(dimension, metric)].get_frequent_items(ds.frequent_items_error_type.NO_FALSE_NEGATIVES)
        left = self.left_out[(dimension, metric)]
        return [(k, est, lb, ub + left) for k, est, lb, ub in heapq.nsmallest(n, items, key=lambda x: (-x[1], x[0]))]

    def estimate(self, dimension: str, metric: str, key: str) -> int:
        return self.sketches[(dimension, metric)].get_estimate(key)

    def memory_bytes(self) -> int:
        return sum(sk.get_serialized_size_bytes() for sk in self.sketches.values())

    def __getstate__(self):
        return {"cfg": self.cfg, "sketches": {k: sk.serialize() for k, sk in self.sketches.items()},
                "left_out": self.left_out}

    def __setstate__(self, state):
        self.cfg = state["cfg"]
        self.sketches = {k: ds.frequent_strings_sketch.deserialize(b) for k, b in state["sketches"].items()}
        self.left_out = state.get("left_out") or dict.fromkeys(self.sketches, 0)


def _pairs(t: FlowTable, entity: str) -> tuple[np.ndarray, np.ndarray]:
    """Entity words (m, 2) and peer hashes (m,) of every flow row."""
    ew, pw = (t.src, t.dst) if entity == "src" else (t.dst, t.src)
    return ew, mix(pw[:, 0], pw[:, 1])


def dedup_pairs(ent: np.ndarray, peer: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (entity, peer) pairs grouped by entity: entity words, peer hashes, group starts.

    The peer is already a 64-bit hash of the peer address, so (entity, peer hash) pairs are
    compared exactly; two peers sharing a 64-bit hash would count once (~1e-9 for 10^5 peers)."""
    if len(peer) == 0:
        return np.zeros((0, 2), np.uint64), np.zeros(0, np.uint64), np.zeros(0, np.int64)
    eh = mix(ent[:, 0], ent[:, 1])
    _, first = group_ids(mix(eh, peer), [ent[:, 0], ent[:, 1], peer])
    order, starts = group_rows(eh[first], [ent[first, 0], ent[first, 1]])
    first = first[order]
    return ent[first], peer[first], starts


class Spread:
    """Distinct peers per entity: distinct dsts per src, or distinct srcs per dst.

    Like HLL++'s sparse mode, small entities are kept exactly and big ones in a sketch: an
    entity with fewer than `cfg.exact_peers` distinct peers in a shard is kept as its
    (entity, peer-hash) pairs in numpy arrays, a bigger one as a DataSketches HLL. Merging
    shards concatenates and de-duplicates the pairs exactly and unions the HLLs (feeding them
    the entity's exact pairs from other shards), so the long tail costs no Python object and
    big spreaders stay bounded in memory."""

    def __init__(self, cfg: SketchConfig = SketchConfig()):
        self.cfg = cfg
        self.ent = np.zeros((0, 2), np.uint64)     # exact pairs: entity words and peer hashes
        self.peer = np.zeros(0, np.uint64)
        self.sketches: dict[bytes, ds.hll_sketch] = {}
        self._parts: list["Spread"] = []

    @classmethod
    def from_flows(cls, t: FlowTable, entity: str, cfg: SketchConfig = SketchConfig()) -> "Spread":
        sp = cls(cfg)
        e, p, starts = dedup_pairs(*_pairs(t, entity))
        sizes = np.diff(np.append(starts, len(p)))
        big = sizes >= cfg.exact_peers
        if big.any():
            small_rows = np.repeat(~big, sizes)
            sp.ent, sp.peer = e[small_rows], p[small_rows]
            groups = np.flatnonzero(big)
            keys = words_to_addr(e[starts[groups]])
            sp.sketches = dict(zip((k.tobytes() for k in keys), _hlls(cfg, sizes, big, p[~small_rows])))
        else:
            sp.ent, sp.peer = e, p
        return sp

    def merge(self, other: "Spread") -> "Spread":
        """Add another shard's spread; the union is computed when results are read."""
        other._settle()             # its own pending merges first: they are not looked into later
        self._parts.append(other)
        return self

    def _settle(self) -> None:
        if not self._parts:
            return
        parts = [self] + self._parts
        self._parts = []
        e, p, starts = dedup_pairs(np.concatenate([x.ent for x in parts]), np.concatenate([x.peer for x in parts]))
        sketches: dict[bytes, list] = {}
        for x in parts:
            for k, sk in x.sketches.items():
                sketches.setdefault(k, []).append(sk)
        sizes = np.diff(np.append(starts, len(p)))
        keys = words_to_addr(e[starts]) if len(starts) else np.zeros((0, 16), np.uint8)
        big = sizes >= self.cfg.exact_peers
        if sketches and len(keys):      # entities that also have exact pairs elsewhere
            big |= _isin_rows(keys, np.frombuffer(b"".join(sketches), np.uint8).reshape(-1, 16))
        keep = np.repeat(~big, sizes)
        for g, sk in zip(np.flatnonzero(big).tolist(), _hlls(self.cfg, sizes, big, p[~keep])):
            sketches.setdefault(keys[g].tobytes(), []).append(sk)
        self.sketches = {}
        for k, sks in sketches.items():
            if len(sks) == 1:
                self.sketches[k] = sks[0]
            else:
                u = ds.hll_union(self.cfg.hll_lg_k)
                for sk in sks:
                    u.update(sk)
                self.sketches[k] = u.get_result(ds.HLL_8)
        self.ent, self.peer = e[keep], p[keep]

    def _exact(self) -> tuple[np.ndarray, np.ndarray]:
        """Entities kept exactly (k, 16) and their distinct peer counts."""
        if len(self.peer) == 0:
            return np.zeros((0, 16), np.uint8), np.zeros(0, np.int64)
        change = np.flatnonzero((self.ent[1:] != self.ent[:-1]).any(axis=1)) + 1
        starts = np.concatenate(([0], change))
        return words_to_addr(self.ent[starts]), np.diff(np.append(starts, len(self.peer)))

    def top(self, n: int) -> list[tuple[bytes, float, float, float]]:
        """Up to n (entity, estimate, lower, upper) with the largest estimates; exact entities
        have lower = upper = estimate, sketched ones 2-standard-deviation bounds."""
        self._settle()
        keys, counts = self._exact()
        cand = [(k, s.get_estimate(), s.get_lower_bound(2), s.get_upper_bound(2)) for k, s in self.sketches.items()]
        if len(counts):
            idx = _top_exact(keys, counts, n)
            cand += [(keys[i].tobytes(), float(c), float(c), float(c)) for i, c in zip(idx.tolist(), counts[idx].tolist())]
        cand.sort(key=lambda x: (-x[1], x[0]))
        return cand[:n]

    def estimate(self, key: bytes) -> float:
        self._settle()
        if key in self.sketches:
            return self.sketches[key].get_estimate()
        keys, counts = self._exact()
        hit = np.flatnonzero((keys == np.frombuffer(key, np.uint8)).all(axis=1))
        return float(counts[hit[0]]) if len(hit) else 0.0

    def __len__(self) -> int:
        self._settle()
        return len(self._exact()[1]) + len(self.sketches)

    def memory_bytes(self) -> int:
        self._settle()
        return self.ent.nbytes + self.peer.nbytes + sum(s.get_compact_serialization_bytes() for s in self.sketches.values())

    def __getstate__(self):
        self._settle()
        return {"cfg": self.cfg, "ent": self.ent, "peer": self.peer,
                "keys": list(self.sketches), "blobs": [s.serialize_compact() for s in self.sketches.values()]}

    def __setstate__(self, state):
        self.cfg, self.ent, self.peer = state["cfg"], state["ent"], state["peer"]
        self.sketches = {k: ds.hll_sketch.deserialize(b) for k, b in zip(state["keys"], state["blobs"])}
        self._parts = []


def _top_exact(keys: np.ndarray, counts: np.ndarray, n: int) -> np.ndarray:
    """Indices of the n largest counts, ties broken by address bytes (so any sharding agrees)."""
    be = np.ascontiguousarray(keys).view(">u8").reshape(-1, 2).astype(np.uint64)     # byte order = numeric order
    return top_by(counts, be, n)


def _hlls(cfg: SketchConfig, sizes: np.ndarray, big: np.ndarray, peers: np.ndarray) -> list:
    """One HLL per big group: `peers` holds the big groups' peers, group after group in order."""
    n = int(np.count_nonzero(big))
    groups = np.repeat(np.arange(n), sizes[big])
    return hll.sketches(groups, peers.view(np.int64), n, cfg.hll_lg_k)


def _isin_rows(rows: np.ndarray, among: np.ndarray) -> np.ndarray:
    """Which rows of (n, 16) uint8 appear among the rows of (m, 16) uint8."""
    a = np.ascontiguousarray(rows).view(np.uint64).reshape(-1, 2)
    b = np.ascontiguousarray(among).view(np.uint64).reshape(-1, 2)
    hb = mix(b[:, 0], b[:, 1])
    order = np.argsort(hb)
    ha = mix(a[:, 0], a[:, 1])
    at = np.minimum(np.searchsorted(hb[order], ha), len(hb) - 1)
    return (b[order[at]] == a).all(axis=1)          # the hash found, and the same 16 bytes
