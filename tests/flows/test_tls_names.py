"""The TLS names of a window's flow records (flows/tls.py, the flows table's tls_* columns): each
record carries its connection's first ClientHello's server name, JA4 and offered ALPN, the
record of the answers too; compared with tshark's ClientHellos on every public capture."""
from __future__ import annotations

import itertools
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from flows import tls as T
from flows.rows import result_tables
from schemas.addresses import to_text
from tests.conftest import tshark_fields
from tests.support import TLS_CAPTURES, capture_windows

DATA = Path(__file__).resolve().parent.parent / "data"
CAPTURES = TLS_CAPTURES


def _flows(path, **kw) -> dict:
    """{(src, dst, sport, dport, proto): (sni, ja4, alpn)} of the flow records (one window over the capture)."""
    out = {}
    for r in capture_windows(path, 0, **kw):
        t = result_tables(r, "x", 10)["flows"]
        names = zip(*(t[c].tolist() for c in T.TLS_COLUMNS))
        for i, v in enumerate(names):
            key = (to_text(bytes(t["src"][i])).removeprefix("::ffff:"), to_text(bytes(t["dst"][i])).removeprefix("::ffff:"),
                   int(t["sport"][i]), int(t["dport"][i]), int(t["proto"][i]))
            out[key] = v
    return out


def _tshark_first_hellos(path, times: bool = False) -> dict:
    """tshark's first ClientHello (TLS, QUIC, DTLS) per flow key: its server name (and its time, ns)."""
    first = {}
    for layer in ("tls", "dtls"):
        for fr, t, s4, s6, d4, d6, ts, us, td, ud, sni in tshark_fields(
                path, f"{layer}.handshake.type == 1", "frame.number", "frame.time_epoch", "ip.src", "ipv6.src", "ip.dst",
                "ipv6.dst", "tcp.srcport", "udp.srcport", "tcp.dstport", "udp.dstport",
                f"{layer}.handshake.extensions_server_name"):
            key = ((s4 or s6).split(",")[0], (d4 or d6).split(",")[0], int(ts or us), int(td or ud), 6 if ts else 17)
            if key not in first or int(fr) < first[key][0]:
                sec, _, frac = t.partition(".")
                first[key] = (int(fr), sni.split(",")[0], int(sec) * 10**9 + int((frac + "000000000")[:9]))
    return {k: (v[1], v[2]) if times else v[1] for k, v in first.items()}


@pytest.mark.parametrize("name", CAPTURES)
def test_records_carry_their_connections_first_hello_as_tshark_reads_it(name):
    flows = _flows(DATA / name, shards=2)
    want = _tshark_first_hellos(DATA / name)
    for (s, d, sp, dp, pr), sni in list(want.items()):
        want.setdefault((d, s, dp, sp, pr), sni)            # the answers' record: the connection's name
    want = {k: v for k, v in want.items() if k in flows}     # a capture may hold one direction only
    assert want, "no ClientHello in a capture of TLS, QUIC or DTLS"
    assert {k: v[0] for k, v in flows.items() if v != ("", "", "")} == want
    named = [v for v in flows.values() if v[1]]
    assert all(v[1][0] in "tqd" for v in named)              # a JA4 wherever a hello was read


@pytest.mark.parametrize("name", ["zeek_chromium-115.0.5790.110-api-cirrus-com.pcap", "zeek_tls13-ech.pcap",
                                  "zeek_dtls1_2.pcap"])
def test_a_connections_later_windows_carry_its_name(name):
    """100 ms windows over 2 shards cut each connection into many records: every record from its
    hello's window on carries the name (the shard remembers it: TlsMemory), none before."""
    window = 10**8
    hellos = _tshark_first_hellos(DATA / name, times=True)
    for (s, d, sp, dp, pr), v in list(hellos.items()):
        hellos.setdefault((d, s, dp, sp, pr), v)
    carried = 0
    for r in capture_windows(DATA / name, window / 10**9, shards=2):
        t = result_tables(r, "x", 10)["flows"]
        for i, sni in enumerate(t["tls_sni"].tolist()):
            key = (to_text(bytes(t["src"][i])).removeprefix("::ffff:"), to_text(bytes(t["dst"][i])).removeprefix("::ffff:"),
                   int(t["sport"][i]), int(t["dport"][i]), int(t["proto"][i]))
            want, at = hellos.get(key, ("", None))
            named = at is not None and r.start >= at // window * window
            assert sni == (want if named else ""), (key, r.start)
            carried += named and r.start > at // window * window
    assert carried >= 2             # records of windows after the hello's


