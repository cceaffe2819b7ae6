"""Live capture from a network interface, in batches, as RawBatch columns.

Two methods, both with BPF filters, snap length, kernel buffer size and PACKET_FANOUT (several
collector processes share one interface; the kernel hashes each flow to one of them):

- `PcapCapture`: libpcap through pcapy-ng's `next_batch`, one Python call per few hundred
  packets. Portable; libpcap re-inserts VLAN tags the kernel stripped.
- `AfPacketCapture`: a TPACKET_V3 ring mapped into this process. The kernel fills whole blocks;
  a compiled walker copies every packet of the ready blocks into one batch buffer (re-inserting
  stripped VLAN tags, as libpcap does) and hands the blocks back.

Both read until `stop()` is true, yielding a batch when `batch_size` packets are in or
`flush_ms` passed, and keep kernel counters (packets received, dropped by the kernel, dropped by
the interface) in `stats`.
"""
from __future__ import annotations

import mmap
import select
import socket
import struct
import time
from dataclasses import asdict, dataclass
from typing import Callable, Iterator

import numpy as np

from collectors.protocols import LINK_ETHERNET, LINK_RAW
from collectors.raw_batch import RawBatch
from schemas.jit import njit

DEFAULT_SNAPLEN = 262_144
DEFAULT_BUFFER_MB = 64
DEFAULT_BATCH = 16_384
DEFAULT_FLUSH_MS = 100       # a batch leaves after this long even if not full (bounds latency)

# Linux <linux/if_packet.h>, <linux/if_ether.h>
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
PACKET_FANOUT = 18
PACKET_IGNORE_OUTGOING = 23
ARPHRD_LOOPBACK = 772
TPACKET_V3 = 2
ETH_P_ALL = 0x0003
SO_ATTACH_FILTER = 26
TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40
PACKET_FANOUT_HASH = 0

# /sys/class/net/IF/type (ARPHRD_*) -> link type of the frames a packet socket returns.
LINK_BY_ARPHRD = {1: LINK_ETHERNET, ARPHRD_LOOPBACK: LINK_ETHERNET, 65534: LINK_RAW}


class CaptureError(RuntimeError):
    """The interface cannot be opened or captured from (missing, no permission, bad filter)."""


@dataclass
class LiveStats:
    packets: int = 0            # delivered to us
    bytes_captured: int = 0
    batches: int = 0
    kernel_received: int = 0    # what the kernel counted for this socket (after the filter)
    kernel_drops: int = 0       # dropped by the kernel: ring or buffer full
    iface_drops: int = 0        # dropped by the interface before capture (InterfaceDrops)

    def as_dict(self) -> dict:
        return asdict(self)


def interface_type(iface: str) -> int:
    """The interface's ARPHRD_* type; CaptureError if it is missing or its frames are not decodable."""
    try:
        with open(f"/sys/class/net/{iface}/type") as f:
            arphrd = int(f.read())
    except OSError as e:
        raise CaptureError(f"no interface {iface!r}") from e
    if arphrd not in LINK_BY_ARPHRD:
        raise CaptureError(f"{iface}: link type ARPHRD {arphrd} is not supported")
    return arphrd


class InterfaceDrops:
    """Frames the interface dropped since capture started, before any capture could see them:
    rx_dropped (e.g. a full backlog, a frame over the MTU) plus rx_missed_errors and
    rx_fifo_errors (the NIC's ring was full; all libpcap counts) from /sys/class/net/IF/statistics.
    A counter of the interface, so collectors in one fanout group each report all of it."""

    FIELDS = ("rx_dropped", "rx_missed_errors", "rx_fifo_errors")

    def __init__(self, iface: str):
        self.paths = [f"/sys/class/net/{iface}/statistics/{f}" for f in self.FIELDS]
        self.start = self._total()

    def _total(self) -> int:
        total = 0
        for path in self.paths:
            try:
                with open(path) as f:
                    total += int(f.read())
            except (OSError, ValueError):     # not every interface has every counter
                pass
        return total

    def since_start(self) -> int:
        return max(0, self._total() - self.start)


def _raw_batch(buf: np.ndarray, off, caplen, wirelen, ts, link: int) -> RawBatch:
    n = len(off)
    return RawBatch(buf=buf, off=off, caplen=caplen, wirelen=wirelen, ts_ns=ts,
                    link=np.full(n, link, np.uint16), iface=np.zeros(n, np.uint16))


