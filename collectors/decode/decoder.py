"""Decoder: RawBatch -> PacketBatch, column-wise.

The common case (Ethernet/raw/SLL, IPv4, TCP/UDP/ICMP) is decoded with numpy gathers at
fixed offsets over the whole batch; VLAN stacks, IPv6 extension chains, fragments and L7
payloads are handled on masked subsets. The decoder keeps one piece of state across
batches: the table that attributes later IP fragments to their datagram's ports.
"""
from __future__ import annotations

from collections import Counter, OrderedDict

import numpy as np

from collectors import protocols as P
from collectors.decode import l7_scan as S
from collectors.decode.dns import parse_dns
from collectors.decode.fast import fast_decode
from collectors.decode.http import parse_http
from collectors.decode.layers import IPResult, ipv4, ipv6, link_layer, u8, u16, u32
from collectors.decode.quic import initial_crypto, is_initial
from collectors.decode.sip import parse_sip
from collectors.decode.tls import (CHANGE_CIPHER_SPEC, HANDSHAKE, HandshakeAssembly, HelloReassembly, dtls_fragment,
                                   parse_tls)
from collectors.decode.tunnels import DECAP_REASONS, MAX_DEPTH, Decap, decapsulate
from collectors.raw_batch import RawBatch
from schemas.packet_batch import (DENSE_COLUMNS, FRAG_FIRST, FRAG_LATER, FRAG_LATER_UNMATCHED, STATUS_NAMES,
                                  STATUS_NON_IP, STATUS_OK, STATUS_ZERO_LENGTH, TUNNEL_MPLS, TUNNEL_NAMES, TUNNEL_PPPOE,
                                  L7Table, PacketBatch, TunnelTable)

FRAGMENT_TABLE_SIZE = 65536   # datagrams remembered for fragment attribution (oldest evicted first)


def _lookup(values, size: int) -> np.ndarray:
    """A table indexed by port or protocol number: one gather where np.isin sorts (~4x slower)."""
    t = np.zeros(size, bool)
    t[list(values)] = True
    return t


# DNS messages remembered per decoder (by all but their id), and responses a batch reads the
# records of: a flood of distinct responses with dozens of records costs 10-30 us each in Python
# (the question alone 1.6 us), so past these a batch keeps their questions only.
DNS_MEMO, DNS_MEMO_BYTES = 4096, 1500     # messages, and the size below which one is remembered
DNS_RECORDS_PER_BATCH = 1024
# TLS hellos a batch reads (~25 us a TCP hello, ~45 us a QUIC Initial: bench/bench_tls.py); a handshake flood
# past this keeps its packets and flows, not their hellos (tls_hellos_unread).
TLS_HELLOS_PER_BATCH = 1024
# SIP messages a batch reads (~14 us each, 3 more to join into calls: bench/bench_sip.py); an INVITE
# or scanner flood past this keeps its packets and flows, not their messages (sip_unread).
SIP_MESSAGES_PER_BATCH = 1024
# QUIC clients whose Initial was opened, remembered so that their server's Initials can be (quic.py)
QUIC_CLIENTS = 4096
_UNSEEN = object()
_PORT_PROTOS = _lookup(P.PORT_PROTOCOLS, 256)
# An inner packet's columns replace its carrier's; the frame's own (time, interface, sizes) stay.
_INNER_COLUMNS = [c for c in DENSE_COLUMNS if c not in ("ts_ns", "iface", "link", "cap_len", "wire_len", "vlan",
                                                        "vlan_depth")]
_STATUS_NAME_SET = frozenset(STATUS_NAMES.values())


def _flow(src, dst, row, sport, dport) -> bytes:
    """A flow's key for the hello assemblies: addresses (of batch row `row`) and ports."""
    return src[row].tobytes() + dst[row].tobytes() + int(sport << 16 | dport).to_bytes(4, "big")


class FragmentTable:
    """(src, dst, proto, IP id) of first fragments -> their ports, bounded in size."""

    def __init__(self, size: int = FRAGMENT_TABLE_SIZE):
        self.size = size
        self._ports: OrderedDict[bytes, tuple[int, int]] = OrderedDict()

    def resolve(self, keys: np.ndarray, first: np.ndarray, sport: np.ndarray, dport: np.ndarray) -> np.ndarray:
        """Attribute later fragments to their first fragment's ports (filled in place).

        Fragments are walked in capture order; a later fragment that arrives before its first
        fragment (reordering) is matched when the first one appears later in the same batch,
        as pmacct does. Returns a bool array: True where a later fragment was matched."""
        found = np.zeros(len(keys), bool)
        table = self._ports
        waiting: dict[bytes, list[int]] = {}
        for i in range(len(keys)):
            key = keys[i].tobytes()
            if first[i]:
                ports = (int(sport[i]), int(dport[i]))
                table[key] = ports
                table.move_to_end(key)
                if len(table) > self.size:
                    table.popitem(last=False)
                for j in waiting.pop(key, ()):
                    sport[j], dport[j] = ports
                    found[j] = True
            else:
                ports = table.get(key)
                if ports is not None:
                    sport[i], dport[i] = ports
                    found[i] = True
                else:
                    waiting.setdefault(key, []).append(i)
        return found


