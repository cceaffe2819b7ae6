"""The range parser: RFC 3339 text means the same instant as its milliseconds, in any offset."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, strategies as st
from pydantic import ValidationError

from api.models import TimeRange

MS = st.integers(0, 2**42)


@given(MS, st.integers(1, 2**30), st.integers(-14 * 60, 14 * 60))
def test_rfc3339_bounds_are_the_same_instants_as_ms(start, span, offset_min):
    tz = timezone(timedelta(minutes=offset_min))
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    text = [(epoch + timedelta(milliseconds=ms)).astimezone(tz).isoformat() for ms in (start, start + span)]
    r = TimeRange(start=text[0], end=text[1])
    assert (r.start_ms, r.end_ms) == (start, start + span)


@given(st.integers(1, 2**42), st.integers(1, 10**6), st.sampled_from(["s", "m", "h", "d", "w"]))
def test_last_ends_at_end(end, n, unit):
    r = TimeRange(end_ms=end, last=f"{n}{unit}")
    span = n * {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}[unit]
    assert (r.start_ms, r.end_ms) == (max(end - span, 0), end)


@pytest.mark.parametrize("bad", [{"start": "2026-11-30 18:00"}, {"last": "1y"}, {"start_ms": 1, "start": "x"},
                                 {"last": "1h", "start_ms": 5}, {"end_ms": 5}])
def test_bad_ranges_are_one_clear_error(bad):
    with pytest.raises(ValidationError):
        TimeRange(**bad)
