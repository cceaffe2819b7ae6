"""TLS hellos over TCP (collectors/decode/tls.py) and in QUIC Initials (quic.py): every field
against tshark on the public captures in tests/data, JA4 against FoxIO's published values, hellos
split over segments or Initial packets, and fuzzing.

Every difference from tshark is named here with its reason."""
from __future__ import annotations

import collections
import hashlib
import json
import struct

import dpkt
import pytest
from hypothesis import given, settings, strategies as st

from collectors import protocols as P
from collectors.capture_file import CaptureFile
from collectors.decode.decoder import TLS_HELLOS_PER_BATCH, Decoder
from collectors.decode.quic import MIN_INITIAL_DATAGRAM, initial_crypto
from collectors.decode.tls import (CLIENT_HELLO, SERVER_HELLO, HandshakeAssembly, HelloReassembly, dtls_fragment, grease,
                                   ja4, parse_tls)
from collectors.raw_batch import RawBatch
from tests.conftest import tshark_fields
from tests.support import TEST_DATA, TLS_CAPTURES

DATA = TEST_DATA
CAPTURES = TLS_CAPTURES
PUBLISHED = json.loads((DATA / "foxio_ja4_published.json").read_text())
# Frames where we and tshark differ, and why.
ONLY_OURS = {
    # a ServerHello in a segment that arrives out of order after a lost one: tshark's reassembly
    # does not dissect it; it starts a TLS record, and we read it
    ("zeek_hrr.pcap", 11),
}
HELLO_FIELDS = ("type", "extensions_server_name", "extensions_alpn_str", "ja3", "ja3s", "ciphersuite",
                "extensions.supported_version", "version", "extension.type", "sig_hash_alg", "fragment_length", "length")
ADDRESSES = ("frame.number", "ip.src", "ipv6.src", "tcp.srcport", "ip.dst", "ipv6.dst", "tcp.dstport", "udp.srcport",
             "udp.dstport")
EXT_DELEGATED_CREDENTIALS = 34    # carries signature algorithms too: tshark's sig_hash_alg mixes both lists


def _hellos(path) -> tuple[dict, Decoder]:
    """Our hellos by frame number, and the decoder (its stats)."""
    dec, out, base = Decoder(), {}, 0
    for raw in CaptureFile(str(path)).batches():
        t = dec.decode(raw).l7
        for i, row in enumerate(t.row.tolist()):
            if t.tls_hello[i] != -1:
                out[base + row + 1] = {c: getattr(t, c)[i] for c in t.value_columns() if c.startswith("tls_")}
        base += len(raw)
    return out, dec


def _hex(values: str) -> list[int]:
    return [int(v, 16) for v in values.split(",") if v]


def _theirs(path) -> dict:
    """tshark's hellos by frame (the first ClientHello or ServerHello of a frame), in our terms:
    TLS over TCP, in QUIC ("quic"), and DTLS ("dtls"; a first fragment of a hello, whose fields
    tshark gives on the frame that completes it, is left out)."""
    out = {}
    for layer in ("tls", "dtls"):
        # TLS has no fragment_length: its length field stands in (always "whole")
        fields = ADDRESSES + tuple(f"{layer}.handshake.{'length' if f == 'fragment_length' and layer == 'tls' else f}"
                                   for f in HELLO_FIELDS)
        for (number, src4, src6, sport, dst4, dst6, dport, usport, udport, types, sni, alpn, ja3, ja3s, ciphers, supported,
             versions, exts, sigs, frag_len, length) in tshark_fields(
                path, f"{layer}.handshake.type == 1 || {layer}.handshake.type == 2", *fields):
            kind = next(int(t) for t in types.split(",") if t in ("1", "2"))
            if layer == "dtls" and not (ja3 or ja3s) and frag_len.split(",")[0] != length.split(",")[0]:
                continue
            offered = [v for v in _hex(supported) if not grease(v)]
            version = max(offered) if offered else _hex(versions)[0]
            ext_types = [int(e) for e in exts.split(",") if e]
            transport = "d" if layer == "dtls" else "t" if sport else "q"
            h = {"tls_hello": kind, "tls_version": version, "tls_sni": sni or None,
                 "tls_alpn": alpn.split(",") if alpn else None,
                 "tls_cipher": _hex(ciphers)[0] if kind == SERVER_HELLO else -1,
                 "tls_ja3": ja3 if kind == CLIENT_HELLO else ja3s,
                 "flow": (src4 or src6, int(sport or usport), dst4 or dst6, int(dport or udport)),
                 "quic": transport == "q"}
            if kind == CLIENT_HELLO and EXT_DELEGATED_CREDENTIALS not in ext_types:
                h["ja4_from_fields"] = ja4(transport, version, 0 in ext_types, _hex(ciphers), ext_types, h["tls_alpn"],
                                           _hex(sigs))
            out[int(number)] = h
    return out