def _frame_columns(raw: RawBatch) -> PacketBatch:
    """A batch with the capture-level columns filled and the decoded ones zero."""
    b = PacketBatch.empty(len(raw))
    b.ts_ns[:] = raw.ts_ns
    b.iface[:] = raw.iface
    b.link[:] = raw.link
    b.cap_len[:] = raw.caplen
    b.wire_len[:] = raw.wirelen
    return b


class Decoder:
    """Decode RawBatches; `stats` accumulates per-reason counts over all batches. `l7`: DNS, HTTP
    and TLS fields (True), DNS only ("dns": what the analysis uses), or none."""

    def __init__(self, l7: bool | str = True, hellos_per_batch: int = TLS_HELLOS_PER_BATCH, decap: Decap | None = None):
        self.decap = decap if decap is not None else Decap()      # tunnels taken out (tunnels.py)
        self.l7 = bool(l7)
        self.http = l7 is True
        self.fragments = FragmentTable()
        self.stats: Counter = Counter()
        self._dns_seen: dict = {}           # DNS message but its id -> parse_dns's answer (DNS_MEMO)
        self._records_left = DNS_RECORDS_PER_BATCH
        self.hellos_per_batch = self._hellos_left = hellos_per_batch
        self._sip_left = SIP_MESSAGES_PER_BATCH
        self.hellos = HelloReassembly()
        self.pieces = HandshakeAssembly()        # QUIC CRYPTO frames, DTLS handshake fragments
        # server->client flow + client's source connection ID -> the DCID of the client's Initial
        self.quic_clients: OrderedDict[bytes, bytes] = OrderedDict()
        self._scratch: dict[str, np.ndarray] = {}

    def _kept(self, name: str, n: int, dtype, zero: bool = True) -> np.ndarray:
        """n zeros (or, not `zero`, whatever the last batch left) in an array kept for the next
        batch: a fresh one of a batch's size (~130 kB of int64) is mapped anew by the allocator
        each time, and writing it page-faults page by page (on this VM that cost the fast path
        +30%)."""
        a = self._scratch.get(name)
        if a is None or a.shape[0] < n:
            a = self._scratch[name] = np.zeros(n, dtype)
            return a
        a = a[:n]
        if zero:
            a[:] = 0
        return a

    def decode(self, raw: RawBatch) -> PacketBatch:
        """Decode a batch. Common packets take the compiled fast path (fast.py); only the rest goes
        through the column-wise reference decoder below. L7 fields of fast-path packets are then
        decoded on the TCP/UDP subset, from the transport offsets the fast path returns."""
        self._records_left = DNS_RECORDS_PER_BATCH
        self._hellos_left = self.hellos_per_batch
        self._sip_left = SIP_MESSAGES_PER_BATCH
        return self._decode_all(raw, 0)

    def _decode_all(self, raw: RawBatch, depth: int) -> PacketBatch:
        """decode, for frames inside `depth` tunnels (their scratch arrays are their own)."""
        if len(raw) == 0:
            return self._decode(raw, depth)
        n = len(raw)
        b = _frame_columns(raw)
        slow = self._kept(f"slow{depth}", n, bool)
        # offsets read only where kind says (fast-path packets fast_decode wrote them for)
        l4 = self._kept(f"l4{depth}", n, np.int64, zero=False)
        ip_end = self._kept(f"ip_end{depth}", n, np.int64, zero=False)
        kind = self._kept(f"kind{depth}", n if self.l7 else 0, np.uint8)      # l7_scan.py: what each packet may carry
        carrier = self._kept(f"carrier{depth}", n, np.uint8)                 # a tunnel's kind, for carriers
        seen = np.zeros(2, np.int64)
        d = self.decap
        fast_decode(raw.buf, raw.off, raw.caplen, raw.link, b.vlan, b.vlan_depth, b.eth_type, b.ip_ver, b.src, b.dst,
                    b.proto, b.sport, b.dport, b.ip_len, b.ttl, b.tcp_flags, b.icmp_type, b.icmp_code, slow, l4, ip_end,
                    self.l7, self.http, kind, seen, carrier, d.by_proto, d.ports, d.port_kinds)
        rows = np.flatnonzero(slow)
        l7 = _L7Builder()
        if rows.size:
            sub = self._decode(RawBatch(buf=raw.buf, off=raw.off[rows], caplen=raw.caplen[rows],
                                        wirelen=raw.wirelen[rows], ts_ns=raw.ts_ns[rows], link=raw.link[rows],
                                        iface=raw.iface[rows]), depth)
            for name in DENSE_COLUMNS:
                getattr(b, name)[rows] = getattr(sub, name)
            l7.extend(sub.l7, rows)
            if len(sub.tunnels):
                b.tunnels = sub.tunnels.select(np.arange(len(sub.tunnels)), rows[sub.tunnels.row])
        self.stats[STATUS_NAMES[STATUS_OK]] += n - rows.size
        if seen[1]:             # tunnel carriers among the fast path's packets
            c = np.flatnonzero(carrier)
            pos = l4[c] + np.where(b.proto[c] == P.IPPROTO_UDP, 8, 0)
            slow_env, b.tunnels = b.tunnels, TunnelTable()
            self._take_out(raw, b, l7, [c, pos, carrier[c], ip_end[c], raw.off[c] + raw.wirelen[c]], depth)
            if len(slow_env):
                b.tunnels = TunnelTable.concat([slow_env, b.tunnels], [0, 0])
                b.tunnels = b.tunnels.select(np.argsort(b.tunnels.row, kind="stable"), np.sort(b.tunnels.row))
        if self.l7:     # the fast path's packets (the reference decoder's were parsed in _decode)
            self._parse_l7(raw.buf, None, b.sport, b.dport, l4, ip_end, kind, int(seen[0]), l7, b.src, b.dst)
        b.l7 = l7.table()
        return b

    def _decode(self, raw: RawBatch, depth: int = 0) -> PacketBatch:
        n = len(raw)
        buf, off = raw.buf, raw.off
        end = off + raw.caplen
        status = np.zeros(n, np.uint8)
        lk = link_layer(buf, off, end, raw.link, status)
        status[raw.caplen == 0] = STATUS_ZERO_LENGTH
        b = _frame_columns(raw)
        b.vlan[:] = lk.vlan
        b.vlan_depth[:] = lk.vlan_depth
        b.eth_type[:] = np.maximum(lk.eth_type, 0)
        l7 = _L7Builder()
        carriers = []           # tunnel carriers: (rows, tunnel header offsets, kinds, captured ends, wire ends)
        for ver, parse, ethertype in ((4, ipv4, P.ETH_IPV4), (6, ipv6, P.ETH_IPV6)):
            rows = np.nonzero((lk.eth_type == ethertype) & (status == 0))[0]
            if rows.size:
                ip = parse(buf, rows, off, lk.l3, end, raw.wirelen, status, self.stats)
                if ip.rows.size:
                    r, pos, kinds, ip_end = self._transport(b, buf, end, lk.l3, ip, ver, l7)
                    carriers.append((r, pos, kinds, ip_end, off[r] + raw.wirelen[r]))
        link_kind = np.zeros(n, np.uint8)
        for ethertypes, k in ((P.ETH_MPLS, TUNNEL_MPLS), ((P.ETH_PPPOE_SESSION,), TUNNEL_PPPOE)):
            if self.decap.enabled[k]:
                link_kind[np.isin(lk.eth_type, ethertypes) & (status == STATUS_NON_IP)] = k
        rows = np.flatnonzero(link_kind)
        if rows.size:
            carriers.append((rows, lk.l3[rows], link_kind[rows], end[rows], off[rows] + raw.wirelen[rows]))
        b.status[:] = status
        counts = np.bincount(status, minlength=len(STATUS_NAMES))
        for code, name in STATUS_NAMES.items():
            if counts[code]:
                self.stats[name] += int(counts[code])
        carriers = [c for c in carriers if c[0].size]
        if carriers:
            self._take_out(raw, b, l7, [np.concatenate(c) for c in zip(*carriers)], depth)
        b.l7 = l7.table()
        return b

    def _take_out(self, raw: RawBatch, b: PacketBatch, l7: "_L7Builder", carriers: list, depth: int) -> None:
        """Replace the carriers' columns with their inner packets' (decoded as a batch of their own,
        nested tunnels too) and note their envelopes in b.tunnels. `carriers`: rows, tunnel header
        offsets, kinds, captured ends and the frames' wire ends. A carrier whose tunnel header or
        inner packet is not whole stays what it is (an outer flow, or a non-IP frame), counted."""
        rows, pos, kind, cend, wend = carriers
        if depth >= MAX_DEPTH:
            self.stats["tunnel_too_deep"] += int(rows.size)
            return
        order = np.argsort(rows, kind="stable")
        rows, pos, kind, cend, wend = rows[order], pos[order], kind[order], cend[order], wend[order]
        k = rows.size
        inner, link, got_kind = np.zeros(k, np.int64), np.zeros(k, np.uint16), np.zeros(k, np.uint8)
        tid, why = np.zeros(k, np.uint32), np.zeros(k, np.uint8)
        decapsulate(raw.buf, pos.astype(np.int64), cend.astype(np.int64), kind.astype(np.uint8), self.decap.enabled,
                    inner, link, got_kind, tid, why)
        if why.any():
            for (code, kk), c in Counter(zip(why.tolist(), got_kind.tolist())).items():
                if code:
                    self.stats[f"tunnel_{TUNNEL_NAMES[kk]}_{DECAP_REASONS[code]}"] += c
        go = np.flatnonzero(why == 0)
        if not go.size:
            return
        r = rows[go]
        caplen = cend[go] - inner[go]
        sub = RawBatch(buf=raw.buf, off=inner[go], caplen=caplen, wirelen=np.maximum(wend[go] - inner[go], caplen),
                       ts_ns=raw.ts_ns[r], link=link[go], iface=raw.iface[r])
        outer_stats, self.stats = self.stats, Counter()
        try:
            got = self._decode_all(sub, depth + 1)
        finally:
            inner_stats, self.stats = self.stats, outer_stats
        for name, c in inner_stats.items():      # an inner packet left in its carrier: counted by why
            if name != "ok":
                self.stats[f"tunnel_inner_{name}" if name in _STATUS_NAME_SET else name] += c
        good = np.flatnonzero(got.status == STATUS_OK)
        if not good.size:
            return
        whole = good.size == len(got)                # every inner packet whole: no gathers
        sel = slice(None) if whole else good
        rg = r[sel]
        was_non_ip = int((b.status[rg] == STATUS_NON_IP).sum())     # MPLS, PPPoE: IP packets now
        if was_non_ip:
            self.stats[STATUS_NAMES[STATUS_NON_IP]] -= was_non_ip
            self.stats[STATUS_NAMES[STATUS_OK]] += was_non_ip
            if not self.stats[STATUS_NAMES[STATUS_NON_IP]]:
                del self.stats[STATUS_NAMES[STATUS_NON_IP]]
        env = TunnelTable(rg.astype(np.int32), got_kind[go][sel], tid[go][sel], np.ones(good.size, np.uint8),
                          b.src[rg], b.dst[rg])
        if len(got.tunnels):                     # nested: the innermost envelope, one level deeper
            at = np.searchsorted(good, got.tunnels.row)
            hit = (at < good.size) & (good[np.minimum(at, good.size - 1)] == got.tunnels.row)
            at, nested = at[hit], np.flatnonzero(hit)
            for c in ("kind", "tid", "outer_src", "outer_dst"):
                getattr(env, c)[at] = getattr(got.tunnels, c)[nested]
            env.depth[at] = got.tunnels.depth[nested] + 1
        for c in _INNER_COLUMNS:
            getattr(b, c)[rg] = getattr(got, c)[sel]
        tagged = got.vlan_depth[sel] > 0         # the inner frame's VLAN when it has one, else the carrier's
        if tagged.any():
            b.vlan[rg[tagged]] = got.vlan[sel][tagged]
            b.vlan_depth[rg[tagged]] = got.vlan_depth[sel][tagged]
        if len(got.l7):
            keep = np.flatnonzero(got.status[got.l7.row] == STATUS_OK)
            l7.extend(L7Table(got.l7.row[keep], **{c: [getattr(got.l7, c)[i] for i in keep]
                                                    for c in got.l7.value_columns()}), r)
        b.tunnels = env

    def _transport(self, b: PacketBatch, buf, end, l3, ip: IPResult, ver: int, l7: "_L7Builder") -> tuple:
        """Transport and L7 columns of IP packets; returns the tunnel carriers among them (rows,
        tunnel header offsets, kinds, captured ends) for _take_out."""
        rows, l4 = ip.rows, ip.l4
        rend = end[rows]
        proto = ip.proto
        first_part = ip.frag_off == 0            # unfragmented or first fragment: transport header present
        b.ip_ver[rows] = ver
        b.src[rows] = ip.src
        b.dst[rows] = ip.dst
        b.proto[rows] = proto
        b.ip_len[rows] = ip.ip_len
        b.ttl[rows] = ip.ttl

        sport = np.zeros(rows.size, np.int64)
        dport = np.zeros(rows.size, np.int64)
        wants_ports = _PORT_PROTOS[proto] & first_part
        has_ports = wants_ports & ip.l4_ok & (l4 + 4 <= rend)
        i = np.nonzero(has_ports)[0]
        sport[i] = u16(buf, l4[i])
        dport[i] = u16(buf, l4[i] + 2)
        short = int(wants_ports.sum() - i.size)
        if short:
            self.stats["l4_truncated"] += short

        is_tcp = (proto == P.IPPROTO_TCP) & first_part & ip.l4_ok & (l4 + 14 <= rend)
        i = np.nonzero(is_tcp)[0]
        b.tcp_flags[rows[i]] = u8(buf, l4[i] + 13) | ((u8(buf, l4[i] + 12) & 1) << 8)

        is_icmp = (((proto == P.IPPROTO_ICMP) & (ver == 4)) | ((proto == P.IPPROTO_ICMPV6) & (ver == 6))) \
            & first_part & ip.l4_ok & (l4 + 2 <= rend)
        i = np.nonzero(is_icmp)[0]
        b.icmp_type[rows[i]] = u8(buf, l4[i])
        b.icmp_code[rows[i]] = u8(buf, l4[i] + 1)

        f = np.nonzero(ip.is_frag)[0]
        if f.size:
            keys = np.concatenate([ip.src[f], ip.dst[f], proto[f, None].astype(np.uint8),
                                   ip.frag_id[f, None].astype(">u4").view(np.uint8)], axis=1)
            fs, fd = sport[f], dport[f]
            found = self.fragments.resolve(keys, first_part[f], fs, fd)
            sport[f], dport[f] = fs, fd
            codes = np.where(first_part[f], FRAG_FIRST, np.where(found, FRAG_LATER, FRAG_LATER_UNMATCHED))
            b.frag[rows[f]] = codes
            b.frag_id[rows[f]] = ip.frag_id[f]
            unmatched = int((codes == FRAG_LATER_UNMATCHED).sum())
            if unmatched:
                self.stats["fragment_without_first"] += unmatched
        b.sport[rows] = sport
        b.dport[rows] = dport

        ip_end = np.minimum(rend, l3[rows] + ip.ip_len)
        if self.l7:
            self._l7(buf, rows, proto.astype(np.uint8, copy=False), has_ports, sport.astype(np.uint16), dport.astype(np.uint16),
                     l4.astype(np.int64, copy=False), ip_end.astype(np.int64, copy=False), l7, b.src, b.dst)
        kind = self.decap.by_proto[proto]
        udp = has_ports & (proto == P.IPPROTO_UDP)
        kind[udp] = self.decap.by_port[dport[udp]]
        tunnel = kind != 0
        if tunnel.any():
            frag = tunnel & ip.is_frag       # a fragment of a carrier stays an outer packet
            if frag.any():
                self.stats["tunnel_fragment"] += int(frag.sum())
            i = np.flatnonzero(tunnel & ~ip.is_frag & ip.l4_ok)
            return rows[i], np.where(udp[i], l4[i] + 8, l4[i]), kind[i], ip_end[i]
        return (np.zeros(0, np.int64),) * 4

    def _dns(self, msg: bytes):
        """parse_dns with a response's records, remembered by the message but its id (a reflection
        flood repeats one answer to many spoofed queries); at most DNS_RECORDS_PER_BATCH responses
        a batch have their records read, the others only their question (dns_answers_unread)."""
        key = msg[2:]
        d = self._dns_seen.get(key, _UNSEEN)
        if d is not _UNSEEN:
            return d
        d = parse_dns(msg, records=self._records_left > 0)
        if d is not None and d.response:
            if d.records is None:
                self.stats["dns_answers_unread"] += 1
                return d                    # not remembered: a later batch may read its records
            self._records_left -= 1
        if len(key) < DNS_MEMO_BYTES:
            if len(self._dns_seen) >= DNS_MEMO:
                self._dns_seen.clear()
            self._dns_seen[key] = d
        return d

    def _l7(self, buf, rows, proto, has_ports, sport, dport, l4, ip_end, l7: "_L7Builder", src, dst) -> None:
        """L7 fields of the reference decoder's packets (`rows`: their batch rows); ports, proto
        and offsets as l7_scan takes them."""
        kind = np.zeros(proto.shape[0], np.uint8)
        seen = np.zeros(1, np.int64)
        S.l7_scan(buf, proto, has_ports, sport, dport, l4, ip_end, self.http, kind, seen)
        self._parse_l7(buf, rows, sport, dport, l4, ip_end, kind, int(seen[0]), l7, src, dst)

    def _parse_l7(self, buf, rows, sport, dport, l4, ip_end, kind, seen: int, l7: "_L7Builder", src, dst) -> None:
        """L7 fields of the packets whose kind (l7_scan.py) names a category, category by category:
        DNS over UDP, SSDP, QUIC, DTLS, DNS over TCP, HTTP, TLS. `seen`: every kind bit set.
        `rows`: their batch rows (None: their positions)."""
        if not seen and not self.hellos.waiting:
            return
        if rows is None:
            rows = np.arange(kind.shape[0])
        payload = np.zeros(kind.shape[0], np.int64)       # TCP payload offsets, where read

        def having(bit: int) -> np.ndarray:
            if not seen & bit:
                return np.zeros(0, np.int64)
            i = np.flatnonzero(kind & bit)
            if bit >= S.L7_DNS_TCP:
                payload[i] = l4[i] + (u8(buf, l4[i] + 12) >> 4) * 4
            return i

        for k in having(S.L7_DNS_UDP).tolist():
            d = self._dns(bytes(buf[l4[k] + 8:ip_end[k]]))
            if d is not None:
                l7.dns(int(rows[k]), d)
        i = having(S.L7_UDP_TEXT)
        self._texts(buf, i, l4[i] + 8, ip_end[i], sport[i], dport[i], rows[i], l7)
        for k in having(S.L7_QUIC).tolist():
            sp, dp = int(sport[k]), int(dport[k])
            self._quic(bytes(buf[l4[k] + 8:ip_end[k]]), _flow(src, dst, rows[k], sp, dp), _flow(dst, src, rows[k], dp, sp),
                       int(rows[k]), l7)
        for k in having(S.L7_DTLS).tolist():
            self._dtls(bytes(buf[l4[k] + 8:ip_end[k]]), _flow(src, dst, rows[k], int(sport[k]), int(dport[k])),
                       int(rows[k]), l7)
        for k in having(S.L7_DNS_TCP).tolist():
            d = self._dns(bytes(buf[payload[k] + 2:ip_end[k]]))
            if d is not None:
                l7.dns(int(rows[k]), d)
        i = having(S.L7_HTTP)
        self._texts(buf, i, payload[i], ip_end[i], sport[i], dport[i], rows[i], l7)
        if seen & S.L7_HELLO or self.hellos.waiting:
            self._tls(buf, rows, sport, dport, l4, payload, ip_end, src, dst, having(S.L7_HELLO), having(S.L7_TCP_DATA), l7)

    def _texts(self, buf, idx, start, end, sport, dport, rows, l7: "_L7Builder") -> None:
        """Text protocols' start lines (payloads buf[start:end] of the packets `idx`): SIP on its
        port, at most the batch's SIP_MESSAGES_PER_BATCH (the rest counted at once as sip_unread:
        a flood costs no Python step a packet past it), HTTP elsewhere."""
        if not len(idx):
            return
        sip = np.isin(sport, P.SIP_PORTS) | np.isin(dport, P.SIP_PORTS)
        over = sip & (np.cumsum(sip) > self._sip_left)
        if over.any():
            self.stats["sip_unread"] += int(over.sum())
        self._sip_left = max(self._sip_left - int(sip.sum()), 0)
        for a, z, is_sip, row in zip(start[~over].tolist(), end[~over].tolist(), sip[~over].tolist(), rows[~over].tolist()):
            if is_sip:
                s = parse_sip(bytes(buf[a:z]))
                if s is not None:
                    l7.sip(row, s)
            else:
                h = parse_http(bytes(buf[a:z]))
                if h is not None:
                    l7.http(row, h)

    def _take_hello(self) -> bool:
        """One hello of the batch's budget (TLS_HELLOS_PER_BATCH); once it is spent, False, and
        the hello is counted as unread."""
        if self._hellos_left <= 0:
            self.stats["tls_hellos_unread"] += 1
            return False
        self._hellos_left -= 1
        return True

    def _quic(self, datagram: bytes, flow: bytes, back: bytes, row: int, l7: "_L7Builder") -> None:
        """A QUIC Initial datagram: a client's ClientHello, or a server's ServerHello when its
        client's Initial was opened (quic_clients), once the CRYPTO frames hold it whole. `back`:
        the flow the other way."""
        if not is_initial(datagram[0], int.from_bytes(datagram[1:5], "big")):
            return
        client_dcid = self.quic_clients.get(flow + datagram[6:6 + datagram[5]])
        if not self._take_hello():
            return
        got = initial_crypto(datagram, client_dcid)
        if got is None:
            return
        if client_dcid is None:
            key = back + got.scid
            self.quic_clients.pop(key, None)
            self.quic_clients[key] = got.dcid
            if len(self.quic_clients) > QUIC_CLIENTS:
                self.quic_clients.popitem(last=False)
        self._assembled(flow + got.dcid, got.frames, "q", row, l7)

    def _dtls(self, datagram: bytes, flow: bytes, row: int, l7: "_L7Builder") -> None:
        """A DTLS hello, or a fragment of one (read once its fragments make it whole)."""
        f = dtls_fragment(datagram)
        if f is None:
            return
        if not self._take_hello():
            return
        kind, seq, length, off, data = f
        header = bytes([kind]) + length.to_bytes(3, "big")
        self._assembled(flow + b"dtls" + seq.to_bytes(2, "big"), [(0, header), (4 + off, data)], "d", row, l7)

    def _assembled(self, conn: bytes, pieces: list, transport: str, row: int, l7: "_L7Builder") -> None:
        """Add a hello's pieces (offset, bytes) to what `conn` sent before; read it once whole."""
        given_up = self.pieces.given_up
        hello = self.pieces.add(conn, pieces)
        if self.pieces.given_up > given_up:
            self.stats["tls_hello_partial"] += self.pieces.given_up - given_up
        if hello is not None:
            t = parse_tls(b"\x16\x03\x03" + len(hello).to_bytes(2, "big") + hello, transport)
            if t is not None:
                l7.tls(row, t)

    def _tls(self, buf, rows, sport, dport, l4, payload, ip_end, src, dst, hello, data, l7: "_L7Builder") -> None:
        """TLS hellos of TCP segments (`hello`: those that start with a record), and among the
        segments with data (`data`) those that complete the hellos HelloReassembly waits for
        (looked for by port pair first, column-wise), in capture order. `src`, `dst`: the
        batch's address columns, at `rows`."""
        given_up = self.hellos.given_up
        waiting = np.fromiter((int.from_bytes(f[32:], "big") for f in self.hellos.waiting), np.int64,
                              len(self.hellos.waiting))

        def pairs(i):
            return (sport[i].astype(np.int64) << 16) | dport[i]
        more = data[np.isin(pairs(data), np.concatenate([waiting, pairs(hello)]))]
        seq = dict(zip(more.tolist(), u32(buf, l4[more] + 4).tolist()))
        starts = set(hello.tolist())
        for k in more.tolist():
            if k in starts:
                start, stop = int(payload[k]), int(ip_end[k])
                if buf[start] == CHANGE_CIPHER_SPEC:    # TLS 1.3 middlebox compatibility: a hello may follow
                    start += 5 + ((int(buf[start + 3]) << 8) | int(buf[start + 4]))
                if start + 9 <= stop and buf[start] == HANDSHAKE and buf[start + 5] in (1, 2):
                    if not self._take_hello():
                        continue
                    segment = bytes(buf[start:stop])
                    t = parse_tls(segment)
                    if t is None:
                        continue
                    if not t.complete:
                        flow = _flow(src, dst, rows[k], int(sport[k]), int(dport[k]))
                        if self.hellos.start(flow, (seq[k] + start - int(payload[k])) & 0xFFFFFFFF, segment):
                            continue
                        self.stats["tls_hello_partial"] += 1
                    l7.tls(int(rows[k]), t)
                    continue
            if self.hellos.waiting:
                flow = _flow(src, dst, rows[k], int(sport[k]), int(dport[k]))
                whole = self.hellos.add(flow, seq[k], bytes(buf[int(payload[k]):int(ip_end[k])]))
                if whole is not None:
                    t = parse_tls(whole)
                    if t is not None:
                        l7.tls(int(rows[k]), t)
        if self.hellos.given_up > given_up:
            self.stats["tls_hello_partial"] += self.hellos.given_up - given_up


