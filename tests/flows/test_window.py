"""Event-time windows: closing on the watermark (per input partition), lateness, idle inputs and
idle close from the sources' progress reports (never from silence alone), revisions within the
grace period, late packets counted after it."""
from __future__ import annotations


from flows.config import WindowConfig
from flows.window import LocalPipeline, Progress, ShardState, WindowMerger, split_batch
from tests.support import S, batch



def report(pipe: LocalPipeline, origin, caught_up, quiet_s):
    """A source's progress report for one input, as the dataflow sends it: to every shard."""
    return pipe.progress(Progress(origin, caught_up, quiet_s))


def test_windows_close_when_the_watermark_passes_their_end_plus_lateness():
    cfg = WindowConfig(window_s=10, lateness_s=2, shards=3)
    pipe = LocalPipeline(cfg)
    assert pipe.feed(batch([1, 2, 9.5])) == []
    assert pipe.feed(batch([11, 11.9])) == []          # window [0,10) waits for lateness
    done = pipe.feed(batch([12.0]))
    assert [r.start for r in done] == [0]
    assert done[0].packets == 3 and done[0].complete and done[0].shards == 3
    rest = pipe.flush()
    assert [(r.start, r.packets) for r in rest] == [(10 * S, 3)]


def test_packets_within_lateness_are_merged_and_later_ones_counted():
    cfg = WindowConfig(window_s=10, lateness_s=2, shards=2)
    pipe = LocalPipeline(cfg)
    pipe.feed(batch([1, 2]))
    pipe.feed(batch([11]))
    pipe.feed(batch([5]))                     # late but within lateness: merged
    done = pipe.feed(batch([13]))             # closes [0,10)
    assert [(r.start, r.packets) for r in done] == [(0, 3)]
    pipe.feed(batch([3, 4], ip_len=40))       # window [0,10) is closed: late
    rest = pipe.flush()
    assert [(r.start, r.packets) for r in rest] == [(10 * S, 2)]
    assert rest[0].counters["late_packets"] == 2 and rest[0].counters["late_bytes"] == 80


def test_a_window_first_seen_after_its_close_time_is_still_emitted_once():
    cfg = WindowConfig(window_s=10, lateness_s=0, shards=2)
    pipe = LocalPipeline(cfg)
    pipe.feed(batch([35]))
    done = pipe.feed(batch([2, 3]))           # window [0,10) never opened before
    assert [(r.start, r.packets, r.complete) for r in done] == [(0, 2, True)]


def test_window_zero_means_one_window_until_the_end():
    cfg = WindowConfig(window_s=0, shards=2)
    pipe = LocalPipeline(cfg)
    assert pipe.feed(batch([1, 1000, 10**6])) == []
    (r,) = pipe.flush()
    assert r.start == 0 and r.packets == 3 and r.length_ns == 0


def test_status_counters_and_frames():
    cfg = WindowConfig(window_s=0, shards=2)
    b = batch([1, 2, 3, 4])
    b.status[1] = 1      # non-IP
    b.status[2] = 5      # truncated IP
    pipe = LocalPipeline(cfg)
    pipe.feed(b)
    (r,) = pipe.flush()
    assert r.packets == 2
    assert r.counters["frames"] == 4 and r.counters["non_ip"] == 1 and r.counters["truncated_ip"] == 1


def test_watermark_is_the_slowest_partition():
    """Two Kafka partitions read unevenly: partition 1 lags far behind partition 0, yet none of its
    packets is late, because a window closes only when both have passed it."""
    cfg = WindowConfig(window_s=10, lateness_s=1, shards=2, inputs=2, idle_s=30)
    pipe = LocalPipeline(cfg)
    assert pipe.feed(batch([1, 5, 15, 25, 35]), origin=0) == []   # partition 1 unheard
    assert pipe.feed(batch([2, 8]), origin=1) == []               # watermark 8
    done = pipe.feed(batch([12, 22]), origin=1)                   # watermark 22
    assert [(r.start, r.packets) for r in done] == [(0, 4), (10 * S, 2)]
    rest = pipe.flush()
    assert [(r.start, r.packets) for r in rest] == [(20 * S, 2), (30 * S, 1)]
    assert all("late_packets" not in r.counters for r in done + rest)