@pytest.mark.parametrize("name", CAPTURES)
def test_hello_fields_match_tshark(name):
    ours, dec = _hellos(DATA / name)
    theirs = _theirs(DATA / name)
    assert theirs, "tshark found no hello"
    assert {(name, f) for f in set(ours) - set(theirs)} <= ONLY_OURS
    assert set(theirs) == set(ours) - {f for n, f in ONLY_OURS if n == name}
    for frame, t in theirs.items():
        o = ours[frame]
        assert {k: o[k] for k in ("tls_hello", "tls_version", "tls_sni", "tls_alpn", "tls_cipher", "tls_ja3")} == \
            {k: t[k] for k in ("tls_hello", "tls_version", "tls_sni", "tls_alpn", "tls_cipher", "tls_ja3")}, frame
        if t["tls_hello"] == CLIENT_HELLO:
            assert o["tls_ja4"] is not None
            if "ja4_from_fields" in t:      # JA4 from tshark's lists of the same hello
                assert o["tls_ja4"] == t["ja4_from_fields"], frame
        else:
            assert o["tls_ja4"] is None
    assert not dec.stats["tls_hello_partial"] and not dec.stats["tls_hellos_unread"]


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_ja4_matches_foxio_published_values(name):
    """FoxIO's own tool's output on its captures: JA4 and the raw JA4_r it hashes."""
    ours, _ = _hellos(DATA / name)
    theirs = _theirs(DATA / name)
    assert collections.Counter((*theirs[f]["flow"], o["tls_ja4"]) for f, o in ours.items()
                               if o["tls_hello"] == CLIENT_HELLO) == \
        collections.Counter((p["src"], p["srcport"], p["dst"], p["dstport"], p["ja4"]) for p in PUBLISHED[name])
    for p in PUBLISHED[name]:
        if "ja4_r" not in p:        # QUIC hellos: values from FoxIO's Rust tool, which prints no JA4_r
            continue
        a, b, c = p["ja4_r"].split("_", 2)
        assert p["ja4"] == f"{a}_{hashlib.sha256(b.encode()).hexdigest()[:12]}_{hashlib.sha256(c.encode()).hexdigest()[:12]}"


def test_ja4_spec_example_and_empty_lists():
    """The spec's worked example (technical_details/JA4.md), GREASE ignored, and its '000000000000'."""
    ciphers = [0x0A0A, 0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8, 0xC013, 0xC014, 0x009C,
               0x009D, 0x002F, 0x0035]
    exts = [0x1A1A, 0x001B, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002D, 0x000D, 0x0005, 0x0023, 0x0012, 0x002B,
            0xFF01, 0x000B, 0x000A, 0x0015, 0x2A2A]
    sigs = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601]
    assert ja4("t", 0x0304, True, ciphers, exts, ["h2", "http/1.1"], sigs) == "t13d1516h2_8daaf6152771_e5627efa2ab1"
    assert ja4("t", 0x0304, True, ciphers, exts, ["h2"], []).endswith("_6d807ffa2a79")
    assert ja4("t", 0x0303, False, [], [], None, []) == "t12i000000_000000000000_000000000000"
    assert ja4("t", 0x0999, False, [1], [0x10], ["x"], [])[:10] == "t00i0101x0"   # one character: "x0", as FoxIO's tools
    assert ja4("t", 0x0304, False, [1], [0x10], ["\ufffdh"], [])[8:10] == "9h"   # not ASCII: "9"


# -- hellos built here: every field known ---------------------------------------------------------

def _ext(t: int, body: bytes) -> bytes:
    return struct.pack("!HH", t, len(body)) + body