class _L7Builder:
    """L7 rows as they are found (one tuple each: cheaper than a list per column), columns at the end."""
    _NO_INT = -1          # dns_qtype, dns_rcode, http_status, tls_* numbers when absent
    _NO_TLS = (_NO_INT, _NO_INT, None, None, _NO_INT, None, None)
    _NO_SIP = (None, _NO_INT, None, None, None)

    def __init__(self):
        self.rows: list[int] = []
        self.vals: list[tuple] = []      # L7Table value columns, in order

    def dns(self, row, d):
        """A DNS message: its question, and a response's address records (dns_records)."""
        self.rows.append(row)
        self.vals.append((d.qname, d.qtype, d.rcode, d.response, d.records, None, None, None, self._NO_INT)
                         + self._NO_TLS + self._NO_SIP)

    def http(self, row, h):
        self.rows.append(row)
        self.vals.append((None, self._NO_INT, self._NO_INT, None, None, h.method, h.host, h.path, h.status)
                         + self._NO_TLS + self._NO_SIP)

    def tls(self, row, t):
        """A TLS ClientHello or ServerHello (collectors/decode/tls.py TlsInfo)."""
        self.rows.append(row)
        self.vals.append((None, self._NO_INT, self._NO_INT, None, None, None, None, None, self._NO_INT,
                          t.hello, t.version, t.sni, t.alpn, t.cipher, t.ja3, t.ja4) + self._NO_SIP)

    def sip(self, row, s):
        """A SIP request or response (collectors/decode/sip.py SipInfo)."""
        self.rows.append(row)
        self.vals.append((None, self._NO_INT, self._NO_INT, None, None, None, None, None, self._NO_INT)
                         + self._NO_TLS + (s.method, s.status, s.call_id, s.from_uri, s.to_uri))

    def extend(self, t: L7Table, rows: np.ndarray) -> None:
        """Add a sub-batch's L7 rows; `rows` maps its row numbers to this batch's."""
        self.rows.extend(rows[t.row].tolist())
        self.vals.extend(zip(*(getattr(t, c) for c in t.value_columns())))

    def table(self) -> L7Table:
        if not self.rows:
            return L7Table()
        order = np.argsort(np.asarray(self.rows), kind="stable")
        cols = list(zip(*(self.vals[i] for i in order)))
        return L7Table(np.asarray(self.rows, np.int32)[order],
                       **{c: list(v) for c, v in zip(L7Table().value_columns(), cols)})


