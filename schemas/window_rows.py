"""A closed window as the sinks receive it: the contract between flows/ and sinks/.

flows/rows.py builds it from a window's result once, whatever the number of sinks; the sinks
know nothing of flow tables or sketches:

- `tables`: table -> column -> values, for the ClickHouse tables of schemas/clickhouse.py
  (addresses (n, 16) uint8, times int64 ns since the epoch, text as a list or, when most rows
  share a few values, a `Coded` column; each writer converts to its types);
- `live`: the window's live view for Redis (schemas/redis_keys.py).

Either is left out (empty, None) when no sink of the flow wants it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from schemas.clickhouse import WINDOW_TABLES


@dataclass(frozen=True)
class Coded:
    """A text column as codes into its distinct values (the flows' TLS names: mostly '' in a
    window of a million records): no Python object a row until a writer needs one."""
    codes: np.ndarray           # int32 index into values, a row
    values: list[str]

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, rows) -> "Coded":
        """Some of its rows (a slice or an index array), coded as they were."""
        return Coded(self.codes[rows], self.values)

    def tolist(self) -> list[str]:
        return self.objects().tolist()

    def objects(self) -> np.ndarray:
        """The rows' values as a numpy object array (one fancy index, no Python step a row)."""
        return np.array(self.values, dtype=object)[self.codes]


@dataclass
class LiveWindow:
    totals: dict                       # packets, bytes, flows, hosts, frames, late_packets, complete
    talkers: dict[str, int]            # source address (text) -> bytes, exact, top N
    flows: dict[str, int]              # "src sport dst dport proto" -> bytes (heavy-hitter estimate), top N
    hosts: list[str]                   # the window's heaviest addresses (as source or destination)
    # small exact breakdowns and sketch tops for a live view (schemas/redis_keys.py, `detail`):
    # seconds, protocols [[proto, name, packets, bytes]], ports [["proto/port", packets, bytes]],
    # spreaders / fan_in [[address, estimate]], status {counter: value}
    detail: dict = field(default_factory=dict)


@dataclass
class WindowRows:
    start: int                         # window start, ns since the epoch (0: one window over everything)
    length_ns: int                     # 0 = the whole input
    complete: bool
    tables: dict[str, dict] = field(default_factory=dict)
    live: LiveWindow | None = None
    made_at: float = field(default_factory=time.time)     # wall clock when the rows were made: a sink's delay

    @property
    def flow_rows(self) -> int:
        flows = self.tables.get("flows")
        return len(flows["window_start"]) if flows else 0


def window_spans(windows: list[WindowRows]) -> list[tuple[str, int, int]]:
    """(source, start s, length s) of the windows whose tables are there (for the roll-ups)."""
    return [(w.tables["window_totals"]["source"][0], w.start // 10**9, w.length_ns // 10**9)
            for w in windows if "window_totals" in w.tables]


def concat_tables(windows: list[WindowRows]) -> dict[str, dict]:
    """The rows of several windows concatenated per table, tables without rows left out: one
    INSERT per table for all of them."""
    out = {}
    for table in WINDOW_TABLES:
        parts = [w.tables[table] for w in windows if table in w.tables and len(w.tables[table]["window_start"])]
        if parts:
            out[table] = {c: _concat([p[c] for p in parts]) for c in parts[0]}
    return out


def _concat(parts: list):
    if isinstance(parts[0], Coded):         # values stay distinct (a dictionary column must not repeat one)
        values: dict[str, int] = {}
        codes = [np.array([values.setdefault(v, len(values)) for v in p.values], np.int32)[p.codes] for p in parts]
        return Coded(np.concatenate(codes), list(values))
    if isinstance(parts[0], list):
        return [x for p in parts for x in p]
    return np.concatenate(parts) if len(parts) > 1 else parts[0]