def client_hello(sni=None, alpn=None, ciphers=(0x1301,), versions=(), groups=(), formats=None, sigs=(), extra=(),
                 legacy=0x0303) -> bytes:
    """A ClientHello record; `extra`: (type, body) extensions added after the others."""
    exts = b""
    if sni is not None:
        name = sni.encode()
        exts += _ext(0, struct.pack("!HBH", len(name) + 3, 0, len(name)) + name)
    if alpn is not None:
        body = b"".join(bytes([len(a.encode())]) + a.encode() for a in alpn)
        exts += _ext(16, struct.pack("!H", len(body)) + body)
    if versions:
        exts += _ext(43, bytes([2 * len(versions)]) + b"".join(struct.pack("!H", v) for v in versions))
    if groups:
        exts += _ext(10, struct.pack("!H", 2 * len(groups)) + b"".join(struct.pack("!H", g) for g in groups))
    if formats is not None:
        exts += _ext(11, bytes([len(formats)]) + bytes(formats))
    if sigs:
        exts += _ext(13, struct.pack("!H", 2 * len(sigs)) + b"".join(struct.pack("!H", s) for s in sigs))
    for t, body in extra:
        exts += _ext(t, body)
    body = (struct.pack("!H", legacy) + bytes(32) + b"\x00" + struct.pack("!H", 2 * len(ciphers))
            + b"".join(struct.pack("!H", c) for c in ciphers) + b"\x01\x00" + struct.pack("!H", len(exts)) + exts)
    hs = bytes([CLIENT_HELLO]) + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs


names = st.from_regex(r"[a-z0-9]{1,20}(\.[a-z0-9]{1,20}){0,3}", fullmatch=True)
u16s = st.lists(st.integers(0, 0xFFFF), max_size=40)


@settings(max_examples=300, deadline=None)
@given(sni=st.none() | names, alpn=st.none() | st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=4),
       ciphers=u16s, versions=st.lists(st.sampled_from([0x0A0A, 0x0301, 0x0303, 0x0304, 0xFAFA]), max_size=4),
       groups=u16s, formats=st.none() | st.lists(st.integers(0, 255), max_size=4), sigs=u16s)
def test_built_hellos_read_back(sni, alpn, ciphers, versions, groups, formats, sigs):
    alpn = [a for a in alpn or () if len(a.encode()) < 256] or None
    t = parse_tls(client_hello(sni, alpn, ciphers, versions, groups, formats, sigs))
    offered = [v for v in versions if not grease(v)]
    assert t.complete and t.hello == CLIENT_HELLO and t.sni == sni and t.alpn == alpn
    assert t.version == (max(offered) if offered else 0x0303)
    exts = [e for e, present in ((0, sni is not None), (16, alpn is not None), (43, bool(versions)), (10, bool(groups)),
                                 (11, formats is not None), (13, bool(sigs))) if present]
    ja3 = ",".join(["771", "-".join(str(c) for c in ciphers if not grease(c)), "-".join(map(str, exts)),
                    "-".join(str(g) for g in groups if not grease(g)), "-".join(map(str, formats or ()))])
    assert t.ja3 == hashlib.md5(ja3.encode()).hexdigest()
    assert t.ja4 == ja4("t", t.version, sni is not None, list(ciphers), exts, alpn, list(sigs))


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_never_raise(data):
    parse_tls(b"\x16\x03" + data)
    parse_tls(data)


@settings(max_examples=500, deadline=None)
@given(cut=st.integers(0, 400), flips=st.lists(st.tuples(st.integers(0, 399), st.integers(0, 255)), max_size=6))
def test_cut_or_corrupted_hellos_never_raise_and_a_cut_one_has_no_fingerprint(cut, flips):
    whole = client_hello("www.example.org", ["h2", "http/1.1"], (0x1301, 0x1302), (0x0304,), (29,), [0], (0x0403,),
                         extra=[(21, bytes(200))])
    t = parse_tls(whole[:cut])
    if cut < len(whole) and t is not None:
        assert not t.complete and t.ja3 is None and t.ja4 is None
        assert t.sni in (None, "www.example.org")
    data = bytearray(whole)
    for i, v in flips:
        data[i % len(data)] = v
    parse_tls(bytes(data))


# -- through the decoder: segments, reassembly, budget ---------------------------------------------

def _frames(segments, sport=40000, dport=443):
    """Ethernet/IPv4/TCP frames carrying `segments` ((seq, payload) each) from one client."""
    out = []
    for seq, payload in segments:
        tcp = dpkt.tcp.TCP(sport=sport, dport=dport, seq=seq, flags=dpkt.tcp.TH_ACK | dpkt.tcp.TH_PUSH, data=payload)
        ip = dpkt.ip.IP(src=b"\x0a\x00\x00\x01", dst=b"\x0a\x00\x00\x02", p=6, data=tcp)
        out.append(bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, data=ip)))
    return out