def warm_up(l7: bool = True) -> None:
    """Compile (or load from numba's cache) the decode kernels now: a live capture calls this
    before its clock starts, so that --duration and --count measure capturing, not compiling
    (several seconds on a fresh install). Frames for the fast path (UDP with a DNS query, TCP),
    a VLAN tag, the slow path (an IPv4 fragment pair, IPv6), and a packet in VXLAN (tunnels.py)."""
    import dpkt

    def eth(ip, tagged=False) -> bytes:
        e = dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, data=ip,
                                   type=dpkt.ethernet.ETH_TYPE_IP6 if isinstance(ip, dpkt.ip6.IP6) else 0x0800)
        if tagged:
            e.vlan_tags = [dpkt.ethernet.VLANtag8021Q(id=7)]
        return bytes(e)

    dns = dpkt.dns.DNS(id=1, qd=[dpkt.dns.DNS.Q(name="example.org")])
    udp = dpkt.udp.UDP(sport=5353, dport=53, data=bytes(dns))
    tcp = dpkt.tcp.TCP(sport=40000, dport=80, flags=dpkt.tcp.TH_SYN)
    v4 = dict(src=b"\x0a\x00\x00\x01", dst=b"\x0a\x00\x00\x02")
    frames = [eth(dpkt.ip.IP(p=dpkt.ip.IP_PROTO_UDP, data=udp, **v4)),
              eth(dpkt.ip.IP(p=dpkt.ip.IP_PROTO_TCP, data=tcp, **v4), tagged=True),
              eth(dpkt.ip.IP(p=dpkt.ip.IP_PROTO_UDP, id=9, mf=1, data=bytes(udp)[:16], **v4)),
              eth(dpkt.ip.IP(p=dpkt.ip.IP_PROTO_UDP, id=9, offset=2, data=bytes(udp)[16:], **v4)),
              eth(dpkt.ip6.IP6(src=b"\x20" + b"\x00" * 15, dst=b"\x20" + b"\x00" * 14 + b"\x01", nxt=17, hlim=64,
                               data=udp))]
    vxlan = b"\x08\0\0\0\0\0\x01\0" + frames[0]
    frames.append(eth(dpkt.ip.IP(p=dpkt.ip.IP_PROTO_UDP, data=dpkt.udp.UDP(sport=40000, dport=P.VXLAN_PORT, data=vxlan),
                                 **v4)))
    Decoder(l7=l7).decode(RawBatch.from_frames(frames, P.LINK_ETHERNET))
