"""The Grafana dashboards: the traffic (dashboards/json/netspectra.json) on the official ClickHouse
datasource plugin, the pipeline's own health (dashboards/json/netspectra-pipeline.json) on
Prometheus (schemas/metrics.py). Panels are declared here once (title, kind, query); tests run
every SQL, with the plugin's macros expanded as the plugin does, on chDB (modern ClickHouse) and
on Debian's 18.16 server, and every PromQL against a real Prometheus scraping a live pipeline.
`netspectra grafana` (dashboards/provision.py) writes them with their datasources for Grafana.
Top talkers, port scanners, super-spreaders and fan-in read the roll-ups where they hold the
range exactly (_tiered).

    python -m dashboards.build      # after changing a panel: rewrites dashboards/json/
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from schemas.clickhouse import MARKS, ROLLUPS, SIP_CALL_SQL, addr_display_sql, addr_match_sql

OUT = Path(__file__).resolve().parent / "json" / "netspectra.json"
PIPELINE_OUT = Path(__file__).resolve().parent / "json" / "netspectra-pipeline.json"
DS = {"type": "grafana-clickhouse-datasource", "uid": "netspectra-clickhouse"}
PROM = {"type": "prometheus", "uid": "netspectra-prometheus"}

# Only functions both schemas have (18.16 lacks toStartOfInterval, isIPv4String, toIPv6...) and
# only the plugin macros that expand to them: $__timeFilter (toDateTime), $__interval_s (a
# number), $__fromTime/$__toTime; not $__timeInterval (toStartOfInterval).
_TIME = "toDateTime(intDiv(toUInt32(toDateTime(window_start)), $__interval_s) * $__interval_s)"
# Filters every panel shares: time range (the sort key's first column), the source variable, and
# on flow panels the address / protocol / VLAN variables ('' = any).
# No SELECT alias may be named like a column a WHERE uses: ClickHouse resolves WHERE names to
# aliases first (an address aliased `source` made the source filter compare addresses).
_WHERE = ("$__timeFilter(window_start) AND ('${source}' = '' OR source = '${source}')")
_ADDRESS = "'${address}'"
_FLOW_WHERE = (_WHERE + f" AND ({_ADDRESS} = '' OR {addr_match_sql('src', _ADDRESS)} OR {addr_match_sql('dst', _ADDRESS)})"
               " AND ('${protocol}' = '' OR toString(proto) = '${protocol}')"
               " AND ('${vlan}' = '' OR toString(vlan) = '${vlan}')")
_ADDR = addr_display_sql
_SPREAD_WHERE, _FAN_IN_WHERE = (_WHERE + f" AND kind = '{kind}'" for kind in ("src_spread", "dst_fan_in"))


def _bounds(levels: list[tuple[int, str]]) -> str:
    """For each level (coarsest first) [since, until): the window starts it holds exactly for
    every source with windows in the range (its rollup_marks spans, sinks/rollups.py, all of
    them: empty if a source has none), cut to its whole buckets inside the range. One scalar
    subquery: a tuple of 2 numbers a level."""
    n = "uniqExact(source)"
    parts = []
    for res, level in levels:
        lo = f"intDiv(toUInt32($__fromTime) + {res - 1}, {res}) * {res}"
        hi = f"intDiv(toUInt32($__toTime), {res}) * {res}"
        every = f"countIf(level = '{level}') = {n}"
        parts += [f"toUInt32(greatest(if({every}, maxIf(w_since, level = '{level}'), 0), {lo}))",
                  f"toUInt32(least(if({every}, minIf(w_until, level = '{level}'), 0), {hi}))"]
    names = ", ".join(f"'{level}'" for _, level in levels)
    return (f"(SELECT {', '.join(parts)} "
            f"FROM (SELECT DISTINCT source FROM netspectra.window_totals WHERE {_WHERE}) AS w_sources "
            f"ALL LEFT JOIN (SELECT source, level, toUInt32(toDateTime(since)) AS w_since, "
            f"toUInt32(toDateTime(until)) AS w_until FROM netspectra.{MARKS} FINAL WHERE level IN ({names})) AS w_spans "
            f"USING source)")


def _tiered(family: str, columns: str, where: str, records_only: bool = False) -> str:
    """A FROM clause: `columns` of the rows of the family's base table (the flow records, or a
    sketch table) in the range, each window's from the coarsest roll-up of `family`
    (schemas/clickhouse.py ROLLUPS) whose bucket lies whole inside the range and inside what that
    level holds exactly (_bounds); the rest from the base table. So a month reads days of
    roll-ups, the edges hours and minutes, the newest minutes (not rolled up yet) records: the
    answer is the base table's own, exact, and current. Each part is a range of the sort key's
    first column. `where`: the filters, on columns every level keeps. (The API plans in Python
    instead: api/queries.py plan.) `records_only`: from the base table alone (what tests
    and bench compare with)."""
    levels = sorted(((r.res, name) for name, r in ROLLUPS.items() if name.rsplit("_", 1)[0] == family), reverse=True)
    base = ROLLUPS[levels[0][1]].base
    if records_only:
        return f"(SELECT {columns} FROM netspectra.{base} FINAL WHERE {where})"

    def within(i: int) -> str:
        return (f"(window_start >= toDateTime(tupleElement(w_held, {2 * i + 1})) "
                f"AND window_start < toDateTime(tupleElement(w_held, {2 * i + 2})))")
    held, parts = _bounds(levels), []
    for i, (_res, table) in enumerate([*levels, (0, base)]):
        keep = ([within(i)] if table != base else []) + [f"NOT {within(c)}" for c in range(i)]
        parts.append(f"WITH {held} AS w_held SELECT {columns} FROM netspectra.{table} FINAL "
                     f"WHERE {where} AND " + " AND ".join(keep))
    return "(" + " UNION ALL ".join(parts) + ")"


def panels(records_only: bool = False) -> list[tuple[str, str, str]]:
    """(title, kind, SQL) of each panel; `records_only`: the roll-up panels from the records alone."""
    def tiered(family: str, columns: str, where: str) -> str:
        return _tiered(family, columns, where, records_only)
    return [
        ("Traffic (bits/s)", "timeseries",
         f"SELECT {_TIME} AS time, sum(bytes) * 8 / greatest(max(window_seconds), $__interval_s) AS bps "
         f"FROM netspectra.window_totals FINAL WHERE {_WHERE} GROUP BY time ORDER BY time"),
        ("Packets/s", "timeseries",
         f"SELECT {_TIME} AS time, sum(packets) / greatest(max(window_seconds), $__interval_s) AS pps "
         f"FROM netspectra.window_totals FINAL WHERE {_WHERE} GROUP BY time ORDER BY time"),
        ("Protocol mix (bytes)", "piechart",
         f"SELECT name AS protocol, sum(bytes) AS bytes FROM netspectra.window_counters FINAL "
         f"WHERE {_WHERE} AND kind = 'protocol' GROUP BY protocol ORDER BY bytes DESC, protocol"),
        ("Top destination ports", "table",
         f"SELECT name AS port, sum(packets) AS packets, sum(bytes) AS bytes FROM netspectra.window_counters FINAL "
         f"WHERE {_WHERE} AND kind = 'port' GROUP BY port ORDER BY bytes DESC, port LIMIT 20"),
        ("Top talkers (exact, bytes)", "table",
         f"SELECT {_ADDR('src')} AS talker, sum(bytes) AS bytes, sum(packets) AS packets "
         f"FROM {tiered('hosts', 'src, bytes, packets', _FLOW_WHERE)} GROUP BY src ORDER BY bytes DESC, talker LIMIT 20"),
        ("Top flows (exact, bytes)", "table",
         f"SELECT {_ADDR('src')} AS src_addr, sport, {_ADDR('dst')} AS dst_addr, dport, proto, "
         f"sum(bytes) AS bytes, sum(packets) AS packets FROM netspectra.flows FINAL WHERE {_FLOW_WHERE} "
         f"GROUP BY src, sport, dst, dport, proto ORDER BY bytes DESC, src_addr, sport, dst_addr, dport, proto LIMIT 20"),
        ("Super-spreaders (distinct destinations, largest window)", "table",
         f"SELECT {_ADDR('addr')} AS spreader, max(estimate) AS distinct_destinations "
         f"FROM {tiered('spreaders', 'addr, estimate', _SPREAD_WHERE)} "
         f"GROUP BY addr ORDER BY distinct_destinations DESC, spreader LIMIT 20"),
        ("Fan-in victims (distinct sources, largest window)", "table",
         f"SELECT {_ADDR('addr')} AS destination, max(estimate) AS distinct_sources "
         f"FROM {tiered('spreaders', 'addr, estimate', _FAN_IN_WHERE)} "
         f"GROUP BY addr ORDER BY distinct_sources DESC, destination LIMIT 20"),
        # Exact, over the range (as the API's QuerySpreaders with count: ports): TCP and UDP only
        ("Port scanners (distinct destination ports)", "table",
         f"SELECT {_ADDR('src')} AS scanner, uniqExact(dport) AS ports, uniqExact(dst) AS destinations, "
         f"sum(packets) AS packets FROM {tiered('flows', 'src, dst, dport, packets', _FLOW_WHERE + ' AND proto IN (6, 17)')} "
         f"GROUP BY src ORDER BY ports DESC, scanner LIMIT 20"),
        # What DNS answers named the addresses in the range (the dns_names table, flows/dns.py)
        ("DNS names (A/AAAA answers)", "table",
         f"SELECT {_ADDR('addr')} AS address, name, query, sum(answers) AS records FROM netspectra.dns_names FINAL "
         f"WHERE {_WHERE} AND ({_ADDRESS} = '' OR {addr_match_sql('addr', _ADDRESS)}) "
         f"GROUP BY addr, name, query ORDER BY records DESC, address, name, query LIMIT 50"),
        # Server names of TLS/QUIC connections (flows/tls.py): a connection's records, both directions
        ("TLS server names (SNI)", "table",
         f"SELECT tls_sni AS server_name, sum(bytes) AS bytes, sum(packets) AS packets, count() AS flow_records "
         f"FROM netspectra.flows FINAL WHERE {_FLOW_WHERE} AND tls_sni != '' "
         f"GROUP BY tls_sni ORDER BY bytes DESC, server_name LIMIT 20"),
        # SIP calls (flows/sip.py), their windows' rows joined per Call-ID as the API's ListSipCalls
        # does; the address variable matches the first message's source or destination
        ("SIP calls (latest first)", "table",
         f"SELECT call_id AS sip_call, {SIP_CALL_SQL['method']} AS first_method, "
         f"{SIP_CALL_SQL['from_uri']} AS caller, {SIP_CALL_SQL['to_uri']} AS callee, "
         f"{SIP_CALL_SQL['status']} AS final_status, sum(requests) AS requests_seen, "
         f"sum(responses) AS responses_seen FROM netspectra.sip_calls FINAL WHERE {_WHERE} GROUP BY call_id "
         f"HAVING {_ADDRESS} = '' OR {addr_match_sql(SIP_CALL_SQL['src'], _ADDRESS)} "
         f"OR {addr_match_sql(SIP_CALL_SQL['dst'], _ADDRESS)} ORDER BY min(first_seen) DESC, sip_call LIMIT 50"),
        # Packets taken out of tunnels (collectors/decode/tunnels.py): per tunnel kind and id
        ("Tunnels (kind and id)", "table",
         f"SELECT tunnel, tunnel_id, sum(bytes) AS bytes, sum(packets) AS packets, count() AS flow_records "
         f"FROM netspectra.flows FINAL WHERE {_FLOW_WHERE} AND tunnel != '' "
         f"GROUP BY tunnel, tunnel_id ORDER BY bytes DESC, tunnel, tunnel_id LIMIT 20"),
        ("Decode errors and late packets", "timeseries",
         f"SELECT {_TIME} AS time, name, sum(packets) AS packets "
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
         f"SELECT {_TIME} AS time, "
         f"max(toFloat64(inserted_at) - (toFloat64(window_start) + window_seconds)) AS lag_s "
         f"FROM netspectra.window_totals FINAL WHERE {_WHERE} GROUP BY time ORDER BY time"),
    ]


PANELS = panels()

VARIABLES = [
    ("source", "SELECT DISTINCT source FROM netspectra.window_totals WHERE $__timeFilter(window_start) ORDER BY source"),
    ("protocol", "SELECT DISTINCT name FROM netspectra.window_counters WHERE kind = 'protocol' "
                 "AND $__timeFilter(window_start) ORDER BY name"),
]


def expand(sql: str, t0: int, t1: int, variables: dict, interval_s: int = 10) -> str:
    """The plugin's macros as its pkg/macros/macros.go expands them (grafana/clickhouse-datasource):
    $__timeFilter(c) -> c >= toDateTime(from) AND c <= toDateTime(to); $__interval_s -> whole
    seconds (at least 1); $__fromTime / $__toTime -> toDateTime(s); $__timeInterval(c) ->
    toStartOfInterval(toDateTime(c), INTERVAL n second) (which 18.16 lacks: the dashboards must
    not use it). Then Grafana's ${variable}s, as text. Tests and bench/bench_api.py run the panels
    through it."""
    sql = re.sub(r"\$__timeFilter\((\w+)\)", rf"\1 >= toDateTime({t0}) AND \1 <= toDateTime({t1})", sql)
    sql = re.sub(r"\$__timeInterval\((\w+)\)", rf"toStartOfInterval(toDateTime(\1), INTERVAL {interval_s} second)", sql)
    sql = sql.replace("$__interval_s", str(max(interval_s, 1)))
    sql = sql.replace("$__fromTime", f"toDateTime({t0})").replace("$__toTime", f"toDateTime({t1})")
    for k, v in variables.items():
        sql = sql.replace("${" + k + "}", v)
    if "$" in sql:
        raise ValueError(f"a macro or variable left: {sql}")
    return sql


def _panel(i: int, title: str, kind: str, datasource: dict, **rest) -> dict:
    """Panel i of a dashboard: two 12-wide, 8-high panels a row."""
    return {"id": i + 1, "title": title, "type": kind, "datasource": datasource,
            "gridPos": {"x": (i % 2) * 12, "y": (i // 2) * 8, "w": 12, "h": 8}, **rest}


def _board(uid: str, title: str, since: str, refresh: str, templating: list, panels: list) -> dict:
    return {"uid": uid, "title": title, "schemaVersion": 39, "version": 1, "editable": True,
            "time": {"from": since, "to": "now"}, "refresh": refresh, "tags": ["netspectra"],
            "templating": {"list": templating}, "panels": panels}


def dashboard() -> dict:
    panels = [_panel(i, title, kind, DS, targets=[{"refId": "A", "datasource": DS, "editorType": "sql", "rawSql": sql,
                                                   "format": 0 if kind == "timeseries" else 1, "queryType": "sql"}])
              for i, (title, kind, sql) in enumerate(PANELS)]
    templating = [{"name": name, "type": "query", "datasource": DS, "query": sql, "definition": sql,
                   "includeAll": False, "multi": False, "refresh": 2,
                   "current": {"text": "", "value": ""}, "options": []} for name, sql in VARIABLES]
    templating.append({"name": "address", "type": "textbox", "label": "address (IPv4 or IPv6)",
                       "query": "", "current": {"text": "", "value": ""}})
    templating.append({"name": "vlan", "type": "textbox", "label": "VLAN id (0 = untagged)",
                       "query": "", "current": {"text": "", "value": ""}})
    return _board("netspectra-overview", "NetSpectra overview", "now-6h", "30s", templating, panels)


# The pipeline's health: (title, unit, [(legend, PromQL)])
PIPELINE_PANELS = [
    ("Packets captured and published /s", "pps", [
        ("captured {{instance}}", "sum by (instance) (rate(netspectra_collector_packets_captured_total[1m]))"),
        ("published {{instance}}", "sum by (instance) (rate(netspectra_collector_published_packets_total[1m]))"),
        ("windowed (engine)", "sum(rate(netspectra_engine_packets_total[1m]))")]),
    ("Drops and delivery failures /s", "pps", [
        ("kernel {{instance}}", "sum by (instance) (rate(netspectra_collector_kernel_drops_total[1m]))"),
        ("interface {{instance}}", "sum by (instance) (rate(netspectra_collector_interface_drops_total[1m]))"),
        ("Kafka delivery failures", "sum(rate(netspectra_collector_delivery_failures_total[1m]))")]),
    ("Decode outcomes /s", "pps", [
        ("{{status}}", "sum by (status) (rate(netspectra_collector_decoded_packets_total[1m]))")]),
    ("Consumer lag (messages)", "short", [
        ("partition {{partition}}", "sum by (partition) (netspectra_engine_consumer_lag_messages)")]),
    ("Windows closed /min", "short", [
        ("complete={{complete}}", "sum by (complete) (increase(netspectra_engine_windows_total[5m])) / 5"),
        ("revisions", "sum(increase(netspectra_engine_window_revisions_total[5m])) / 5")]),
    ("Late packets and dead letters /s", "short", [
        ("late packets", "sum(rate(netspectra_engine_late_packets_total[1m]))"),
        ("dead letters {{reason}}", "sum by (reason) (rate(netspectra_engine_dead_letters_total[1m]))"),
        ("duplicates", "sum(rate(netspectra_engine_duplicate_messages_total[1m]))")]),
    ("Flows per window (p50, p99)", "short", [
        ("p50", "histogram_quantile(0.5, sum by (le) (rate(netspectra_engine_window_flows_bucket[15m])))"),
        ("p99", "histogram_quantile(0.99, sum by (le) (rate(netspectra_engine_window_flows_bucket[15m])))")]),
    ("Sketch memory of the newest window", "bytes", [
        ("{{instance}}", "sum by (instance) (netspectra_engine_sketch_bytes)")]),
    ("Sink write latency p99", "s", [
        ("{{sink}}", "histogram_quantile(0.99, sum by (le, sink) (rate(netspectra_sink_write_seconds_bucket[5m])))")]),
    ("Sink retries and drops /s", "short", [
        ("retries {{sink}}", "sum by (sink) (rate(netspectra_sink_retries_total[1m]))"),
        ("dropped {{sink}}", "sum by (sink) (rate(netspectra_sink_dropped_total[1m]))")]),
    ("Alerts and notifications /min", "short", [
        ("{{change}} {{detector}}", "sum by (change, detector) (increase(netspectra_engine_alerts_total[5m])) / 5"),
        ("sent {{notifier}}", "sum by (notifier) (increase(netspectra_notifier_sent_total[5m])) / 5"),
        ("failed {{notifier}}", "sum by (notifier) (increase(netspectra_notifier_failures_total[5m])) / 5")]),
    ("API requests /s and p99 latency", "short", [
        ("{{transport}} {{status}}", "sum by (transport, status) (rate(netspectra_api_requests_total[1m]))"),
        ("p99 s {{transport}}",
         "histogram_quantile(0.99, sum by (le, transport) (rate(netspectra_api_request_seconds_bucket[5m])))")]),
]


def pipeline_dashboard() -> dict:
    panels = [_panel(i, title, "timeseries", PROM, fieldConfig={"defaults": {"unit": unit}, "overrides": []},
                     targets=[{"refId": chr(65 + j), "datasource": PROM, "expr": q, "legendFormat": legend}
                              for j, (legend, q) in enumerate(queries)])
              for i, (title, unit, queries) in enumerate(PIPELINE_PANELS)]
    return _board("netspectra-pipeline", "NetSpectra pipeline health", "now-1h", "10s", [], panels)


def render() -> str:
    return json.dumps(dashboard(), indent=1) + "\n"


def render_pipeline() -> str:
    return json.dumps(pipeline_dashboard(), indent=1) + "\n"


if __name__ == "__main__":
    OUT.write_text(render())
    PIPELINE_OUT.write_text(render_pipeline())
    print(f"wrote {OUT} and {PIPELINE_OUT}")
