"""How the kernels are compiled: ahead of time, by numba at run time, or not at all for a small input.

Numba costs about 0.45 s before the first kernel runs (its import, its target's set-up, each
kernel's cache load). The kernels (decode, flow table, HLL, the flow hash) are written in the
subset of Python that numba compiles, and run one of three ways:

- ahead of time (`make kernels`, schemas/aot.py): the kernels that name signatures (`aot=`) are
  compiled by numba into one extension module, `schemas._kernels`; importing it costs ~1 ms and
  numba is never imported. Used when it was built from the kernels' present source (a hash of
  their modules' text is compiled in); called with other argument types than it was compiled
  for (it checks dtypes, dimensions and layout: a mismatch would crash), a kernel falls back
  to numba at run time.
- by numba when called (`njit`, cached on disk): when the module was not built or is stale.
- as plain Python: `use_python()`, called before their modules are imported, makes `njit` and
  `vectorize` return the functions themselves. Same code, same results: tests run `analyze`
  every way on every capture and compare the reports and records.

NETSPECTRA_JIT=python, =numba or =aot forces one way (tests, benchmarks); unset, `netspectra
analyze` and `decode` choose python for captures up to SMALL_CAPTURE_BYTES, and the module
built ahead of time where it is fresh, else numba.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

JIT_ENV = "NETSPECTRA_JIT"
SMALL_CAPTURE_BYTES = 512 * 1024    # at most ~6,500 packets (80 B each with their headers): < 0.4 s
AOT_MODULE = "schemas._kernels"
# The modules holding kernels compiled ahead of time: their text makes the source hash.
KERNEL_MODULES = ("schemas.flow_key", "collectors.walkers", "collectors.decode.fast", "collectors.decode.l7_scan",
                  "collectors.decode.tunnels", "flows.table", "flows.hll")
_ROOT = Path(__file__).resolve().parent.parent

_python = False
_aot = None             # the module built ahead of time, False when there is none (or it is stale)
KERNELS: list = []      # every kernel defined: (module, name, function, numba options, aot signatures, elementwise)


def use_python() -> None:
    """Run the kernels as plain Python from now on (modules imported later). Their integer
    arithmetic wraps around by design, as it does compiled: numpy's overflow warnings are off."""
    global _python
    import numpy as np
    _python = True
    np.seterr(over="ignore")


def choose_for(path: str) -> None:
    """Plain Python for a small regular file, unless NETSPECTRA_JIT says otherwise."""
    if os.environ.get(JIT_ENV) in ("python", "numba", "aot"):
        return          # applied at import
    try:
        small = os.path.isfile(path) and os.path.getsize(path) <= SMALL_CAPTURE_BYTES
    except OSError:
        small = False
    if small:
        use_python()


def source_hash() -> int:
    """A 63-bit hash of the text of the kernels' modules and of this one."""
    import hashlib
    h = hashlib.blake2b(digest_size=8)
    for m in (__name__,) + KERNEL_MODULES:
        h.update((_ROOT / (m.replace(".", "/") + ".py")).read_bytes())
    return int.from_bytes(h.digest(), "little") >> 1


def aot_module():
    """The kernels' module built ahead of time if it matches their source, else None."""
    global _aot
    if _aot is None:
        _aot = False
        if os.environ.get(JIT_ENV) != "numba":
            try:
                import importlib
                mod = importlib.import_module(AOT_MODULE)
            except ImportError:
                mod = None
            if mod is not None and mod.source_hash() == source_hash():
                _aot = mod
            elif os.environ.get(JIT_ENV) == "aot":
                raise RuntimeError(f"{JIT_ENV}=aot: {AOT_MODULE} is " + ("stale" if mod else "not built")
                                   + ": run `make kernels`")
    return _aot or None


def export_name(module: str, name: str, i: int) -> str:
    return f"{module.replace('.', '_')}__{name}__{i}"


_SCALARS = {"i8": "int", "b1": "bool"}
_DTYPES = {"u1": "uint8", "u2": "uint16", "u4": "uint32", "u8": "uint64", "i8": "int64", "b1": "bool", "f8": "float64"}


