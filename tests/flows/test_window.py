"""Event-time windows: closing on the watermark (per input partition), lateness, late packets
counted, closing on idle time."""
from __future__ import annotations

import numpy as np

from flows.config import WindowConfig
from flows.window import ShardState, WindowMerger, split_batch
from schemas.packet_batch import PacketBatch

S = 10**9


def batch(times_s, src_last=1, ip_len=100) -> PacketBatch:
    n = len(times_s)
    b = PacketBatch.empty(n)
    b.ts_ns[:] = (np.asarray(times_s) * S).astype(np.int64)
    b.src[:, 10:12] = b.dst[:, 10:12] = 0xFF
    b.src[:, 15] = src_last
    b.dst[:, 15] = np.arange(n) % 200
    b.proto[:] = 17
    b.sport[:], b.dport[:] = 1000, 53
    b.ip_len[:] = ip_len
    return b


def feed(states, mergers, cfg, b, origin=0, now=None):
    out = []
    for chunk in split_batch(b, cfg, origin):
        out += merge(mergers, cfg, states[chunk.shard].add(chunk, now))
    return out


def merge(mergers, cfg, partials):
    out = []
    for p in partials:
        r = mergers.setdefault(p.start, WindowMerger(cfg)).add(p)
        if r is not None:
            out.append(r)
    return out


def flush(states, mergers):
    out = []
    for s in states:
        for p in s.flush():
            r = mergers.setdefault(p.start, WindowMerger(s.cfg)).add(p)
            if r is not None:
                out.append(r)
    return out


def test_windows_close_when_the_watermark_passes_their_end_plus_lateness():
    cfg = WindowConfig(window_s=10, lateness_s=2, shards=3)
    states, mergers = [ShardState(i, cfg) for i in range(3)], {}
    assert feed(states, mergers, cfg, batch([1, 2, 9.5])) == []
    assert feed(states, mergers, cfg, batch([11, 11.9])) == []          # window [0,10) waits for lateness
    done = feed(states, mergers, cfg, batch([12.0]))
    assert [r.start for r in done] == [0]
    assert done[0].packets == 3 and done[0].complete and done[0].shards == 3
    rest = flush(states, mergers)
    assert [(r.start, r.packets) for r in rest] == [(10 * S, 3)]


def test_packets_within_lateness_are_merged_and_later_ones_counted():
    cfg = WindowConfig(window_s=10, lateness_s=2, shards=2)
    states, mergers = [ShardState(i, cfg) for i in range(2)], {}
    feed(states, mergers, cfg, batch([1, 2]))
    feed(states, mergers, cfg, batch([11]))
    feed(states, mergers, cfg, batch([5]))                     # late but within lateness: merged
    done = feed(states, mergers, cfg, batch([13]))             # closes [0,10)
    assert [(r.start, r.packets) for r in done] == [(0, 3)]
    feed(states, mergers, cfg, batch([3, 4], ip_len=40))       # window [0,10) is closed: late
    rest = flush(states, mergers)
    assert [(r.start, r.packets) for r in rest] == [(10 * S, 2)]
    assert rest[0].counters["late_packets"] == 2 and rest[0].counters["late_bytes"] == 80


def test_a_window_first_seen_after_its_close_time_is_still_emitted_once():
    cfg = WindowConfig(window_s=10, lateness_s=0, shards=2)
    states, mergers = [ShardState(i, cfg) for i in range(2)], {}
    feed(states, mergers, cfg, batch([35]))
    done = feed(states, mergers, cfg, batch([2, 3]))           # window [0,10) never opened before
    assert [(r.start, r.packets, r.complete) for r in done] == [(0, 2, True)]


def test_window_zero_means_one_window_until_the_end():
    cfg = WindowConfig(window_s=0, shards=2)
    states, mergers = [ShardState(i, cfg) for i in range(2)], {}
    assert feed(states, mergers, cfg, batch([1, 1000, 10**6])) == []
    (r,) = flush(states, mergers)
    assert r.start == 0 and r.packets == 3 and r.length_ns == 0


def test_status_counters_and_frames():
    cfg = WindowConfig(window_s=0, shards=2)
    b = batch([1, 2, 3, 4])
    b.status[1] = 1      # non-IP
    b.status[2] = 5      # truncated IP
    states, mergers = [ShardState(i, cfg) for i in range(2)], {}
    feed(states, mergers, cfg, b)
    (r,) = flush(states, mergers)
    assert r.packets == 2
    assert r.counters["frames"] == 4 and r.counters["non_ip"] == 1 and r.counters["truncated_ip"] == 1