def _write(path, frames):
    with open(path, "wb") as f:
        w = dpkt.pcap.Writer(f)
        for i, fr in enumerate(frames):
            w.writepkt(fr, ts=1_700_000_000 + i / 1000)


def _long_hello():
    """A hello whose SNI and ALPN come after a 1.4 kB key share, as Chrome's may: cut at a 1448-byte
    MSS, the first segment holds neither."""
    return client_hello(None, None, (0x1301, 0x1302), (0x0304,), (0x11EC, 29), [0], (0x0403,),
                        extra=[(51, bytes(1400)), (0, struct.pack("!HBH", 18, 0, 15) + b"www.example.org"),
                               (16, b"\x00\x03\x02h2")])


def test_a_hello_split_over_segments_is_read_where_it_completes_like_tshark(tmp_path):
    hello = _long_hello()
    seq = 1000
    path = tmp_path / "split.pcap"
    _write(path, _frames([(seq, hello[:1448]), (seq + 1448, hello[1448:])]))
    ours, dec = _hellos(path)
    theirs = _theirs(path)
    assert list(theirs) == [2] and list(ours) == [2]
    assert ours[2]["tls_sni"] == "www.example.org" == theirs[2]["tls_sni"]
    assert ours[2]["tls_ja3"] == theirs[2]["tls_ja3"] and ours[2]["tls_alpn"] == ["h2"]
    assert ours[2]["tls_ja4"] == parse_tls(hello).ja4
    assert not dec.stats["tls_hello_partial"]


def test_a_retransmission_waits_and_a_gap_gives_up_counted(tmp_path):
    hello = _long_hello()
    frames = _frames([(5, hello[:1000]), (5, hello[:1000]), (1005, hello[1000:1448]), (1453, hello[1448:]),
                      (9, hello[:1000]), (2009, hello[1000:])], sport=40001)
    dec = Decoder()
    t = dec.decode(RawBatch.from_frames(frames, P.LINK_ETHERNET)).l7
    rows = [r for r, h in zip(t.row.tolist(), t.tls_hello) if h != -1]
    # frame 1 starts a hello; frame 2 restarts it (a new start replaces an unfinished one: 1
    # given up); 3 and 4 complete it; 5 starts another whose next segment (6) leaves a gap
    assert rows == [3]
    assert dec.stats["tls_hello_partial"] == 2 and not dec.hellos.waiting


def test_reassembly_is_bounded():
    r = HelloReassembly(size=2)
    hello = _long_hello()
    for i in range(5):
        assert r.start(i.to_bytes(36, "big"), 0, hello[:100])
    assert len(r.waiting) == 2 and r.given_up == 3
    too_long = b"\x16\x03\x01\x40\x05\x01\x00\x40\x01" + bytes(100)     # more than one record's 16 kB
    assert not r.start(b"x" * 36, 0, too_long)


def test_hellos_past_the_batch_budget_are_counted_not_read():
    hello = client_hello("a.example")
    frames = _frames([(1, hello)]) * (TLS_HELLOS_PER_BATCH + 10)
    dec = Decoder()
    t = dec.decode(RawBatch.from_frames(frames, P.LINK_ETHERNET)).l7
    assert sum(h != -1 for h in t.tls_hello) == TLS_HELLOS_PER_BATCH
    assert dec.stats["tls_hellos_unread"] == 10
    t = dec.decode(RawBatch.from_frames(frames[:3], P.LINK_ETHERNET)).l7      # the budget is per batch
    assert sum(h != -1 for h in t.tls_hello) == 3


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3000), st.integers(0, 1800), st.booleans()), max_size=12))
def test_decoder_never_raises_on_tls_shaped_segments(segments):
    """Random starts, cuts and sequence numbers of a long hello on a few flows: no crash."""
    hello = _long_hello()
    frames = []
    for flow, seq, cut, start in segments:
        part = hello[:cut] if start else hello[cut:cut + 1448]
        if part:
            frames += _frames([(seq, part)], sport=41000 + flow)
    if frames:
        dec = Decoder()
        dec.decode(RawBatch.from_frames(frames, P.LINK_ETHERNET))
        dec.decode(RawBatch.from_frames(frames[::-1], P.LINK_ETHERNET))


