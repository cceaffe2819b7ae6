"""Alerts as rows of the ClickHouse `alerts` table (schemas/clickhouse.py), for any writer."""
from __future__ import annotations

import numpy as np

from schemas.clickhouse import table_columns


def alert_tables(alerts: list, source: str) -> dict[str, dict]:
    """Alerts (flows.alerts.Alert) as rows of the alerts table."""
    import json
    if not alerts:
        return {}
    ts = lambda f: np.array([f(a) for a in alerts], np.int64)
    text = lambda f: [f(a) for a in alerts]
    return {"alerts": table_columns("alerts", len(alerts), 0, source, {
        "window_start": ts(lambda a: a.first_seen), "id": text(lambda a: a.id), "rule": text(lambda a: a.rule),
        "detector": text(lambda a: a.detector), "severity": text(lambda a: a.severity),
        "state": text(lambda a: a.state), "src": text(lambda a: str(a.entity.get("src", ""))),
        "dst": text(lambda a: str(a.entity.get("dst", ""))),
        "port": np.array([int(a.entity.get("port", 0) or 0) for a in alerts], np.uint16),
        "entity": text(lambda a: json.dumps(a.entity, sort_keys=True)),
        "value": np.array([a.value for a in alerts], np.float64),
        "threshold": np.array([a.threshold for a in alerts], np.float64),
        "last_window": ts(lambda a: a.window_start), "last_seen": ts(lambda a: a.last_seen),
        "resolved_at": ts(lambda a: a.resolved_at), "windows": np.array([a.windows for a in alerts], np.uint32),
        "evidence": text(lambda a: json.dumps(a.evidence, sort_keys=True)),
        "version": np.array([a.version for a in alerts], np.uint32)})}
