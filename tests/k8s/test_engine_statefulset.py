"""The engine StatefulSet of k8s/ run as local processes: each "pod" gets exactly the command,
config file and environment the manifest gives it (BYTEWAX_POD_NAME from its name, the
StatefulSet name, the hostfile), its own recovery directory (its PersistentVolumeClaim), and
only what a cluster would differ in is replaced: the store addresses point at the local stack
(through the NETSPECTRA_ENGINE_* variables an overlay would set), the hostfile lists 127.0.0.1
ports instead of pod DNS names, metrics are off (the manifest's listen on 0.0.0.0), and windows
are 10 s. Fed by a collector, the results are exact; killed mid-stream and rescaled from 2 pods
to 3 (the third with an empty volume), the cluster resumes from its snapshots and loses and
doubles nothing."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile

import pytest

from tests.conftest import ROOT, _free_ports
from tests.k8s.manifests import K8S, find, literal_env, mounted_file, render
from tests.pipeline import (ENGINE_OPTS, WINDOW_S, consume_raw, engine_log, finish_exact, make_topic, start_collector,
                            windows_written, wait_until_consuming)
from tests.conftest import reference_windows
from tests.support import stop, wait_for

OVERLAY = "dev"


def _pods(tmp_path, ports: dict, topic: str, n: int) -> list[subprocess.Popen]:
    objs = render(K8S / "overlays" / OVERLAY)
    sts = find(objs, "StatefulSet", "netspectra-engine")
    c = sts["spec"]["template"]["spec"]["containers"][0]
    args = list(c["args"])
    conf_at = args.index("--config") + 1
    conf = tmp_path / "engine.yaml"
    conf.write_text(mounted_file(objs, sts, c, args[conf_at]))
    args[conf_at] = str(conf)
    hostfile = tmp_path / f"hostfile-{n}"
    hostfile.write_text("".join(f"127.0.0.1:{p}\n" for p in _free_ports(n)))
    env = literal_env(c)
    assert {"BYTEWAX_STATEFULSET_NAME", "BYTEWAX_HOSTFILE_PATH"} <= set(env)
    assert next(e for e in c["env"] if e["name"] == "BYTEWAX_POD_NAME")["valueFrom"]["fieldRef"]["fieldPath"] == \
        "metadata.name"
    opts = dict(zip(ENGINE_OPTS[::2], ENGINE_OPTS[1::2]))
    local = {"NETSPECTRA_ENGINE_KAFKA": f"127.0.0.1:{ports['kafka']}", "NETSPECTRA_ENGINE_TOPIC": topic,
             "NETSPECTRA_ENGINE_CLICKHOUSE": f"127.0.0.1:{ports['clickhouse']}",
             "NETSPECTRA_ENGINE_REDIS": f"127.0.0.1:{ports['redis']}",
             "NETSPECTRA_ENGINE_DEAD_LETTER_TOPIC": f"{topic}-dlq", "NETSPECTRA_ENGINE_WINDOW": str(WINDOW_S),
             "NETSPECTRA_ENGINE_IDLE": opts["--idle"], "NETSPECTRA_ENGINE_LATENESS": opts["--lateness"],
             "NETSPECTRA_ENGINE_SNAPSHOT_INTERVAL": "1", "NETSPECTRA_ENGINE_METRICS_PORT": "0",
             "BYTEWAX_HOSTFILE_PATH": str(hostfile)}
    procs = []
    for i in range(n):
        pod = f"{sts['metadata']['name']}-{i}"
        volume = tmp_path / "volumes" / pod                  # the pod's PersistentVolumeClaim
        pod_env = {**os.environ, **{k: v for k, v in env.items() if k != "NETSPECTRA_CREDENTIALS"}, **local,
                   "BYTEWAX_POD_NAME": pod, "NETSPECTRA_ENGINE_RECOVERY_DIR": str(volume / "recovery")}
        log = tempfile.TemporaryFile("w+")
        p = subprocess.Popen([sys.executable, "-m", "netspectra.cli", *args], cwd=ROOT, env=pod_env, stdout=log,
                             stderr=subprocess.STDOUT, text=True)
        p.log = log
        procs.append(p)
    return procs


@pytest.mark.parametrize("after", [2, 3], ids=["restart", "rescale-2-to-3"])
def test_statefulset_pods_as_processes_exact_through_a_kill_and_rescale(local_stack, synth_pcap, tmp_path,
                                                                        started, after):
    _, ports, _ = local_stack
    boot, topic = f"127.0.0.1:{ports['kafka']}", f"k8s-engine-{after}"
    make_topic(boot, topic)
    ref = reference_windows(synth_pcap, WINDOW_S)
    pods = _pods(tmp_path, ports, topic, 2)
    started += pods
    wait_until_consuming(boot, topic)
    collector = start_collector(boot, topic, synth_pcap)
    started.append(collector)
    wait_for(lambda: windows_written(ports["clickhouse"], topic) >= 1, 120, "the first window")
    stop(pods, signal.SIGKILL)                       # pods lost mid-stream: no clean shutdown
    assert collector.poll() is None and windows_written(ports["clickhouse"], topic) < len(ref), \
        "the kill came too late to be mid-stream"
    pods = _pods(tmp_path, ports, topic, after)      # the StatefulSet's pods again, or one more
    started += pods
    try:
        finish_exact(collector, pods, ports, topic, ref)
    except AssertionError as e:
        raise AssertionError(f"{e}\n" + "\n".join(f"--- pod {i}:\n{engine_log(p)}" for i, p in enumerate(pods))) from None
    # resumed from the pods' snapshots, not replayed from the start: the readiness probes at
    # offset 0 of each partition were dead-lettered once, before the kill, and not again
    assert len(consume_raw(boot, f"{topic}-dlq", 8, timeout=3)) == 4
