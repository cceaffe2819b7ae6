"""api/queries.py plan: a range cut into pieces, each from the coarsest level that covers it
(pure: spans, windows and row counts given)."""
from __future__ import annotations

from hypothesis import given, strategies as st

from api import models as m
from api import queries as q
from api.queries import Piece

H, D = 3600, 86400
T0 = 1_750_000_000 // D * D          # a day's start
CANDIDATES = [("protocols_1d", D), ("protocols_1h", H), ("protocols_1m", 60)]
ROWS = {"flows": 1000, "protocols_1d": 1, "protocols_1h": 10, "protocols_1m": 100}


def _plan(start: int, end: int, spans: dict, extents: list, rows=ROWS) -> list[Piece]:
    marks = [(lvl, src, a, b) for (lvl, src), (a, b) in spans.items()]
    return q.plan(CANDIDATES, marks, extents, rows, m.TimeRange(start_ms=start * 1000, end_ms=end * 1000))


def _everywhere(since: int, until: int, src: str = "a") -> dict:
    return {(lvl, src): (since, until) for lvl, _ in CANDIDATES}


def test_whole_days_then_hours_then_minutes_then_records_at_the_edges():
    start, end = T0 + 5 * H + 90, T0 + 3 * D + 2 * H + 30
    got = _plan(start, end, _everywhere(T0, T0 + 10 * D), [("a", start, end - 10)])
    assert got == [Piece("flows", 0, start, T0 + 5 * H + 120), Piece("protocols_1m", 60, T0 + 5 * H + 120, T0 + 6 * H),
                   Piece("protocols_1h", H, T0 + 6 * H, T0 + D), Piece("protocols_1d", D, T0 + D, T0 + 3 * D),
                   Piece("protocols_1h", H, T0 + 3 * D, T0 + 3 * D + 2 * H),
                   Piece("flows", 0, T0 + 3 * D + 2 * H, end)]
    assert q.plan_name(got) == ("protocols_1d+protocols_1h+protocols_1m+flows", D)


def test_what_a_level_does_not_cover_yet_comes_from_finer_ones():
    """The days computed up to day 2, the hours up to 05:00 of day 2, the minutes to 05:10: the
    newest windows from the records."""
    spans = {("protocols_1d", "a"): (T0, T0 + 2 * D), ("protocols_1h", "a"): (T0, T0 + 2 * D + 5 * H),
             ("protocols_1m", "a"): (T0, T0 + 2 * D + 5 * H + 600)}
    end = T0 + 3 * D
    got = _plan(T0, end, spans, [("a", T0, T0 + 2 * D + 5 * H + 900)])
    assert got == [Piece("protocols_1d", D, T0, T0 + 2 * D), Piece("protocols_1h", H, T0 + 2 * D, T0 + 2 * D + 5 * H),
                   Piece("protocols_1m", 60, T0 + 2 * D + 5 * H, T0 + 2 * D + 5 * H + 600),
                   Piece("flows", 0, T0 + 2 * D + 5 * H + 600, end)]


def test_a_level_that_began_late_covers_from_there():
    """Roll-ups turned on at day 3 for source a: the days before come from the records; a source
    without windows there constrains nothing."""
    spans = {**_everywhere(T0 + 3 * D, T0 + 9 * D), **_everywhere(T0, T0 + 9 * D, "b")}
    got = _plan(T0, T0 + 5 * D, spans, [("a", T0 + 3600, T0 + 5 * D - 60), ("b", T0 + 4 * D, T0 + 4 * D)])
    assert got == [Piece("flows", 0, T0, T0 + 3 * D), Piece("protocols_1d", D, T0 + 3 * D, T0 + 5 * D)]


def test_a_source_no_level_covers_is_read_from_the_records_and_big_levels_are_not_read():
    assert _plan(T0, T0 + D, _everywhere(T0, T0 + 9 * D), [("a", T0, T0 + 60), ("new", T0, T0 + 60)]) == \
        [Piece("flows", 0, T0, T0 + D)]
    big = {**ROWS, "protocols_1d": 950}         # more than MAX_ROWS_SHARE of the records: the hours
    assert _plan(T0, T0 + D, _everywhere(T0, T0 + 9 * D), [("a", T0, T0 + 60)], big) == \
        [Piece("protocols_1h", H, T0, T0 + D)]


def _subtracting(start: int, end: int, spans: dict, extents: list) -> list[Piece]:
    """A plan that may subtract, over tables large enough that rows, not reads, decide."""
    marks = [(lvl, src, a, b) for (lvl, src), (a, b) in spans.items()]
    return q.plan(CANDIDATES, marks, extents, {t: n * 10**6 for t, n in ROWS.items()},
                  m.TimeRange(start_ms=start * 1000, end_ms=end * 1000), subtract=True)