class PcapCapture:
    """libpcap capture with pcapy-ng (`next_batch`)."""

    def __init__(self, iface: str, bpf: str = "", snaplen: int = DEFAULT_SNAPLEN, buffer_mb: int = DEFAULT_BUFFER_MB,
                 promisc: bool = True, fanout: int | None = None, batch_size: int = DEFAULT_BATCH,
                 flush_ms: int = DEFAULT_FLUSH_MS):
        import pcapy
        self.stats = LiveStats()
        self.batch_size, self.flush_s = batch_size, flush_ms / 1000
        try:
            p = pcapy.create(iface)
            p.set_snaplen(snaplen)
            p.set_promisc(int(promisc))
            p.set_timeout(flush_ms)
            p.set_buffer_size(buffer_mb << 20)
            p.activate()
            if bpf:
                p.setfilter(bpf)
            if fanout is not None:
                p.set_fanout(fanout, pcapy.PACKET_FANOUT_HASH)
            p.setnonblock(1)      # next_batch would otherwise block with no traffic, ignoring stop()
        except Exception as e:    # pcapy.PcapError, BPFError: one clean error for the CLI
            raise CaptureError(f"{iface}: {e}") from e
        self.link = p.datalink()
        self._p = p
        self._iface_drops = InterfaceDrops(iface)

    def batches(self, stop: Callable[[], bool]) -> Iterator[RawBatch]:
        fd = self._p.getfd()
        while not stop():
            datas, metas, n, deadline = [], [], 0, time.monotonic() + self.flush_s
            while n < self.batch_size and not stop():
                data, meta = self._p.next_batch(self.batch_size - n)
                if meta:
                    datas.append(data)
                    metas.append(np.frombuffer(meta, np.uint32).reshape(-1, 4))
                    n += len(metas[-1])
                    continue
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                select.select([fd], [], [], left)
            self._read_kernel_stats()
            if n:
                yield self._batch(datas, metas)
        if getattr(stop, "drain", True):      # hand over what libpcap already holds
            while True:
                data, meta = self._p.next_batch(self.batch_size)
                if not meta:
                    break
                yield self._batch([data], [np.frombuffer(meta, np.uint32).reshape(-1, 4)])
            self._read_kernel_stats()

    def _batch(self, datas: list[bytes], metas: list[np.ndarray]) -> RawBatch:
        sizes = np.cumsum([0] + [len(d) for d in datas[:-1]])
        off = np.concatenate([m[:, 2].astype(np.int64) + base for m, base in zip(metas, sizes)])
        meta = np.concatenate(metas)
        caplen = meta[:, 3].astype(np.int64)
        ts = meta[:, 0].astype(np.int64) * 1_000_000_000 + meta[:, 1].astype(np.int64) * 1000
        buf = np.frombuffer(b"".join(datas), np.uint8)
        self.stats.packets += len(off)
        self.stats.bytes_captured += int(caplen.sum())
        self.stats.batches += 1
        # next_batch gives no wire length; flows count IP total length, so caplen stands in.
        return _raw_batch(buf, off, caplen, caplen.copy(), ts, self.link)

    def _read_kernel_stats(self) -> None:
        recv, drop, _ = self._p.stats()      # cumulative since activation; ifdrop: InterfaceDrops
        self.stats.kernel_received, self.stats.kernel_drops = recv, drop
        self.stats.iface_drops = self._iface_drops.since_start()

    def close(self) -> None:
        self._read_kernel_stats()
        self._p.close()


@njit(cache=True)
def _u32(ring, p):
    return np.int64(ring[p]) | (np.int64(ring[p + 1]) << 8) | (np.int64(ring[p + 2]) << 16) | (np.int64(ring[p + 3]) << 24)


@njit(cache=True)
def _u16(ring, p):
    return np.int64(ring[p]) | (np.int64(ring[p + 1]) << 8)


