"""Writes dashboards/json/netspectra.json: the NetSpectra Grafana dashboard for the official
ClickHouse datasource plugin. Panels are declared here once (title, kind, SQL); tests run every
SQL, with Grafana's macros and variables expanded, against the DDL in chDB.

    python dashboards/build.py
"""
from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).resolve().parent / "json" / "netspectra.json"
DS = {"type": "grafana-clickhouse-datasource", "uid": "netspectra-clickhouse"}

# Filters every panel shares: time range (Grafana's macro on the sort key's first column), the
# source variable, and on flow panels the address / protocol / VLAN variables ('' = any).
# No SELECT alias may be named like a filtered column: ClickHouse resolves WHERE names to
# aliases first (an address aliased `source` made the source filter compare addresses).
_WHERE = ("$__timeFilter(window_start) AND ('${source}' = '' OR source = '${source}')")
# Addresses are stored as IPv6 (IPv4 mapped): an IPv4 variable must be mapped before it is
# compared (toIPv6OrDefault('192.0.2.1') is '::', which matches nothing).
_ADDR_VAR = "toIPv6OrDefault(if(isIPv4String('${address}'), concat('::ffff:', '${address}'), '${address}'))"
_FLOW_WHERE = (_WHERE + f" AND ('${{address}}' = '' OR src = {_ADDR_VAR} OR dst = {_ADDR_VAR})"
               " AND ('${protocol}' = '' OR toString(proto) = '${protocol}')"
               " AND ('${vlan}' = '' OR toString(vlan) = '${vlan}')")
_ADDR = ("if(startsWith(toString({c}), '::ffff:') AND isIPv4String(substring(toString({c}), 8)), "
         "substring(toString({c}), 8), toString({c}))")

PANELS = [
    ("Traffic (bits/s)", "timeseries",
     f"SELECT $__timeInterval(window_start) AS time, sum(bytes) * 8 / any(window_seconds) AS bps "
     f"FROM netspectra.window_totals FINAL WHERE {_WHERE} GROUP BY time ORDER BY time"),
    ("Packets/s", "timeseries",
     f"SELECT $__timeInterval(window_start) AS time, sum(packets) / any(window_seconds) AS pps "
     f"FROM netspectra.window_totals FINAL WHERE {_WHERE} GROUP BY time ORDER BY time"),
    ("Protocol mix (bytes)", "piechart",
     f"SELECT name AS protocol, sum(bytes) AS bytes FROM netspectra.window_counters FINAL "
     f"WHERE {_WHERE} AND kind = 'protocol' GROUP BY protocol ORDER BY bytes DESC"),
    ("Top destination ports", "table",
     f"SELECT name AS port, sum(packets) AS packets, sum(bytes) AS bytes FROM netspectra.window_counters FINAL "
     f"WHERE {_WHERE} AND kind = 'port' GROUP BY port ORDER BY bytes DESC LIMIT 20"),
    ("Top talkers (exact, bytes)", "table",
     f"SELECT {_ADDR.format(c='src')} AS talker, sum(bytes) AS bytes, sum(packets) AS packets "
     f"FROM netspectra.flows FINAL WHERE {_FLOW_WHERE} GROUP BY src ORDER BY bytes DESC LIMIT 20"),
    ("Top flows (exact, bytes)", "table",
     f"SELECT {_ADDR.format(c='src')} AS src_addr, sport, {_ADDR.format(c='dst')} AS dst_addr, dport, proto, "
     f"sum(bytes) AS bytes, sum(packets) AS packets FROM netspectra.flows FINAL WHERE {_FLOW_WHERE} "
     f"GROUP BY src, sport, dst, dport, proto ORDER BY bytes DESC LIMIT 20"),
    ("Super-spreaders (distinct destinations, largest window)", "table",
     f"SELECT {_ADDR.format(c='addr')} AS spreader, max(estimate) AS distinct_destinations "
     f"FROM netspectra.spreaders FINAL WHERE {_WHERE} AND kind = 'src_spread' "
     f"GROUP BY addr ORDER BY distinct_destinations DESC LIMIT 20"),
    ("Fan-in victims (distinct sources, largest window)", "table",
     f"SELECT {_ADDR.format(c='addr')} AS destination, max(estimate) AS distinct_sources "
     f"FROM netspectra.spreaders FINAL WHERE {_WHERE} AND kind = 'dst_fan_in' "
     f"GROUP BY addr ORDER BY distinct_sources DESC LIMIT 20"),
    ("Decode errors and late packets", "timeseries",
     f"SELECT $__timeInterval(window_start) AS time, name, sum(packets) AS packets "
     f"FROM netspectra.window_counters FINAL WHERE {_WHERE} AND kind = 'status' "
     f"AND name NOT IN ('frames', 'ok', 'ip_packets') GROUP BY time, name ORDER BY time"),
    # Alerts active in the time range (first seen before its end, last seen after its start), newest first
    ("Alerts", "table",
     "SELECT window_start AS first_seen, last_seen, severity, rule, state, entity, value, threshold "
     "FROM netspectra.alerts FINAL WHERE window_start <= $__toTime AND last_seen >= $__fromTime "
     "AND ('${source}' = '' OR source = '${source}') "
     "AND ('${address}' = '' OR src = '${address}' OR dst = '${address}') "
     "ORDER BY first_seen DESC, id LIMIT 100"),
    ("Pipeline lag (s): window end to written", "timeseries",
     f"SELECT $__timeInterval(window_start) AS time, "
     f"max(toFloat64(inserted_at) - (toFloat64(window_start) + window_seconds)) AS lag_s "
     f"FROM netspectra.window_totals FINAL WHERE {_WHERE} GROUP BY time ORDER BY time"),
]

VARIABLES = [
    ("source", "SELECT DISTINCT source FROM netspectra.window_totals WHERE $__timeFilter(window_start) ORDER BY source"),
    ("protocol", "SELECT DISTINCT name FROM netspectra.window_counters WHERE kind = 'protocol' "
                 "AND $__timeFilter(window_start) ORDER BY name"),
]


def dashboard() -> dict:
    panels = []
    for i, (title, kind, sql) in enumerate(PANELS):
        panels.append({"id": i + 1, "title": title, "type": kind, "datasource": DS,
                       "gridPos": {"x": (i % 2) * 12, "y": (i // 2) * 8, "w": 12, "h": 8},
                       "targets": [{"refId": "A", "datasource": DS, "editorType": "sql", "rawSql": sql,
                                    "format": 0 if kind == "timeseries" else 1, "queryType": "sql"}]})
    templating = [{"name": name, "type": "query", "datasource": DS, "query": sql, "definition": sql,
                   "includeAll": False, "multi": False, "refresh": 2,
                   "current": {"text": "", "value": ""}, "options": []} for name, sql in VARIABLES]
    templating.append({"name": "address", "type": "textbox", "label": "address (IPv4 or IPv6)",
                       "query": "", "current": {"text": "", "value": ""}})
    templating.append({"name": "vlan", "type": "textbox", "label": "VLAN id (0 = untagged)",
                       "query": "", "current": {"text": "", "value": ""}})
    return {"uid": "netspectra-overview", "title": "NetSpectra overview", "schemaVersion": 39, "version": 1,
            "editable": True, "time": {"from": "now-6h", "to": "now"}, "refresh": "30s", "tags": ["netspectra"],
            "templating": {"list": templating}, "panels": panels}


def render() -> str:
    return json.dumps(dashboard(), indent=1) + "\n"


if __name__ == "__main__":
    OUT.write_text(render())
    print(f"wrote {OUT}")