PUBLISHED = json.loads((DATA / "foxio_ja4_published.json").read_text())


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_ja4_is_foxios_published_value_of_the_first_hello(name):
    """A connection retried after a HelloRetryRequest sends two ClientHellos: the first names it."""
    flows = _flows(DATA / name)
    first = {}
    for h in PUBLISHED[name]:                   # in capture order
        first.setdefault((h["src"], h["dst"], h["srcport"], h["dstport"]), (h.get("domain", ""), h["ja4"]))
    for (s, d, sp, dp), want in first.items():
        got = [v[:2] for k, v in flows.items() if k[:4] in ((s, d, sp, dp), (d, s, dp, sp))]
        assert got and set(got) == {want}, (s, sp)


def test_alpn_is_the_offered_list():
    assert set(_flows(DATA / "zeek_chromium-115.0.5790.110-api-cirrus-com.pcap").values()) == {
        ("api.cirrus-ci.com", "q13d0311h3_55b375c5d22e_3512bcbbc9ec", "h3")}
    assert {v[2] for v in _flows(DATA / "foxio_tls-sni.pcapng").values()} >= {"h2,http/1.1", "h3", "http/1.1"}


_HELLO = st.tuples(st.integers(0, 3), st.integers(0, 10), st.sampled_from(["a.example", "b.example", ""]))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(_HELLO, max_size=6), min_size=1, max_size=4), st.randoms())
def test_the_earliest_hello_wins_in_any_order_of_parts(parts, rnd):
    """Batches, shards and revisions combine in any order: the same names."""
    def names(hellos):
        d = {}
        for key, ts, sni in hellos:
            T._keep(d, (key, 0, 0, 0, 0), (ts, sni, "", ""))
        return T.TlsNames(d)
    made = [names(p) for p in parts]
    want = T.TlsNames.combine(made).hellos
    for order in itertools.islice(itertools.permutations(made), 6):
        assert T.TlsNames.combine(list(order)).hellos == want
    flat = names([h for p in parts for h in p]).hellos
    assert want == flat


def test_past_max_tls_flows_hellos_are_counted_not_kept(monkeypatch):
    monkeypatch.setattr(T, "MAX_TLS_FLOWS", 3)
    (r,) = capture_windows(DATA / "foxio_tls-sni.pcapng", 0)
    # 84 ClientHellos (79 flows), each naming its flow and the reverse: the first hello's two
    # keys kept, the second's first, the other 83 hellos counted
    assert len(r.tls) == 3 and r.tls.dropped == 83
    t = result_tables(r, "x", 10)
    assert sum(1 for v in t["flows"]["tls_sni"].tolist() if v) == 2        # the capture has no answers
    counters = dict(zip(zip(t["window_counters"]["kind"], t["window_counters"]["name"]), t["window_counters"]["packets"]))
    assert counters[("status", "tls_names_dropped")] == 83


class _Records:
    """Flow records as TlsMemory reads them: their keys' rows among the keys it asks for."""
    def __init__(self, *keys):
        self.keys = keys

    def __len__(self):
        return len(self.keys)

    def find(self, keys):
        rows = [tuple(k) for k in keys.tolist()]
        return np.array([rows.index(k) if k in rows else -1 for k in self.keys], np.int64)


def test_a_shard_forgets_the_connections_it_has_not_seen_for_longest(monkeypatch):
    monkeypatch.setattr(T, "TLS_MEMORY_KEYS", 3)
    a, a_back, b, b_back = ((i, 0, 0, 0, 0, 0) for i in range(1, 5))
    mem = T.TlsMemory()
    assert mem.name(_Records(a), T.TlsNames({a: (1, "a.example", "", ""), a_back: (1, "a.example", "", "")})) is not None
    second = mem.name(_Records(a, b), T.TlsNames({b: (2, "b.example", "", ""), b_back: (2, "b.example", "", "")}))
    assert second.hellos[a] == (1, "a.example", "", "")          # a's record in a later window: named
    assert list(mem.names) == [a, b, b_back]                     # a seen again, a's answers not: forgotten
    assert mem.name(_Records(a_back), None) is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.lists(st.integers(0, 9), max_size=6), st.lists(st.integers(0, 9), max_size=4)),
                max_size=30))
