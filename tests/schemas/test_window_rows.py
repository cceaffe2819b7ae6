"""Coded text columns (schemas/window_rows.py): several windows' columns concatenated keep their
rows' values, with each value once in the dictionary (ClickHouse refuses an Arrow dictionary that
repeats one)."""
from __future__ import annotations

import numpy as np
from hypothesis import given, strategies as st

from schemas.window_rows import Coded, _concat

_PART = st.lists(st.sampled_from(["", "a.example", "b.example", "c"]), max_size=8).map(
    lambda rows: Coded(np.array([sorted(set(rows) | {""}).index(r) for r in rows], np.int32), sorted(set(rows) | {""})))


@given(st.lists(_PART, min_size=1, max_size=5))
def test_concatenated_codes_keep_every_rows_value_and_distinct_values(parts):
    got = _concat(parts)
    assert got.tolist() == [v for p in parts for v in p.tolist()]
    assert len(set(got.values)) == len(got.values) and got.codes.dtype == np.int32
