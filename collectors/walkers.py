"""Record walkers for capture files, compiled with numba.

Finding where each record starts is inherently sequential (each header gives the next
offset), so numpy cannot vectorise it and a Python loop costs ~0.3 µs per packet. These
walkers touch only record headers and fill preallocated arrays; the packet bytes stay in
the memory-mapped file and are decoded column-wise by collectors.decode.

Status codes returned by the walkers (see WalkStatus in capture_file.py).
"""
from __future__ import annotations

import numpy as np

from collectors.protocols import MAX_RECORD_BYTES
from schemas.jit import njit

BATCH_FULL = 0       # the output arrays are full; call again from the returned position
CLEAN_EOF = 1        # the file ended exactly on a record boundary
TRUNCATED = 2        # the file ends inside a record (header or data)
CORRUPT = 3          # a record header is impossible (giant length, bad block); resync is not possible

# Error slots counted by the pcapng walker (indices into its `err` array).
ERR_UNKNOWN_INTERFACE = 0
ERR_BAD_TIMESTAMP = 1
ERR_CAPLEN_OVER_BLOCK = 2
ERR_TOO_MANY_INTERFACES = 3
WALK_ERROR_NAMES = ("unknown_interface", "bad_timestamp", "caplen_beyond_block", "too_many_interfaces")

MAX_INTERFACES = 4096
PREFETCH = 8192      # bytes of the file read ahead of the walk (_read_ahead)
INT64_MAX = np.int64(0x7FFFFFFFFFFFFFFF)


@njit(cache=True, nogil=True, inline="always")
def _u16(buf, p, big):
    if big:
        return (np.int64(buf[p]) << 8) | np.int64(buf[p + 1])
    return np.int64(buf[p]) | (np.int64(buf[p + 1]) << 8)


@njit(cache=True, nogil=True, inline="always")
def _u32(buf, p, big):
    if big:
        return ((np.int64(buf[p]) << 24) | (np.int64(buf[p + 1]) << 16)
                | (np.int64(buf[p + 2]) << 8) | np.int64(buf[p + 3]))
    return (np.int64(buf[p]) | (np.int64(buf[p + 1]) << 8)
            | (np.int64(buf[p + 2]) << 16) | (np.int64(buf[p + 3]) << 24))


@njit(cache=True, nogil=True, inline="always")
def _read_ahead(buf, ahead, limit, touched):
    """Each record's place depends on the last one's length: walking them is a chain of cache
    misses (~100 ns a record). Reading every cache line up to `limit` (PREFETCH bytes on),
    loads that depend on nothing, brings the lines in meanwhile: the walk runs 5x faster.
    Returns where it got to and the bytes read folded together (the caller must use them, or
    the compiler leaves the reads out)."""
    while ahead < limit:
        touched ^= buf[ahead]
        ahead += 64
    return ahead, touched


@njit(cache=True, nogil=True, aot=["UniTuple(i8, 3)(u1[::1], i8, b1, b1, i8[::1], i8[::1], i8[::1], i8[::1])"])
def walk_pcap(buf, pos, big, nanos, off, caplen, wirelen, ts):
    """Walk classic pcap records from `pos` until the output arrays are full or the file ends.

    Returns (n_records, next_pos, status)."""
    end = buf.shape[0]
    cap = off.shape[0]
    frac_mul = np.int64(1) if nanos else np.int64(1000)
    n = 0
    ahead, touched = pos, np.uint8(0)
    while n < cap:
        if pos == end:
            return n, pos, CLEAN_EOF
        if pos + 16 > end:
            return n, pos, TRUNCATED
        ahead, touched = _read_ahead(buf, ahead, min(pos + PREFETCH, end), touched)
        if (touched == 7) & (ahead < 0):     # never: uses what was read, so that it is read
            return n, pos, CORRUPT
        incl = _u32(buf, pos + 8, big)
        if incl > MAX_RECORD_BYTES:
            return n, pos, CORRUPT
        if pos + 16 + incl > end:
            return n, pos, TRUNCATED
        ts[n] = _u32(buf, pos, big) * np.int64(1_000_000_000) + _u32(buf, pos + 4, big) * frac_mul
        caplen[n] = incl
        wirelen[n] = _u32(buf, pos + 12, big)
        off[n] = pos + 16
        pos += 16 + incl
        n += 1
    return n, pos, BATCH_FULL


@njit(cache=True, nogil=True)
def _ts_to_ns(hi, lo, mul, div, binexp, tsoff, err):
    units = (hi << 32) | lo          # hi < 2**32, so this fits in uint64; int64 overflows only if hi >= 2**31
    if hi >= 0x80000000:
        err[ERR_BAD_TIMESTAMP] += 1
        return INT64_MAX
    if binexp > 0:
        v = np.float64(units) * (1e9 / np.float64(2.0 ** binexp))
        ns = np.int64(v) if v < 9.2e18 else INT64_MAX
    elif mul > 1:
        if units > INT64_MAX // mul:
            err[ERR_BAD_TIMESTAMP] += 1
            return INT64_MAX
        ns = units * mul
    else:
        ns = units // div
    return ns + tsoff * np.int64(1_000_000_000)


