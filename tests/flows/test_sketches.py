"""Heavy hitters and spread on traffic with planted elephants, spreaders and a SYN flood,
against a brute-force reference; merging and serialisation of the sketches."""
from __future__ import annotations

import collections
import json
import pickle

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from collectors.capture_file import CaptureFile
from collectors.decode.decoder import Decoder
from flows.config import WindowConfig
from flows.sketches import HH_DIMENSIONS, HeavyHitters, SketchConfig, Spread, dimension_keys, parse_key
from flows.table import FlowTable
from flows.window import ShardState, split_batch
from schemas.addresses import from_text, to_text
from tests.conftest import reference_windows

PHI = 0.005        # a heavy hitter carries at least 0.5% of the window's bytes or packets


def run_windows(path, cfg: WindowConfig):
    """The pure pipeline (split -> shard states -> merge), without Bytewax."""
    from flows.window import LocalPipeline
    pipe, dec = LocalPipeline(cfg), Decoder(l7=False)
    results = [r for raw in CaptureFile(str(path)).batches() for r in pipe.feed(dec.decode(raw))]
    return results + pipe.flush()


@pytest.fixture(scope="module")
def planted(planted_pcap):
    cfg = WindowConfig(window_s=0, shards=4)
    (res,) = run_windows(planted_pcap, cfg)
    ref = reference_windows(planted_pcap, 0)[0]
    truth = json.load(open(f"{planted_pcap}.truth.json"))
    return res, ref, truth


def _exact(ref, dimension):
    w = {"bytes": collections.Counter(), "packets": collections.Counter()}
    for (s, d, sp, dp, p, _vlan), (pk, by, *_) in ref.items():     # items are 5-tuples, over VLANs
        key = {"src": s, "dst": d, "flow": (s, d, sp, dp, p), "dport": (p, dp), "proto": p}[dimension]
        if dimension == "dport" and dp == 0:
            continue
        w["bytes"][key] += by
        w["packets"][key] += pk
    return w


def _key_of(dimension, item):
    f = parse_key(dimension, item)
    return {"src": lambda: to_text(f["src"]), "dst": lambda: to_text(f["dst"]),
            "flow": lambda: (to_text(f["src"]), to_text(f["dst"]), f["sport"], f["dport"], f["proto"]),
            "dport": lambda: (f["proto"], f["dport"]), "proto": lambda: f["proto"]}[dimension]()


@pytest.mark.parametrize("dimension", HH_DIMENSIONS)
@pytest.mark.parametrize("metric", ["bytes", "packets"])
def test_heavy_hitter_precision_and_recall(planted, dimension, metric):
    res, ref, _ = planted
    exact = _exact(ref, dimension)[metric]
    total = sum(exact.values())
    truth = {k for k, v in exact.items() if v >= PHI * total}
    found = {_key_of(dimension, k) for k, est, _, _ in res.heavy.top(dimension, metric, 10_000) if est >= PHI * total}
    tp = len(truth & found)
    precision, recall = tp / max(len(found), 1), tp / max(len(truth), 1)
    print(f"{dimension}/{metric}: {len(truth)} heavy, precision {precision:.3f} recall {recall:.3f}")
    assert truth, "the planted traffic has heavy hitters in every dimension"
    assert precision >= 0.99 and recall >= 0.99
    for k, est, lb, ub in res.heavy.top(dimension, metric, 20):      # bounds hold for the top items
        assert lb <= exact[_key_of(dimension, k)] <= ub


def test_planted_elephants_are_found(planted):
    res, ref, truth = planted
    planted_flows = {(h["src"], h["dst"], h["sport"], h["dport"], h["proto"]) for h in truth["heavy_hitters"]}
    total = sum(v[0] for v in ref.values())
    found = {_key_of("flow", k) for k, est, *_ in res.heavy.top("flow", "packets", 1000) if est >= PHI * total}
    assert planted_flows <= found


def test_spread_estimates_within_3_percent(planted):
    res, ref, truth = planted
    dsts, srcs = collections.defaultdict(set), collections.defaultdict(set)
    for s, d, *_ in ref:
        dsts[s].add(d)
        srcs[d].add(s)
    worst = 0.0
    for kind, exact in (("src_spread", dsts), ("dst_fan_in", srcs)):
        sp = res.spread[kind]
        for addr, peers in exact.items():
            est = sp.estimate(from_text(addr))
            if len(peers) < SketchConfig().exact_peers:
                assert est == len(peers)       # the long tail is counted exactly
            else:
                worst = max(worst, abs(est - len(peers)) / len(peers))
    print(f"worst spread relative error {worst:.4f}")
    assert worst <= 0.03
    top = [(to_text(a), round(e)) for a, e, *_ in res.spread["src_spread"].top(3)]
    assert {a for a, _ in top} == {s["src"] for s in truth["super_spreaders"]}
    victim = res.spread["dst_fan_in"].top(1)[0]
    assert to_text(victim[0]) == truth["fan_in"][0]["dst"]
    assert abs(victim[1] - truth["fan_in"][0]["distinct_srcs"]) <= 0.03 * truth["fan_in"][0]["distinct_srcs"]


