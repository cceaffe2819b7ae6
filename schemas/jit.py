"""How the kernels are compiled: by numba, or not at all for a small input.

Numba costs about 0.45 s before the first kernel runs (its import, its target's set-up, each
kernel's cache load): more than analysing a capture of a few thousand packets in plain Python
(~50 µs a packet). The kernels (decode, flow table, HLL, the flow hash) are written in the subset
of Python that numba compiles, so they also run as plain Python: `use_python()`,
called before their modules are imported, makes `njit` and `vectorize` return the functions
themselves, and numba is never imported. Same code, same results: tests run `analyze` both ways
on every capture and compare the reports and records.

NETSPECTRA_JIT=python or =numba forces one way (tests, benchmarks); unset, `netspectra analyze`
and `decode` choose python for captures up to SMALL_CAPTURE_BYTES.
"""
from __future__ import annotations

import os

JIT_ENV = "NETSPECTRA_JIT"
SMALL_CAPTURE_BYTES = 512 * 1024    # at most ~6,500 packets (80 B each with their headers): < 0.4 s

_python = False


def use_python() -> None:
    """Run the kernels as plain Python from now on (modules imported later). Their integer
    arithmetic wraps around by design, as it does compiled: numpy's overflow warnings are off."""
    global _python
    import numpy as np
    _python = True
    np.seterr(over="ignore")


def choose_for(path: str) -> None:
    """Plain Python for a small regular file, unless NETSPECTRA_JIT says otherwise."""
    if os.environ.get(JIT_ENV) in ("python", "numba"):
        return          # applied at import
    try:
        small = os.path.isfile(path) and os.path.getsize(path) <= SMALL_CAPTURE_BYTES
    except OSError:
        small = False
    if small:
        use_python()


def njit(*args, **kwargs):
    """numba.njit, or the function itself (both as `@njit` and `@njit(...)`)."""
    if _python:
        return args[0] if args and callable(args[0]) else (lambda f: f)
    import numba
    return numba.njit(*args, **kwargs)


def vectorize(*args, **kwargs):
    """numba.vectorize, or the function itself: kernels given to it must compute elementwise
    on whole arrays too (numpy's operators do)."""
    if _python:
        return lambda f: f
    import numba
    return numba.vectorize(*args, **kwargs)


if os.environ.get(JIT_ENV) == "python":
    use_python()
