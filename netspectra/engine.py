"""`netspectra engine`: the window dataflow on a Kafka topic, run by `python -m bytewax.run`
(flows/engine.py holds the flow; this is its command line)."""
from __future__ import annotations

import sys


def engine_command(args) -> list[str]:
    """The `python -m bytewax.run` command line `netspectra engine` runs."""
    spec = (f"flows.engine:kafka_flow({args.kafka!r}, {args.topic!r}, store={args.store!r}, redis={args.redis!r}, "
            f"clickhouse={args.clickhouse!r}, "
            f"dead_letter_topic={args.dead_letter_topic!r}, tail={not args.stop_at_end!r}, "
            f"window_s={args.window!r}, lateness_s={args.lateness!r}, idle_s={args.idle!r}, grace_s={args.grace!r}, "
            f"max_flows={args.max_flows!r}, rules_file={args.rules!r}, alert_webhook={args.alert_webhook!r}, "
            f"alertmanager={args.alertmanager!r}, alert_state_dir={alert_state_dir(args)!r}, "
            f"detect={not args.no_detect!r}, "
            f"source_name={args.topic!r})")
    extra = []
    if args.workers:
        extra += ["-w", str(args.workers)]
    if args.process_id is not None:
        extra += ["-i", str(args.process_id)]
    if args.addresses:
        extra += ["-a", args.addresses]
    if args.recovery_dir:
        extra += ["-r", args.recovery_dir, "-s", str(args.snapshot_interval), "-b", str(args.backup_interval)]
    return [sys.executable, "-m", "bytewax.run", spec, *extra]


def alert_state_dir(args) -> str | None:
    """Where notifiers log what they delivered: beside the recovery snapshots, whose replays it
    de-duplicates (or --alert-state)."""
    import os
    if args.alert_state:
        return os.path.abspath(args.alert_state)
    return os.path.join(os.path.abspath(args.recovery_dir), "alerts") if args.recovery_dir else None


def ensure_recovery_dir(path: str, partitions: int) -> None:
    """Create Bytewax's recovery partitions on first use. Processes of one cluster may start
    together on one host, so the first takes a lock and the others find the partitions made."""
    import fcntl
    import subprocess
    from pathlib import Path
    d = Path(path)
    d.mkdir(parents=True, exist_ok=True)
    with open(d / ".init.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not any(d.glob("part-*.sqlite3")):
            subprocess.run([sys.executable, "-m", "bytewax.recovery", str(d), str(partitions)], check=True)


def check_partitions(args) -> str | None:
    """A warning when the topic has fewer partitions than engine workers (idle workers)."""
    from flows.engine import topic_partitions
    workers = (args.workers or 1) * (len(args.addresses.split(";")) if args.addresses else 1)
    try:
        parts = topic_partitions(args.kafka, args.topic, timeout=10)
    except Exception as e:       # the engine itself reports an unreachable broker
        return f"could not read partitions of {args.topic}: {e}"
    if parts < workers:
        return (f"topic {args.topic} has {parts} partitions for {workers} workers: "
                f"{workers - parts} workers will read nothing (use at least {workers} partitions)")
    return None


def recovery_space_error(path: str, min_free_mb: float) -> str | None:
    """One line when the recovery directory's file system has less than `min_free_mb` free."""
    import shutil
    free = shutil.disk_usage(path).free / 2**20
    if free < min_free_mb:
        return (f"recovery directory {path} has {free:.0f} MB free, below --recovery-min-free-mb "
                f"{min_free_mb:g}: free space or point -r elsewhere")
    return None


def cmd_engine(args) -> int:
    import os
    from flows.rules import RulesError, load_rules
    from flows.notify_config import parse_notifiers

    errors: list[str] = []
    try:
        load_rules(args.rules)          # fail fast, one line per problem, before Bytewax starts
    except RulesError as e:
        errors += e.lines
    parse_notifiers({k: {"url": v} for k, v in (("webhook", args.alert_webhook), ("alertmanager", args.alertmanager))
                     if v}, "flags", errors)
    if errors:
        for line in errors:
            print(f"netspectra engine: {line}", file=sys.stderr)
        return 2
    warning = check_partitions(args)
    if warning:
        print(f"netspectra engine: warning: {warning}", file=sys.stderr)
    if args.recovery_dir:
        ensure_recovery_dir(args.recovery_dir, args.recovery_partitions)
        # A full disk later makes Bytewax stop at its next snapshot ("database or disk is full");
        # the snapshots written before stay intact (SQLite transactions) and a restart resumes.
        error = recovery_space_error(args.recovery_dir, args.recovery_min_free_mb)
        if error:
            print(f"netspectra engine: {error}", file=sys.stderr)
            return 2
    cmd = engine_command(args)
    print(" ".join(cmd), file=sys.stderr)
    os.execv(cmd[0], cmd)      # the engine is Bytewax's process; signals and exit codes are its own
    return 0
