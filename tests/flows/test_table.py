"""The exact flow table: per-batch aggregation and merging equal a per-packet brute force."""
from __future__ import annotations

import collections
import numpy as np
from hypothesis import given, settings, strategies as st

from collectors.capture_file import CaptureFile
from collectors.decode.decoder import Decoder
from flows.table import FlowTable, group_rows
from schemas.packet_batch import PacketBatch
from tests.conftest import reference_windows, table_records

WINDOW_NS = 10 * 10**9


def _batches(path, batch_size=4096):
    dec = Decoder(l7=False)
    return [dec.decode(r) for r in CaptureFile(str(path), batch_size).batches()]


def test_flow_table_equals_brute_force(synth_pcap):
    batches = _batches(synth_pcap)
    table = FlowTable.concat([FlowTable.from_packets(b, WINDOW_NS) for b in batches]).aggregate()
    assert table_records(table) == reference_windows(synth_pcap, 10)


def test_one_window_over_everything(synth_pcap):
    table = FlowTable.concat([FlowTable.from_packets(b, 0) for b in _batches(synth_pcap)]).aggregate()
    assert set(table.window.tolist()) == {0}
    assert table_records(table) == reference_windows(synth_pcap, 0)


def test_merge_order_and_sharding_do_not_matter(synth_pcap):
    parts = [FlowTable.from_packets(b, WINDOW_NS) for b in _batches(synth_pcap, 1000)]
    whole = FlowTable.concat(parts).aggregate()
    backwards = FlowTable.concat(parts[::-1]).aggregate()
    assert whole.equals(backwards)
    shards = whole.split(3)
    assert sum(len(s) for s in shards) == len(whole)
    assert FlowTable.concat(shards).equals(whole)
    # a flow lives in exactly one shard
    for s in shards[1:]:
        assert not set(s.fhash.tolist()) & set(shards[0].fhash.tolist())


def test_hash_collisions_still_group_exactly():
    keys = [np.array([3, 1, 3, 2, 1], np.uint64), np.array([0, 0, 0, 0, 5], np.uint64)]
    order, starts = group_rows(np.zeros(5, np.uint64), keys)     # every row "collides"
    groups = [sorted(order[a:b].tolist()) for a, b in zip(starts, list(starts[1:]) + [5])]
    assert sorted(groups) == [[0, 2], [1], [3], [4]]


def _random_batch(rng, n) -> PacketBatch:
    b = PacketBatch.empty(n)
    b.ts_ns[:] = np.sort(rng.integers(0, 30 * 10**9, n))
    hosts = rng.integers(0, 6, (n, 2))
    b.src[:, 10:12] = 0xFF
    b.dst[:, 10:12] = 0xFF
    b.src[:, 15] = hosts[:, 0]
    b.dst[:, 15] = hosts[:, 1]
    b.sport[:] = rng.integers(0, 3, n)
    b.dport[:] = rng.integers(0, 3, n)
    b.proto[:] = rng.choice([6, 17], n)
    b.ip_len[:] = rng.integers(20, 1500, n)
    b.tcp_flags[:] = rng.integers(0, 512, n)
    b.status[:] = rng.choice([0, 0, 0, 1], n)
    return b


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 400), cuts=st.lists(st.integers(0, 400), max_size=6))
def test_any_split_into_batches_gives_the_same_table(seed, n, cuts):
    b = _random_batch(np.random.default_rng(seed), n)
    whole = FlowTable.from_packets(b, WINDOW_NS)
    bounds = sorted({0, n, *[c % (n + 1) for c in cuts]})
    parts = [FlowTable.from_packets(b.take(np.arange(lo, hi)), WINDOW_NS) for lo, hi in zip(bounds, bounds[1:])]
    merged = FlowTable.concat(parts).aggregate()
    assert merged.equals(whole)
    ok = b.status == 0
    assert int(whole.packets.sum()) == int(ok.sum())
    assert int(whole.bytes.sum()) == int(b.ip_len[ok].sum())


