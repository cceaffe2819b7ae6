"""Every SQL in the Grafana dashboard (panels and variables) runs against the DDL in chDB, with
Grafana's macros and variables expanded as the ClickHouse plugin does, on a capture's windows;
the exact panels agree with the brute force."""
from __future__ import annotations

import json
import re
import sys

import pytest

from tests.api.conftest import by_entity, totals
from schemas.alerts import Alert
from tests.conftest import ROOT
from tests.support import rows_of

sys.path.insert(0, str(ROOT / "dashboards"))
import build  # noqa: E402


def expand(sql: str, t0: int, t1: int, variables: dict) -> str:
    """The plugin's macros: $__timeFilter(c), $__timeInterval(c) (here a 10 s interval), $__fromTime, $__toTime."""
    sql = re.sub(r"\$__timeFilter\((\w+)\)", rf"\1 >= toDateTime({t0}) AND \1 <= toDateTime({t1})", sql)
    sql = re.sub(r"\$__timeInterval\((\w+)\)", r"toStartOfInterval(toDateTime(\1), INTERVAL 10 second)", sql)
    sql = sql.replace("$__fromTime", f"toDateTime({t0})").replace("$__toTime", f"toDateTime({t1})")
    for k, v in variables.items():
        sql = sql.replace("${" + k + "}", v)
    assert "$" not in sql, sql
    return sql


@pytest.fixture(scope="module")
def store(api_results, tmp_path_factory):
    from sinks.chdb_store import ChdbStore
    results, ref = api_results
    s = ChdbStore(str(tmp_path_factory.mktemp("dash")))
    s.write(rows_of(results, "cap"))
    s.write_alerts([ALERT], "cap")
    return s, ref


ALERT = Alert("feedbeef", "syn_flood", "syn_flood", "critical", {"dst": "10.10.10.10"}, 5000, 1000,
              1_700_000_060 * 10**9, 1_700_000_120 * 10**9, 1_700_000_000 * 10**9, 1_700_000_120 * 10**9, "firing", 2)


def test_dashboard_file_is_current():
    assert build.OUT.read_text() == build.render(), "run: python dashboards/build.py"
    assert build.PIPELINE_OUT.read_text() == build.render_pipeline(), "run: python dashboards/build.py"
    d = json.loads(build.OUT.read_text())
    assert len(d["panels"]) == len(build.PANELS) and {v["name"] for v in d["templating"]["list"]} == \
        {"source", "protocol", "address", "vlan"}


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


@pytest.mark.parametrize("filtered", [False, True], ids=["any", "filtered"])
def test_every_sql_runs_and_the_exact_panels_are_exact(store, filtered):
    """Every SQL runs; the exact panels (top talkers, packets/s) equal the brute force, without
    filters and with source, address, protocol and VLAN all set (to values present in the capture)."""
    s, ref = store
    t0, t1 = 1_600_000_000, 1_900_000_000
    busiest = by_entity(ref, 0).most_common(1)[0][0]
    variables = ({"source": "cap", "address": busiest, "protocol": "6", "vlan": "0"} if filtered
                 else {"source": "", "address": "", "protocol": "", "vlan": ""})
    keep = ((lambda k: busiest in k[:2] and k[4] == 6 and k[5] == 0) if filtered else (lambda k: True))
    d = json.loads(build.OUT.read_text())
    sqls = [p["targets"][0]["rawSql"] for p in d["panels"]] + [v["query"] for v in d["templating"]["list"] if v["query"]]
    for sql in sqls:
        s.rows(expand(sql, t0, t1, variables))      # raises on any SQL error
    panels = {p["title"]: p["targets"][0]["rawSql"] for p in d["panels"]}
    top = s.rows(expand(panels["Top talkers (exact, bytes)"], t0, t1, variables))
    want = _expected_talkers(ref, keep)
    got = [tuple(r) for r in top]
    # exact rows, in order of bytes (equal bytes may come in either order: the panel has no tie-break)
    assert len(want) >= 2 and len(got) == min(20, len(want)) and set(got) <= set(want)
    assert [r[1] for r in got] == [w[1] for w in want[:len(got)]]
    pps = s.rows(expand(panels["Packets/s"], t0, t1, variables))
    assert round(sum(p for _, p in pps) * 10) == totals(ref)[0]      # window totals: source filter only
    assert s.rows(expand(panels["Super-spreaders (distinct destinations, largest window)"], t0, t1, variables))
    other = {**variables, "source": "another-source"}
    assert s.rows(expand(panels["Top talkers (exact, bytes)"], t0, t1, other)) == []
    alerts = s.rows(expand(panels["Alerts"], t0, t1, {**variables, "address": ""}))
    assert [(r[2], r[3], r[4], r[6]) for r in alerts] == [("critical", "syn_flood", "firing", 5000)]
    assert s.rows(expand(panels["Alerts"], t0, t1, {**variables, "address": "10.10.10.10"})) == alerts
    assert s.rows(expand(panels["Alerts"], t0, t1, {**variables, "address": "10.10.10.11"})) == []
    assert s.rows(expand(panels["Alerts"], t0, 1_700_000_000 - 1, variables)) == []      # it starts after the range
    assert s.rows(expand(panels["Alerts"], t0, t1, other)) == []
