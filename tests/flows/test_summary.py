"""The report's exact port-scanner list against brute force, including the pruning by records."""
from __future__ import annotations

import collections

import numpy as np
from hypothesis import given, settings, strategies as st

from flows.summary import top_port_spread
from flows.table import FlowTable
from schemas.addresses import to_text
from schemas.flow_key import addr_words, flow_hash, port_proto, words_to_addr


def table(rows) -> FlowTable:
    n = len(rows)
    src, dst = np.zeros((n, 16), np.uint8), np.zeros((n, 16), np.uint8)
    src[:, 10:12] = dst[:, 10:12] = 0xFF
    for i, (s, d, _, _) in enumerate(rows):
        src[i, 12:] = (10, 0, 0, s)
        dst[i, 12:] = (10, 0, 1, d)
    dport = np.array([r[2] for r in rows], np.uint16)
    proto = np.array([r[3] for r in rows], np.uint8)
    sw, dw, pp = addr_words(src), addr_words(dst), port_proto(np.zeros(n, np.uint16), dport, proto)
    return FlowTable(np.zeros(n, np.int64), sw, dw, pp, np.zeros(n, np.uint64), flow_hash(sw, dw, pp),
                     np.ones(n, np.uint64),
                     np.ones(n, np.uint64), np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.uint16)).aggregate()


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.tuples(st.integers(0, 30), st.integers(0, 5), st.integers(0, 60), st.sampled_from([1, 6, 17])),
                     min_size=1, max_size=400), n=st.integers(1, 6), least=st.integers(1, 12))
def test_top_port_spread_is_the_brute_force_top(rows, n, least):
    truth = collections.defaultdict(set)
    for s, _, dport, proto in rows:
        if proto in (6, 17):
            truth[f"10.0.0.{s}"].add(dport)
    words, counts = top_port_spread(table(rows), n, least)
    got = [(to_text(a.tobytes()), c) for a, c in zip(words_to_addr(words), counts.tolist())]
    assert [c for _, c in got] == sorted((len(v) for v in truth.values() if len(v) >= least), reverse=True)[:n]
    assert all(len(truth[a]) == c for a, c in got)
