"""The engine service: checks its config, prepares recovery, then becomes a Bytewax process
(`python -m bytewax.run flows.engine:from_config(...)`) with the effective config.

    Engine(cfg).problems()   # one line each; the engine does not start with any
    Engine(cfg).run()        # exec: signals and the exit code are Bytewax's

In a StatefulSet (k8s/) nothing names the process: Bytewax takes its index from
BYTEWAX_POD_NAME / BYTEWAX_STATEFULSET_NAME and the peers from BYTEWAX_HOSTFILE_PATH.
"""
from __future__ import annotations

import os
import sys

from flows.engine_config import EngineConfig


class Engine:
    def __init__(self, cfg: EngineConfig):
        self.cfg = cfg

    def problems(self) -> list[str]:
        """What stops the engine from starting, one line each: rules, notifiers, recovery space."""
        from flows.notify_config import parse_notifiers
        from flows.rules import RulesError, load_rules
        c, errors = self.cfg, []
        if c.detect:
            try:
                load_rules(c.rules)
            except RulesError as e:
                errors += e.lines
        parse_notifiers({k: {"url": v} for k, v in (("webhook", c.alert_webhook), ("alertmanager", c.alertmanager))
                         if v}, "config", errors)
        if c.recovery_dir and not errors:
            ensure_recovery_dir(c.recovery_dir, c.recovery_partitions, create=self.process_index() in (None, 0))
            # A full disk later makes Bytewax stop at its next snapshot ("database or disk is full");
            # the snapshots written before stay intact (SQLite transactions) and a restart resumes.
            error = recovery_space_error(c.recovery_dir, c.recovery_min_free_mb)
            if error:
                errors.append(error)
        return errors

    def process_index(self) -> int | None:
        """This process's index in its cluster: the config's, or a StatefulSet pod's ordinal (the
        way Bytewax reads it); None for a lone process."""
        if self.cfg.process_id is not None:
            return self.cfg.process_id
        pod, sts = os.environ.get("BYTEWAX_POD_NAME"), os.environ.get("BYTEWAX_STATEFULSET_NAME")
        if pod and sts and pod.startswith(sts + "-") and pod[len(sts) + 1:].isdigit():
            return int(pod[len(sts) + 1:])
        return None

    def processes(self) -> int:
        if self.cfg.addresses:
            return len(self.cfg.addresses.split(";"))
        hostfile = os.environ.get("BYTEWAX_HOSTFILE_PATH")
        if hostfile and os.path.exists(hostfile):
            return max(1, sum(1 for line in open(hostfile) if line.strip()))
        return 1

    def partition_warning(self) -> str | None:
        """A warning when the topic has fewer partitions than engine workers (idle workers)."""
        from flows.engine import topic_partitions
        c = self.cfg
        workers = c.workers * self.processes()
        try:
            parts = topic_partitions(c.kafka, c.topic, timeout=10)
        except Exception as e:       # the engine itself reports an unreachable broker
            return f"could not read partitions of {c.topic}: {e}"
        if parts < workers:
            return (f"topic {c.topic} has {parts} partitions for {workers} workers: "
                    f"{workers - parts} workers will read nothing (use at least {workers} partitions)")
        return None

    def command(self) -> list[str]:
        """The `python -m bytewax.run` command line this engine runs."""
        from schemas.settings import dump
        c = self.cfg
        spec = f"flows.engine:from_config(settings={dump(c)!r})"
        extra = ["-w", str(c.workers)]
        if c.process_id is not None:
            extra += ["-i", str(c.process_id), "-a", c.addresses]
        if c.recovery_dir:
            extra += ["-r", c.recovery_dir, "-s", str(c.snapshot_interval), "-b", str(c.backup_interval)]
        return [sys.executable, "-m", "bytewax.run", spec, *extra]

    def run(self) -> None:
        """Become the Bytewax process (does not return)."""
        cmd = self.command()
        print(" ".join(cmd[:3]) + " flows.engine:from_config(...) " + " ".join(cmd[4:]), file=sys.stderr, flush=True)
        os.execv(cmd[0], cmd)


def ensure_recovery_dir(path: str, partitions: int, create: bool = True) -> None:
    """Create Bytewax's recovery partitions on first use, in process 0 only (`create`): a
    cluster's partitions must exist once, whether its processes share one directory or each has
    its own volume (a StatefulSet), where a copy per pod would hold diverging snapshots of the
    same partition. Bytewax finds them wherever they are, also after a rescale."""
    import fcntl
    import subprocess
    from pathlib import Path
    d = Path(path)
    d.mkdir(parents=True, exist_ok=True)
    if not create:
        return
    with open(d / ".init.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not any(d.glob("part-*.sqlite3")):
            subprocess.run([sys.executable, "-m", "bytewax.recovery", str(d), str(partitions)], check=True)


def recovery_space_error(path: str, min_free_mb: float) -> str | None:
    """One line when the recovery directory's file system has less than `min_free_mb` free."""
    import shutil
    free = shutil.disk_usage(path).free / 2**20
    if free < min_free_mb:
        return (f"recovery directory {path} has {free:.0f} MB free, below recovery_min_free_mb "
                f"{min_free_mb:g}: free space or point recovery_dir elsewhere")
    return None
