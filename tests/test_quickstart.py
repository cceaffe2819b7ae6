"""docs/quickstart.md, run as a new user would: its ```bash blocks in order, in one shell with
`set -euo pipefail`, from `make demo` to a live replay, the API, the console and Grafana
provisioning. Only the places change: the output directory (out/) and the stack directory
(NETSPECTRA_STACK_DIR) are this test's own. Every command must succeed and no line may be an
error. It uses the documented default ports, so they must be free (a developer's own stack on
them is named)."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess

from tests.conftest import ROOT

DOC = ROOT / "docs" / "quickstart.md"
PORTS = (19092, 16379, 19000, 18123, 8080, 50051)      # the stack's and the API's defaults
ERROR_LINE = re.compile(r"Traceback|\bERROR\b|\bCRITICAL\b|error:|refused|does not answer|exited at start")


def _busy(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_quickstart_runs_in_order_without_an_error_line(tmp_path):
    busy = [p for p in PORTS if _busy(p)]
    assert not busy, f"ports {busy} are taken (a stack of your own? `netspectra stack down`): the quickstart uses them"
    blocks = re.findall(r"```bash\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) >= 5
    out = tmp_path / "out"
    script = "set -euo pipefail\n" + "\n".join(blocks)
    script = script.replace("make demo", f"make demo OUT={out}").replace(" out/", f" {out}/")
    env = {k: v for k, v in os.environ.items() if k != "NETSPECTRA_CREDENTIALS"}
    env["NETSPECTRA_STACK_DIR"] = str(tmp_path / "stack")
    proc = subprocess.Popen(["bash", "-c", script], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=900)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        subprocess.run([str(ROOT / ".venv" / "bin" / "netspectra"), "stack", "down"], cwd=ROOT, env=env,
                       capture_output=True, timeout=60)
    assert proc.returncode == 0, output[-3000:]
    errors = [line for line in output.splitlines() if ERROR_LINE.search(line)]
    assert not errors, errors[:10]
    # what each step shows: the stored windows, the live window, the console, Grafana's files
    assert '"live":["netspectra.packets"]' in output and '"window_start_ms"' in output
    assert "<title>NetSpectra console</title>" in output and '"groups":[{"bucket_ms"' in output
    assert '"table":"protocols_1d","resolution_seconds":86400' in output     # the day from its roll-up
    assert (out / "grafana" / "provisioning" / "datasources" / "netspectra.yaml").is_file()
    assert "stopped: kafka, redis, clickhouse" in output
