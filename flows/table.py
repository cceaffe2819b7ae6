"""Exact flow records as numpy columns, and the group-by that builds them.

A FlowTable holds one row per (window, unidirectional 5-tuple, VLAN, tunnel) with packets, bytes
(IP total length), first/last seen and the OR of TCP flags; `tun` (tunnel_key) keeps two tenants'
equal private 5-tuples apart when their packets came out of different tunnels. It is built from
a packet batch and merged with other tables by the same exact group-by, so per-batch partial
tables combine into final per-window records without a Python object per packet or per flow.

Flow aggregation is a compiled hash aggregation on a 64-bit hash of the key that compares the
full key on every hit, so results are exact even when hashes collide; `group_rows` groups the
other dimensions the same way (a hash pass, then a counting sort: no comparison sort).
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from schemas.flow_key import (VLAN_SHIFT, addr_words, flow_hash, mix, port_proto, pp_dport, pp_proto, pp_sport, shard_of,
                              words_to_addr)
from schemas.jit import njit
from schemas.packet_batch import STATUS_OK, PacketBatch, TunnelTable

TUNNEL_SHIFT = np.uint64(32)


def tunnel_key(t: TunnelTable) -> np.ndarray:
    """kind << 32 | tunnel id, per tunnel-table row (0: no tunnel)."""
    return (t.kind.astype(np.uint64) << TUNNEL_SHIFT) | t.tid.astype(np.uint64)


def packet_tunnels(batch) -> np.ndarray:
    """Each packet's tunnel_key of a batch (0: not out of a tunnel)."""
    tun = np.zeros(len(batch), np.uint64)
    if len(batch.tunnels):
        tun[batch.tunnels.row] = tunnel_key(batch.tunnels)
    return tun


@njit(cache=True, nogil=True, inline="always")
def _open_table(n):
    """An open-addressing table for n keys: slot mask (a power of two, at most half full), slots
    holding group numbers (-1 empty), and each group's first row."""
    cap = 1
    while cap < 2 * n:
        cap *= 2
    return np.uint64(cap - 1), np.full(cap, -1, np.int64), np.empty(n, np.int64)


@njit(cache=True, nogil=True, aot=["UniTuple(i8[::1], 2)(u8[::1], u8[:, ::1])"])
def _hash_groups(h, keys):
    """Group id of each row (groups numbered by first row) and each group's first row: open
    addressing on the 64-bit hash, the whole key compared on every hit (collisions cost a probe)."""
    n = h.shape[0]
    mask, slots, rep = _open_table(n)
    ids = np.empty(n, np.int64)
    ng = 0
    for i in range(n):
        j = h[i] & mask
        while True:
            g = slots[j]
            if g == -1:
                slots[j] = ng
                rep[ng] = i
                ids[i] = ng
                ng += 1
                break
            r = rep[g]
            same = h[r] == h[i]
            if same:
                for c in range(keys.shape[1]):
                    if keys[r, c] != keys[i, c]:
                        same = False
                        break
            if same:
                ids[i] = g
                break
            j = (j + np.uint64(1)) & mask
    return ids, rep[:ng]


@njit(cache=True, nogil=True, aot=["i8[::1](u8[::1], u8[:, ::1], u8[::1], u8[:, ::1], u8[:, ::1], u8[::1], u8[::1])"])
def _find_keys(wh, wk, fh, src, dst, pp, tun):
    """For each flow (hash fh, key src, dst, pp, tun), the row of wk holding its key (m keys: src
    words, dst words, port_proto, tunnel key; hashes wh), or -1: the m keys in an open-addressing
    table, every flow probed once, the whole key compared on every hit."""
    mask, slots, _rep = _open_table(wh.shape[0])
    for g in range(wh.shape[0]):
        j = wh[g] & mask
        while slots[j] != -1:
            j = (j + np.uint64(1)) & mask
        slots[j] = g
    out = np.full(fh.shape[0], -1, np.int64)
    for i in range(fh.shape[0]):
        j = fh[i] & mask
        while slots[j] != -1:
            g = slots[j]
            if (wh[g] == fh[i] and wk[g, 0] == src[i, 0] and wk[g, 1] == src[i, 1] and wk[g, 2] == dst[i, 0]
                    and wk[g, 3] == dst[i, 1] and wk[g, 4] == pp[i] and wk[g, 5] == tun[i]):
                out[i] = g
                break
            j = (j + np.uint64(1)) & mask
    return out


