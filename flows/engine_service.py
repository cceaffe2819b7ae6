"""The engine service: checks its config, prepares recovery, builds the dataflow and runs it
in this process as one process of a Bytewax cluster (what `python -m bytewax.run` does).

    e = Engine(cfg)
    e.start()        # EngineError (one line per problem) if it cannot run; metrics served
    e.run()          # until the topic's end (stop_at_end)
    e.stats()        # what it counted: messages, packets, windows, late packets, sink retries…
    e.stop()         # from another thread: ends the process at once, as a crash would

Bytewax cannot stop a running dataflow from outside, and a sink retrying a write would hold a
polite stop anyway: stop() ends the process, and the cluster resumes from its recovery
snapshots, exactly, as after a crash.

In a StatefulSet (k8s/) nothing names the process: as `bytewax.run` does, the index comes from
BYTEWAX_POD_NAME / BYTEWAX_STATEFULSET_NAME and the peers from BYTEWAX_HOSTFILE_PATH (or
BYTEWAX_PROCESS_ID and BYTEWAX_ADDRESSES).
"""
from __future__ import annotations

import os
import sys

from flows.engine_config import EngineConfig

DEFAULT_EPOCH_S = 10          # bytewax.run's epoch without recovery (nothing to coordinate with)
TOPIC_TIMEOUT_S = 8           # to list the topics of a broker that answered the probe (schemas/probes.py)


class EngineError(Exception):
    def __init__(self, lines: list[str]):
        super().__init__("; ".join(lines))
        self.lines = lines


class Engine:
    def __init__(self, cfg: EngineConfig):
        self.cfg = cfg
        self.flow = None
        self.trimmer = None

    def start(self) -> None:
        from flows.engine import kafka_flow, serve_metrics, topic_partitions
        from flows.heap import HeapTrimmer
        from schemas import metrics as M
        errors = self.problems() or self.unreachable()
        if errors:
            raise EngineError(errors)
        try:
            topic_partitions(self.cfg.kafka, self.cfg.topic, timeout=TOPIC_TIMEOUT_S)
        except Exception as e:          # topic missing: one line, not a trace
            raise EngineError([f"{self.cfg.kafka}: {e}: is the topic created (`netspectra collect --partitions N`, "
                               f"or your Kafka tools)?"]) from None
        M.enable("engine")          # counted in any case: stats() reads them
        serve_metrics(self.cfg)
        self.flow = kafka_flow(self.cfg)
        self.trimmer = HeapTrimmer(self.cfg.heap_trim,
                                   on_trim=lambda s: M.observe("netspectra_engine_heap_trim_seconds", s))
        self.trimmer.start()

    def run(self) -> None:
        """Run the dataflow until the topic's end (stop_at_end; tailing, until stop())."""
        from datetime import timedelta

        from bytewax.recovery import RecoveryConfig
        from bytewax.run import cli_main
        c = self.cfg
        recovery, epoch = None, timedelta(seconds=DEFAULT_EPOCH_S)
        if c.recovery_dir:
            recovery = RecoveryConfig(c.recovery_dir, timedelta(seconds=c.backup_interval))
            epoch = timedelta(seconds=c.snapshot_interval)
        index = self.process_index()
        cli_main(self.flow, workers_per_process=c.workers, process_id=index,
                 addresses=None if index is None else self.addresses(), epoch_interval=epoch,
                 recovery_config=recovery)

    def stop(self, code: int = 0) -> None:
        os._exit(code)

    def stats(self) -> dict:
        """Totals of the engine's counters (over their labels), by metric name without the
        netspectra_ prefix."""
        from schemas import metrics as M
        return M.totals("engine")

    def problems(self) -> list[str]:
        """What stops the engine from starting, one line each: no sink, rules, notifiers, recovery space."""
        from flows.notify_config import parse_notifiers
        from flows.rules import RulesError, load_rules
        c, errors = self.cfg, []
        if not (c.store or c.clickhouse or c.redis):
            errors.append("no sink: its windows would be discarded; give clickhouse (a server's native port, "
                          "e.g. 127.0.0.1:19000 for `netspectra stack up`), redis or store (a chDB directory)")
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

    def unreachable(self) -> list[str]:
        """The broker and the sink servers that do not answer, one line each (asked at once)."""
        from schemas.probes import clickhouse_problem, kafka_problem, problems, redis_problem
        c = self.cfg
        return problems([(kafka_problem, c.kafka)] + ([(clickhouse_problem, c.clickhouse)] if c.clickhouse else [])
                        + ([(redis_problem, c.redis)] if c.redis else []))

    def process_index(self) -> int | None:
        """This process's index in its cluster: the config's, BYTEWAX_PROCESS_ID, or a StatefulSet
        pod's ordinal (as bytewax.run reads them); None for a lone process."""
        if self.cfg.process_id is not None:
            return self.cfg.process_id
        env = os.environ
        if env.get("BYTEWAX_PROCESS_ID", "").isdigit():
            return int(env["BYTEWAX_PROCESS_ID"])
        pod, sts = env.get("BYTEWAX_POD_NAME"), env.get("BYTEWAX_STATEFULSET_NAME")
        if pod and sts and pod.startswith(sts + "-") and pod[len(sts) + 1:].isdigit():
            return int(pod[len(sts) + 1:])
        return None

    def addresses(self) -> list[str]:
        """host:port of every process of the cluster: the config's, BYTEWAX_ADDRESSES, or the
        lines of BYTEWAX_HOSTFILE_PATH; [] when nothing gives them."""
        listed = self.cfg.addresses or os.environ.get("BYTEWAX_ADDRESSES")
        if listed:
            return listed.split(";")
        hostfile = os.environ.get("BYTEWAX_HOSTFILE_PATH")
        if hostfile and os.path.exists(hostfile):
            return [line.strip() for line in open(hostfile) if line.strip()]
        return []

    def processes(self) -> int:
        return max(1, len(self.addresses())) if self.process_index() is not None else 1

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
