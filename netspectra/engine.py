"""`netspectra engine`: the engine service (flows/engine_service.py) from its config file, the
environment and these flags, run in this process until the topic's end (--stop-at-end) or
SIGINT/SIGTERM; then a JSON line of what it counted, on stderr."""
from __future__ import annotations

import json
import logging
import signal
import sys
import threading


def cmd_engine(args) -> int:
    from flows.engine_config import EngineConfig
    from flows.engine_service import Engine, EngineError
    from netspectra.cli import log_to_stderr, problems, service_config

    cfg = service_config(EngineConfig, "engine", args)
    if isinstance(cfg, int):
        return cfg
    log_to_stderr(logging.INFO)
    engine = Engine(cfg)
    _stop_on_signals(lambda: (_report(engine), engine.stop()))
    try:
        engine.start()
    except EngineError as e:
        return problems("engine", e.lines)
    warning = engine.partition_warning()
    if warning:
        print(f"netspectra engine: warning: {warning}", file=sys.stderr)
    engine.run()
    _report(engine)
    return 0


def _report(engine) -> None:
    print(json.dumps({"engine": engine.cfg.topic, **{k: round(v, 3) for k, v in engine.stats().items()}}),
          file=sys.stderr, flush=True)


def _stop_on_signals(stop) -> None:
    """SIGINT and SIGTERM call `stop` from a thread of their own, whatever the main thread is doing
    (Bytewax in compiled code, a sink sleeping between retries): Python's C-level handler writes
    each signal to the wakeup fd, in whichever thread receives it, and that thread reads it."""
    import socket
    r, w = socket.socketpair()
    w.setblocking(False)
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, lambda *_: None)        # not the default action: the wakeup fd hears it
    signal.set_wakeup_fd(w.fileno(), warn_on_full_buffer=False)

    def wait() -> None:
        r.recv(1)
        stop()
    _stop_on_signals.sockets = (r, w)      # open for the life of the process
    threading.Thread(target=wait, daemon=True, name="signals").start()
