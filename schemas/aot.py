"""Build the kernels ahead of time: `python -m schemas.aot` (`make kernels`; a no-op when the
built module matches the kernels' source). See schemas/jit.py for when it is used.

Numba compiles every kernel that names signatures (`aot=`) into one extension module next to
this file, with a C compiler and the Python headers; the kernels release the GIL as they do
under `njit(nogil=True)`. An elementwise kernel (`vectorize`) becomes a loop over two input
arrays into an output array.
"""
from __future__ import annotations

import importlib
import os
import sys
import time
from pathlib import Path

from schemas import jit


def _loop(fn):
    import numba
    core = numba.njit(fn)

    def loop(a, b, out):
        for i in range(out.shape[0]):
            out[i] = core(a[i], b[i])
    return loop


def build(force: bool = False) -> str:
    """The built module's path (built again unless it is fresh and not `force`)."""
    if not force and os.environ.get(jit.JIT_ENV) != "numba":
        mod = jit.aot_module()
        if mod is not None:
            return mod.__file__
    os.environ[jit.JIT_ENV] = "numba"        # the kernels' modules as numba sees them
    import numba.core.compiler
    from numba.pycc import CC

    flags = numba.core.compiler.Flags

    class _NoGil(flags):                     # pycc has no option for it; njit(nogil=True) sets this
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self.release_gil = True
    import numba.pycc.compiler as pycc_compiler
    pycc_compiler.Flags = _NoGil

    for m in jit.KERNEL_MODULES:
        importlib.import_module(m)
    name = jit.AOT_MODULE.rsplit(".", 1)[1]
    cc = CC(name)
    cc.output_dir = str(Path(__file__).parent)
    cc.verbose = False
    n = 0
    for module, fname, fn, _options, signatures, elementwise in jit.KERNELS:
        for i, sig in enumerate(signatures):
            cc.export(jit.export_name(module, fname, i), sig)(_loop(fn) if elementwise else fn)
            n += 1
    scope: dict = {}
    exec(f"def source_hash():\n    return {jit.source_hash()}", scope)
    cc.export("source_hash", "i8()")(scope["source_hash"])
    t = time.perf_counter()
    cc.compile()
    print(f"kernels: {n} compiled ahead of time into {cc.output_dir}/{name} ({time.perf_counter() - t:.0f} s)")
    return cc.output_dir


if __name__ == "__main__":
    import warnings
    warnings.simplefilter("ignore")          # numba.pycc's deprecation notice
    try:
        build(force="--force" in sys.argv)
    except Exception as e:                   # the commands still run, numba compiling the kernels
        print(f"kernels: not built ahead of time ({type(e).__name__}: {str(e).strip().splitlines()[-1][:200]}): "
              "commands compile them with numba as they start (~0.4 s); a C compiler (gcc) and the Python "
              "headers build them", file=sys.stderr)