@njit(cache=True)
def drain_blocks(ring, bases, snaplen, out, off, caplen, wirelen, ts):
    """Copy every packet of the given TPACKET_V3 blocks into `out` and release the blocks to the
    kernel. Returns (packets, bytes used). A tag the kernel stripped (TP_STATUS_VLAN_VALID) is put
    back after the MAC addresses. `out` must hold each block's blk_len plus 4 bytes per packet."""
    k = 0
    pos = 0
    for b in bases:
        num = _u32(ring, b + 12)
        p = b + _u32(ring, b + 16)
        for _ in range(num):
            status = _u32(ring, p + 20)
            snap = _u32(ring, p + 12)
            data = p + _u16(ring, p + 24)              # tp_mac
            take = min(snap, snaplen)
            off[k] = pos
            wirelen[k] = _u32(ring, p + 16)
            ts[k] = _u32(ring, p + 4) * 1_000_000_000 + _u32(ring, p + 8)
            if status & TP_STATUS_VLAN_VALID and take >= 12:
                tpid = _u16(ring, p + 36) if status & TP_STATUS_VLAN_TPID_VALID else np.int64(0x8100)
                tci = _u32(ring, p + 32)
                out[pos:pos + 12] = ring[data:data + 12]
                out[pos + 12] = tpid >> 8
                out[pos + 13] = tpid & 0xFF
                out[pos + 14] = (tci >> 8) & 0xFF
                out[pos + 15] = tci & 0xFF
                out[pos + 16:pos + 4 + take] = ring[data + 12:data + take]
                take += 4
                wirelen[k] += 4
            else:
                out[pos:pos + take] = ring[data:data + take]
            caplen[k] = take
            pos += take
            k += 1
            p += _u32(ring, p)                         # tp_next_offset
        ring[b + 8:b + 12] = 0                        # block_status = TP_STATUS_KERNEL: hand it back
    return k, pos


def _warm_up() -> None:
    z = np.zeros(0, np.int64)
    drain_blocks(np.zeros(64, np.uint8), z, 0, np.zeros(0, np.uint8), z, z, z, z)