def test_the_memory_names_as_a_plain_lru_would(windows):
    """Whatever windows come (records of some keys, hellos of others; keys forgotten, seen again,
    the key array made again; copies and snapshots between), the names equal those of a plain
    LRU of TLS_MEMORY_KEYS keys (keys seen in one window: the smaller one older)."""
    import collections
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(T, "TLS_MEMORY_KEYS", 3)
        _same_as_lru(windows, T.TlsMemory(), collections.OrderedDict())


def _same_as_lru(windows, mem, lru) -> None:
    for i, (records, hellos) in enumerate(windows):
        keys = [(k, 0, 0, 0, 0, 0) for k in dict.fromkeys(records)]
        names = T.TlsNames({(k, 0, 0, 0, 0, 0): (i, f"{k}.example", "", "") for k in hellos})
        got = mem.name(_Records(*keys), names if hellos else None)
        want = {k: lru[k] for k in keys if k in lru}
        for k in sorted(want):
            lru.move_to_end(k)
        for k, v in names.hellos.items():
            lru[k] = min(v, lru.get(k, v))
            lru.move_to_end(k)
        while len(lru) > 3:
            lru.popitem(last=False)
        want.update({k: min(v, want.get(k, v)) for k, v in names.hellos.items()})
        assert (got.hellos if got is not None else {}) == want
        assert mem.names == lru
        mem = pickle.loads(pickle.dumps(mem)) if i % 7 == 3 else mem.copy() if i % 5 == 4 else mem


def test_a_name_stays_in_its_tunnel():
    """Two tenants' equal 5-tuples in two VXLAN segments: the hello in VNI 1 names that
    connection's records, not the other tenant's (the flow key holds the tunnel); a snapshot
    from before tunnels (5-word keys) reads as out of no tunnel."""
    import struct

    import dpkt

    from collectors.decode.decoder import Decoder
    from collectors.raw_batch import RawBatch
    from flows.window import LocalPipeline, WindowConfig
    from tests.support import TEST_DATA
    with open(TEST_DATA / "foxio_tls12.pcap", "rb") as f:
        hello = next(bytes(fr) for _, fr in dpkt.pcap.Reader(f)
                     if isinstance(dpkt.ethernet.Ethernet(fr).data.data, dpkt.tcp.TCP)
                     and dpkt.ethernet.Ethernet(fr).data.data.data[:1] == b"\x16"
                     and dpkt.ethernet.Ethernet(fr).data.data.data[5:6] == b"\x01")
    tcp_data = dpkt.ethernet.Ethernet(hello).data.data.data
    other = hello[:len(hello) - len(tcp_data)] + bytes(len(tcp_data))     # the same segment, not a hello

    def vxlan(vni: int, inner: bytes) -> bytes:
        udp = dpkt.udp.UDP(sport=50000, dport=4789, data=struct.pack("!BBHI", 8, 0, 0, vni << 8) + inner)
        udp.ulen = len(bytes(udp))
        ip = dpkt.ip.IP(src=b"\xc0\x00\x02\x01", dst=b"\xc0\x00\x02\x02", p=17, data=udp)
        return bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, data=ip))
    b = Decoder().decode(RawBatch.from_frames([vxlan(1, hello), vxlan(77, other)], 1, [10**9, 2 * 10**9]))
    pipe = LocalPipeline(WindowConfig(window_s=10, shards=2))
    (res,) = pipe.feed(b) + pipe.flush()
    cols = result_tables(res, "s", 10)["flows"]
    got = sorted(zip(cols["tunnel_id"].tolist(), cols["tls_sni"].tolist()))
    assert len(got) == 2 and got[0][0] == 1 and got[0][1] != "" and got[1] == (77, "")
    old = pickle.loads(pickle.dumps(res.tls))
    old.__dict__["hellos"] = {k[:5]: v for k, v in res.tls.hellos.items()}
    assert pickle.loads(pickle.dumps(old)).hellos == {k[:5] + (0,): v for k, v in res.tls.hellos.items()}
    mem = T.TlsMemory()
    mem.names.update({k[:5]: v for k, v in res.tls.hellos.items()})
    assert set(pickle.loads(pickle.dumps(mem)).names) == {k[:5] + (0,) for k in res.tls.hellos}

