"""The TLS names of flow records: per flow, the server name (SNI), JA4 and offered ALPN of its
connection's first ClientHello (TLS over TCP, or a QUIC or DTLS Initial), from the decoder's L7
rows.

Flow keys hold the tunnel (flows/table.py): a hello in one tenant's VXLAN segment names that
tenant's connection only. A flow record is one direction; the names are the connection's, so a
hello names its flow and the reverse one (the server's answers): a name then selects the
downloads as well as the requests, as a probe's bidirectional flow would. Earliest hello wins
(by packet time, then by value), so any order of batches, shards and revisions gives the same
names. A connection lasts longer than a window: each shard remembers the names of the
connections whose hello it saw (TlsMemory, the TLS_MEMORY_KEYS flow keys seen most recently),
and names their records in later windows too.

The decoder parsed each hello in Python already (collectors/decode/tls.py), so hellos are
gathered with a dict here, at a fraction of that cost; a window's flow records are matched to
them in one compiled pass (flows/table.py FlowTable.find), and the names are coded columns
(schemas/window_rows.py Coded): no Python step per flow record. A window keeps at most
MAX_TLS_FLOWS flow keys with a hello; the others' hellos are counted in `tls_names_dropped`.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from collectors.decode.tls import CLIENT_HELLO
from flows.table import packet_tunnels
from schemas.flow_key import addr_words, flow_hash, port_proto, shard_of
from schemas.window_rows import Coded

MAX_TLS_FLOWS = 100_000     # flow keys with a name a window keeps: a TLS flood has more
# Flow keys a shard remembers (the most recently seen: a connection's records keep its key fresh):
# ~0.6 kB each in memory and ~75 B in the recovery snapshot (measured with 100k), so ~30 MB and
# ~4 MB a shard when full, for 25k connections (both directions) with a record in recent windows.
TLS_MEMORY_KEYS = 50_000
TLS_COLUMNS = ("tls_sni", "tls_ja4", "tls_alpn")      # the flows table's columns they fill


@dataclass(frozen=True)
class TlsNames:
    # (src word 0, src word 1, dst word 0, dst word 1, port_proto, tunnel_key) -> (ts_ns, sni, ja4, alpn)
    hellos: dict = field(default_factory=dict)
    dropped: int = 0            # hellos left out past MAX_TLS_FLOWS

    def __setstate__(self, state):
        # a snapshot from before tunnels keyed flows: 5-word keys, out of no tunnel
        hellos = state["hellos"]
        if hellos and len(next(iter(hellos))) == 5:
            state = {**state, "hellos": {k + (0,): v for k, v in hellos.items()}}
        self.__dict__.update(state)

    def __len__(self) -> int:
        return len(self.hellos)

    @staticmethod
    def from_batch(batch, wins: np.ndarray, starts: list[int]) -> dict[int, "TlsNames"]:
        """window start -> the first ClientHello of each connection of the batch in that window,
        under its flow key and the reverse one."""
        l7 = batch.l7
        if not len(l7) or not l7.tls_hello:
            return {}
        idx = np.flatnonzero(np.asarray(l7.tls_hello, np.int64) == CLIENT_HELLO)
        if not len(idx):
            return {}
        rows = l7.row[idx].astype(np.int64)
        src, dst = addr_words(batch.src[rows]), addr_words(batch.dst[rows])
        sp, dp, pr, vl = batch.sport[rows], batch.dport[rows], batch.proto[rows], batch.vlan[rows]
        pp, back = port_proto(sp, dp, pr, vl).tolist(), port_proto(dp, sp, pr, vl).tolist()
        s0, s1, d0, d1 = src[:, 0].tolist(), src[:, 1].tolist(), dst[:, 0].tolist(), dst[:, 1].tolist()
        tun = packet_tunnels(batch)[rows].tolist()
        sni, ja4, alpn = l7.tls_sni, l7.tls_ja4, l7.tls_alpn
        out: dict[int, dict] = {}
        dropped: dict[int, int] = {}
        for j, (i, ts, w) in enumerate(zip(idx.tolist(), batch.ts_ns[rows].tolist(), wins[rows].tolist())):
            names = out.setdefault(w, {})
            v = (ts, sni[i] or "", ja4[i] or "", ",".join(alpn[i] or ()))
            lost = _keep(names, (s0[j], s1[j], d0[j], d1[j], pp[j], tun[j]), v)
            lost += _keep(names, (d0[j], d1[j], s0[j], s1[j], back[j], tun[j]), v)
            dropped[w] = dropped.get(w, 0) + min(lost, 1)
        return {w: TlsNames(h, dropped[w]) for w, h in out.items()}

    @staticmethod
    def combine(parts: list) -> "TlsNames | None":
        parts = [p for p in parts if p is not None]
        if len(parts) <= 1:
            return parts[0] if parts else None
        hellos = dict(parts[0].hellos)
        dropped = sum(p.dropped for p in parts)
        for p in parts[1:]:
            for k, v in p.hellos.items():
                dropped += _keep(hellos, k, v)
        return TlsNames(hellos, dropped)

    def keys(self) -> np.ndarray:
        """(m, 6) uint64: the flow keys named."""
        return np.array(list(self.hellos), np.uint64).reshape(-1, 6)

    def split(self, shards: int) -> list["TlsNames | None"]:
        """One part a shard: each flow key's name to the shard of its records (flow_key.shard_of)."""
        if shards == 1:
            return [self]
        k = self.keys()
        shard = shard_of(flow_hash(k[:, 0:2], k[:, 2:4], k[:, 4].copy()), shards).tolist()
        parts: list[dict] = [{} for _ in range(shards)]
        for s, (key, v) in zip(shard, self.hellos.items()):
            parts[s][key] = v
        return [TlsNames(p, self.dropped if i == 0 else 0) if p or (i == 0 and self.dropped) else None
                for i, p in enumerate(parts)]

    def columns(self, flows) -> dict[str, Coded]:
        """The flows table's TLS_COLUMNS for a FlowTable: each record's names, '' without;
        coded, so a window without hellos costs three arrays of zeros."""
        n = len(flows)
        if not self.hellos or not n:
            return {c: Coded(np.zeros(n, np.int32), [""]) for c in TLS_COLUMNS}
        row = flows.find(self.keys())           # each record's entry of `hellos`, or -1
        hit = np.flatnonzero(row >= 0)
        out = {}
        for i, c in enumerate(TLS_COLUMNS):
            values: dict[str, int] = {"": 0}
            code = np.array([values.setdefault(v[1 + i], len(values)) for v in self.hellos.values()], np.int32)
            codes = np.zeros(n, np.int32)
            codes[hit] = code[row[hit]]
            out[c] = Coded(codes, list(values))
        return out