class AfPacketCapture:
    """AF_PACKET capture on a TPACKET_V3 ring (Linux), optionally in a fanout group."""

    def __init__(self, iface: str, bpf: str = "", snaplen: int = DEFAULT_SNAPLEN, buffer_mb: int = DEFAULT_BUFFER_MB,
                 promisc: bool = True, fanout: int | None = None, batch_size: int = DEFAULT_BATCH, flush_ms: int = DEFAULT_FLUSH_MS,
                 block_kb: int = 1024):
        self.stats = LiveStats()
        arphrd = interface_type(iface)
        self.link = LINK_BY_ARPHRD[arphrd]
        self.snaplen, self.batch_size, self.flush_s = snaplen, batch_size, flush_ms / 1000
        self.block_size = block_kb << 10
        self.block_nr = max(2, (buffer_mb << 20) // self.block_size)
        _warm_up()       # compile (or load) the walker before the ring starts filling
        try:
            # Protocol 0 receives nothing until bind() names the interface, so the ring never
            # holds other interfaces' packets.
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
            if bpf:   # attach before the ring fills with unfiltered packets
                prog, insns = _bpf_program(bpf, self.link, snaplen)
                s.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, prog)    # the kernel copies insns
                del insns
            s.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
            # tpacket_req3: block size, block count, frame size, frame count, block timeout (ms),
            # private area size, feature word. Frames are variable in V3; frame size only bounds one.
            frame = 2048
            req = struct.pack("7I", self.block_size, self.block_nr, frame, self.block_size // frame * self.block_nr,
                              max(1, flush_ms // 2), 0, 0)
            s.setsockopt(SOL_PACKET, PACKET_RX_RING, req)
            self._mm = mmap.mmap(s.fileno(), self.block_size * self.block_nr, mmap.MAP_SHARED,
                                 mmap.PROT_READ | mmap.PROT_WRITE)
            s.bind((iface, ETH_P_ALL))
            if arphrd == ARPHRD_LOOPBACK:     # each loopback packet is seen leaving and arriving; keep one,
                s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)     # as libpcap does
            if promisc:
                s.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP,
                             struct.pack("iHH8s", socket.if_nametoindex(iface), PACKET_MR_PROMISC, 0, b""))
            if fanout is not None:
                # No PACKET_FANOUT_FLAG_DEFRAG: it delivers reassembled datagrams, and we count
                # every fragment. The kernel's flow hash skips ports of fragments, so all fragments
                # of a datagram still reach the same collector (its decoder matches them up).
                s.setsockopt(SOL_PACKET, PACKET_FANOUT, struct.pack("I", (fanout & 0xFFFF) | (PACKET_FANOUT_HASH << 16)))
        except OSError as e:
            raise CaptureError(f"{iface}: {e}") from e
        self._sock = s
        self._iface_drops = InterfaceDrops(iface)
        self.ring = np.frombuffer(self._mm, np.uint8)
        self._next = 0       # the kernel fills blocks in ring order

    def _ready(self) -> list[int]:
        """Offsets of the blocks the kernel has handed to us, in order, from the next expected one."""
        out = []
        for i in range(self.block_nr):
            b = ((self._next + i) % self.block_nr) * self.block_size
            if not self.ring[b + 8] & TP_STATUS_USER:
                break
            out.append(b)
        return out

    def batches(self, stop: Callable[[], bool]) -> Iterator[RawBatch]:
        poller = select.poll()
        poller.register(self._sock.fileno(), select.POLLIN | select.POLLERR)
        while not stop():
            blocks, n, deadline = [], 0, time.monotonic() + self.flush_s
            while n < self.batch_size and not stop():
                ready = self._ready()
                if ready:
                    # A block stays ours until drained, so these are not seen twice.
                    self._next = (self._next + len(ready)) % self.block_nr
                    blocks += ready
                    n += self._packets_in(ready)
                    if len(blocks) * 2 >= self.block_nr:    # don't sit on half the ring
                        break
                    continue
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                poller.poll(left * 1000)
            self._read_kernel_stats()
            if blocks:
                yield self._drain(blocks, n)
        if getattr(stop, "drain", True):
            yield from self._drain_rest(poller)

    def _drain_rest(self, poller) -> Iterator[RawBatch]:
        """Stopped (--duration, a signal): hand over every packet the kernel already took. A partly
        filled block is retired by the kernel within its timeout (flush_ms / 2)."""
        end = time.monotonic() + self.flush_s
        while True:
            ready = self._ready()[:max(1, self.block_nr // 2)]
            if ready:
                self._next = (self._next + len(ready)) % self.block_nr
                yield self._drain(ready, self._packets_in(ready))
                continue
            left = end - time.monotonic()
            if left <= 0:
                break
            poller.poll(left * 1000)
        self._read_kernel_stats()

    def _packets_in(self, blocks: list[int]) -> int:
        """Packets the kernel put in these ready blocks (num_pkts of each block descriptor)."""
        return sum(int(self.ring[b + 12:b + 16].view(np.uint32)[0]) for b in blocks)

    def _drain(self, blocks: list[int], n: int) -> RawBatch:
        room = sum(int(self.ring[b + 20:b + 24].view(np.uint32)[0]) for b in blocks) + 4 * n
        out = np.empty(room, np.uint8)
        off, caplen, wirelen, ts = (np.empty(n, np.int64) for _ in range(4))
        k, used = drain_blocks(self.ring, np.array(blocks, np.int64), self.snaplen, out, off, caplen, wirelen, ts)
        self.stats.packets += k
        self.stats.bytes_captured += used
        self.stats.batches += 1
        return _raw_batch(out[:used], off[:k], caplen[:k], wirelen[:k], ts[:k], self.link)

    def _read_kernel_stats(self) -> None:
        # tpacket_stats_v3: packets, drops, freeze count. Reading resets the kernel's counters.
        recv, drops, _ = struct.unpack("3I", self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 12))
        self.stats.kernel_received += recv
        self.stats.kernel_drops += drops
        self.stats.iface_drops = self._iface_drops.since_start()

    def close(self) -> None:
        self._read_kernel_stats()
        self.ring = None
        self._mm.close()
        self._sock.close()


def _bpf_program(expr: str, link: int, snaplen: int):
    """A classic BPF program for SO_ATTACH_FILTER, compiled by libpcap (pcapy-ng): the sock_fprog
    bytes and the instruction buffer they point to, which must live until the setsockopt."""
    import ctypes

    import pcapy
    try:
        insns = pcapy.compile(link, snaplen, expr, 1, 0xFFFFFFFF).get_bpf()
    except Exception as e:
        raise CaptureError(f"bad filter {expr!r}: {e}") from e
    code = b"".join(struct.pack("HBBI", *i) for i in insns)
    buf = ctypes.create_string_buffer(code, len(code))
    return struct.pack("HP", len(insns), ctypes.addressof(buf)), buf


def open_live(method: str, iface: str, **kw):
    """`method` is "pcap" (libpcap) or "afpacket" (TPACKET_V3 ring)."""
    try:
        socket.if_nametoindex(iface)
    except OSError:
        raise CaptureError(f"{iface}: no such interface; `netspectra collect --list-interfaces` lists them") from None
    if method == "pcap":
        return PcapCapture(iface, **kw)
    if method == "afpacket":
        return AfPacketCapture(iface, **kw)
    raise CaptureError(f"unknown capture method {method!r}")
