"""Roll-ups kept exact: the flow records summed per minute, hour and day (schemas/clickhouse.py
ROLLUPS), for long ranges that would otherwise scan millions of records.

Six families (schemas/clickhouse.py ROLLUPS): without the source port (flows_*), without ports
(hosts_*: client/server answers, each to its own ephemeral port, fold into their host pair),
without addresses (traffic_*: per port, protocol and VLAN, small even under a spoofed flood, where
every record is its own address pair and flows_* are as large as the records), per protocol and
VLAN only (protocols_*), and without the source, sorted by destination (dst_ports_*; dst_nets_*
with the destination cut to its network). Each level is computed from the smallest earlier one
that keeps its columns (rollup_source). The sketch
tables' per-window results roll up the same way, per hour and day (heavy_hitters_*: estimates
summed; spreaders_*: the largest estimate kept), each computed from its own table.

Why not materialized views into SummingMergeTrees: a window is written more than once (a
revision with late packets, a replay after a crash), and a view would add every version to the
sums. Instead a bucket is *recomputed* whole from a finer level (the minutes from the flow
records, FINAL: each window once; the hours from the minutes; the days from the hours) and its
rows replace the older ones (ReplacingMergeTree on `version`). Data only grows between two
computations of a bucket, so the new rows cover every key of the old: a replayed or revised
window changes the bucket's sums to exactly what the records say, never twice.

When: a bucket is marked when a window in it is written, and computed once it is closed (the
writer has written a window starting at or after its end), at most every ROLL_EVERY_S of wall
time (each computation reads the bucket's records again: on a spoofed flood the minute's
roll-up costs about what writing its records did, so it must not follow every window), and when
the writer finishes.

What is covered: per level and source, `rollup_marks` holds [since, until): the window starts
whose records the level holds exactly. A write into that span first pulls `until` back to the
bucket's start (before the records are written), and rolling extends the span over contiguous
buckets again (over gaps without any record too) where the level it was computed from is exact.
The API answers from a level only inside every source's span (api/queries.py), so a reader never
sees a roll-up that lags its records. A writer that stops without finishing (killed, crashed)
leaves its marked buckets uncomputed and the spans cut before them: the next writer of that
source marks every window past each span again (_resume) and computes them as they close.
"""
from __future__ import annotations

import logging
import re
import time

from schemas.clickhouse import (DATABASE, MARKS, ROLLUP_VALUES, ROLLUPS, insert_settings_sql, marks_sql, rollup_dim_sql,
                               rollup_source, sql_string)

log = logging.getLogger(__name__)

ROLL_EVERY_S = 30.0
BUCKETS_PER_STATEMENT = 1000    # a statement names its buckets: a month of minutes is past max_query_size


def _bucket(res: int) -> str:
    """A row's bucket start in epoch seconds (both schemas: DateTime64 or DateTime)."""
    return f"intDiv(toUInt32(toDateTime(window_start)), {res}) * {res}"