# -- QUIC Initials ---------------------------------------------------------------------------------

def _quic_initials(name: str) -> list[bytes]:
    with open(DATA / name, "rb") as f:
        reader = dpkt.pcapng.Reader(f) if name.endswith("ng") else dpkt.pcap.Reader(f)
        out = []
        for _, frame in reader:
            ip = dpkt.ethernet.Ethernet(frame).data
            udp = getattr(ip, "data", None)
            if isinstance(udp, dpkt.udp.UDP) and len(udp.data) >= MIN_INITIAL_DATAGRAM and udp.data[0] & 0xC0 == 0xC0:
                out.append(bytes(udp.data))
        return out


def test_a_quic_hello_over_several_initials_is_whole_where_the_last_arrives():
    """Chrome's CRYPTO frames, out of order over three Initial packets (tshark reads the hello
    on the third, and so do we: test_hello_fields_match_tshark); any order of them gives it."""
    datagrams = [initial_crypto(d) for d in _quic_initials("zeek_quic-multiple-initial-fragmented-crypto.pcap")]
    clients = [d for d in datagrams if d is not None]
    assert len(clients) == 3 and len({c.dcid for c in clients}) == 1
    hellos = set()
    for order in ((0, 1, 2), (2, 1, 0), (1, 2, 0)):
        a = HandshakeAssembly()
        got = [a.add(b"conn", clients[i].frames) for i in order]
        assert got[:2] == [None, None] and got[2] is not None and not a.waiting
        hellos.add(got[2])
    assert len(hellos) == 1
    t = parse_tls(b"\x16\x03\x01" + len(got[2]).to_bytes(2, "big") + got[2], "q")
    assert t.sni == "googleads.g.doubleclick.net" and t.ja4.startswith("q13d")


@settings(max_examples=500, deadline=None)
@given(flips=st.lists(st.tuples(st.integers(0, 1299), st.integers(0, 255)), max_size=4), cut=st.integers(0, 1300))
def test_corrupted_or_cut_quic_initials_never_raise(flips, cut):
    """A flipped byte fails the AEAD tag (or the header walk): never an exception, never a hello."""
    datagram = bytearray(_quic_initials("zeek_chromium-115.0.5790.110-api-cirrus-com.pcap")[0][:cut])
    for i, v in flips:
        if datagram:
            datagram[i % len(datagram)] = v
    got = initial_crypto(bytes(datagram))
    if got is not None and (flips or cut < 1200):
        assert all(isinstance(off, int) and isinstance(data, bytes) for off, data in got.frames)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=7, max_size=1400))
def test_random_long_headers_never_raise(data):
    initial_crypto(b"\xc0\x00\x00\x00\x01" + data)
    initial_crypto(b"\xd0\x6b\x33\x43\xcf" + data)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=7, max_size=1400), st.binary(max_size=20))
def test_random_server_initials_never_raise(data, client_dcid):
    """A server's Initial, opened with the keys of a client's DCID the decoder remembered."""
    assert initial_crypto(b"\xc0\x00\x00\x00\x01" + data, client_dcid) is None
    assert initial_crypto(b"\xd0\x6b\x33\x43\xcf" + data, client_dcid) is None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20000), st.binary(max_size=300)), max_size=8))
def test_crypto_assembly_never_raises_and_stays_bounded(frames):
    a = HandshakeAssembly(size=2)
    for i in range(4):
        a.add(bytes([i]), frames)
    assert len(a.waiting) <= 2


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=400))
def test_random_dtls_records_never_raise(data):
    f = dtls_fragment(b"\x16\xfe\xfd" + data)
    if f is not None:
        kind, _, length, _, piece = f
        parse_tls(b"\x16\x03\x03" + (4 + len(piece)).to_bytes(2, "big") + bytes([kind]) + length.to_bytes(3, "big")
                  + piece, "d")
    Decoder().decode(RawBatch.from_frames([_udp_frame(b"\x16\xfe\xfd" + data)], P.LINK_ETHERNET))


def _udp_frame(payload: bytes) -> bytes:
    udp = dpkt.udp.UDP(sport=40000, dport=4433, data=payload)
    udp.ulen = 8 + len(payload)
    ip = dpkt.ip.IP(src=b"\x0a\x00\x00\x01", dst=b"\x0a\x00\x00\x02", p=17, data=udp)
    return bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, data=ip))
