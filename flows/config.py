"""Settings of the windowed analysis (one place for every default)."""
from __future__ import annotations

from dataclasses import dataclass, field

from flows.defaults import IDLE_S, LATENESS_S, MAX_FLOWS, SHARDS, TOP_N, WINDOW_S
from flows.sketches import SketchConfig

NS = 1_000_000_000


@dataclass(frozen=True)
class WindowConfig:
    window_s: float = WINDOW_S        # tumbling window length; 0 = one window over everything
    lateness_s: float = LATENESS_S       # how far behind the newest packet a window stays open
    # Shards of the flow state. Fixed, not tied to the worker count, so results do not depend on
    # how many workers run (each shard is owned by one worker).
    shards: int = SHARDS
    top_n: int = TOP_N              # heavy hitters, spreaders and ports kept per window
    # Exact flow records kept per window (over all shards; 0 = no limit). Beyond it a shard keeps
    # its heaviest flows (bytes) and folds the rest into the window's sketches and counters
    # (capped_*): totals stay exact, memory stays bounded (~98 bytes a record, docs/analysis.md).
    max_flows: int = MAX_FLOWS
    sketches: SketchConfig = field(default_factory=SketchConfig)
    # Input partitions (Kafka partitions) feeding the flow. A shard's event-time clock is the
    # oldest of their newest packet times (a per-partition watermark), so a partition that is read
    # behind the others does not make its packets late.
    inputs: int = 1
    # Event-time seconds a closed window's state is kept after it closed: rows that arrive for it
    # meanwhile update it and it is written again (sinks replace it); later ones are counted as
    # late and dropped. 0 = no revisions (offline analysis of a capture).
    grace_s: float = 0.0
    # Seconds an input must have been quiet, with its source reporting it caught up with the
    # broker, before it stops holding the clock back; when every input is, open windows close
    # (traffic stopped, end of a replay). Silence alone never counts (flows.window.Progress).
    idle_s: float = IDLE_S
    # A window whose shards have not all reported after this long (wall clock) is written as
    # incomplete; matters only when a shard's input stalls.
    merge_timeout_s: float = 60.0

    @property
    def max_flows_per_shard(self) -> int:
        return -(-self.max_flows // self.shards) if self.max_flows else 0

    @property
    def window_ns(self) -> int:
        return int(self.window_s * NS)

    @property
    def lateness_ns(self) -> int:
        return int(self.lateness_s * NS)

    @property
    def grace_ns(self) -> int:
        return int(self.grace_s * NS)
