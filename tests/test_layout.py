"""The folders are the architecture: what may import what, checked on the source (every import,
also those inside functions, except `if TYPE_CHECKING:` blocks).

- netspectra/ is the command line only: nothing imports it but itself, and the rest only its
  entry point, netspectra.cli (tests run `python -m netspectra.cli` or read its parser).
- schemas/ holds the contracts and imports no other package of ours.
- sinks/ write what flows/ produce through schemas/ (window rows, alerts, Redis keys): sinks
  never import flows, so flows can build its sinks without a cycle.
- No cycle between the top-level packages.
"""
from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

PACKAGES = ("netspectra", "collectors", "flows", "sinks", "schemas", "api", "stack", "dashboards")
MAY_IMPORT = {                 # package -> the packages of ours it may import
    "schemas": set(),
    "collectors": {"schemas"},
    "sinks": {"schemas"},
    "stack": {"schemas"},
    "dashboards": {"schemas", "stack"},
    "flows": {"schemas", "collectors", "sinks"},
    "api": {"schemas", "sinks", "flows", "collectors"},
    "netspectra": set(PACKAGES),
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for b in node.body for n in ast.walk(b))
    out = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module)
    return out


def _ours(module: str) -> str | None:
    top = module.split(".")[0]
    return top if top in PACKAGES else None


def _package_imports() -> dict[str, dict[str, set[str]]]:
    """package -> file -> our packages it imports."""
    out: dict[str, dict[str, set[str]]] = {}
    for pkg in PACKAGES:
        for f in sorted((ROOT / pkg).rglob("*.py")):
            used = {_ours(m) for m in _imports(f)} - {None, pkg}
            out.setdefault(pkg, {})[str(f.relative_to(ROOT))] = used
    return out


def test_each_package_imports_only_what_it_may():
    wrong = [f"{f} imports {sorted(used - MAY_IMPORT[pkg])}"
             for pkg, files in _package_imports().items() for f, used in files.items() if used - MAY_IMPORT[pkg]]
    assert not wrong, "\n".join(wrong)


def test_only_the_entry_point_is_imported_from_netspectra():
    wrong = []
    for d in ("tests", "bench", "dashboards", *[p for p in PACKAGES if p != "netspectra"]):
        for f in sorted((ROOT / d).rglob("*.py")):
            bad = sorted(m for m in _imports(f) if m.split(".")[0] == "netspectra" and m != "netspectra.cli")
            if bad:
                wrong.append(f"{f.relative_to(ROOT)} imports {bad}")
    assert not wrong, "\n".join(wrong)


def test_no_cycle_between_packages():
    graph = {pkg: set().union(*files.values()) for pkg, files in _package_imports().items()}
    seen, stack = set(), []

    def visit(p):
        if p in stack:
            raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(p):] + [p]))
        if p in seen:
            return
        stack.append(p)
        for q in graph.get(p, ()):
            visit(q)
        stack.pop()
        seen.add(p)

    for p in graph:
        visit(p)


def test_the_check_sees_an_import_inside_a_function(tmp_path):
    """The walker must see lazy imports (most of ours are), or the checks above pass on nothing."""
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from flows.window import WindowResult\n    import netspectra.cli\n"
                 "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from sinks.rows import x\n")
    assert _imports(f) == {"flows.window", "netspectra.cli", "typing"}
