"""DataSketches HLL sketches built from arrays: no Python call per element.

`hll_sketch.update(v)` costs ~0.5 µs of Python per element; a spoofed flood's victim has millions
of distinct sources. This module computes what `update` computes for a 64-bit integer, for a
whole array at once with numpy, and writes the result as a serialised DataSketches HLL_8 image
that `ds.hll_sketch.deserialize` reads back:

- the hash: MurmurHash3_x64_128 of the integer's 8 little-endian bytes with DataSketches' seed
  9001 (HllUtil::hash);
- the coupon: slot = low lg_k bits of the first hash word, value = leading zeros of the second
  word + 1, capped at 63 (HllUtil::coupon);
- the register: the maximum value per slot (Hll8Array::couponUpdate).

The image is in HLL mode with the out-of-order flag set (as a union's result is), so the sketch
uses its composite estimator instead of the HIP accumulator, which depends on update order.
Registers are bit for bit what `update` produces (tests/flows/test_hll.py).
"""
from __future__ import annotations

import struct

import datasketches as ds
import numpy as np

from schemas.jit import njit

SEED = np.uint64(9001)
_C1 = np.uint64(0x87C37B91114253D5)
_C2 = np.uint64(0x4CF5AD432745937F)
_HEADER = struct.Struct("<BBBBBBBBdddII")      # HllArray::serialize, 40 bytes
_OUT_OF_ORDER, _EMPTY = 16, 4
_MODE_HLL_8 = 2 | (2 << 2)                     # cur mode HLL (2), target HLL_8 (2)


_M1, _M2 = np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53)


@njit(cache=True, nogil=True, inline="always")
def _fmix(k):
    k ^= k >> np.uint64(33)
    k *= _M1
    k ^= k >> np.uint64(33)
    k *= _M2
    return k ^ (k >> np.uint64(33))


@njit(cache=True, nogil=True, inline="always")
def _coupon(v, mask):
    """(slot, value) of one int64 as uint64: MurmurHash3_x64_128 of its 8 bytes, then the coupon."""
    k1 = v * _C1
    k1 = ((k1 << np.uint64(31)) | (k1 >> np.uint64(33))) * _C2
    h1 = SEED ^ k1 ^ np.uint64(8)           # the 8 bytes are the tail (no 16-byte blocks), then ^= len
    h2 = SEED ^ np.uint64(8)
    h1 += h2
    h2 += h1
    h1, h2 = _fmix(h1), _fmix(h2)
    h1 += h2
    h2 += h1
    lz = 0
    while lz < 62 and not (h2 >> np.uint64(63 - lz)) & np.uint64(1):
        lz += 1
    return h1 & mask, lz + 1


@njit(cache=True, nogil=True, aot=["u1[::1](i8[::1], i8[::1], i8, i8)"])
def _registers(groups, values, n_groups, lg_k):
    k = 1 << lg_k
    mask = np.uint64(k - 1)
    regs = np.zeros(n_groups * k, np.uint8)
    for i in range(len(values)):
        slot, val = _coupon(np.uint64(values[i]), mask)
        j = groups[i] * k + np.int64(slot)
        if val > regs[j]:
            regs[j] = val
    return regs


@njit(cache=True, nogil=True, aot=["Tuple((i8[::1], u1[::1]))(i8[::1], i8)"])
def _coupons(values, lg_k):
    mask = np.uint64((1 << lg_k) - 1)
    slot = np.empty(len(values), np.int64)
    val = np.empty(len(values), np.uint8)
    for i in range(len(values)):
        s, v = _coupon(np.uint64(values[i]), mask)
        slot[i], val[i] = np.int64(s), v
    return slot, val


def coupons(values: np.ndarray, lg_k: int) -> tuple[np.ndarray, np.ndarray]:
    """(slot, value) that `hll_sketch(lg_k).update(v)` gives each int64 v."""
    return _coupons(np.ascontiguousarray(values, np.int64), lg_k)


def registers(groups: np.ndarray, values: np.ndarray, n_groups: int, lg_k: int) -> np.ndarray:
    """(n_groups, 2^lg_k) uint8 HLL_8 registers: values[i] (int64) goes into group groups[i]."""
    regs = _registers(np.ascontiguousarray(groups, np.int64), np.ascontiguousarray(values, np.int64), n_groups, lg_k)
    return regs.reshape(n_groups, 1 << lg_k)


def image(regs: np.ndarray, lg_k: int) -> bytes:
    """A serialised HLL_8 sketch in HLL mode (out of order) holding these registers."""
    inv = np.ldexp(1.0, -regs.astype(np.int64))
    low = regs < 32
    kxq0, kxq1 = float(inv[low].sum()), float(inv[~low].sum())
    zeros = int(np.count_nonzero(regs == 0))
    flags = _OUT_OF_ORDER | (_EMPTY if zeros == len(regs) else 0)
    head = _HEADER.pack(10, 1, 7, lg_k, 0, flags, 0, _MODE_HLL_8, 0.0, kxq0, kxq1, zeros, 0)
    return head + regs.tobytes()


def sketches(groups: np.ndarray, values: np.ndarray, n_groups: int, lg_k: int) -> list:
    """One ds.hll_sketch per group, as if each group's values had been `update`d into it."""
    regs = registers(groups, values, n_groups, lg_k)
    return [ds.hll_sketch.deserialize(image(r, lg_k)) for r in regs]
