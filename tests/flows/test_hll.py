"""HLL sketches built from arrays (flows/hll.py) against DataSketches' own update, bit for bit."""
from __future__ import annotations

import datasketches as ds
import numpy as np
from hypothesis import given, settings, strategies as st

from flows import hll

LG_K = 12


def reference(values, lg_k=LG_K) -> ds.hll_sketch:
    s = ds.hll_sketch(lg_k, ds.HLL_8)
    for v in values:
        s.update(int(v))
    return s


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-2**63, 2**63 - 1), max_size=300))
def test_coupons_are_those_of_update(values):
    """Each value alone: the one register update() sets is the slot and value we compute."""
    v = np.array(values, np.int64)
    slot, val = hll.coupons(v, LG_K)
    for x, s, c in zip(values, slot.tolist(), val.tolist()):
        img = reference([x]).serialize_updatable()
        # one coupon: a sketch in LIST mode holds it as (value << 26) | slot, after an 8-byte header
        coupon = int.from_bytes(img[8:12], "little")
        assert (coupon & ((1 << LG_K) - 1), coupon >> 26) == (s, c)


def test_registers_bit_for_bit_in_hll_mode():
    rng = np.random.default_rng(7)
    for n in (3000, 50_000):                         # past the coupon modes: the reference is dense
        v = rng.integers(-2**63, 2**63 - 1, n, dtype=np.int64)
        ref = reference(v).serialize_updatable()
        assert ref[7] & 3 == 2, "the reference sketch should be in HLL mode"
        ours = hll.registers(np.zeros(n, np.int64), v, 1, LG_K)[0]
        assert ours.tobytes() == ref[40:40 + (1 << LG_K)]


def test_groups_images_estimates_and_unions():
    rng = np.random.default_rng(8)
    sizes = [1, 50, 2000, 40_000]
    values = [rng.integers(-2**63, 2**63 - 1, n, dtype=np.int64) for n in sizes]
    groups = np.repeat(np.arange(len(sizes)), sizes)
    sketches = hll.sketches(groups, np.concatenate(values), len(sizes), LG_K)
    for n, v, sk in zip(sizes, values, sketches):
        assert sk.get_lower_bound(2) <= n <= sk.get_upper_bound(2)
        assert abs(sk.get_estimate() - n) <= 0.05 * n + 1
        u = ds.hll_union(LG_K)                    # a union with update()'s sketch of the same values
        u.update(sk)
        u.update(reference(v))
        assert abs(u.get_estimate() - sk.get_estimate()) <= 1e-6 * n + 1e-9
        again = ds.hll_sketch.deserialize(sk.serialize_compact())
        assert again.get_estimate() == sk.get_estimate()
    empty = hll.sketches(np.zeros(0, np.int64), np.zeros(0, np.int64), 1, LG_K)[0]
    assert empty.is_empty() and empty.get_estimate() == 0
