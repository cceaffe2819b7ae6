"""The alert lifecycle: fire after `for` windows, update rather than repeat, resolve after
`resolve_after` quiet windows, cooldown, deterministic ids, stale windows, spike baselines."""
from __future__ import annotations

from flows.alerts import AlertBook
from flows.detect import Finding, WindowFindings
from flows.rules import RuleSet, parse_rules

W = 10 * 10**9


def _rules(**over) -> RuleSet:
    rule = {"name": "scan", "detector": "port_scan", **over}
    return parse_rules({"rules": [rule], "disable": ["port_scan", "host_scan", "syn_flood", "udp_reflection",
                                                     "heavy_hitter", "traffic_spike"]})


def _window(i: int, *srcs: str, obs=None) -> WindowFindings:
    f = [Finding("scan", "port_scan", "warning", {"src": s, "dst": "10.0.0.2"}, 200, 16.7) for s in srcs]
    return WindowFindings(i * W, W, (i + 1) * W, f, obs or {})


def _run(book, windows):
    return [[(e.change, e.alert.entity["src"]) for e in book.observe(w)] for w in windows]


def test_fires_once_updates_then_resolves():
    book = AlertBook(_rules(), 10)
    out = _run(book, [_window(0, "a"), _window(1, "a"), _window(2, "a"), _window(3), _window(4)])
    assert out == [[("firing", "a")], [("update", "a")], [("update", "a")], [], [("resolved", "a")]]


def test_for_needs_consecutive_windows():
    book = AlertBook(_rules(**{"for": 3}), 10)
    out = _run(book, [_window(0, "a"), _window(1, "a"), _window(3, "a"), _window(4, "a"), _window(5, "a")])
    assert out == [[], [], [], [], [("firing", "a")]]       # the gap at window 2 broke the first streak
    (alert,) = book.firing()
    assert alert.first_seen == 3 * W and alert.last_seen == 6 * W


def test_windows_without_traffic_count_towards_resolve():
    book = AlertBook(_rules(resolve_after=3), 10)
    out = _run(book, [_window(0, "a"), _window(1, "b"), _window(3, "b")])
    assert out[2] == [("update", "b"), ("resolved", "a")]   # windows 1, 2 and 3 without it


def test_cooldown_holds_a_flapping_entity():
    book = AlertBook(_rules(resolve_after=1, cooldown=25), 10)
    out = _run(book, [_window(0, "a"), _window(1), _window(2, "a"), _window(3, "a"), _window(4), _window(5, "a")])
    # resolved at the end of window 1 (20 s): held until 45 s, so windows 2-3 are suppressed and 5 fires
    assert out == [[("firing", "a")], [("resolved", "a")], [], [], [], [("firing", "a")]]
    assert book.suppressed == 2


def test_ids_are_deterministic_and_stale_windows_ignored():
    a, b = AlertBook(_rules(), 10), AlertBook(_rules(), 10)
    ea = [e for w in (_window(5, "x"), _window(6, "x")) for e in a.observe(w)]
    eb = [e for w in (_window(5, "x"), _window(6, "x")) for e in b.observe(w)]
    assert [e.alert.id for e in ea] == [e.alert.id for e in eb]
    assert len({e.alert.id for e in ea}) == 1
    assert [e.alert.version for e in ea] == [1, 2]
    assert a.observe(_window(6, "x")) == [] and a.stale_windows == 1


def test_snapshot_copy_is_independent():
    book = AlertBook(_rules(), 10)
    book.observe(_window(0, "a"))
    snap = book.copy()
    book.observe(_window(1))
    book.observe(_window(2))
    assert book.firing() == [] and len(snap.firing()) == 1
    # a resumed copy replays the same windows to the same events
    assert [e.change for e in snap.observe(_window(1))] == [] and [e.change for e in snap.observe(_window(2))] == ["resolved"]


def test_traffic_spike_learns_then_fires():
    rules = parse_rules({"rules": [{"name": "spike", "detector": "traffic_spike", "params": {"warmup": 5, "min_bytes": 0}}],
                         "disable": ["port_scan", "host_scan", "syn_flood", "udp_reflection", "heavy_hitter",
                                     "traffic_spike"]})
    book = AlertBook(rules, 10)
    changes = []
    for i in range(12):
        v = 1e6 * (1 + 0.05 * (i % 3)) if i != 10 else 2e7
        changes.append([(e.change, e.alert.entity) for e in book.observe(
            WindowFindings(i * W, W, (i + 1) * W, [], {"spike": {"scope=total": v}}))])
    assert changes[:10] == [[]] * 10
    assert changes[10] == [("firing", {"scope": "total"})]
    assert changes[11] == []           # back to normal: resolves after 2 windows, not yet


def test_a_resumed_book_keeps_its_recent_changes_for_redelivery():
    book = AlertBook(_rules(), 10)
    book.observe(_window(0, "a"))
    book.observe(_window(1, "a"))
    book.observe(_window(2))
    book.observe(_window(3))
    snap = book.copy()
    assert [(e.change, e.alert.entity["src"]) for e in snap.recent] == [("firing", "a"), ("resolved", "a")]