class TlsMemory:
    """One shard's names of the connections whose hellos it saw in windows it closed: a window's
    records of such a connection get them, with no hello of their own. The TLS_MEMORY_KEYS flow
    keys most recently seen are kept (in the recovery snapshot with the rest of the shard's state).

    The keys are also kept as an array for FlowTable.find, grown by each window's new keys: one
    made from the whole memory at every close cost ~40 ms a shard with a full memory. Keys
    forgotten since stay in it (a hit on one is checked against `names`) until they are most of
    it; then it is made again."""

    def __init__(self):
        self.names: OrderedDict = OrderedDict()
        self._rows: list = []               # the array's keys, row by row: every key of `names`, and forgotten ones
        self._keys = np.zeros((0, 6), np.uint64)

    def __getstate__(self):
        return {"names": self.names}        # the array is made again on restore

    def __setstate__(self, state):
        names = state["names"]
        if names and len(next(iter(names))) == 5:      # a snapshot from before tunnels keyed flows
            names = OrderedDict((k + (0,), v) for k, v in names.items())
        self.names = names
        self._rows = list(self.names)
        self._keys = np.array(self._rows, np.uint64).reshape(-1, 6)

    def copy(self) -> "TlsMemory":
        m = TlsMemory()
        m.names = self.names.copy()         # its values are tuples: shared, never modified
        m._rows, m._keys = list(self._rows), self._keys      # the array is replaced, never written
        return m

    def name(self, flows, window: "TlsNames | None") -> "TlsNames | None":
        """The window's names joined by those remembered for its records; then remember the window's."""
        found = {}
        if self.names and len(flows):
            if len(self._rows) > 2 * len(self.names):
                self.__setstate__({"names": self.names})
            row = flows.find(self._keys)
            for j in np.unique(row[row >= 0]).tolist():
                k = self._rows[j]
                v = self.names.get(k)
                if v is not None:
                    found[k] = v
            for k in sorted(found):         # seen in the same window: the smaller key counts as older
                self.names.move_to_end(k)
        if window is not None:
            new = []
            for k, v in window.hellos.items():
                have = self.names.get(k)
                if have is None:
                    new.append(k)
                if have is None or v < have:
                    self.names[k] = v
                self.names.move_to_end(k)
            while len(self.names) > TLS_MEMORY_KEYS:
                self.names.popitem(last=False)
            if new:
                self._rows.extend(new)
                self._keys = np.concatenate([self._keys, np.array(new, np.uint64).reshape(-1, 6)])
        return TlsNames.combine([TlsNames(found), window]) if found else window


def _keep(names: dict, key: tuple, value: tuple) -> int:
    """Keep the earlier of `value` and what `names` holds for `key` (new keys up to MAX_TLS_FLOWS);
    1 when it was left out."""
    have = names.get(key)
    if have is None:
        if len(names) >= MAX_TLS_FLOWS:
            return 1
        names[key] = value
    elif value < have:
        names[key] = value
    return 0
