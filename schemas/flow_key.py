"""The flow key and its hash: how packets are grouped into flows and spread over shards.

A unidirectional flow is (src, dst, sport, dport, proto, vlan), vlan being the outermost VLAN id
(0 untagged), as ntopng keys flows: the same 5-tuple in two VLANs is two conversations.
Collectors partition Kafka by `flow_hash` of the 5-tuple (so a 5-tuple's VLANs share a
partition), and the dataflow shards its state by `flow_hash` of the whole key, so one flow
always lands in one partition and one shard. The hash is a fixed function of the key bytes (not Python's
randomised `hash`), so every process and every run agrees on it.

Addresses are handled as two uint64 words (a zero-copy view of the 16-byte column): equality
of words is equality of addresses, and words hash cheaply with vectorised integer arithmetic.
"""
from __future__ import annotations

import numpy as np

from schemas.jit import vectorize

_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xBF58476D1CE4E5B9)
_M3 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)


def addr_words(addr16: np.ndarray) -> np.ndarray:
    """(n, 16) uint8 addresses -> (n, 2) uint64 words (a view when the column is contiguous)."""
    return np.ascontiguousarray(addr16).view(np.uint64).reshape(-1, 2)


def words_to_addr(words: np.ndarray) -> np.ndarray:
    """(n, 2) uint64 words -> (n, 16) uint8 addresses."""
    return np.ascontiguousarray(words).view(np.uint8).reshape(-1, 16)


VLAN_SHIFT = np.uint64(40)
FIVE_TUPLE_MASK = np.uint64((1 << 40) - 1)     # the port/protocol bits of `port_proto`, without the VLAN


def port_proto(sport: np.ndarray, dport: np.ndarray, proto: np.ndarray, vlan: np.ndarray | None = None) -> np.ndarray:
    """Ports, protocol and (optionally) VLAN packed in one uint64: vlan << 40 | sport << 24 | dport << 8 | proto."""
    pp = (sport.astype(np.uint64) << np.uint64(24)) | (dport.astype(np.uint64) << np.uint64(8)) | proto.astype(np.uint64)
    return pp if vlan is None else pp | ((vlan.astype(np.uint64) & np.uint64(0xFFF)) << VLAN_SHIFT)


def pp_sport(pp: np.ndarray) -> np.ndarray:
    """The source ports of `port_proto` values."""
    return (pp >> np.uint64(24)).astype(np.uint16)


def pp_dport(pp: np.ndarray) -> np.ndarray:
    return ((pp >> np.uint64(8)) & np.uint64(0xFFFF)).astype(np.uint16)


def pp_proto(pp: np.ndarray) -> np.ndarray:
    return (pp & np.uint64(0xFF)).astype(np.uint8)


@vectorize(["uint64(uint64, uint64)"], aot="void(u8[::1], u8[:], u8[::1])", cache=True, nopython=True)
def _step(h, c):
    # one column into the hash, then the splitmix64 finaliser: every input bit affects every output
    # bit. Compiled as a ufunc: one pass over memory per column (numpy needed eight).
    h = h * _M1 + c
    h = (h ^ (h >> _S30)) * _M2
    h = (h ^ (h >> _S27)) * _M3
    return h ^ (h >> _S31)


def mix(*columns: np.ndarray) -> np.ndarray:
    """A 64-bit hash of several integer columns, row by row."""
    h = np.zeros(len(columns[0]), np.uint64)
    for c in columns:
        h = _step(h, c.astype(np.uint64, copy=False))
    return h


def flow_hash(src_w: np.ndarray, dst_w: np.ndarray, pp: np.ndarray) -> np.ndarray:
    """Hash of the flow key from address words and `port_proto` (with or without the VLAN)."""
    return mix(src_w[:, 0], src_w[:, 1], dst_w[:, 0], dst_w[:, 1], pp)


def shard_of(fhash: np.ndarray, shards: int) -> np.ndarray:
    """Shard (or Kafka partition) of each flow hash. Uses the high bits, independent of `mix`'s low bits' use."""
    return ((fhash >> np.uint64(32)) % np.uint64(shards)).astype(np.int64)