def test_a_partition_stops_holding_windows_only_when_caught_up_and_quiet():
    cfg = WindowConfig(window_s=10, lateness_s=1, shards=2, inputs=2, idle_s=5)
    pipe = LocalPipeline(cfg)
    pipe.feed(batch([1, 2]), origin=1)
    assert pipe.feed(batch([3, 15, 16]), origin=0) == []      # held back by partition 1
    assert report(pipe, 1, caught_up=False, quiet_s=600) == []  # silent but not read to its end:
    assert pipe.feed(batch([17]), origin=0) == []             # cut off, restarting or behind
    assert report(pipe, 1, caught_up=True, quiet_s=4.9) == []   # caught up, not quiet long enough
    done = report(pipe, 1, caught_up=True, quiet_s=5)
    assert [(r.start, r.packets) for r in done] == [(0, 3)]


def test_a_lagging_or_cut_off_input_holds_windows_however_long_it_is_silent():
    """The engine falls behind, or loses its broker: no report says caught up, so nothing it has
    not read yet can become late, whatever the wall clock says."""
    cfg = WindowConfig(window_s=10, lateness_s=1, shards=2, inputs=2, idle_s=1)
    pipe = LocalPipeline(cfg)
    pipe.feed(batch([1, 2]), origin=1)
    for t in range(3, 200, 10):                                                # partition 0 runs ahead
        assert pipe.feed(batch([t]), origin=0) == []
        assert report(pipe, 1, caught_up=False, quiet_s=t) == []
    done = pipe.feed(batch([4, 25]), origin=1)                 # partition 1 catches up
    assert [(r.start, r.packets) for r in done] == [(0, 4), (10 * S, 1)]
    assert all("late_packets" not in r.counters for r in done)


def test_unheard_partitions_hold_windows_until_reported_drained():
    cfg = WindowConfig(window_s=10, lateness_s=1, shards=2, inputs=3, idle_s=5)
    pipe = LocalPipeline(cfg)
    assert pipe.feed(batch([1, 30]), origin=0) == []           # 2 inputs never heard
    assert report(pipe, 1, caught_up=True, quiet_s=6) == []
    done = report(pipe, 2, caught_up=True, quiet_s=6)
    assert [(r.start, r.packets) for r in done] == [(0, 1)]


def test_open_windows_close_when_every_input_is_caught_up_and_quiet():
    cfg = WindowConfig(window_s=10, lateness_s=5, shards=2, inputs=2, idle_s=3)
    pipe = LocalPipeline(cfg)
    pipe.feed(batch([1, 2, 11]), origin=0)
    pipe.feed(batch([12]), origin=1)
    assert report(pipe, 0, caught_up=True, quiet_s=3) == []
    assert report(pipe, 1, caught_up=False, quiet_s=30) == []   # input 1: no word from the broker
    done = report(pipe, 1, caught_up=True, quiet_s=3)
    assert [(r.start, r.packets) for r in done] == [(0, 2), (10 * S, 2)]
    assert report(pipe, 1, caught_up=True, quiet_s=30) == []    # nothing left open


def test_a_restored_state_needs_fresh_reports_before_taking_inputs_for_idle():
    cfg = WindowConfig(window_s=10, lateness_s=5, shards=2, idle_s=3)
    s = ShardState(0, cfg)
    for c in split_batch(batch([1, 2]), cfg):
        if c.shard == 0:
            s.add(c)
    s.drained[0] = True                          # as reported before the crash
    restored = s.copy().resume()
    assert restored.watermark() == 2 * S and restored.drained == {}
    assert restored.progress(Progress(0, caught_up=False, quiet_s=100)) == []
    assert len(restored.progress(Progress(0, caught_up=True, quiet_s=3))) == 1