def test_watermark_is_the_slowest_partition():
    """Two Kafka partitions read unevenly: partition 1 lags far behind partition 0, yet none of its
    packets is late, because a window closes only when both have passed it."""
    cfg = WindowConfig(window_s=10, lateness_s=1, shards=2, inputs=2, idle_s=30)
    states, mergers = [ShardState(i, cfg, now=0) for i in range(2)], {}
    assert feed(states, mergers, cfg, batch([1, 5, 15, 25, 35]), origin=0, now=1) == []   # partition 1 unheard
    assert feed(states, mergers, cfg, batch([2, 8]), origin=1, now=2) == []               # watermark 8
    done = feed(states, mergers, cfg, batch([12, 22]), origin=1, now=3)                   # watermark 22
    assert [(r.start, r.packets) for r in done] == [(0, 4), (10 * S, 2)]
    rest = flush(states, mergers)
    assert [(r.start, r.packets) for r in rest] == [(20 * S, 2), (30 * S, 1)]
    assert all("late_packets" not in r.counters for r in done + rest)


def test_a_silent_partition_stops_holding_windows_after_idle_time():
    cfg = WindowConfig(window_s=10, lateness_s=1, shards=2, inputs=2, idle_s=5)
    states, mergers = [ShardState(i, cfg, now=0) for i in range(2)], {}
    feed(states, mergers, cfg, batch([1, 2]), origin=1, now=0)
    assert feed(states, mergers, cfg, batch([3, 15]), origin=0, now=1) == []    # held back by partition 1
    for now in (2, 3, 4):                                                      # partition 0 keeps flowing
        assert feed(states, mergers, cfg, batch([16]), origin=0, now=now) == []
    done = feed(states, mergers, cfg, batch([16]), origin=0, now=5)             # partition 1 silent 5 s
    assert [(r.start, r.packets) for r in done] == [(0, 3)]


def test_a_stalled_worker_does_not_take_its_inputs_for_idle():
    """All inputs arrive long after the last ones (the worker was blocked): nobody is idle."""
    cfg = WindowConfig(window_s=10, lateness_s=1, shards=2, inputs=2, idle_s=5)
    states, mergers = [ShardState(i, cfg, now=0) for i in range(2)], {}
    feed(states, mergers, cfg, batch([1, 2]), origin=1, now=0)
    feed(states, mergers, cfg, batch([3]), origin=0, now=0.5)
    assert feed(states, mergers, cfg, batch([15]), origin=0, now=60) == []     # partition 1 still counts
    assert feed(states, mergers, cfg, batch([4]), origin=1, now=60.1) == []    # on time, not late
    done = feed(states, mergers, cfg, batch([16]), origin=1, now=60.2)
    assert [(r.start, r.packets) for r in done] == [(0, 4)]


def test_unheard_partitions_hold_windows_until_idle_time():
    cfg = WindowConfig(window_s=10, lateness_s=1, shards=2, inputs=3, idle_s=5)
    states, mergers = [ShardState(i, cfg, now=0) for i in range(2)], {}
    assert feed(states, mergers, cfg, batch([1, 30]), origin=0, now=1) == []    # 2 inputs never heard
    for now in (2, 3, 4):
        assert feed(states, mergers, cfg, batch([31]), origin=0, now=now) == []
    done = feed(states, mergers, cfg, batch([31]), origin=0, now=5)
    assert [(r.start, r.packets) for r in done] == [(0, 1)]


def test_idle_input_closes_open_windows():
    cfg = WindowConfig(window_s=10, lateness_s=5, shards=2, idle_s=3)
    states, mergers = [ShardState(i, cfg, now=0) for i in range(2)], {}
    feed(states, mergers, cfg, batch([1, 2, 11]), now=0)
    assert merge(mergers, cfg, [p for s in states for p in s.idle(now=2.9)]) == []
    done = merge(mergers, cfg, [p for s in states for p in s.idle(now=3.0)])
    assert [(r.start, r.packets) for r in done] == [(0, 2), (10 * S, 1)]
    assert all(s.idle(now=100) == [] for s in states)


def test_a_restored_state_waits_idle_time_from_the_restart():
    cfg = WindowConfig(window_s=10, lateness_s=5, shards=2, idle_s=3)
    s = ShardState(0, cfg, now=0)
    for c in split_batch(batch([1, 2]), cfg):
        if c.shard == 0:
            s.add(c, now=0)
    restored = s.copy().resume(now=100)
    assert restored.idle(now=102) == [] and len(restored.idle(now=103)) == 1
