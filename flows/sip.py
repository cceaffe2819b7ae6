"""The SIP calls of a window, from the decoder's SIP rows (collectors/decode/sip.py): one per
Call-ID, what the sip_calls table keeps and ListSipCalls reads.

A call is every message with its Call-ID (a REGISTER dialog's refreshes too): its first message
by time gives From, To and the addresses (the caller's side: in-dialog requests from the callee
swap From and To); its first request's method says what it is (INVITE, REGISTER, OPTIONS...);
its status is its last final response (200 or more) by time, 0 with none (an unanswered or
still ringing INVITE). The decoder reads no CSeq: after an answered INVITE a BYE's 200 is the
last final one, after a CANCEL the 487 or 408, whichever came last. Requests and responses are
counted (retransmissions too, as tshark lists them).

Every part of a call combines by min/max/sum, so any order of batches, shards and revisions
gives the same row; a call spanning windows has a row in each, which the API joins. The decoder
parsed each message in Python already, so messages are gathered with a dict here, at a fraction
of that cost; at most MAX_CALLS calls a window (a SIP scanner's random Call-IDs have more), the
messages of others counted in `sip_calls_dropped`, those without a Call-ID in `sip_no_call_id`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MAX_CALLS = 100_000
_NO_REQUEST = (1 << 63, "")         # (time, method): no request seen
_NO_FINAL = (-1, 0)                 # (time, status): no final response seen


@dataclass(frozen=True)
class SipCalls:
    # Call-ID -> ((first time, from, to, src 16 bytes, dst), (first request's time, method),
    #             (last final response's time, status), last time, requests, responses)
    calls: dict = field(default_factory=dict)
    dropped: int = 0            # messages of calls past MAX_CALLS
    no_call_id: int = 0         # messages without a Call-ID (counted, not kept)

    def __len__(self) -> int:
        return len(self.calls)

    @staticmethod
    def from_batch(batch, wins: np.ndarray, starts: list[int]) -> dict[int, "SipCalls"]:
        """window start -> the calls of the batch's SIP messages in that window."""
        l7 = batch.l7
        n = len(l7)
        if not n or len(l7.sip_status) != n:
            return {}
        status = np.asarray(l7.sip_status, np.int64)
        request = np.fromiter((m is not None for m in l7.sip_method), bool, n)
        idx = np.flatnonzero(request | (status >= 0))
        if not len(idx):
            return {}
        rows = l7.row[idx].astype(np.int64)
        src, dst = batch.src[rows].tobytes(), batch.dst[rows].tobytes()
        method, call_id, frm, to = l7.sip_method, l7.sip_call_id, l7.sip_from, l7.sip_to
        out: dict[int, list] = {}       # window -> [calls, dropped, no_call_id]
        for j, (i, ts, w) in enumerate(zip(idx.tolist(), batch.ts_ns[rows].tolist(), wins[rows].tolist())):
            part = out.setdefault(w, [{}, 0, 0])
            cid = call_id[i]
            if not cid:
                part[2] += 1
                continue
            m, st = method[i], int(status[i])
            msg = ((ts, frm[i] or "", to[i] or "", src[16 * j:16 * j + 16], dst[16 * j:16 * j + 16]),
                   (ts, m) if m is not None else _NO_REQUEST, (ts, st) if st >= 200 else _NO_FINAL, ts,
                   int(m is not None), int(m is None))
            part[1] += _add(part[0], cid, msg)
        return {w: SipCalls(c, d, u) for w, (c, d, u) in out.items()}

    @staticmethod
    def combine(parts: list) -> "SipCalls | None":
        parts = [p for p in parts if p is not None]
        if len(parts) <= 1:
            return parts[0] if parts else None
        calls = dict(parts[0].calls)
        dropped = sum(p.dropped for p in parts)
        for p in parts[1:]:
            for k, v in p.calls.items():
                dropped += _add(calls, k, v)
        return SipCalls(calls, dropped, sum(p.no_call_id for p in parts))

    def table_columns(self) -> dict:
        """The sip_calls table's columns (schemas/clickhouse.py), sorted by Call-ID (times in ns, 0 when none)."""
        items = sorted(self.calls.items())
        first = [v[0] for _, v in items]
        req = [v[1] for _, v in items]
        fin = [v[2] for _, v in items]

        def addr(k: int) -> np.ndarray:
            return np.frombuffer(b"".join(f[k] for f in first), np.uint8).reshape(-1, 16)
        return {"call_id": [k for k, _ in items], "method": [r[1] for r in req],
                "from_uri": [f[1] for f in first], "to_uri": [f[2] for f in first], "src": addr(3), "dst": addr(4),
                "first_seen": np.array([f[0] for f in first], np.int64),
                "last_seen": np.array([v[3] for _, v in items], np.int64),
                "requests": np.array([v[4] for _, v in items], np.uint64),
                "responses": np.array([v[5] for _, v in items], np.uint64),
                "status": np.array([f[1] for f in fin], np.uint16),
                "method_seen": np.array([r[0] if r[1] else 0 for r in req], np.int64),
                "status_seen": np.array([max(f[0], 0) for f in fin], np.int64)}


def _add(calls: dict, key: str, value: tuple) -> int:
    """Merge a call's part into `calls` (new calls only up to MAX_CALLS); the messages left out."""
    have = calls.get(key)
    if have is None:
        if len(calls) >= MAX_CALLS:
            return value[4] + value[5]
        calls[key] = value
    else:
        calls[key] = (min(have[0], value[0]), min(have[1], value[1]), max(have[2], value[2]),
                      max(have[3], value[3]), have[4] + value[4], have[5] + value[5])
    return 0
