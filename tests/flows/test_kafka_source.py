"""The engine's Kafka source, the parts that need no broker: dropping messages a producer sent
twice (same producer id and sequence), within bounded memory."""
from __future__ import annotations

import struct

from collectors.publish import PRODUCER_HEADER, SEQUENCE_HEADER
from flows.kafka_source import DEDUP_PRODUCERS, DEDUP_WINDOW, Dedup


def h(pid: bytes, seq: int):
    return [(PRODUCER_HEADER, pid), (SEQUENCE_HEADER, struct.pack(">Q", seq))]


def test_a_repeat_is_dropped_and_reordering_is_not_a_repeat():
    d = Dedup()
    assert [d.repeat(h(b"A" * 8, s)) for s in (0, 1, 3, 2, 1, 3, 4)] == [False, False, False, False, True, True, False]
    assert not d.repeat(h(b"B" * 8, 1))                       # another producer's sequence
    assert not d.repeat([]) and not d.repeat([]) and not d.repeat(None)    # foreign messages pass


def test_the_state_survives_a_snapshot():
    d = Dedup()
    d.repeat(h(b"A" * 8, 7))
    again = Dedup(d.state())
    assert again.repeat(h(b"A" * 8, 7)) and not again.repeat(h(b"A" * 8, 8))


def test_memory_is_bounded():
    d = Dedup()
    for s in range(5 * DEDUP_WINDOW):
        assert not d.repeat(h(b"A" * 8, s))
    assert len(d.seen[b"A" * 8]) <= 2 * DEDUP_WINDOW
    assert d.repeat(h(b"A" * 8, 5 * DEDUP_WINDOW - 1))        # the newest are still known
    for p in range(2 * DEDUP_PRODUCERS):
        d.repeat(h(p.to_bytes(8, "big"), 0))
    assert len(d.seen) == DEDUP_PRODUCERS