def test_aggregation_is_exact_when_every_hash_collides():
    from flows.table import _aggregate_rows
    n = 6
    window = np.zeros(n, np.int64)
    src = np.array([[1, 1], [2, 2], [1, 1], [3, 3], [2, 2], [1, 1]], np.uint64)
    dst = np.zeros((n, 2), np.uint64)
    pp = np.zeros(n, np.uint64)
    ts = np.arange(n, dtype=np.int64)
    ng, rep, pk, by, first, last, fl = _aggregate_rows(np.zeros(n, np.uint64), window, src, dst, pp,
                                                       np.zeros(n, np.uint64), np.ones(n, np.uint64),
                                                       np.full(n, 10, np.uint64), ts, ts,
                                                       np.array([1, 2, 4, 8, 16, 32], np.uint16))
    assert ng == 3
    assert rep[:3].tolist() == [0, 1, 3]
    assert pk[:3].tolist() == [3, 2, 1] and by[:3].tolist() == [30, 20, 10]
    assert first[:3].tolist() == [0, 1, 3] and last[:3].tolist() == [5, 4, 3]
    assert fl[:3].tolist() == [1 | 4 | 32, 2 | 16, 8]
    tun = np.array([0, 0, 0, 0, 0, 7], np.uint64)      # the last row came out of a tunnel: a key of its own
    ng, rep, pk = _aggregate_rows(np.zeros(n, np.uint64), window, src, dst, pp, tun, np.ones(n, np.uint64),
                                  np.full(n, 10, np.uint64), ts, ts, np.zeros(n, np.uint16))[:3]
    assert ng == 4 and rep[:4].tolist() == [0, 1, 3, 5] and pk[:4].tolist() == [2, 2, 1, 1]


def test_the_tunnel_is_part_of_the_flow_key():
    """Two tenants' identical inner 5-tuples in two VXLAN segments are two flow records each way,
    one when their VNIs are equal; the tunnel columns of the flows table say which."""
    from collectors.capture_file import CaptureFile
    from collectors.decode.decoder import Decoder
    from collectors.raw_batch import RawBatch
    from flows.rows import result_tables
    from flows.window import LocalPipeline, WindowConfig
    from tests.support import TEST_DATA
    raw = next(CaptureFile(str(TEST_DATA / "zeek_tun_vxlan-encapsulated-http.pcap")).batches())
    frames = [bytes(raw.buf[o:o + c]) for o, c in zip(raw.off.tolist(), raw.caplen.tolist())]

    def flows(vni: int):
        other = [f[:46] + vni.to_bytes(3, "big") + f[49:] for f in frames]      # VXLAN's VNI at 46-48
        b = Decoder().decode(RawBatch.from_frames(frames + other, 1, list(range(2 * len(frames)))))
        return FlowTable.from_packets(b, 10**9), b
    same, _ = flows(1)
    two, batch = flows(77)
    assert len(two) == 2 * len(same) == 4 and two.packets.sum() == same.packets.sum() == 24
    assert sorted((two.tun & np.uint64(0xFFFFFFFF)).tolist()) == [1, 1, 77, 77]
    pipe = LocalPipeline(WindowConfig(window_s=0, shards=2))
    (res,) = pipe.feed(batch) + pipe.flush()
    cols = result_tables(res, "s", 10)["flows"]
    got = sorted(zip(cols["tunnel"].tolist(), cols["tunnel_id"].tolist(), cols["packets"].tolist()))
    assert got == [("vxlan", 1, 5), ("vxlan", 1, 7), ("vxlan", 77, 5), ("vxlan", 77, 7)]


def test_vlan_is_part_of_the_flow_key(synth_pcap):
    """The same 5-tuple seen in two VLANs is two flow records (the generated capture tags 10% of
    frames at random, so many 5-tuples appear tagged and untagged)."""
    ref = reference_windows(synth_pcap, 0)[0]
    vlans = collections.defaultdict(set)
    for k in ref:
        vlans[k[:5]].add(k[5])
    assert sum(len(v) > 1 for v in vlans.values()) > 10
    table = FlowTable.concat([FlowTable.from_packets(b, 0) for b in _batches(synth_pcap)]).aggregate()
    assert len(table) == len(ref) and set(table.vlan.tolist()) == {k[5] for k in ref}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 40), st.integers(0, 40)), max_size=300,
                unique_by=lambda x: x[1:]), st.integers(1, 40))
def test_top_by_is_a_sort_without_sorting_everything(rows, n):
    """The linear-time selection gives exactly the first n of the full sort (weight desc, address)."""
    from flows.table import top_by
    w = np.array([r[0] for r in rows], np.uint64)
    words = np.array([r[1:] for r in rows], np.uint64).reshape(-1, 2)
    full = np.lexsort((words[:, 1], words[:, 0], -w.astype(np.int64)))[:n]
    assert top_by(w, words, n).tolist() == full.tolist()