def test_packets_after_the_close_revise_the_window_within_grace_and_are_dropped_after():
    """Traffic paused long enough for an idle close, then packets for the closed window arrive:
    within the grace period the window is written again with them, exactly; after it they are
    counted as late. Every shard retires the window once the watermark passes its grace."""
    cfg = WindowConfig(window_s=10, lateness_s=1, grace_s=20, shards=2, idle_s=3)
    pipe = LocalPipeline(cfg)
    pipe.feed(batch([1, 2]))
    first = report(pipe, 0, caught_up=True, quiet_s=3)
    assert [(r.start, r.packets, r.complete) for r in first] == [(0, 2, True)]
    revised = pipe.feed(batch([3, 4, 5], src_last=2))          # one new flow, two shards
    assert [(r.start, r.packets, r.bytes) for r in revised] == [(0, 5, 500)]
    assert revised[0].counters["revised_packets"] == 3 and revised[0].counters["frames"] == 5
    again = pipe.feed(batch([6], src_last=1))                  # an existing flow grows
    assert [(r.start, r.packets, len(r.flows)) for r in again] == [(0, 6, len(revised[0].flows))]
    assert pipe.feed(batch([25])) == []
    assert 0 in pipe.mergers                                                        # 0 + 10 + 1 + 20 > 25: in grace
    assert [r.start for r in pipe.feed(batch([32]))] == [20 * S]
    assert 0 not in pipe.mergers                                                    # retired by every shard
    pipe.feed(batch([7, 8]))                                  # past the grace: counted
    (last,) = [r for r in pipe.flush() if r.start == 30 * S]
    assert last.counters["late_packets"] == 2


def test_a_merger_writes_an_incomplete_window_and_again_when_the_rest_arrive():
    cfg = WindowConfig(window_s=10, lateness_s=0, shards=2)
    states = [ShardState(i, cfg) for i in range(2)]
    parts = {c.shard: c for c in split_batch(batch([1, 2, 3]), cfg)}
    m = WindowMerger(cfg)
    for p in states[0].add(parts[0]) + states[0].add(split_batch(batch([20]), cfg)[0]):
        if p.start == 0:
            m.add(p)
    assert m.result() is None and not m.done
    early = m.result(force=True)                                               # the merge timeout
    assert not early.complete and early.shards == 1
    for p in states[1].add(parts[1]) + states[1].add(split_batch(batch([20]), cfg)[1]):
        if p.start == 0:
            m.add(p)
    full = m.result()
    assert full.complete and full.packets == 3 and m.done


def test_a_snapshot_from_before_the_l7_facts_restores():
    """Recovery snapshots of the version before flows/l7.py held DNS counts as `dns` and no TLS
    memory: restored by this version, they read as L7 facts, and the shard gets an empty memory."""
    import pickle

    from flows.dns import DnsCounts
    from flows.l7 import L7Facts
    from flows.window import WindowAccum, make_partial

    cfg = WindowConfig(window_s=10)
    counts = DnsCounts.empty()
    acc = WindowAccum(cfg)
    del acc.__dict__["l7"]
    acc.__dict__["dns"] = [counts]
    part = make_partial(0, 0, split_batch(batch([1.0]), cfg)[0].flows, {}, cfg)
    del part.__dict__["l7"]
    part.__dict__["dns"] = counts
    shard = ShardState(0, cfg)
    del shard.__dict__["tls"]
    acc, part, shard = pickle.loads(pickle.dumps((acc, part, shard)))
    (facts,) = acc.l7
    assert isinstance(facts, L7Facts) and isinstance(facts.dns, DnsCounts) and facts.tls is None
    assert isinstance(part.l7, L7Facts) and isinstance(part.l7.dns, DnsCounts) and part.l7.tls is None
    assert not shard.tls.names


def test_a_shards_snapshot_keeps_its_tls_memory():
    import pickle
    shard = ShardState(0, WindowConfig(window_s=10))
    shard.tls.names[(1, 2, 3, 4, 5, 6)] = (1, "a.example", "t13d", "h2")
    copy = pickle.loads(pickle.dumps(shard.copy()))
    assert copy.tls.names == shard.tls.names and copy.tls.names is not shard.tls.names