def test_most_of_a_bucket_is_the_bucket_less_the_rest_when_that_reads_less():
    """23 hours of a day: the day less its first hour (100k + 42k rows and two reads, against
    958k rows and one read). A minute-aligned hour: the hour it starts in less its first 5
    minutes, then the next hour's first 5 minutes as they are."""
    spans = _everywhere(T0, T0 + 10 * D)
    assert _subtracting(T0 + H, T0 + D, spans, [("a", T0, T0 + 2 * D)]) == \
        [Piece("protocols_1d", D, T0, T0 + D), Piece("protocols_1h", H, T0, T0 + H, -1)]
    assert _subtracting(T0 + 300, T0 + H + 300, spans, [("a", T0, T0 + 2 * D)]) == \
        [Piece("protocols_1h", H, T0, T0 + H), Piece("protocols_1m", 60, T0, T0 + 300, -1),
         Piece("protocols_1m", 60, T0 + H, T0 + H + 300)]
    # without `subtract` (buckets asked for, or other than sums): the parts as they are
    assert _plan(T0 + H, T0 + D, spans, [("a", T0, T0 + 2 * D)]) == [Piece("protocols_1h", H, T0 + H, T0 + D)]


def test_a_subtraction_that_saves_fewer_rows_than_its_reads_cost_is_not_made():
    """Small tables: each read costs more than the rows subtraction saves (READ_ROWS)."""
    spans = _everywhere(T0, T0 + 10 * D)
    marks = [(lvl, src, a, b) for (lvl, src), (a, b) in spans.items()]
    assert q.plan(CANDIDATES, marks, [("a", T0, T0 + 2 * D)], ROWS, m.TimeRange(start_ms=(T0 + H) * 1000,
                  end_ms=(T0 + D) * 1000), subtract=True) == [Piece("protocols_1h", H, T0 + H, T0 + D)]


def test_a_bucket_is_subtracted_from_only_where_its_level_covers_it_whole():
    """The day level begins at 02:00 of day 0 for source a (whose windows start at 00:00): day 0
    is not a day of that level, so 23 hours of it come from the hours."""
    spans = {**_everywhere(T0, T0 + 10 * D), ("protocols_1d", "a"): (T0 + 2 * H, T0 + 10 * D)}
    assert _subtracting(T0 + H, T0 + D, spans, [("a", T0, T0 + 2 * D)]) == \
        [Piece("protocols_1h", H, T0 + H, T0 + D)]


@given(st.lists(st.tuples(st.sampled_from("ab"), st.integers(0, 3 * D)), max_size=40),
       st.integers(0, 3 * D), st.integers(1, 2 * D), st.sampled_from(["", "a"]))
def test_the_hours_extents_hold_the_ranges_own(windows, start, length, source):
    """WindowHours (the planner's extents without a query per range): every source with windows
    in the range, first and last no narrower than the range's own; none without windows in an
    hour the range touches."""
    hours = q.WindowHours([(src, h, min(ws), max(ws)) for (src, h), ws in _by_hour(windows).items()])
    rng = m.TimeRange(start_ms=(T0 + start) * 1000, end_ms=(T0 + start + length) * 1000)
    got = {src: (first, last) for src, first, last in hours.extents(rng, source)}
    exact: dict[str, list[int]] = {}
    for src, t in windows:
        if start <= t < start + length and src.startswith(source):
            exact.setdefault(src, []).append(T0 + t)
    assert set(exact) <= set(got)
    for src, ts in exact.items():
        assert got[src][0] <= min(ts) and got[src][1] >= max(ts)
    touched = {(src, (T0 + t) // q.HOUR_S) for src, t in windows if src.startswith(source)
               and (T0 + start) // q.HOUR_S <= (T0 + t) // q.HOUR_S <= (T0 + start + length - 1) // q.HOUR_S}
    assert set(got) == {src for src, _ in touched}


def _by_hour(windows: list[tuple[str, int]]) -> dict:
    out: dict[tuple[str, int], list[int]] = {}
    for src, t in windows:
        out.setdefault((src, (T0 + t) // q.HOUR_S), []).append(T0 + t)
    return out


def test_nothing_is_read_where_no_source_has_windows():
    """Records from 01:00 of day 0 to 00:01 of day 2, asked from 00:01:30 of day 0 to 00:00:30 of
    day 3: no read of the minutes and seconds before 01:00 nor of those after day 2's first
    minutes (whole days and hours past the windows cost nothing more: one read each level)."""
    spans = _everywhere(T0, T0 + 10 * D)
    assert _plan(T0 + 90, T0 + 3 * D + 30, spans, [("a", T0 + H, T0 + 2 * D + 60)]) == \
        [Piece("protocols_1h", H, T0 + H, T0 + D), Piece("protocols_1d", D, T0 + D, T0 + 3 * D)]
    assert _plan(T0 + 90, T0 + D + 30, spans, [("a", T0 + H, T0 + D - 60)]) == [Piece("protocols_1h", H, T0 + H, T0 + D)]


def test_a_bucket_whose_rest_holds_no_windows_is_read_whole_without_subtracting():
    """Windows from 05:00 of day 0 to 13:00 of day 1, asked from 04:00:30 to 18:00:00: day 0
    whole (nothing before 05:00 to subtract), then day 1 less the hours past 13:00... which hold
    nothing either: both days, one read."""
    spans = _everywhere(T0, T0 + 10 * D)
    got = _subtracting(T0 + 4 * H + 30, T0 + D + 18 * H, spans, [("a", T0 + 5 * H, T0 + D + 13 * H)])
    assert got == [Piece("protocols_1d", D, T0, T0 + 2 * D)]
