"""PacketBatch -> one dict per packet, for `netspectra decode` and debugging (not the hot path)."""
from __future__ import annotations

from typing import Iterator

from collectors.protocols import LINK_NAMES
from schemas.addresses import column_to_text
from schemas.packet_batch import FRAG_NAMES, STATUS_NAMES, TUNNEL_NAMES, PacketBatch

ICMP_PROTOS = (1, 58)
# the columns of a row, in order (`netspectra decode` CSV)
DECODE_FIELDS = ["ts", "iface", "link", "vlan", "src", "dst", "proto", "sport", "dport", "ip_len", "tcp_flags",
                 "frag", "icmp_type", "icmp_code", "dns_qname", "dns_qtype", "dns_rcode", "http_method",
                 "http_host", "http_path", "http_status", "tls_sni", "tls_alpn", "tls_ja4", "sip_method", "sip_status",
                 "sip_call_id", "sip_from", "sip_to", "tunnel", "tunnel_id", "tunnel_depth", "outer_src", "outer_dst",
                 "status"]
TUNNEL_FIELDS = ["tunnel", "tunnel_id", "tunnel_depth", "outer_src", "outer_dst"]
L7_FIELDS = [f for f in DECODE_FIELDS if f.startswith(("dns_", "http_", "tls_", "sip_"))]


def batch_rows(b: PacketBatch, limit: int = 0) -> Iterator[dict]:
    n = len(b) if not limit else min(limit, len(b))
    src, dst = column_to_text(b.src[:n]), column_to_text(b.dst[:n])
    l7 = {int(r): i for i, r in enumerate(b.l7.row) if r < n}
    t = b.tunnels
    env = {int(r): i for i, r in enumerate(t.row) if r < n}
    outer_src, outer_dst = column_to_text(t.outer_src), column_to_text(t.outer_dst)
    cols = {name: getattr(b, name)[:n].tolist() for name in
            ("ts_ns", "iface", "link", "vlan", "ip_ver", "proto", "sport", "dport", "ip_len", "tcp_flags",
             "frag", "icmp_type", "icmp_code", "status")}
    for i in range(n):
        ip = cols["ip_ver"][i] != 0
        proto = cols["proto"][i]
        icmp = ip and proto in ICMP_PROTOS
        row = {
            "ts": f"{cols['ts_ns'][i] // 1_000_000_000}.{cols['ts_ns'][i] % 1_000_000_000:09d}",
            "iface": cols["iface"][i], "link": LINK_NAMES.get(cols["link"][i], str(cols["link"][i])),
            "vlan": cols["vlan"][i] or "",
            "src": src[i] if ip else "", "dst": dst[i] if ip else "", "proto": proto if ip else "",
            "sport": cols["sport"][i] if ip else "", "dport": cols["dport"][i] if ip else "",
            "ip_len": cols["ip_len"][i] if ip else "",
            "tcp_flags": cols["tcp_flags"][i] if ip and proto == 6 else "",
            "frag": FRAG_NAMES[cols["frag"][i]] if cols["frag"][i] else "",
            "icmp_type": cols["icmp_type"][i] if icmp else "", "icmp_code": cols["icmp_code"][i] if icmp else "",
            **dict.fromkeys(L7_FIELDS, ""), **dict.fromkeys(TUNNEL_FIELDS, ""),
            "status": STATUS_NAMES[cols["status"][i]],
        }
        k = env.get(i)
        if k is not None:
            row.update(tunnel=TUNNEL_NAMES[int(t.kind[k])], tunnel_id=int(t.tid[k]), tunnel_depth=int(t.depth[k]),
                       outer_src=outer_src[k] if outer_src[k] != "::" else "",
                       outer_dst=outer_dst[k] if outer_dst[k] != "::" else "")
        j = l7.get(i)
        if j is not None:
            for c in L7_FIELDS:
                v = getattr(b.l7, c)[j]
                if v is not None and v != -1:
                    row[c] = ",".join(v) if isinstance(v, list) else v
        yield row