@njit(cache=True, nogil=True, aot=["UniTuple(i8, 3)(u1[::1], i8, i8[::1], i8[::1], i8[::1], i8[::1], i8[::1], i8[::1], i8[::1], i8[::1], i8[::1], i8[::1], i8[::1], i8[::1], i8[::1])"])
def walk_pcapng(buf, pos, state, if_link, if_mul, if_div, if_bin, if_snap, if_tsoff,
                off, caplen, wirelen, ts, iface, err):
    """Walk pcapng blocks. Interface tables persist across calls in the if_* arrays.

    state = [big_endian, section_iface_base, n_ifaces_total]; interfaces are numbered
    globally across sections. Returns (n_packets, next_pos, status)."""
    end = buf.shape[0]
    cap = off.shape[0]
    n = 0
    ahead, touched = pos, np.uint8(0)
    while n < cap:
        if pos == end:
            return n, pos, CLEAN_EOF
        if pos + 12 > end:
            return n, pos, TRUNCATED
        ahead, touched = _read_ahead(buf, ahead, min(pos + PREFETCH, end), touched)
        if (touched == 7) & (ahead < 0):     # never: uses what was read, so that it is read
            return n, pos, CORRUPT
        btype = _u32(buf, pos, False)
        if btype == 0x0A0D0D0A:  # section header: sets the byte order of what follows
            if pos + 28 > end:
                return n, pos, TRUNCATED
            bom_le = _u32(buf, pos + 8, False)
            if bom_le == 0x1A2B3C4D:
                state[0] = 0
            elif bom_le == 0x4D3C2B1A:
                state[0] = 1
            else:
                return n, pos, CORRUPT
            state[1] = state[2]
        big = state[0] == 1
        btype = _u32(buf, pos, big)
        blen = _u32(buf, pos + 4, big)
        if blen < 12 or (blen & 3) != 0:
            return n, pos, CORRUPT
        if pos + blen > end:
            return n, pos, TRUNCATED
        body_end = pos + blen - 4
        if btype == 1:  # interface description block
            k = state[2]
            if k >= MAX_INTERFACES:
                err[ERR_TOO_MANY_INTERFACES] += 1
            else:
                if_link[k] = _u16(buf, pos + 8, big)
                if_snap[k] = _u32(buf, pos + 12, big)
                if_mul[k] = 1000   # default resolution: microseconds
                if_div[k] = 1
                if_bin[k] = 0
                if_tsoff[k] = 0
                p = pos + 16
                while p + 4 <= body_end:
                    code = _u16(buf, p, big)
                    olen = _u16(buf, p + 2, big)
                    if code == 0 or p + 4 + olen > body_end:
                        break
                    if code == 9 and olen >= 1:       # if_tsresol
                        r = np.int64(buf[p + 4])
                        if r & 0x80:
                            if_bin[k] = r & 0x7F
                        elif r <= 9:
                            if_mul[k] = np.int64(10) ** (9 - r)
                        else:
                            if_mul[k] = 1
                            if_div[k] = np.int64(10) ** min(r - 9, 18)
                    elif code == 14 and olen >= 8:    # if_tsoffset, seconds
                        lo = _u32(buf, p + 4, big)
                        hi = _u32(buf, p + 8, big)
                        if big:
                            lo, hi = hi, lo
                        if_tsoff[k] = (hi << 32) | lo
                    p += 4 + ((olen + 3) & ~3)
                state[2] = k + 1
        elif btype == 6 or btype == 2:  # enhanced / obsolete packet block
            if btype == 6:
                ifid = _u32(buf, pos + 8, big)
            else:
                ifid = _u16(buf, pos + 8, big)
            k = state[1] + ifid
            incl = _u32(buf, pos + 20, big)
            if k >= state[2]:
                err[ERR_UNKNOWN_INTERFACE] += 1
            elif 28 + incl > blen - 4:
                err[ERR_CAPLEN_OVER_BLOCK] += 1
            else:
                ts[n] = _ts_to_ns(_u32(buf, pos + 12, big), _u32(buf, pos + 16, big),
                                  if_mul[k], if_div[k], if_bin[k], if_tsoff[k], err)
                off[n] = pos + 28
                caplen[n] = incl
                wirelen[n] = _u32(buf, pos + 24, big)
                iface[n] = k
                n += 1
        elif btype == 3:  # simple packet block: interface 0, no timestamp
            k = state[1]
            if k >= state[2]:
                err[ERR_UNKNOWN_INTERFACE] += 1
            else:
                orig = _u32(buf, pos + 8, big)
                incl = min(orig, blen - 16)
                if if_snap[k] > 0:
                    incl = min(incl, if_snap[k])
                ts[n] = 0
                off[n] = pos + 12
                caplen[n] = incl
                wirelen[n] = orig
                iface[n] = k
                n += 1
        pos += blen
    return n, pos, BATCH_FULL
