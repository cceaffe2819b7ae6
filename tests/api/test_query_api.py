"""Every API method over real gRPC (grpcio stubs) and real HTTP (httpx), on chDB and on the
ClickHouse server, against the brute-force numbers of the capture."""
from __future__ import annotations

import collections
import ipaddress
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format

from schemas.v1 import query_pb2 as pb
from tests.api.conftest import by_entity, totals
from tests.conftest import API_WINDOW_S as WINDOW_S, tshark_sip_calls
from tests.support import DNS_T0, capture_windows, rows_of, write_dns_answers_capture

ALL = {"start_ms": 0, "end_ms": 2**52}


@pytest.fixture(params=["chdb_api", "server_api"], scope="module")
def api(request):
    return request.getfixturevalue(request.param)


def grpc_call(api, method: str, body: dict):
    stub, md = api.stub()
    req_cls = getattr(pb, f"{method}Request")
    res = getattr(stub, method)(json_format.ParseDict(body, req_cls()), metadata=md, timeout=30)
    return json_format.MessageToDict(res, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


def http_call(api, path: str, body: dict):
    with api.http() as c:
        r = c.post(path, json=body)
    assert r.status_code == 200, r.text
    return r.json()


def both(api, method: str, path: str, grpc_body: dict, http_body: dict):
    """The same question over both transports; the answers must agree (int64 come as text in proto JSON)."""
    g = grpc_call(api, method, grpc_body)
    h = http_call(api, path, http_body)
    return g, h


def _num(d: dict) -> dict:
    return {k: (int(v) if isinstance(v, str) and v.lstrip("-").isdigit() else v) for k, v in d.items()}


def test_aggregate_totals(api):
    pk, by, fl = totals(api.ref)
    g, h = both(api, "AggregateFlows", "/v1/flows/aggregate", {"range": ALL, "filter": {"source": api.source}},
                {"range": ALL, "filter": {"source": api.source}})
    assert [_num(x) for x in g["groups"]] == h["groups"]
    assert (h["groups"][0]["packets"], h["groups"][0]["bytes"], h["groups"][0]["flows"]) == (pk, by, fl)


def test_ranges_as_rfc3339_text_and_as_a_recent_span(api):
    """The capture's windows by RFC 3339 bounds, and by `last` (a span ending now that reaches
    back before the capture): the same totals as in ms, on both transports."""
    from schemas.times import iso_utc
    first, last = min(api.ref) // 10**6, max(api.ref) // 10**6
    pk, by, fl = totals(api.ref)
    forms = [{"start": iso_utc(first * 10**6), "end": iso_utc((last + 1000) * 10**6)},
             {"last": "100000d"}, {"start_ms": first, "end": iso_utc((last + 1000) * 10**6)}]
    for rng in forms:
        body = {"range": rng, "filter": {"source": api.source}}
        g, h = both(api, "AggregateFlows", "/v1/flows/aggregate", body, body)
        assert [_num(x) for x in g["groups"]] == h["groups"], rng
        assert (h["groups"][0]["packets"], h["groups"][0]["bytes"], h["groups"][0]["flows"]) == (pk, by, fl), rng
    with api.http() as c:
        r = c.post("/v1/flows/aggregate", json={"range": {"start": "yesterday", "end_ms": 5}})
    assert r.status_code == 400 and "RFC 3339" in r.json()["error"]


def test_aggregate_buckets_are_the_windows(api):
    body = {"range": ALL, "filter": {"source": api.source}, "bucket_seconds": WINDOW_S}
    h = http_call(api, "/v1/flows/aggregate", body)
    got = {g["bucket_ms"]: (g["packets"], g["bytes"], g["flows"]) for g in h["groups"]}
    want = {w // 1_000_000: totals({w: f}) for w, f in api.ref.items()}
    assert got == want


def test_aggregate_top_sources_and_filters(api):
    top = by_entity(api.ref, 0).most_common(5)
    g, h = both(api, "AggregateFlows", "/v1/flows/aggregate",
                {"range": ALL, "filter": {"source": api.source}, "group_by": ["DIMENSION_SRC"], "limit": 5},
                {"range": ALL, "filter": {"source": api.source}, "group_by": ["src"], "limit": 5})
    assert [(x["src"], x["bytes"]) for x in h["groups"]] == top
    assert [_num(x) for x in g["groups"]] == h["groups"]
    # a CIDR and a protocol, against the brute force
    net = ipaddress.ip_network("10.1.0.0/16")
    keep = lambda k: k[4] in (6, 17) and ":" not in k[1] and ipaddress.ip_address(k[1]) in net  # noqa: E731
    pk, by, fl = totals(api.ref, keep)
    assert pk > 0
    h = http_call(api, "/v1/flows/aggregate", {"range": ALL, "filter": {"source": api.source, "dst": [str(net)],
                                                                        "proto": [6, 17]}})
    assert (h["groups"][0]["packets"], h["groups"][0]["bytes"], h["groups"][0]["flows"]) == (pk, by, fl)
    # group by protocol and port within one window's time range
    w0 = min(api.ref)
    rng = {"start_ms": w0 // 1_000_000, "end_ms": w0 // 1_000_000 + WINDOW_S * 1000}
    h = http_call(api, "/v1/flows/aggregate", {"range": rng, "filter": {"source": api.source},
                                               "group_by": ["proto", "dport"], "limit": 3, "order_by": "packets"})
    c = collections.Counter()
    for k, (p, *_r) in api.ref[w0].items():
        c[(k[4], k[3])] += p
    assert [((x["proto"], x["dport"]), x["packets"]) for x in h["groups"]] == c.most_common(3)


def test_trace_flow(api):
    """A 5-tuple's records: one per window and VLAN (the capture tags frames at random, so the
    busiest 5-tuples show up in several VLANs)."""
    per = collections.defaultdict(dict)
    for w, flows in api.ref.items():
        for k, rec in flows.items():
            per[k[:5]][(w, k[5])] = rec
    key = max(per, key=lambda k: (len(per[k]), sum(r[1] for r in per[k].values())))
    assert len({v for _, v in per[key]}) > 1
    src, dst, sport, dport, proto = key
    body = {"range": ALL, "src": src, "dst": dst, "sport": sport, "dport": dport, "proto": proto, "source": api.source}
    g, h = both(api, "TraceFlow", "/v1/flows/trace", body, body)
    want = [(w // 1_000_000, v, r[0], r[1], r[2], r[3], r[4]) for (w, v), r in sorted(per[key].items())]
    assert [(x["window_start_ms"], x["vlan"], x["packets"], x["bytes"], x["first_seen_ns"], x["last_seen_ns"],
             x["tcp_flags"]) for x in h["windows"]] == want
    assert h["packets"] == sum(r[0] for r in per[key].values())
    assert int(g["first_seen_ns"]) == h["first_seen_ns"] == min(r[2] for r in per[key].values())
    assert int(g["last_seen_ns"]) == h["last_seen_ns"] == max(r[3] for r in per[key].values())


def test_vlan_group_and_filter(api):
    by_vlan = collections.Counter()
    for flows in api.ref.values():
        for k, (_p, b, *_r) in flows.items():
            by_vlan[k[5]] += b
    h = http_call(api, "/v1/flows/aggregate", {"range": ALL, "filter": {"source": api.source},
                                               "group_by": ["vlan"], "limit": 10_000})
    assert {x["vlan"]: x["bytes"] for x in h["groups"]} == dict(by_vlan) and len(by_vlan) > 100
    tagged = [v for v in by_vlan if v][:3]
    g = grpc_call(api, "AggregateFlows", {"range": ALL, "filter": {"source": api.source, "vlan": tagged}})
    assert int(g["groups"][0]["bytes"]) == sum(by_vlan[v] for v in tagged)
    pk, by, fl = totals(api.ref, lambda k: k[5] == 0)
    h = http_call(api, "/v1/flows/aggregate", {"range": ALL, "filter": {"source": api.source, "vlan": [0]}})
    assert (h["groups"][0]["packets"], h["groups"][0]["bytes"], h["groups"][0]["flows"]) == (pk, by, fl)
    with api.http() as c:       # the sketch tables have no VLAN
        r = c.post("/v1/heavy-hitters", json={"range": ALL, "filter": {"vlan": [5]}})
        assert r.status_code == 400 and "exact=true" in r.json()["error"]
        r = c.post("/v1/flows/aggregate", json={"range": ALL, "filter": {"vlan": [4096]}})
        assert r.status_code == 400 and "VLAN ids are 0-4095" in r.json()["error"]


def test_heavy_hitters_exact_and_sketch(api):
    want = by_entity(api.ref, 0).most_common(5)
    body = {"range": ALL, "filter": {"source": api.source}, "dimension": "src", "limit": 5, "exact": True}
    h = http_call(api, "/v1/heavy-hitters", body)
    assert h["exact"] and [(x["item"], x["value"]) for x in h["items"]] == want
    g = grpc_call(api, "QueryHeavyHitters", {**body, "dimension": "HH_SRC"})
    assert [_num(x) for x in g["items"]] == h["items"]
    # the sketches: the exact value lies within the summed bounds for the top items
    h = http_call(api, "/v1/heavy-hitters", {**body, "exact": False, "limit": 5})
    exact = by_entity(api.ref, 0)
    assert not h["exact"] and len(h["items"]) == 5
    for x in h["items"]:
        assert x["lower_bound"] <= exact[x["item"]] <= x["upper_bound"]
    assert [x["item"] for x in h["items"]][:3] == [k for k, _ in want[:3]]
    # 5-tuples, exact, and a filter that does not fit a sketch dimension is refused clearly
    flows = collections.Counter()
    for f in api.ref.values():
        for k, (_p, b, *_r) in f.items():
            flows[f"{k[0]} {k[2]} {k[1]} {k[3]} {k[4]}"] += b
    h = http_call(api, "/v1/heavy-hitters", {**body, "dimension": "flow", "limit": 3})
    assert [(x["item"], x["value"]) for x in h["items"]] == flows.most_common(3)
    with api.http() as c:
        r = c.post("/v1/heavy-hitters", json={**body, "exact": False, "filter": {"dport": [80]}})
    assert r.status_code == 400 and "exact=true" in r.json()["error"]


def test_spreaders(api):
    dsts, srcs = collections.defaultdict(set), collections.defaultdict(set)
    for f in api.ref.values():
        for k in f:
            dsts[k[0]].add(k[1])
            srcs[k[1]].add(k[0])
    body = {"range": ALL, "filter": {"source": api.source}, "limit": 3, "exact": True}
    g, h = both(api, "QuerySpreaders", "/v1/spreaders", body, body)
    for side, truth in (("sources", dsts), ("destinations", srcs)):
        got = {x["addr"]: x["distinct"] for x in h[side]}
        assert all(got[a] == len(truth[a]) for a in got), side
        # the exact top 3 by distinct peers (compared by value: ties may order addresses either way)
        assert sorted(got.values(), reverse=True) == sorted((len(s) for s in truth.values()), reverse=True)[:3], side
    assert g["sources"] == h["sources"] and g["destinations"] == h["destinations"]
    # sketches: the planted spreaders lead, estimates within their bounds
    h = http_call(api, "/v1/spreaders", {**body, "exact": False})
    top = {x["addr"] for x in h["sources"][:2]}
    assert len(top) == 2 and top <= {a for a, _ in sorted(dsts.items(), key=lambda x: -len(x[1]))[:3]}
    assert all(x["lower_bound"] <= x["distinct"] <= x["upper_bound"] for x in h["sources"])


def test_port_scanners(api):
    """Sources by distinct destination ports (TCP, UDP), and destinations by ports tried on them:
    exact, the capture's planted port scanner first."""
    sports, dports = collections.defaultdict(set), collections.defaultdict(set)
    for f in api.ref.values():
        for src, dst, _, dport, proto, *_ in f:
            if proto in (6, 17):
                sports[src].add(dport)
                dports[dst].add(dport)
    body = {"range": ALL, "filter": {"source": api.source}, "limit": 3, "count": "ports"}
    g, h = both(api, "QuerySpreaders", "/v1/spreaders", {**body, "count": "SPREAD_PORTS"}, body)
    assert h["exact"] and g["sources"] == h["sources"] and g["destinations"] == h["destinations"]
    for side, truth in (("sources", sports), ("destinations", dports)):
        got = {x["addr"]: x["distinct"] for x in h[side]}
        assert all(got[a] == len(truth[a]) for a in got), side
        assert sorted(got.values(), reverse=True) == sorted((len(s) for s in truth.values()), reverse=True)[:3], side
    assert h["sources"][0]["distinct"] >= 100          # the planted scanner, far above any other source


def test_live_top_and_watch(chdb_api):
    api = chdb_api
    last = api.results[-1]
    with api.http() as c:
        r = c.get("/v1/live/top", params={"source": api.source, "limit": 5})
    assert r.status_code == 200, r.text
    j = r.json()
    assert (j["window_start_ms"], j["packets"], j["bytes"], j["flows"]) == \
        (last.start // 1_000_000, last.packets, last.bytes, len(last.flows))
    exact = collections.Counter()
    for k, (_p, b, *_r) in api.ref[last.start].items():
        exact[k[0]] += b
    assert [t["key"] for t in j["talkers"]] == [k for k, _ in exact.most_common(5)]
    assert j["active_hosts"] == len({a for k in api.ref[last.start] for a in k[:2]})     # the newest window's, exact
    stub, md = api.stub()
    g = stub.LiveTop(pb.LiveTopRequest(source=api.source, limit=5), metadata=md, timeout=10)
    assert g.packets == last.packets and [t.key for t in g.talkers] == [t["key"] for t in j["talkers"]]
    # WatchLive: the current window at once, then the next one written
    from sinks.redis_state import RedisState
    stream = stub.WatchLive(pb.LiveTopRequest(source=api.source, limit=3), metadata=md, timeout=20)
    first = next(stream)
    assert first.window_start_ms == last.start // 1_000_000
    import copy
    newer = copy.copy(last)
    newer.start = last.start + WINDOW_S * 1_000_000_000
    RedisState(api.redis, api.source).write(rows_of([newer], api.source))
    second = next(stream)
    assert second.window_start_ms == newer.start // 1_000_000 and second.packets == last.packets
    stream.cancel()


def test_health(api):
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    ch = grpc.insecure_channel(api.grpc_target)
    assert health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service="netspectra.v1.Query"),
                                                timeout=10).status == health_pb2.HealthCheckResponse.SERVING
    stub, md = api.stub()
    assert stub.Health(pb.HealthRequest(), metadata=md, timeout=10).store_ok
    with api.http() as c:
        j = c.get("/v1/health").json()
    assert j["store_ok"] and j["status"] == "ok"


def test_lookup_names(api, tmp_path, local_stack):
    """The names DNS responses gave addresses (write_dns_answers_capture), by address, by network
    and by part of a name in any case (a CNAME chain's start finds the addresses at its end)."""
    from sinks.clickhouse_native import ClickHouseNative
    write_dns_answers_capture(tmp_path / "dns.pcap")
    source = api.source + "#dns"
    rows = rows_of(capture_windows(tmp_path / "dns.pcap", 10), source)
    if hasattr(api.service.backend, "store"):
        api.service.backend.store.write(rows)
    else:
        ClickHouseNative(f"127.0.0.1:{local_stack[1]['clickhouse']}").write(rows)
    t0 = DNS_T0 * 1000
    body = {"range": ALL, "source": source, "addresses": ["192.0.2.1"]}
    g, h = both(api, "LookupNames", "/v1/names", body, body)
    assert h["names"] == [{"address": "192.0.2.1", "name": "edge.example.net", "query": "www.example.org", "answers": 3,
                           "first_window_ms": t0, "last_window_ms": t0 + 10_000}]
    assert [_num(x) for x in g["names"]] == h["names"]
    h = http_call(api, "/v1/names", {"range": ALL, "source": source, "name": "WWW.Example"})
    assert [(x["address"], x["answers"]) for x in h["names"]] == [("192.0.2.1", 3), ("2001:db8::1", 2)]
    h = http_call(api, "/v1/names", {"range": {"start_ms": t0 + 10_000, "end_ms": t0 + 20_000}, "source": source,
                                     "addresses": ["198.51.100.0/24", "192.0.2.0/24"]})
    assert [(x["address"], x["name"], x["answers"]) for x in h["names"]] == [
        ("192.0.2.1", "edge.example.net", 1), ("198.51.100.9", "ns.example.org", 1)]
    assert http_call(api, "/v1/names", {"range": ALL, "source": source, "name": "nope"})["names"] == []


def test_list_sip_calls(api, local_stack):
    """A public capture's SIP calls (a REGISTER dialog refreshed over 25 minutes, INVITEs
    cancelled, refused and unanswered) joined over its 60 s windows: equal to tshark's messages
    joined per Call-ID (tests/conftest.py tshark_sip_calls); each filter, over gRPC and HTTP."""
    from sinks.clickhouse_native import ClickHouseNative
    path = Path(__file__).resolve().parent.parent / "data" / "zeek_sip_wireshark.pcap"
    source = api.source + "#sip"
    rows = rows_of(capture_windows(path, 60), source)
    if hasattr(api.service.backend, "store"):
        api.service.backend.store.write(rows)
    else:
        ClickHouseNative(f"127.0.0.1:{local_stack[1]['clickhouse']}").write(rows)
    keys = ("method", "from_uri", "to_uri", "src", "dst", "first_seen_ns", "last_seen_ns", "requests", "responses",
            "status")
    want = sorted(({"call_id": c, **dict(zip(keys, v))} for (_, c), v in tshark_sip_calls(path).items()),
                  key=lambda x: (x["first_seen_ns"], x["call_id"]))
    assert len(want) == 6 and {x["method"] for x in want} == {"REGISTER", "INVITE"}
    body = {"range": ALL, "source": source}
    g, h = both(api, "ListSipCalls", "/v1/sip/calls", body, body)
    assert h["calls"] == want
    assert [_num(x) for x in g["calls"]] == want

    def ids(**f):
        return [x["call_id"] for x in http_call(api, "/v1/sip/calls", {**body, **f})["calls"]]
    invites = [x["call_id"] for x in want if x["method"] == "INVITE"]
    assert ids(method=["INVITE"]) == invites and ids(method=["BYE"]) == []
    assert ids(uri="0097239287") == [x["call_id"] for x in want if "0097239287" in x["to_uri"]] != []
    assert ids(status=[408, 480]) == [x["call_id"] for x in want if x["status"] in (408, 480)] != []
    assert ids(addresses=["200.68.120.0/24"]) == ["105090259-446faf7a@192.168.1.2"]
    assert ids(call_id=[want[-1]["call_id"]], limit=1) == [want[-1]["call_id"]]
    with api.http() as c:
        r = c.post("/v1/sip/calls", json={**body, "status": [42]})
    assert r.status_code == 400 and "not a SIP status code" in r.json()["error"]


def test_answers_become_the_messages_json_format_would_make():
    """to_message builds messages with their constructors (fast); the result is what
    json_format.ParseDict makes of the same answer: nested lists, maps, floats, unset fields."""
    from api import models as m
    from api.grpc_service import to_message
    from api.queries import aggregate_rows

    flows = aggregate_rows([(60_000, "::ffff:10.0.0.1", "2001:db8::1", 0, 443, 6, 7, "example.com", "t13d1516h2_x_y", "h2",
                             "vxlan", 4242, 10, 1500, 2)] * 3, "flows_1m", 60)
    alert = m.AlertItem(id="a1", source="s", rule="r", detector="syn_flood", severity="high", state="firing",
                        entity={"dst": "10.0.0.1", "port": "80"}, value=1.5, threshold=1.0, first_seen_ms=1,
                        last_seen_ms=2, windows=3, evidence_json="{}")
    for model, cls in ((flows, pb.AggregateFlowsResponse), (m.ListAlertsResponse(alerts=[alert]), pb.ListAlertsResponse),
                       (m.AggregateFlowsResponse(groups=[]), pb.AggregateFlowsResponse)):
        assert to_message(model, cls) == json_format.ParseDict(model.model_dump(), cls())
    assert to_message(flows, pb.AggregateFlowsResponse).groups[0].src == "10.0.0.1"


def test_tunnels_group_and_filter(api, local_stack):
    """Flow records of packets taken out of tunnels keep the tunnel's kind and id: grouped by
    them, filtered on them (none: ''), over both transports; an unknown kind is a 400."""
    from collectors.capture_file import CaptureFile
    from collectors.decode.decoder import Decoder
    from schemas.packet_batch import TUNNEL_NAMES
    from sinks.clickhouse_native import ClickHouseNative
    from tests.support import TEST_DATA
    source = api.source + "#tunnels"
    want = collections.Counter()                # (kind, id) -> packets, from the decoder's envelopes
    for name in ("zeek_tun_vxlan.pcap", "zeek_tun_mixed-vlan-mpls.pcap", "zeek_tun_gre-pptp.pcap"):
        path = TEST_DATA / name
        rows = rows_of(capture_windows(path, 0), source)
        if hasattr(api.service.backend, "store"):
            api.service.backend.store.write(rows)
        else:
            ClickHouseNative(f"127.0.0.1:{local_stack[1]['clickhouse']}").write(rows)
        for raw in CaptureFile(str(path)).batches():
            b = Decoder().decode(raw)
            t = b.tunnels
            want.update(zip([TUNNEL_NAMES[k] for k in t.kind.tolist()], t.tid.tolist()))
            want[("", 0)] += int((b.status == 0).sum()) - len(t)
    body = {"range": ALL, "filter": {"source": source}, "group_by": ["tunnel", "tunnel_id"], "limit": 100}
    h = http_call(api, "/v1/flows/aggregate", body)
    assert {(x["tunnel"], x["tunnel_id"]): x["packets"] for x in h["groups"]} == want
    assert want[("vxlan", 123)] == 8 and want[("mpls", 29)] == 11 and want[("gre", 6016)] == 1
    g = grpc_call(api, "AggregateFlows", {"range": ALL, "filter": {"source": source, "tunnel": ["vxlan", "gre"],
                                                                   "tunnel_id": [123, 17]},
                                          "group_by": ["DIMENSION_TUNNEL", "DIMENSION_TUNNEL_ID", "DIMENSION_SRC"]})
    got = sorted((x["tunnel"], x["tunnel_id"], x["src"], int(x["packets"])) for x in g["groups"])
    assert got == [("gre", 17, "8.8.8.8", 1), ("vxlan", 123, "10.0.0.1", 4), ("vxlan", 123, "10.0.0.2", 4)]
    # TraceFlow tells a 5-tuple's tunnels apart: each record with its tunnel's kind and id
    h = http_call(api, "/v1/flows/aggregate", {"range": ALL, "filter": {"source": source, "tunnel": ["vxlan"]},
                                               "group_by": ["src", "dst", "sport", "dport", "proto"], "limit": 1})
    five = {k: h["groups"][0][k] for k in ("src", "dst", "sport", "dport", "proto")}
    g, h = both(api, "TraceFlow", "/v1/flows/trace", {"range": ALL, "source": source, **five},
                {"range": ALL, "source": source, **five})
    assert h["windows"] and {(w["tunnel"], w["tunnel_id"]) for w in h["windows"]} == {("vxlan", 123)}
    assert [(w["tunnel"], w["tunnel_id"]) for w in g["windows"]] == [(w["tunnel"], w["tunnel_id"]) for w in h["windows"]]
    none = http_call(api, "/v1/flows/aggregate", {"range": ALL, "filter": {"source": source, "tunnel": [""]}})
    assert none["groups"][0]["packets"] == want[("", 0)] and none["table"] == "flows"
    with api.http() as c:
        r = c.post("/v1/flows/aggregate", json={"range": ALL, "filter": {"tunnel": ["vxlan-gpe"]}})
    assert r.status_code == 400 and "unknown tunnel 'vxlan-gpe'" in r.text


def test_tls_server_names_group_and_filter(api, local_stack):
    """Flow records carry their connection's server name (flows/tls.py): grouped by it, and
    filtered by a name or every name under a domain ("*.google.com"), over both transports."""
    from sinks.clickhouse_native import ClickHouseNative
    source = api.source + "#tls"
    rows = rows_of(capture_windows(Path(__file__).resolve().parent.parent / "data" / "foxio_tls-sni.pcapng", 0), source)
    if hasattr(api.service.backend, "store"):
        api.service.backend.store.write(rows)
    else:
        ClickHouseNative(f"127.0.0.1:{local_stack[1]['clickhouse']}").write(rows)
    body = {"range": ALL, "filter": {"source": source, "tls_sni": ["*.google.com", "lastpass.com"]},
            "group_by": ["tls_sni"], "limit": 100}
    h = http_call(api, "/v1/flows/aggregate", body)
    g = grpc_call(api, "AggregateFlows", {**body, "group_by": ["DIMENSION_TLS_SNI"]})
    got = {x["tls_sni"]: x["flows"] for x in h["groups"]}
    assert got == {"lastpass.com": 1, "www.google.com": 2, "accounts.google.com": 2, "mtalk.google.com": 1,
                   "ogs.google.com": 2, "aa.google.com": 2, "history.google.com": 1}
    assert {x["tls_sni"]: int(x["flows"]) for x in g["groups"]} == got and h["table"] == "flows"
    every = http_call(api, "/v1/flows/aggregate", {"range": ALL, "filter": {"source": source}, "group_by": ["tls_sni"],
                                                   "limit": 1000})
    assert sum(x["flows"] for x in every["groups"] if x["tls_sni"]) == 79
    quic = "q13d0310h3_55b375c5d22e_cd85d2d88918"         # Chrome's QUIC fingerprint in that capture
    by_ja4 = http_call(api, "/v1/flows/aggregate", {"range": ALL, "filter": {"source": source, "tls_ja4": [quic]},
                                                    "group_by": ["tls_ja4", "tls_alpn", "proto"], "limit": 10})
    assert [(x["tls_ja4"], x["tls_alpn"], x["proto"]) for x in by_ja4["groups"]] == [(quic, "h3", 17)]
    g = grpc_call(api, "AggregateFlows", {"range": ALL, "filter": {"source": source, "tls_alpn": ["h3"]},
                                          "group_by": ["DIMENSION_TLS_JA4"]})
    assert [(x["tls_ja4"], int(x["flows"])) for x in g["groups"]] == [(quic, by_ja4["groups"][0]["flows"])]
    with api.http() as c:
        r = c.post("/v1/flows/aggregate", json={"range": ALL, "filter": {"tls_sni": ["a.*.com"]}})
    assert r.status_code == 400 and "'*.' only as its start" in r.text