class Rollups:
    """The roll-ups of one writer. `execute(sql)` runs a statement, `rows(sql)` returns tuples."""

    def __init__(self, execute, rows, legacy: bool, database: str = DATABASE):
        self.execute, self.rows, self.legacy, self.db = execute, rows, legacy, database
        self.dirty: dict[str, set[tuple[str, int]]] = {t: set() for t in ROLLUPS}      # (source, bucket s)
        self.newest: dict[str, int] = {}          # source -> end (s) of the newest window written
        # (level, source) -> [since, until): what the level covers once its marked buckets are
        # computed; `saved`: what rollup_marks says now (that, cut at the first marked bucket)
        self.spans: dict[tuple[str, str], tuple[int, int]] | None = None
        self.saved: dict[tuple[str, str], tuple[int, int]] = {}
        self.every_s, self.rolled_at = ROLL_EVERY_S, float("-inf")
        self.resumed: set[str] = set()              # sources whose predecessor's leftovers are marked

    def _time(self, seconds: str) -> str:
        return f"toDateTime({seconds}, 'UTC')" if self.legacy else f"toDateTime64({seconds}, 3, 'UTC')"

    def _load(self) -> None:
        if self.spans is None:
            got = self.rows(marks_sql(self.db))
            self.saved = {(lvl, src): (int(a), int(b)) for lvl, src, a, b in got}
            self.spans = dict(self.saved)

    def _publish(self) -> None:
        """rollup_marks := each span cut at its first bucket still to compute (readers trust no
        bucket whose records changed since it was computed)."""
        version = time.time_ns()
        for (lvl, src), (since, until) in self.spans.items():
            stale = [b for s, b in self.dirty.get(lvl, ()) if s == src and since <= b < until]
            now = (since, min(stale)) if stale else (since, until)
            if self.saved.get((lvl, src)) != now:         # a handful per write: one INSERT ... SELECT each
                self.execute(f"INSERT INTO {self.db}.{MARKS} (level, source, since, until, version) "
                             f"SELECT {sql_string(lvl)}, {sql_string(src)}, {self._time(str(now[0]))}, "
                             f"{self._time(str(now[1]))}, toUInt64({version})")
                self.saved[(lvl, src)] = now

    def before_write(self, windows: list[tuple[str, int, int]]) -> None:
        """(source, start s, length s) of windows about to be written: mark their buckets and
        cut the published spans before them, before their records change."""
        self._load()
        for src in sorted({w[0] for w in windows} - self.resumed):
            self._resume(src)
        for src, start, length in windows:
            self.newest[src] = max(self.newest.get(src, 0), start + max(length, 1))
            for level, r in ROLLUPS.items():
                self.dirty[level].add((src, start // r.res * r.res))
        self._publish()

    def _resume(self, src: str) -> None:
        """Mark the buckets a writer before this one left uncomputed for `src` (it stopped
        without finishing: a crash, a kill): those past each level's span that hold windows.
        Otherwise nothing computes them again, and the spans stop growing there for good."""
        self.resumed.add(src)
        held = [span for (_lvl, s), span in self.spans.items() if s == src]
        if not held:                # never rolled up (written without roll-ups): no backfill here
            return
        began = min(since for since, _ in held)           # a level not computed yet: from there
        for base in dict.fromkeys(r.base for r in ROLLUPS.values()):
            levels = [(lvl, r.res, self.spans.get((lvl, src), (began, began))[1]) for lvl, r in ROLLUPS.items()
                      if r.base == base]
            got = self.rows(f"SELECT DISTINCT toUInt32(toDateTime(window_start)) FROM {self.db}.{base} "
                            f"WHERE source = {sql_string(src)} "
                            f"AND window_start >= toDateTime({min(u for *_, u in levels)}, 'UTC')")
            starts = [int(w) for (w,) in got]
            for lvl, res, until in levels:
                self.dirty[lvl].update((src, w // res * res) for w in starts if w >= until)
            if starts:
                log.info("roll-ups of %s: %d windows past the spans a previous writer left; computing them again",
                         src, len(starts))

    def roll(self, everything: bool = False) -> None:
        """Compute the marked buckets that are closed (all of them with `everything`), each level
        after the one it is computed from; closed ones no sooner than `every_s` after the last
        computation."""
        if not everything and time.monotonic() - self.rolled_at < self.every_s:
            return
        self._load()
        for level, r in ROLLUPS.items():
            todo = {(s, b) for s, b in self.dirty[level] if everything or b + r.res <= self.newest.get(s, 0)}
            if todo:
                t = time.perf_counter()
                finer = rollup_source(level)
                self._compute(level, finer, todo)
                self.dirty[level] -= todo
                self._extend(level, r.res, finer, todo)
                self.rolled_at = time.monotonic()
                log.debug("rolled %d buckets of %s in %.3f s", len(todo), level, time.perf_counter() - t)
        self._publish()

    def _compute(self, level: str, finer: str, todo: set) -> None:
        todo = sorted(todo)
        for i in range(0, len(todo), BUCKETS_PER_STATEMENT):
            self._compute_some(level, finer, todo[i:i + BUCKETS_PER_STATEMENT])

    def _compute_some(self, level: str, finer: str, todo: list) -> None:
        r = ROLLUPS[level]
        res, table = r.res, f"{self.db}.{finer}"
        values = ROLLUP_VALUES[r.base]
        aggs = [from_base if finer == r.base else from_level for _c, _t, from_base, from_level in values]
        read = [c for c, *_ in values if any(re.search(rf"\b{c}\b", a) for a in aggs)]     # the columns they take
        lo, hi = min(b for _, b in todo), max(b for _, b in todo) + res
        keys = ", ".join(f"({sql_string(s)}, {b})" for s, b in todo)
        sources = ", ".join(sql_string(s) for s in sorted({s for s, _ in todo}))
        # each dimension as the level keeps it (a network-cut dst), under its own name outside
        cut = {d: rollup_dim_sql(level, d, self.legacy) for d in r.dims}
        inner = ", ".join(d if e == d else f"{e} AS {d}_cut" for d, e in cut.items())
        dims = ", ".join(d if e == d else f"{d}_cut" for d, e in cut.items())
        self.execute(
            f"INSERT INTO {self.db}.{level} (window_start, source, {', '.join(r.dims)}, "
            f"{', '.join(c for c, *_ in values)}, version){'' if self.legacy else insert_settings_sql()} "
            f"SELECT {self._time('b')}, source, {dims}, {', '.join(aggs)}, toUInt64({time.time_ns()}) "
            f"FROM (SELECT {_bucket(res)} AS b, source, {inner}, {', '.join(read)} "
            f"FROM {table} FINAL WHERE source IN ({sources}) AND window_start >= toDateTime({lo}, 'UTC') "
            f"AND window_start < toDateTime({hi}, 'UTC') AND (source, {_bucket(res)}) IN ({keys})) "
            f"GROUP BY b, source, {dims}")

    def _extend(self, level: str, res: int, finer: str, rolled: set) -> None:
        """Grow each source's span over the buckets just rolled that touch it (or that only
        empty time separates from it). A bucket computed from a finer roll-up (not the records)
        counts only where that level is exact over the bucket (up to the newest window written)."""
        table, base = f"{self.db}.{finer}", ROLLUPS[level].base
        for src in {s for s, _ in rolled}:
            since, until = span = self.spans.get((level, src), (0, 0))
            fine = self.spans.get((finer, src), (0, 0)) if finer != base else None
            for b in sorted(b for s, b in rolled if s == src):
                if fine is not None and not self._within(base, src, b, b + res, fine):
                    break                                 # the finer level is not exact there: stop
                if since == until:                        # no span yet: it starts here
                    since, until = b, b + res
                elif b < since:
                    if b + res >= since or self._empty(table, src, b + res, since):
                        since = b
                elif b <= until or self._empty(table, src, until, b):
                    until = max(until, b + res)
                else:
                    break                                 # records in between that no bucket holds yet
            if (since, until) != span:
                self.spans[(level, src)] = (since, until)

    def _within(self, base: str, src: str, a: int, b: int, span: tuple[int, int]) -> bool:
        """Whether `span` holds every row of `base` in [a, b): it covers them, or none lie outside it."""
        raw = f"{self.db}.{base}"
        return ((span[0] <= a or self._empty(raw, src, a, span[0]))
                and (span[1] >= b or self._empty(raw, src, max(a, span[1]), b)))

    def _empty(self, table: str, src: str, a: int, b: int) -> bool:
        got = self.rows(f"SELECT count() FROM {table} WHERE source = {sql_string(src)} "
                        f"AND window_start >= toDateTime({a}, 'UTC') AND window_start < toDateTime({b}, 'UTC')")
        return int(got[0][0]) == 0