def arg_specs(signature: str) -> tuple:
    """What each argument of a numba signature ("ret(u1[::1], i8, u8[:, ::1])") must be:
    "int", "bool", or (dtype, ndim, C-contiguous required)."""
    depth, end = 0, len(signature) - 1
    for start in range(end, -1, -1):          # the argument list: the last top-level (...)
        depth += {")": 1, "(": -1}.get(signature[start], 0)
        if depth == 0:
            break
    args, depth, cur = [], 0, ""
    for ch in signature[start + 1:end] + ",":
        if ch == "," and depth == 0:
            args.append(cur.strip())
            cur = ""
            continue
        depth += {"[": 1, "]": -1}.get(ch, 0)
        cur += ch
    specs = []
    for a in args:
        if "[" not in a:
            specs.append(_SCALARS[a])
            continue
        dims = a[a.index("[") + 1:-1].split(",")
        specs.append((_DTYPES[a[:a.index("[")]], len(dims), dims[-1].strip() == "::1"))
    return tuple(specs)


def _matches(specs: tuple, args: tuple) -> bool:
    import numpy as np
    if len(specs) != len(args):
        return False
    for s, a in zip(specs, args):
        if s == "int":
            if not isinstance(a, (int, np.integer)) or isinstance(a, (bool, np.bool_)):
                return False
        elif s == "bool":
            if not isinstance(a, (bool, np.bool_)):
                return False
        elif not (isinstance(a, np.ndarray) and a.dtype == s[0] and a.ndim == s[1]
                  and (not s[2] or a.flags.c_contiguous)):
            return False
    return True


class _Kernel:
    """A kernel built ahead of time where the arguments fit one of its signatures, else numba's
    (every kernel is then handed to numba: the ones it calls must be numba's too)."""

    def __init__(self, module, name, fn, _options, signatures, elementwise):
        self.__wrapped__, self.__name__, self.__module__ = fn, name, module
        self._elementwise = elementwise
        self._exports = [(arg_specs(s)[:2] if elementwise else arg_specs(s), getattr(_aot, export_name(module, name, i), None))
                         for i, s in enumerate(signatures)] if _aot else []
        self._jitted = None
        self._told = False

    def __call__(self, *args):
        for specs, fn in self._exports:
            if fn is not None and _matches(specs, args):
                if self._elementwise:               # compiled as a loop into an output array
                    out = args[0].copy()
                    fn(args[0], args[1], out)
                    return out
                return fn(*args)
        if self._exports and not self._told:     # built, but not for these arguments: say so once
            self._told = True
            import logging
            logging.getLogger(__name__).info("kernel %s.%s: compiled by numba for arguments it was not built for",
                                             self.__module__, self.__name__)
        return self.jitted()(*args)

    def jitted(self):
        if self._jitted is None:
            _to_numba()
        return self._jitted


def _to_numba() -> None:
    """Every kernel defined so far compiled by numba when called, in place of its _Kernel in its
    module (numba resolves the kernels a kernel calls through the module's globals)."""
    import numba
    for module, name, fn, options, _sigs, elementwise in KERNELS:
        current = getattr(sys.modules[module], name)
        if isinstance(current, _Kernel) and current._jitted is None:
            current._jitted = (numba.vectorize(*elementwise, **options) if elementwise else numba.njit(**options))(fn)
            setattr(sys.modules[module], name, current._jitted)


def _kernel(fn, options: dict, elementwise=None):
    aot = tuple(options.pop("aot", ()))
    record = (fn.__module__, fn.__name__, fn, options, aot, elementwise)
    KERNELS.append(record)
    if _python:
        return fn
    if aot_module() is not None:
        return _Kernel(*record)
    import numba
    return numba.vectorize(*elementwise, **options)(fn) if elementwise else numba.njit(**options)(fn)


def njit(*args, **kwargs):
    """numba.njit (`@njit` or `@njit(...)`), or the function itself (plain Python), or with
    `aot=[signature, ...]` the kernel built ahead of time."""
    if args and callable(args[0]):
        return _kernel(args[0], {})
    return lambda f: _kernel(f, dict(kwargs))


def vectorize(signatures, aot: str | None = None, **kwargs):
    """numba.vectorize, or the function itself: kernels given to it must compute elementwise
    on whole arrays too (numpy's operators do). `aot`: the signature of the loop built ahead of
    time over two input arrays and an output array, "void(a[::1], b[:], out[::1])"."""
    return lambda f: _kernel(f, dict(kwargs, aot=[aot] if aot else []), elementwise=(signatures,))


if os.environ.get(JIT_ENV) == "python":
    use_python()
