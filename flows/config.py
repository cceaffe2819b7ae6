"""Settings of the windowed analysis (one place for every default)."""
from __future__ import annotations

from dataclasses import dataclass, field

from flows.sketches import SketchConfig

NS = 1_000_000_000


@dataclass(frozen=True)
class WindowConfig:
    window_s: float = 60.0        # tumbling window length; 0 = one window over everything
    lateness_s: float = 5.0       # how far behind the newest packet a window stays open
    # Shards of the flow state. Fixed, not tied to the worker count, so results do not depend on
    # how many workers run (each shard is owned by one worker).
    shards: int = 4
    top_n: int = 100              # heavy hitters, spreaders and ports kept per window
    sketches: SketchConfig = field(default_factory=SketchConfig)
    # Input partitions (Kafka partitions) feeding the flow. A shard's event-time clock is the
    # oldest of their newest packet times (a per-partition watermark), so a partition that is read
    # behind the others does not make its packets late.
    inputs: int = 1
    # Wall-clock seconds after which a silent input stops holding the clock back, and after which
    # a shard with no input at all closes its open windows (traffic stopped, end of a replay).
    idle_s: float = 10.0
    # A window whose shards have not all reported after this long (wall clock) is written as
    # incomplete; matters only when a shard's input stalls.
    merge_timeout_s: float = 60.0

    @property
    def window_ns(self) -> int:
        return int(self.window_s * NS)

    @property
    def lateness_ns(self) -> int:
        return int(self.lateness_s * NS)