def test_results_do_not_depend_on_batching(planted_pcap, planted):
    """Same shards, different batch sizes: identical exact tables and identical sketch answers."""
    res, _, _ = planted
    cfg = WindowConfig(window_s=0, shards=4)
    from flows.window import merge_partials
    dec = Decoder(l7=False)
    parts = []
    states = [ShardState(i, cfg) for i in range(cfg.shards)]
    for raw in CaptureFile(str(planted_pcap), 5000).batches():
        for chunk in split_batch(dec.decode(raw), cfg):
            states[chunk.shard].add(chunk)
    for s in states:
        parts += s.flush()
    other = merge_partials(parts, cfg)
    assert other.flows.equals(res.flows)
    assert other.spread["src_spread"].top(10) == res.spread["src_spread"].top(10)
    assert other.heavy.top("src", "bytes", 10) == res.heavy.top("src", "bytes", 10)


def test_sketches_survive_pickling(planted):
    res, _, _ = planted
    hh, sp = pickle.loads(pickle.dumps((res.heavy, res.spread["dst_fan_in"])))
    assert hh.top("flow", "bytes", 5) == res.heavy.top("flow", "bytes", 5)
    assert sp.top(5) == res.spread["dst_fan_in"].top(5)


def _table(pairs) -> FlowTable:
    n = len(pairs)
    t = FlowTable.empty()
    src = np.zeros((n, 16), np.uint8)
    dst = np.zeros((n, 16), np.uint8)
    for i, (s, d) in enumerate(pairs):
        src[i, 14:] = divmod(s, 256)
        dst[i, 14:] = divmod(d, 256)
    from schemas.flow_key import addr_words, flow_hash, port_proto
    z = np.zeros(n, np.uint16)
    sw, dw, pp = addr_words(src), addr_words(dst), port_proto(z, z, np.full(n, 6, np.uint8))
    t = FlowTable(np.zeros(n, np.int64), sw, dw, pp, np.zeros(n, np.uint64), flow_hash(sw, dw, pp),
                  np.ones(n, np.uint64),
                  np.ones(n, np.uint64), np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.uint16))
    return t.aggregate()


@settings(max_examples=40, deadline=None)
@given(pairs=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 300)), min_size=1, max_size=600),
       parts=st.integers(1, 4))
def test_spread_merge_is_exact_below_threshold_and_close_above(pairs, parts):
    cfg = SketchConfig(exact_peers=8)
    truth = collections.defaultdict(set)
    for s, d in pairs:
        truth[s].add(d)
    t = _table(pairs)
    merged = Spread(cfg)
    for shard in t.split(parts):
        merged.merge(Spread.from_flows(shard, "src", cfg))
    for s, peers in truth.items():
        key = bytes(14) + bytes(divmod(s, 256))
        est = merged.estimate(key)
        if len(peers) < cfg.exact_peers:
            assert est == len(peers)
        else:                    # HLL at these sizes is in its exact-ish list/set modes
            assert abs(est - len(peers)) <= 0.02 * len(peers) + 1


def test_heavy_hitters_merge_like_one_sketch(synth_pcap):
    dec = Decoder(l7=False)
    t = FlowTable.concat([FlowTable.from_packets(dec.decode(r), 0) for r in CaptureFile(str(synth_pcap)).batches()]).aggregate()
    whole = HeavyHitters.from_flows(t)
    merged = HeavyHitters()
    for s in t.split(4):
        merged.merge(HeavyHitters.from_flows(s))
    for d in HH_DIMENSIONS:
        keys, b, _ = dimension_keys(t, d)
        exact = dict(zip(keys, b.tolist()))
        top_m, top_w = merged.top(d, "bytes", 10), whole.top(d, "bytes", 10)
        assert {x[0] for x in top_m[:5]} == {x[0] for x in top_w[:5]}
        for k, est, lb, ub in top_m + top_w:     # estimates may differ, both bracket the truth
            assert lb <= exact[k] <= ub


@settings(max_examples=30, deadline=None)
@given(weights=st.lists(st.lists(st.integers(1, 10_000), min_size=1, max_size=400), min_size=1, max_size=4),
       lg=st.integers(3, 5))
