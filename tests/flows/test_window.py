"""Event-time windows: closing on the watermark, lateness, late packets counted."""
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


def feed(states, mergers, cfg, b):
    out = []
    for chunk in split_batch(b, cfg):
        for p in states[chunk.shard].add(chunk):
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
