"""RawBatch: captured frames before decoding, as columns over one shared byte buffer."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class RawBatch:
    """`buf` holds the frames (a memory-mapped capture file or a libpcap batch buffer);
    frame i is buf[off[i] : off[i] + caplen[i]]. All per-packet arrays have equal length."""

    buf: np.ndarray       # uint8
    off: np.ndarray       # int64 start of each frame in buf
    caplen: np.ndarray    # int64 captured bytes
    wirelen: np.ndarray   # int64 original frame length (== caplen when unknown)
    ts_ns: np.ndarray     # int64 nanoseconds since the epoch
    link: np.ndarray      # uint16 link type of each frame (pcapng interfaces may differ)
    iface: np.ndarray     # uint16 interface index within the capture

    def __len__(self) -> int:
        return int(self.off.shape[0])

    @classmethod
    def from_frames(cls, frames: list[bytes], link: int, ts_ns: list[int] | None = None) -> "RawBatch":
        """Build a batch from individual frames (tests, fuzzing, small inputs)."""
        lens = np.array([len(f) for f in frames], dtype=np.int64)
        off = np.zeros(len(frames), dtype=np.int64)
        if len(frames) > 1:
            np.cumsum(lens[:-1], out=off[1:])
        buf = np.frombuffer(b"".join(frames), dtype=np.uint8) if frames else np.zeros(0, np.uint8)
        ts = np.asarray(ts_ns if ts_ns is not None else np.arange(len(frames)), dtype=np.int64)
        return cls(buf=buf, off=off, caplen=lens, wirelen=lens.copy(), ts_ns=ts,
                   link=np.full(len(frames), link, np.uint16), iface=np.zeros(len(frames), np.uint16))
