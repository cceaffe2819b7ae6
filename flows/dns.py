"""Per-host DNS counts of a window, from the decoder's L7 rows: what the dns_anomaly detector
judges; and the names the window's responses gave addresses (the dns_names table).

A host's queries are DNS queries it sent (it is the packet's source); its answers are DNS
responses it received (it is the destination), and nxdomain those of them with rcode 3. Counted
exactly per batch with one group-by over the batch's DNS rows (never a Python step per packet),
summed per window as batches pile up, and carried beside the window's flow records.

Names: per (address, record owner, question) the A and AAAA records that said so. The decoder
already parsed each response in Python (collectors/decode/dns.py), so its records are counted
with a dict here, at a fraction of that cost; at most MAX_NAMES keys a window, the records of
others counted in `names_dropped`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from collectors.decode.dns import CNAME
from flows.table import sum_by_address
from schemas.addresses import from_text
from schemas.flow_key import addr_words
from schemas.packet_batch import PacketBatch

NXDOMAIN = 3
NO_VALUE = -1      # the decoder's dns_qtype / dns_rcode of a row that is not DNS
MAX_NAMES = 100_000     # (address, name, question) keys a window keeps (a random-subdomain flood has more)


@dataclass(frozen=True)
class DnsCounts:
    words: np.ndarray       # (n, 2) uint64 host addresses
    queries: np.ndarray     # uint64
    answers: np.ndarray     # uint64
    nxdomain: np.ndarray    # uint64
    names: dict = field(default_factory=dict)   # (address text, owner, question) -> A/AAAA records
    names_dropped: int = 0                      # records of keys past MAX_NAMES

    def __len__(self) -> int:
        return len(self.words)

    @staticmethod
    def empty() -> "DnsCounts":
        z = np.zeros(0, np.uint64)
        return DnsCounts(np.zeros((0, 2), np.uint64), z, z, z)

    @staticmethod
    def from_batch(batch: PacketBatch, wins: np.ndarray, starts: list[int]) -> dict[int, "DnsCounts"]:
        """window start -> counts of the batch's DNS packets in that window."""
        l7 = batch.l7
        if not len(l7):
            return {}
        qtype = np.asarray(l7.dns_qtype, np.int64)
        dns = qtype != NO_VALUE
        if not dns.any():
            return {}
        row = l7.row[dns].astype(np.int64)
        response = np.asarray(l7.dns_response, bool)[dns]
        nx = response & (np.asarray(l7.dns_rcode, np.int64)[dns] == NXDOMAIN)
        host = np.where(response[:, None], addr_words(batch.dst[row]), addr_words(batch.src[row]))
        w = wins[row]
        one = np.ones(len(row), np.uint64)
        names = _names(l7, np.flatnonzero(dns)[response], w[response])
        out = {}
        for start in starts:
            m = slice(None) if len(starts) == 1 else w == start
            words, q, a, n = sum_by_address(np.ascontiguousarray(host[m]), one[m] * ~response[m], one[m] * response[m],
                                            one[m] * nx[m])
            if len(words):
                named, dropped = names.get(start, ({}, 0))
                out[start] = DnsCounts(words, q, a, n, named, dropped)
        return out

    def name_rows(self) -> tuple[np.ndarray, list[str], list[str], np.ndarray, int]:
        """The names as table columns, sorted: addresses (n, 16) uint8, owners, questions, records;
        and the records left out (past MAX_NAMES, or an address that is not one: a corrupt message)."""
        rows, bad = [], self.names_dropped
        for (text, owner, query), c in sorted(self.names.items()):
            try:
                rows.append((from_text(text), owner, query, c))
            except ValueError:
                bad += c
        addr = np.frombuffer(b"".join(r[0] for r in rows), np.uint8).reshape(-1, 16)
        return addr, [r[1] for r in rows], [r[2] for r in rows], np.array([r[3] for r in rows], np.uint64), bad

    @staticmethod
    def combine(parts: list["DnsCounts"]) -> "DnsCounts":
        parts = [p for p in parts if p is not None and len(p)]
        if not parts:
            return DnsCounts.empty()
        if len(parts) == 1:
            return parts[0]
        words, q, a, n = sum_by_address(np.concatenate([p.words for p in parts]),
                                        *(np.concatenate([getattr(p, c) for p in parts])
                                          for c in ("queries", "answers", "nxdomain")))
        names = dict(parts[0].names)
        dropped = sum(p.names_dropped for p in parts)
        for p in parts[1:]:
            dropped += _add(names, p.names.items())
        return DnsCounts(words, q, a, n, names, dropped)


def _add(names: dict, items) -> int:
    """Add (key, records) to `names`, new keys only up to MAX_NAMES; the records left out."""
    dropped = 0
    for k, c in items:
        if k in names:
            names[k] += c
        elif len(names) < MAX_NAMES:
            names[k] = c
        else:
            dropped += c
    return dropped


def _names(l7, idx: np.ndarray, wins: np.ndarray) -> dict[int, tuple[dict, int]]:
    """window -> ({(address, owner, question): A/AAAA records}, records past MAX_NAMES) of the
    responses at L7 rows `idx` (their windows `wins`)."""
    answers, qnames = l7.dns_answers, l7.dns_qname
    if not len(answers) or not len(idx):
        return {}
    out: dict[int, tuple[dict, int]] = {}
    for i, w in zip(idx.tolist(), wins.tolist()):
        recs = answers[i]
        if recs:
            q = qnames[i] or ""
            got = [((value, owner, q), 1) for owner, rtype, value in recs
                   if rtype != CNAME and isinstance(value, str) and isinstance(owner, str)]   # str: not a corrupt message's None
            if got:
                named, dropped = out.get(w, ({}, 0))
                out[w] = (named, dropped + _add(named, got))
    return out
