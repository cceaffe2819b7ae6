"""Every SQL in the Grafana dashboard (panels and variables) runs on chDB (modern ClickHouse) and on
Debian's 18.16 server, with the macros expanded as the official ClickHouse plugin expands them;
both answer alike, and the exact panels agree with the brute force. `netspectra grafana` writes
provisioning Grafana can use as it is."""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from dashboards import build
from schemas.alerts import Alert
from tests.api.conftest import by_entity, totals
from tests.conftest import ROOT
from tests.conftest import tshark_sip_calls
from tests.support import SIP_CAPTURE, dns_names_rows, rows_of, sip_calls_rows, tls_flows_rows, tunnel_flows_rows

T0, T1 = 1_600_000_000, 1_900_000_000
PANEL_SQL = {title: sql for title, _kind, sql in build.PANELS}


expand = build.expand


ALERT = Alert("feedbeef", "syn_flood", "syn_flood", "critical", {"dst": "10.10.10.10"}, 5000, 1000,
              1_700_000_060 * 10**9, 1_700_000_120 * 10**9, 1_700_000_000 * 10**9, 1_700_000_120 * 10**9, "firing", 2)
SOURCE = "dash-cap"     # the server is shared by the session's tests: this module's windows carry their own source
TLS_SOURCE, TLS_T0 = "dash-tls", 1_500_000_000        # TLS connections' records, before every other range here
TUN_SOURCE, TUN_T0 = "dash-tun", 1_500_100_000        # tunnelled packets' records, likewise
SIP_SOURCE = "dash-sip"                                 # SIP calls, at their capture's times (2005)


@pytest.fixture(scope="module")
def chdb_store(api_results, tmp_path_factory):
    """The module's one chDB store (a process opens one chDB session at a time)."""
    from sinks.chdb_store import ChdbStore
    results, _ref = api_results
    s = ChdbStore(str(tmp_path_factory.mktemp("dash")), rollups=True)
    s.write(rows_of(results, SOURCE))
    s.write(dns_names_rows(tmp_path_factory.mktemp("dash-dns"), SOURCE))
    s.write(tls_flows_rows(TLS_SOURCE, TLS_T0))
    s.write(tunnel_flows_rows(TUN_SOURCE, TUN_T0))
    s.write(sip_calls_rows(SIP_SOURCE))
    s.write_alerts([ALERT], SOURCE)
    return s


@pytest.fixture(scope="module")
def chdb(chdb_store, api_results):
    return chdb_store.rows, api_results[1]


@pytest.fixture(scope="module")
def rolled(chdb_store, api_results):
    """The store with the capture copied over days (_write_days) after T1, where the other tests
    do not look, as ROLLED and as GONE."""
    results, _ref = api_results
    return chdb_store, _write_days(chdb_store, results, {ROLLED: LATER, GONE: LATER + YEAR})


@pytest.fixture(scope="module")
def server(api_results, local_stack, tmp_path_factory):
    """Debian's 18.16 (the down-level schema) holding the same windows and alert."""
    from sinks.clickhouse_native import ClickHouseNative
    results, _ref = api_results
    _, ports, _ = local_stack
    s = ClickHouseNative(f"127.0.0.1:{ports['clickhouse']}")
    s.write(rows_of(results, SOURCE))
    s.write(dns_names_rows(tmp_path_factory.mktemp("dash-dns"), SOURCE))
    s.write(tls_flows_rows(TLS_SOURCE, TLS_T0))
    s.write(tunnel_flows_rows(TUN_SOURCE, TUN_T0))
    s.write(sip_calls_rows(SIP_SOURCE))
    s.write_alerts([ALERT], SOURCE)
    return lambda sql: s.client.execute(sql), ports


def all_sql() -> list[str]:
    d = json.loads(build.OUT.read_text())
    return [p["targets"][0]["rawSql"] for p in d["panels"]] + [v["query"] for v in d["templating"]["list"] if v["query"]]


def test_dashboard_file_is_current():
    assert build.OUT.read_text() == build.render(), "run: python -m dashboards.build"
    assert build.PIPELINE_OUT.read_text() == build.render_pipeline(), "run: python -m dashboards.build"
    d = json.loads(build.OUT.read_text())
    assert len(d["panels"]) == len(build.PANELS) and {v["name"] for v in d["templating"]["list"]} == \
        {"source", "protocol", "address", "vlan"}