def test_heavy_hitters_fed_candidates_bound_every_key(weights, lg):
    """Shards feed only their keys above 1/capacity of their weight: for every key the truth lies
    within [lower bound, upper bound] as reported, and no key heavier than the left-out weight
    plus the sketch's error is missed."""
    from flows.sketches import candidates
    cfg = SketchConfig(hh_lg_max_map=lg)
    merged, truth = HeavyHitters(cfg), collections.Counter()
    for shard in weights:                       # shard i holds keys "k0".."kn" with these weights
        w = np.array(shard, np.uint64)
        hh = HeavyHitters(cfg)
        keep, left = candidates(w, hh.capacity)
        assert len(keep) <= hh.capacity and all(int(x) <= left for x in np.delete(w, keep))
        for i in keep.tolist():
            hh.sketches[("src", "bytes")].update(f"k{i}", int(w[i]))
        hh.left_out[("src", "bytes")] += left
        merged.merge(hh)
        truth.update({f"k{i}": int(x) for i, x in enumerate(shard)})
    top = {k: (lb, ub) for k, _, lb, ub in merged.top("src", "bytes", 10**6)}
    sk, left = merged.sketches[("src", "bytes")], merged.left_out[("src", "bytes")]
    for k, true in truth.items():
        if k in top:
            assert top[k][0] <= true <= top[k][1]
        else:                                   # not reported: it cannot be heavier than this
            assert true <= sk.get_upper_bound(k) + left


def test_flow_cap_keeps_the_heaviest_exactly_and_sketches_the_rest(planted_pcap, planted):
    """With room for only 1,000 flow records a window (250 a shard), the heaviest records are kept
    exactly, totals stay exact (the rest in capped_* counters), and the sketches still see every
    record: the planted elephants and the flooded victim's fan-in are found as without the cap."""
    full, ref, truth = planted
    capped = WindowConfig(window_s=0, shards=4, max_flows=1000)
    (res,) = run_windows(planted_pcap, capped)
    assert len(res.flows) <= 1000 < len(full.flows)
    c = res.counters
    assert c["capped_flow_records"] >= len(full.flows) - 1000
    assert (res.packets, res.bytes) == (full.packets, full.bytes)
    assert c["capped_packets"] == full.packets - int(res.flows.packets.sum())
    exact = {(r.tobytes(), pp): (pk, by) for r, pp, pk, by in zip(np.concatenate([full.flows.src, full.flows.dst], 1),
                                                                   full.flows.pp.tolist(), full.flows.packets.tolist(),
                                                                   full.flows.bytes.tolist())}
    got = {(r.tobytes(), pp): (pk, by) for r, pp, pk, by in zip(np.concatenate([res.flows.src, res.flows.dst], 1),
                                                                 res.flows.pp.tolist(), res.flows.packets.tolist(),
                                                                 res.flows.bytes.tolist())}
    assert all(v[0] <= exact[k][0] and v[1] <= exact[k][1] for k, v in got.items())
    for k in sorted(exact, key=lambda k: -exact[k][1])[:100]:     # the heaviest: kept whole, exact
        assert got[k] == exact[k]
    total = sum(v[0] for v in ref.values())
    planted_flows = {(h["src"], h["dst"], h["sport"], h["dport"], h["proto"]) for h in truth["heavy_hitters"]}
    found = {_key_of("flow", k) for k, est, *_ in res.heavy.top("flow", "packets", 1000) if est >= PHI * total}
    assert planted_flows <= found
    victim = res.spread["dst_fan_in"].top(1)[0]
    assert to_text(victim[0]) == truth["fan_in"][0]["dst"]
    assert abs(victim[1] - truth["fan_in"][0]["distinct_srcs"]) <= 0.03 * truth["fan_in"][0]["distinct_srcs"]


def test_small_shards_leave_their_summaries_to_the_merger_with_the_same_answers(synth_pcap, monkeypatch):
    """A shard's window of few records is summarised by the merger, with the other small shards'
    (flows/window.py DEFER_SUMMARY_ROWS): the same heavy hitters and spread as when every shard
    sketches its own and the merger merges the sketches."""
    import flows.window as fw
    cfg = WindowConfig(window_s=10, shards=4)
    deferred = run_windows(synth_pcap, cfg)
    monkeypatch.setattr(fw, "DEFER_SUMMARY_ROWS", -1)
    own = run_windows(synth_pcap, cfg)
    assert len(deferred) == len(own) > 3
    for a, b in zip(sorted(deferred, key=lambda r: r.start), sorted(own, key=lambda r: r.start)):
        assert a.flows.sorted().equals(b.flows.sorted())
        for d in HH_DIMENSIONS:
            for m in ("bytes", "packets"):
                assert a.heavy.top(d, m, 20) == b.heavy.top(d, m, 20), (d, m)
        for kind in a.spread:
            assert a.spread[kind].top(20) == b.spread[kind].top(20), kind
