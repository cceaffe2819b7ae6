"""Per-host DNS counts of a window, from the decoder's L7 rows: what the dns_anomaly detector judges.

A host's queries are DNS queries it sent (it is the packet's source); its answers are DNS
responses it received (it is the destination), and nxdomain those of them with rcode 3. Counted
exactly per batch with one group-by over the batch's DNS rows (never a Python step per packet),
summed per window as batches pile up, and carried beside the window's flow records.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flows.table import sum_by_address
from schemas.flow_key import addr_words
from schemas.packet_batch import PacketBatch

NXDOMAIN = 3
NO_VALUE = -1      # the decoder's dns_qtype / dns_rcode of a row that is not DNS


@dataclass(frozen=True)
class DnsCounts:
    words: np.ndarray       # (n, 2) uint64 host addresses
    queries: np.ndarray     # uint64
    answers: np.ndarray     # uint64
    nxdomain: np.ndarray    # uint64

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
        out = {}
        for start in starts:
            m = slice(None) if len(starts) == 1 else w == start
            words, q, a, n = sum_by_address(np.ascontiguousarray(host[m]), one[m] * ~response[m], one[m] * response[m],
                                            one[m] * nx[m])
            if len(words):
                out[start] = DnsCounts(words, q, a, n)
        return out

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
        return DnsCounts(words, q, a, n)