def _scopes(sql: str) -> list[str]:
    """Each SELECT of a statement on its own (subqueries and UNION ALL members cut out of their
    parent): aliases are per SELECT."""
    out, stack = [], [[]]
    for part in re.split(r"(\(|\))", re.sub(r"'[^']*'", "''", sql)):       # string literals are not names
        if part == "(":
            stack.append([])
        elif part == ")":
            inner = "".join(stack.pop())
            if re.match(r"\s*(SELECT|WITH)\b", inner):
                out.extend(re.split(r"\bUNION ALL\b", inner))
                stack[-1].append("(subquery)")
            else:
                stack[-1].append(f"({inner})")
        else:
            stack[-1].append(part)
    return out + re.split(r"\bUNION ALL\b", "".join(stack[0]))


def test_only_macros_both_servers_have_and_no_alias_shadows_a_filter():
    """No $__timeInterval (toStartOfInterval is missing on 18.16); no SELECT alias named like a
    column the WHERE uses (ClickHouse resolves WHERE names to aliases first). WITH names are
    there for the WHERE to use."""
    for sql in all_sql():
        assert "$__timeInterval" not in sql, sql
        for scope in _scopes(sql):
            where = re.search(r"\bWHERE\b(.*?)(\bGROUP BY\b|\bORDER BY\b|$)", scope, re.S)
            used = set(re.findall(r"\b([a-z_]+)\b", where.group(1))) if where else set()
            select = re.sub(r"^\s*WITH\b.*?\bSELECT\b", "SELECT", scope, flags=re.S)
            aliases = set(re.findall(r"\bAS (\w+)", select))
            assert not aliases & used, (aliases & used, scope)


def _expected_talkers(ref: dict, keep) -> list[tuple[str, int, int]]:
    """Exact (source, bytes, packets) over the flows `keep` accepts, most bytes first."""
    import collections
    by, pk = collections.Counter(), collections.Counter()
    for flows in ref.values():
        for k, (p, b, *_r) in flows.items():
            if keep(k):
                by[k[0]] += b
                pk[k[0]] += p
    return [(a, b, pk[a]) for a, b in sorted(by.items(), key=lambda x: (-x[1], x[0]))]


def _variables(ref, filtered: bool) -> tuple[dict, object]:
    busiest = by_entity(ref, 0).most_common(1)[0][0]
    if filtered:
        return ({"source": SOURCE, "address": busiest, "protocol": "6", "vlan": "0"},
                lambda k: busiest in k[:2] and k[4] == 6 and k[5] == 0)
    return {"source": "", "address": "", "protocol": "", "vlan": ""}, (lambda k: True)


@pytest.mark.parametrize("filtered", [False, True], ids=["any", "filtered"])
def test_every_sql_runs_and_the_exact_panels_are_exact(chdb, filtered):
    """Every SQL runs; the exact panels (top talkers, packets/s, bits/s at a coarser interval)
    equal the brute force, without filters and with source, address, protocol and VLAN all set
    (to values present in the capture)."""
    rows, ref = chdb
    variables, keep = _variables(ref, filtered)
    for sql in all_sql():
        rows(expand(sql, T0, T1, variables))      # raises on any SQL error
    got = [tuple(r) for r in rows(expand(PANEL_SQL["Top talkers (exact, bytes)"], T0, T1, variables))]
    want = _expected_talkers(ref, keep)
    assert len(want) >= 2 and got == want[:20]          # exact rows, most bytes first, then by address
    pps = rows(expand(PANEL_SQL["Packets/s"], T0, T1, variables))
    assert round(sum(p for _, p in pps) * 10) == totals(ref)[0]      # window totals: source filter only
    bps = rows(expand(PANEL_SQL["Traffic (bits/s)"], T0, T1, variables, interval_s=60))    # 6 windows a point
    assert round(sum(b for _, b in bps) * 60) == totals(ref)[1] * 8
    assert rows(expand(PANEL_SQL["Super-spreaders (distinct destinations, largest window)"], T0, T1, variables))
    assert rows(expand(PANEL_SQL["Port scanners (distinct destination ports)"], T0, T1, variables))
    dns = PANEL_SQL["DNS names (A/AAAA answers)"]
    assert [tuple(r) for r in rows(expand(dns, T0, T1, {**variables, "address": "192.0.2.1"}))] == [
        ("192.0.2.1", "edge.example.net", "www.example.org", 3)]            # tests/support.py DNS_ANSWERS
    assert len(rows(expand(dns, T0, T1, {**variables, "address": ""}))) == 4
    other = {**variables, "source": "another-source"}
    assert rows(expand(PANEL_SQL["Top talkers (exact, bytes)"], T0, T1, other)) == []
    alerts = rows(expand(PANEL_SQL["Alerts"], T0, T1, {**variables, "address": ""}))
    assert [(r[2], r[3], r[4], r[6]) for r in alerts] == [("critical", "syn_flood", "firing", 5000)]
    assert rows(expand(PANEL_SQL["Alerts"], T0, T1, {**variables, "address": "10.10.10.10"})) == alerts
    assert rows(expand(PANEL_SQL["Alerts"], T0, T1, {**variables, "address": "10.10.10.11"})) == []
    assert rows(expand(PANEL_SQL["Alerts"], T0, 1_700_000_000 - 1, variables)) == []      # it starts after the range
    assert rows(expand(PANEL_SQL["Alerts"], T0, T1, other)) == []


