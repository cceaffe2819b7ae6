"""Generate the Python stubs of schemas/v1/*.proto (grpcio-tools, pinned in pyproject's dev extra).

    python -m api.protos            # rewrite schemas/v1/*_pb2*.py
    python -m api.protos --check    # exit 1 when the committed stubs are not current
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "schemas" / "v1"


def generate(out: Path) -> list[Path]:
    from grpc_tools import protoc

    protos = sorted(PROTO_DIR.glob("*.proto"))
    args = ["protoc", f"-I{ROOT}", f"--python_out={out}", f"--grpc_python_out={out}", f"--pyi_out={out}"]
    if protoc.main(args + [str(p.relative_to(ROOT)) for p in protos]) != 0:
        raise RuntimeError("protoc failed")
    return sorted((out / "schemas" / "v1").glob("*_pb2*"))


def main() -> int:
    check = "--check" in sys.argv
    with tempfile.TemporaryDirectory() as d:
        stale = []
        for f in generate(Path(d)):
            dest = PROTO_DIR / f.name
            if not dest.exists() or dest.read_bytes() != f.read_bytes():
                stale.append(dest.name)
                if not check:
                    dest.write_bytes(f.read_bytes())
    if check and stale:
        print("stale generated stubs: " + ", ".join(stale) + " (run python -m api.protos)")
        return 1
    print(("current: " if check else "written: ") + ", ".join(sorted(p.name for p in PROTO_DIR.glob("*_pb2*"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
