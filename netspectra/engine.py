"""`netspectra engine`: the window dataflow on a Kafka topic, run by `python -m bytewax.run`
(flows/engine.py holds the flow; this is its command line)."""
from __future__ import annotations

import sys


def engine_command(args) -> list[str]:
    """The `python -m bytewax.run` command line `netspectra engine` runs."""
    spec = (f"flows.engine:kafka_flow({args.kafka!r}, {args.topic!r}, store={args.store!r}, redis={args.redis!r}, "
            f"clickhouse={args.clickhouse!r}, "
            f"dead_letter_topic={args.dead_letter_topic!r}, tail={not args.stop_at_end!r}, "
            f"window_s={args.window!r}, lateness_s={args.lateness!r}, idle_s={args.idle!r}, "
            f"source_name={args.topic!r})")
    extra = []
    if args.workers:
        extra += ["-w", str(args.workers)]
    if args.process_id is not None:
        extra += ["-i", str(args.process_id)]
    if args.addresses:
        extra += ["-a", args.addresses]
    if args.recovery_dir:
        extra += ["-r", args.recovery_dir]
    return [sys.executable, "-m", "bytewax.run", spec, *extra]


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


def cmd_engine(args) -> int:
    import os
    warning = check_partitions(args)
    if warning:
        print(f"netspectra engine: warning: {warning}", file=sys.stderr)
    cmd = engine_command(args)
    print(" ".join(cmd), file=sys.stderr)
    os.execv(cmd[0], cmd)      # the engine is Bytewax's process; signals and exit codes are its own
    return 0