def test_tls_server_names_panel_sums_each_names_connections(chdb, server):
    """Both directions of every connection under its name, most bytes first, on both schemas."""
    import collections
    want = collections.Counter()
    for w in tls_flows_rows(TLS_SOURCE, TLS_T0):
        f = w.tables["flows"]
        for sni, b in zip(f["tls_sni"].tolist(), f["bytes"].tolist()):
            if sni:
                want[sni] += b
    q = expand(PANEL_SQL["TLS server names (SNI)"], TLS_T0, TLS_T0 + 3600,
               {"source": TLS_SOURCE, "address": "", "protocol": "", "vlan": ""})
    got = [tuple(r) for r in chdb[0](q)]
    assert len(want) > 20 and [(r[0], r[1]) for r in got] == sorted(want.items(), key=lambda kv: (-kv[1], kv[0]))[:20]
    assert [tuple(map(_norm, r)) for r in server[0](q)] == [tuple(map(_norm, r)) for r in got]


def test_tunnels_panel_sums_each_tunnel(chdb, server):
    """Every tunnel's records (kind and id), most bytes first; none outside tunnels; both schemas."""
    import collections
    want = collections.Counter()
    for w in tunnel_flows_rows(TUN_SOURCE, TUN_T0):
        f = w.tables["flows"]
        for kind, tid, b in zip(f["tunnel"].tolist(), f["tunnel_id"].tolist(), f["bytes"].tolist()):
            if kind:
                want[(kind, tid)] += b
    q = expand(PANEL_SQL["Tunnels (kind and id)"], TUN_T0, TUN_T0 + 4 * 3600,
               {"source": TUN_SOURCE, "address": "", "protocol": "", "vlan": ""})
    got = [tuple(r) for r in chdb[0](q)]
    assert want == {("vxlan", 123): 672, ("mpls", 29): 470, ("gre", 17): 174, ("gre", 6016): 99}
    assert [((r[0], r[1]), r[2]) for r in got] == sorted(want.items(), key=lambda kv: (-kv[1], kv[0]))[:20]
    assert [tuple(map(_norm, r)) for r in server[0](q)] == [tuple(map(_norm, r)) for r in got]


def test_sip_calls_panel_joins_each_calls_windows(chdb, server):
    """Every call of the capture, latest first, equal to tshark's messages joined per Call-ID;
    the address variable keeps the calls whose first message it sent or received; both schemas."""
    calls = tshark_sip_calls(SIP_CAPTURE)
    want = [(c, v[0], v[1], v[2], v[9], v[7], v[8]) for (_, c), v in sorted(calls.items(), key=lambda kv: (-kv[1][5], kv[0][1]))]
    variables = {"source": SIP_SOURCE, "address": "", "protocol": "", "vlan": ""}
    q = expand(PANEL_SQL["SIP calls (latest first)"], 1_100_000_000, 1_200_000_000, variables)
    got = [tuple(r) for r in chdb[0](q)]
    assert len(want) == 6 and got == want
    assert [tuple(map(_norm, r)) for r in server[0](q)] == [tuple(map(_norm, r)) for r in got]
    q = expand(PANEL_SQL["SIP calls (latest first)"], 1_100_000_000, 1_200_000_000, {**variables, "address": "200.68.120.81"})
    assert [r[0] for r in chdb[0](q)] == [r[0] for r in server[0](q)] == ["105090259-446faf7a@192.168.1.2"]


def _norm(v):
    """A value as either server returns it, made comparable: times as epoch seconds, numbers as numbers."""
    if isinstance(v, dt.datetime):
        return round(v.replace(tzinfo=dt.timezone.utc).timestamp(), 3)
    if isinstance(v, str) and re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?", v):
        return round(dt.datetime.fromisoformat(v).replace(tzinfo=dt.timezone.utc).timestamp(), 3)
    if isinstance(v, str) and re.fullmatch(r"-?\d+(\.\d+)?", v):
        return _norm(float(v))
    if isinstance(v, float):
        return int(v) if v.is_integer() else round(v, 6)
    return v