@njit(cache=True, nogil=True, aot=["UniTuple(i8[::1], 2)(i8[::1], i8)"])
def _counting_order(ids, ng):
    """Rows ordered by group id (stable), and each group's start in that order."""
    starts = np.zeros(ng + 1, np.int64)
    for i in range(ids.shape[0]):
        starts[ids[i] + 1] += 1
    for g in range(ng):
        starts[g + 1] += starts[g]
    fill = starts[:ng].copy()
    order = np.empty(ids.shape[0], np.int64)
    for i in range(ids.shape[0]):
        order[fill[ids[i]]] = i
        fill[ids[i]] += 1
    return order, starts[:ng]


def group_ids(key_hash: np.ndarray, key_cols: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(group id of each row, first row of each group) for rows with equal keys, in one compiled
    pass (no sort). key_hash must be a function of key_cols, 1-D uint64 columns forming the key."""
    keys = np.ascontiguousarray(np.column_stack(key_cols).astype(np.uint64, copy=False))
    return _hash_groups(np.ascontiguousarray(key_hash, np.uint64), keys)


def group_rows(key_hash: np.ndarray, key_cols: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Row order and group start offsets (into that order) for rows with equal keys: groups in
    the order of their first row, rows within a group in their order. Exact whatever the hashes."""
    if len(key_hash) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    ids, reps = group_ids(key_hash, key_cols)
    return _counting_order(ids, len(reps))


def sum_by_address(words: np.ndarray, *values: np.ndarray) -> tuple[np.ndarray, ...]:
    """Exact sums of `values` per distinct address ((n, 2) uint64 words): (distinct words, sums...)."""
    if len(words) == 0:
        return (words[:0],) + tuple(v[:0] for v in values)
    order, starts = group_rows(mix(words[:, 0], words[:, 1]), [words[:, 0], words[:, 1]])
    return (words[order[starts]],) + tuple(np.add.reduceat(v[order], starts) for v in values)


def top_by(weights: np.ndarray, words: np.ndarray, n: int) -> np.ndarray:
    """Indices of the n largest weights, largest first, ties broken by address (deterministic).
    Linear time: only the chosen rows are sorted (a flood has millions of tied one-packet hosts)."""
    if len(weights) > 2 * n:
        w = weights.astype(np.int64)
        kth = _kth_smallest(w, len(w) - n)
        above = np.flatnonzero(w > kth)
        tied = np.flatnonzero(w == kth)
        if len(tied) > n - len(above):          # the smallest addresses among the tied, in linear time
            tied = tied[_smallest_words(words[tied], n - len(above))]
        chosen = np.concatenate([above, tied])
        return chosen[np.lexsort((words[chosen, 1], words[chosen, 0], -w[chosen]))]
    return np.lexsort((words[:, 1], words[:, 0], -weights.astype(np.int64)))[:n]


@njit(cache=True, nogil=True, aot=["i8(i8[::1], i8)", "u8(u8[::1], i8)"])
def _select(a, k):
    """The k-th smallest value (0-based) of a copy of `a`: quickselect with a three-way split, so
    runs of equal values (a flood's millions of one-packet hosts) cost one pass, where
    np.partition slows down 15x on them."""
    a = a.copy()
    lo, hi = 0, len(a)
    seed = np.uint64(0x9E3779B97F4A7C15)
    while True:
        seed = seed * np.uint64(6364136223846793005) + np.uint64(1442695040888963407)
        pivot = a[lo + np.int64((seed >> np.uint64(33)) % np.uint64(hi - lo))]
        lt, i, gt = lo, lo, hi                 # a[lo:lt] < pivot, a[lt:i] == pivot, a[gt:hi] > pivot
        while i < gt:
            if a[i] < pivot:
                a[lt], a[i] = a[i], a[lt]
                lt += 1
                i += 1
            elif a[i] > pivot:
                gt -= 1
                a[gt], a[i] = a[i], a[gt]
            else:
                i += 1
        if k < lt:
            hi = lt
        elif k >= gt:
            lo = gt
        else:
            return pivot


def _kth_smallest(a: np.ndarray, k: int):
    return _select(np.ascontiguousarray(a), k)


def _smallest_words(words: np.ndarray, r: int) -> np.ndarray:
    """Indices of the r smallest (word0, word1) pairs (distinct pairs), in no particular order."""
    if r <= 0:
        return np.zeros(0, np.int64)
    w0 = words[:, 0]
    kth = _kth_smallest(w0, r - 1)
    below = np.flatnonzero(w0 < kth)
    same = np.flatnonzero(w0 == kth)
    return np.concatenate([below, same[np.argsort(words[same, 1])[:r - len(below)]]])


def window_starts(ts_ns: np.ndarray, window_ns: int) -> np.ndarray:
    """Start of the tumbling window of each timestamp; window_ns 0 puts everything in window 0."""
    if window_ns <= 0:
        return np.zeros(len(ts_ns), np.int64)
    return ts_ns - ts_ns % window_ns


@njit(cache=True, nogil=True, aot=["Tuple((i8, i8[::1], u8[::1], u8[::1], i8[::1], i8[::1], u2[::1]))(u8[::1], i8[::1], "
                                    "u8[:, ::1], u8[:, ::1], u8[::1], u8[::1], u8[::1], u8[::1], i8[::1], i8[::1], "
                                    "u2[::1])"])
def _aggregate_rows(key, window, src, dst, pp, tun, packets, nbytes, first_ns, last_ns, flags):
    """Hash aggregation (open addressing on the 64-bit key hash, full key compared on every hit,
    so a hash collision only costs a probe). One pass, ~15 ns a row."""
    n = key.shape[0]
    mask, slots, rep = _open_table(n)
    pk = np.empty(n, np.uint64)
    by = np.empty(n, np.uint64)
    first = np.empty(n, np.int64)
    last = np.empty(n, np.int64)
    fl = np.empty(n, np.uint16)
    ng = 0
    for i in range(n):
        j = key[i] & mask
        while True:
            g = slots[j]
            if g == -1:
                slots[j] = ng
                rep[ng] = i
                pk[ng] = packets[i]
                by[ng] = nbytes[i]
                first[ng] = first_ns[i]
                last[ng] = last_ns[i]
                fl[ng] = flags[i]
                ng += 1
                break
            r = rep[g]
            if (key[r] == key[i] and window[r] == window[i] and pp[r] == pp[i] and src[r, 0] == src[i, 0]
                    and src[r, 1] == src[i, 1] and dst[r, 0] == dst[i, 0] and dst[r, 1] == dst[i, 1]
                    and tun[r] == tun[i]):
                pk[g] += packets[i]
                by[g] += nbytes[i]
                first[g] = min(first[g], first_ns[i])
                last[g] = max(last[g], last_ns[i])
                fl[g] |= flags[i]
                break
            j = (j + np.uint64(1)) & mask
    return ng, rep, pk, by, first, last, fl


@dataclass
class FlowTable:
    window: np.ndarray      # int64 window start, ns
    src: np.ndarray         # (n, 2) uint64 address words
    dst: np.ndarray         # (n, 2) uint64 address words
    pp: np.ndarray          # uint64 port_proto(sport, dport, proto, vlan)
    tun: np.ndarray         # uint64 tunnel_key of the packets' tunnel, 0 for none
    fhash: np.ndarray       # uint64 flow_hash of src, dst, pp (sharding; neither window nor tunnel included)
    packets: np.ndarray     # uint64
    bytes: np.ndarray       # uint64
    first_ns: np.ndarray    # int64
    last_ns: np.ndarray     # int64
    tcp_flags: np.ndarray   # uint16 OR of flags

    def __len__(self) -> int:
        return len(self.window)

    @property
    def sport(self) -> np.ndarray:
        return pp_sport(self.pp)

    @property
    def dport(self) -> np.ndarray:
        return pp_dport(self.pp)

    @property
    def proto(self) -> np.ndarray:
        return pp_proto(self.pp)

    @property
    def vlan(self) -> np.ndarray:
        return (self.pp >> VLAN_SHIFT).astype(np.uint16)

    def src_addr(self) -> np.ndarray:
        return words_to_addr(self.src)

    def dst_addr(self) -> np.ndarray:
        return words_to_addr(self.dst)

    def __setstate__(self, state: dict) -> None:
        if "tun" not in state:      # a recovery snapshot from before tunnels: none
            state["tun"] = np.zeros(len(state["window"]), np.uint64)
        self.__dict__.update(state)

    @classmethod
    def empty(cls) -> "FlowTable":
        return cls(np.zeros(0, np.int64), np.zeros((0, 2), np.uint64), np.zeros((0, 2), np.uint64),
                   np.zeros(0, np.uint64), np.zeros(0, np.uint64), np.zeros(0, np.uint64), np.zeros(0, np.uint64),
                   np.zeros(0, np.uint64), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.uint16))

    @classmethod
    def from_packets(cls, batch: PacketBatch, window_ns: int) -> "FlowTable":
        """Flow records of one packet batch (IP packets only, status ok), already aggregated."""
        ok = batch.status == STATUS_OK
        if ok.all():
            src, dst, sp, dp, pr = batch.src, batch.dst, batch.sport, batch.dport, batch.proto
            ts, ln, fl, vl = batch.ts_ns, batch.ip_len, batch.tcp_flags, batch.vlan
        else:
            src, dst, sp, dp, pr = batch.src[ok], batch.dst[ok], batch.sport[ok], batch.dport[ok], batch.proto[ok]
            ts, ln, fl, vl = batch.ts_ns[ok], batch.ip_len[ok], batch.tcp_flags[ok], batch.vlan[ok]
        sw, dw = addr_words(src), addr_words(dst)
        pp = port_proto(sp, dp, pr, vl)
        n = len(pp)
        tun = packet_tunnels(batch)
        raw = cls(window_starts(ts, window_ns), sw, dw, pp, tun if ok.all() else tun[ok], flow_hash(sw, dw, pp),
                  np.ones(n, np.uint64), ln.astype(np.uint64), ts, ts, fl.astype(np.uint16))
        return raw.aggregate()

    def aggregate(self) -> "FlowTable":
        """Merge rows with the same (window, flow key): sums, min/max times, OR of flags.

        Groups appear in the order of their first row."""
        if len(self) == 0:
            return self
        key = mix(self.fhash, self.window)
        src, dst = np.ascontiguousarray(self.src), np.ascontiguousarray(self.dst)
        ng, rep, pk, by, first, last, fl = _aggregate_rows(
            key, self.window, src, dst, self.pp, np.ascontiguousarray(self.tun, np.uint64), self.packets, self.bytes,
            self.first_ns, self.last_ns, self.tcp_flags)
        if ng == len(self):
            return self
        r = rep[:ng]
        return FlowTable(self.window[r], src[r], dst[r], self.pp[r], self.tun[r], self.fhash[r], pk[:ng], by[:ng],
                         first[:ng], last[:ng], fl[:ng])

    def find(self, keys: np.ndarray) -> np.ndarray:
        """For each record, the row of `keys` ((m, 6) uint64 flow keys: src words, dst words,
        port_proto with the VLAN, tunnel_key) equal to its key, or -1. One compiled pass."""
        keys = np.ascontiguousarray(keys, np.uint64).reshape(-1, 6)
        c = np.ascontiguousarray
        return _find_keys(flow_hash(keys[:, 0:2], keys[:, 2:4], c(keys[:, 4])), keys, c(self.fhash, np.uint64),
                          c(self.src, np.uint64), c(self.dst, np.uint64), c(self.pp, np.uint64), c(self.tun, np.uint64))

    def take(self, rows: np.ndarray) -> "FlowTable":
        return FlowTable(*(getattr(self, f.name)[rows] for f in fields(self)))

    def sorted(self) -> "FlowTable":
        """Rows in a canonical order (window, then key), so equal tables compare equal."""
        order = np.lexsort((self.tun, self.pp, self.dst[:, 1], self.dst[:, 0], self.src[:, 1], self.src[:, 0],
                            self.window))
        return self.take(order)

    def split(self, shards: int) -> list["FlowTable"]:
        """One table per shard (by flow hash); empty tables for shards with no rows."""
        if shards == 1:
            return [self]
        order, starts = _counting_order(shard_of(self.fhash, shards), shards)
        bounds = np.append(starts, len(self))
        return [self.take(order[bounds[i]:bounds[i + 1]]) for i in range(shards)]

    def select_window(self, start: int) -> "FlowTable":
        return self.take(np.flatnonzero(self.window == start))

    @staticmethod
    def concat(tables: list["FlowTable"]) -> "FlowTable":
        tables = [t for t in tables if len(t)]
        if not tables:
            return FlowTable.empty()
        if len(tables) == 1:
            return tables[0]
        return FlowTable(*(np.concatenate([getattr(t, f.name) for t in tables]) for f in fields(FlowTable)))

    def equals(self, other: "FlowTable") -> bool:
        a, b = self.sorted(), other.sorted()
        return len(a) == len(b) and all(np.array_equal(getattr(a, f.name), getattr(b, f.name)) for f in fields(a))
