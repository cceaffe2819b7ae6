"""The native-protocol ClickHouse sink against Debian's 18.16 server: down-level DDL, idempotent
rewrites, and a server that goes away and comes back."""
from __future__ import annotations

import threading

from schemas.credentials import clickhouse_client

from stack import local as stack
from tests.support import wait_for
from sinks.clickhouse_native import ClickHouseNative
from tests.support import capture_windows, dns_answers_written, rows_of, window_results, write_dns_answers_capture


def _results(source: str) -> list:
    return rows_of(window_results(), source, 10)


def _totals(port, source):
    return clickhouse_client(f"127.0.0.1:{port}").execute(
        "SELECT count(), sum(packets), sum(bytes) FROM netspectra.flows FINAL WHERE source = %(s)s", {"s": source})[0]


def test_write_twice_counts_once(local_stack):
    _, ports, _ = local_stack
    ch = ClickHouseNative(f"127.0.0.1:{ports['clickhouse']}")
    results = _results("idem")
    ch.write(results)
    ch.write(results)
    assert ch.legacy is True
    assert _totals(ports["clickhouse"], "idem") == (5, 5, 500)
    rows = clickhouse_client(f"127.0.0.1:{ports['clickhouse']}").execute(
        "SELECT count() FROM netspectra.window_totals FINAL WHERE source = 'idem'")
    assert rows == [(2,)]


def test_server_away_then_back(local_stack):
    d, ports, _ = local_stack
    ch = ClickHouseNative(f"127.0.0.1:{ports['clickhouse']}")
    ch.write(_results("outage")[:1])
    stack.down(d, only="clickhouse")
    # the write blocks, retrying, until the server is back; a daemon thread, so a write that never
    # returns fails this test at the join below instead of hanging the suite
    outcome = []

    def write():
        try:
            ch.write(_results("outage")[1:])
            outcome.append("written")
        except Exception as e:          # noqa: BLE001 - the test reports it
            outcome.append(repr(e))
    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        wait_for(lambda: ch.retries >= 1, 60, "the write to retry")
        assert writer.is_alive(), "the write returned while the server was down"
    finally:
        stack.up(d, ports=ports)          # in this thread: a failed restart fails the test here
    writer.join(120)
    assert not writer.is_alive(), "the write did not finish once the server was back"
    # it returned because it wrote, not because it gave up (a reconnect that read the stack's
    # credentials file while `stack up` rewrote it once logged in without a password)
    assert outcome == ["written"], outcome
    got = _totals(ports["clickhouse"], "outage")
    if got != (5, 5, 500):
        log = (d / "clickhouse.log").read_text().splitlines()
        windows = clickhouse_client(f"127.0.0.1:{ports['clickhouse']}").execute(
            "SELECT toUInt64(window_start), count(), sum(packets) FROM netspectra.flows WHERE source = 'outage' "
            "GROUP BY window_start")
        raise AssertionError(f"totals {got} after {ch.retries} retries; rows by window {windows}; "
                             f"server log:\n" + "\n".join(log[-60:]))


def test_readable_views_and_sql_on_the_server(local_stack):
    """18.16 keeps addresses as 16 bytes; the *_text views (and `netspectra sql` on them) show
    them as text, a window written twice once, the same as the flow table read with FINAL."""
    import json
    from schemas.addresses import to_text
    from tests.pipeline import run
    _, ports, _ = local_stack
    address = f"127.0.0.1:{ports['clickhouse']}"
    ch = ClickHouseNative(address)
    results = _results("views")
    ch.write(results)
    ch.write(results)
    raw = clickhouse_client(address).execute(
        "SELECT src, dst, packets FROM netspectra.flows FINAL WHERE source = 'views' ORDER BY src, dst")
    want = [{"src": to_text(s if isinstance(s, bytes) else s.encode("latin-1")),
             "dst": to_text(d if isinstance(d, bytes) else d.encode("latin-1")), "packets": p} for s, d, p in raw]
    res = run("sql", "--store", f"clickhouse://{address}", "--format", "JSONEachRow",
              "SELECT src, dst, packets FROM netspectra.flows_text WHERE source = 'views' ORDER BY src, dst")
    assert res.returncode == 0, res.stderr
    assert [json.loads(ln) for ln in res.stdout.splitlines()] == want and len(want) == 5
    res = run("sql", "--store", f"clickhouse://{address}", "SELECT nosuch FROM netspectra.flows_text")
    assert res.returncode == 1 and res.stderr.count("\n") == 1 and "nosuch" in res.stderr


def test_dns_names_on_the_server(local_stack, tmp_path):
    _, ports, _ = local_stack
    write_dns_answers_capture(tmp_path / "dns.pcap")
    ch = ClickHouseNative(f"127.0.0.1:{ports['clickhouse']}")
    rows = rows_of(capture_windows(tmp_path / "dns.pcap", 10), "dns")
    ch.write(rows)
    ch.write(rows)
    assert dns_answers_written(clickhouse_client(f"127.0.0.1:{ports['clickhouse']}").execute, "dns")