@pytest.mark.parametrize("interval_s", [10, 60])
def test_the_1816_server_answers_every_sql_as_chdb_does(chdb, server, interval_s):
    """The same expanded SQL on both schemas (addresses as IPv6 vs 16 raw bytes, DateTime64 vs
    DateTime): the same rows. The source variable is this module's (the server holds others')."""
    rows, ref = chdb
    on_server, _ = server
    for filtered in (False, True):
        variables = {**_variables(ref, filtered)[0], "source": SOURCE}
        for sql in all_sql():
            q = expand(sql, T0, T1, variables, interval_s)
            if sql.startswith("SELECT DISTINCT source"):        # the variable lists every source there is
                assert (SOURCE,) in on_server(q)
                continue
            keep = 1 if "inserted_at" in sql else None      # the lag panel: each store wrote at its own time
            ours = sorted(tuple(map(_norm, r[:keep])) for r in rows(q))
            theirs = sorted(tuple(map(_norm, r[:keep])) for r in on_server(q))
            assert ours == theirs, sql
            # every panel has something to show, but alerts, decode errors, TLS names, tunnels and SIP
            # calls (a clean, generated capture has none; test_tls_server_names_panel... and the like have some)
            assert ours or "alerts" in sql or "kind = 'status'" in sql or "tls_sni" in sql or "tunnel" in sql \
                or "sip_calls" in sql \
                or filtered, sql


def test_grafana_command_writes_provisioning_for_the_stack(server, tmp_path):
    """`netspectra grafana`: datasources pointing at the given server with the stack's password
    (file mode 0600), a dashboard provider on the written dashboards; a bad address: one line, exit 2."""
    _, ports = server
    addr = f"127.0.0.1:{ports['clickhouse']}"
    out = tmp_path / "grafana"
    r = subprocess.run([sys.executable, "-m", "netspectra.cli", "grafana", "--out", str(out), "--clickhouse", addr],
                       capture_output=True, text=True, cwd=ROOT, env=os.environ, timeout=60)
    assert r.returncode == 0 and "GF_PATHS_PROVISIONING" in r.stdout, r.stderr
    from schemas import credentials
    ds_file = out / "provisioning" / "datasources" / "netspectra.yaml"
    ds = {d["type"]: d for d in yaml.safe_load(ds_file.read_text())["datasources"]}
    ch = ds["grafana-clickhouse-datasource"]
    assert (ch["uid"], ch["jsonData"]["host"], ch["jsonData"]["port"]) == (build.DS["uid"], "127.0.0.1", ports["clickhouse"])
    assert ch["secureJsonData"]["password"] == credentials.lookup(addr)["password"] != ""
    assert ds_file.stat().st_mode & 0o777 == 0o600
    assert ds["prometheus"]["uid"] == build.PROM["uid"]
    provider = yaml.safe_load((out / "provisioning" / "dashboards" / "netspectra.yaml").read_text())["providers"][0]
    boards = sorted(p.name for p in (out / "dashboards").iterdir())
    assert provider["options"]["path"] == str(out / "dashboards") and boards == sorted(
        [build.OUT.name, build.PIPELINE_OUT.name])
    assert json.loads((out / "dashboards" / build.OUT.name).read_text()) == build.dashboard()
    bad = subprocess.run([sys.executable, "-m", "netspectra.cli", "grafana", "--out", str(out), "--clickhouse", "nowhere"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "host:port" in bad.stderr


# ---- the panels that read roll-ups (build._tiered) ------------------------------------------
HOUR, DAY, YEAR = 3600, 86400, 365 * 86400
LATER = 10 * YEAR               # the rolled copies lie past T1
SHIFTS = (0, 5 * HOUR + 7 * 60, DAY + 2 * HOUR, 2 * DAY + 23 * HOUR)      # copies of the capture over three days
FRESH = 3 * DAY                 # one more copy, written but not rolled up yet (the newest minutes)
ROLLED, GONE = "dash-rolled", "dash-gone"
TIERED = ["Top talkers (exact, bytes)", "Port scanners (distinct destination ports)",
          "Super-spreaders (distinct destinations, largest window)", "Fan-in victims (distinct sources, largest window)"]
RECORDS_SQL = {title: sql for title, _kind, sql in build.panels(records_only=True)}    # from the records alone


def _write_days(store, results, sources: dict[str, int]) -> tuple[int, int]:
    """The capture's windows as each source, its number of seconds later, at each of SHIFTS,
    rolled up; then a copy at FRESH not rolled up. (first, last) window start of the first source."""
    import dataclasses

    def copies(shifts):
        return [rows_of([dataclasses.replace(r, start=r.start + (later + s) * 10**9)], source)[0]
                for source, later in sources.items() for s in shifts for r in results]
    store.write(copies(SHIFTS))
    store.finish()
    every, store.rollups.every_s = store.rollups.every_s, float("inf")      # the fresh copies stay in the records alone
    store.write(copies([FRESH]))
    store.rollups.every_s = every
    later = next(iter(sources.values()))
    return results[0].start // 10**9 + later, results[-1].start // 10**9 + later + FRESH


def _ranges(first: int, last: int) -> list[tuple[int, int]]:
    """Everything; ends at odd seconds (every level takes part); whole days; a minute-aligned
    range inside one copy; the fresh copy alone; nothing."""
    return [(first - DAY, last + DAY), (first + 17, last - 3), (first + HOUR + 13, first + 2 * DAY + 3 * HOUR + 1),
            (first // DAY * DAY, first // DAY * DAY + 2 * DAY - 1), (first // 60 * 60 + 60, first // 60 * 60 + 179),
            (first + FRESH - 5, last + DAY), (first - DAY, first - 1)]


@pytest.mark.parametrize("filtered", [False, True], ids=["any", "filtered"])
def test_the_panels_on_rollups_answer_as_the_records_do(rolled, api_results, filtered):
    """Top talkers, port scanners, super-spreaders and fan-in read days, hours (and minutes) of
    roll-ups and their base table for the rest: over ranges ending anywhere, the rows the base
    table (flow records, spreaders' windows) gives."""
    store, (first, last) = rolled
    variables = {**_variables(api_results[1], filtered)[0], "source": ROLLED if filtered else ""}
    for t0, t1 in _ranges(first, last):
        for title in TIERED:
            want = store.rows(expand(RECORDS_SQL[title], t0, t1, variables))
            assert store.rows(expand(PANEL_SQL[title], t0, t1, variables)) == want, (title, t0 - first, t1 - first)
            assert want or t1 < first or filtered, (title, t0, t1)


def test_what_the_rollups_hold_is_not_read_from_the_records(rolled):
    """With GONE's flow records and spreaders' windows deleted, a range its roll-ups hold
    answers alike; its fresh copy (not rolled up yet) is gone from the answer."""
    store, (first, _last) = rolled
    first += YEAR
    variables = {"source": GONE, "address": "", "protocol": "", "vlan": ""}
    held = (first // HOUR * HOUR, first + DAY)      # from an hour's start to a time without windows: whole buckets
    fresh = (first + FRESH - 5, first + FRESH + DAY)
    before = {t: store.rows(expand(PANEL_SQL[t], *held, variables)) for t in TIERED}
    assert all(before.values()) and store.rows(expand(PANEL_SQL[TIERED[0]], *fresh, variables))
    for base in ("flows", "spreaders"):
        store.query(f"ALTER TABLE netspectra.{base} DELETE WHERE source = '{GONE}' SETTINGS mutations_sync = 2")
    assert all(store.rows(expand(RECORDS_SQL[t], *held, variables)) == [] for t in TIERED)
    assert {t: store.rows(expand(PANEL_SQL[t], *held, variables)) for t in TIERED} == before
    assert store.rows(expand(PANEL_SQL[TIERED[0]], *fresh, variables)) == []


def test_the_1816_server_answers_the_rollup_panels_as_chdb_does(rolled, api_results, local_stack):
    """The same copies rolled up on Debian's 18.16 server: the same rows over every range."""
    from sinks.clickhouse_native import ClickHouseNative
    store, (first, last) = rolled
    results, ref = api_results
    _, ports, _ = local_stack
    server = ClickHouseNative(f"127.0.0.1:{ports['clickhouse']}", rollups=True)
    _write_days(server, results, {ROLLED: LATER})
    for filtered in (False, True):
        variables = {**_variables(ref, filtered)[0], "source": ROLLED}
        for t0, t1 in _ranges(first, last):
            for title in TIERED:
                q = expand(PANEL_SQL[title], t0, t1, variables)
                assert sorted(map(_row, store.rows(q))) == sorted(map(_row, server.client.execute(q))), (title, t0, t1)
    server.close()


def _row(r) -> tuple:
    return tuple(map(_norm, r))
