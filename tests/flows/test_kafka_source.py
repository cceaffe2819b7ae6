"""The engine's Kafka source: dropping messages a producer sent
twice (same producer id and sequence), within bounded memory; and read-ahead bounded across
partitions (the last test with a real broker)."""
from __future__ import annotations

import struct

from collectors.publish import PRODUCER_HEADER, SEQUENCE_HEADER
from flows.kafka_source import DEDUP_PRODUCERS, DEDUP_WINDOW, Dedup, ReadAlignment


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


def test_a_partition_ahead_of_the_slowest_waits():
    a = ReadAlignment(ahead_ms=5000)
    a.update(0, 100_000, at_end=False)
    a.update(1, 104_000, at_end=False)
    assert not a.waits(0) and not a.waits(1)                 # within the bound
    a.update(1, 106_000, at_end=False)
    assert a.waits(1) and not a.waits(0)                     # the slowest never waits
    a.update(0, 102_000, at_end=False)
    assert not a.waits(1)
    a.update(2, None, at_end=False)
    assert not a.waits(2)                                    # nothing read yet: nothing to wait for
    a.update(1, 200_000, at_end=False)
    assert a.waits(1)
    a.update(0, None, at_end=True)                           # at the end of its log: holds nobody back
    assert not a.waits(1)
    a.update(0, None, at_end=False)
    assert a.waits(1)
    a.drop(0)
    assert not a.waits(1)


def test_reading_ahead_waits_for_a_partition_that_is_not_read(local_stack):
    """A worker stalled (its partition not polled) stops the process's other partitions at the
    read-ahead bound, on broker timestamps; they go on once it reaches the end of its log. Real
    Tansu."""
    from bytewax.connectors.kafka import KafkaSourceMessage
    from confluent_kafka import Producer

    from collectors.publish import ensure_topic
    from flows.kafka_source import PacketSource
    from tests.support import wait_for

    _, ports, _ = local_stack
    boot, topic = f"127.0.0.1:{ports['kafka']}", "read-ahead"
    ensure_topic(boot, topic, 2)
    prod = Producer({"bootstrap.servers": boot})
    base = 1_700_000_000_000
    for i in range(600):                                     # the slow partition: all at `base`
        prod.produce(topic, b"s%d" % i, partition=1, timestamp=base)
    for i in range(300):                                     # the fast one: a minute later
        prod.produce(topic, b"f%d" % i, partition=0, timestamp=base + 60_000)
    assert prod.flush(15) == 0
    src = PacketSource(boot, topic, read_ahead_s=5)
    fast, slow = src.build_part("in", "0", None), src.build_part("in", "1", None)
    got = {0: [], 1: []}

    def poll(part, n):
        got[n] += [m for m in part.next_batch() if isinstance(m, KafkaSourceMessage)]
        return got[n]

    try:
        wait_for(lambda: poll(slow, 1), 30, "the slow partition's first messages")
        assert len(got[1]) < 600 and not slow.at_end
        wait_for(lambda: poll(fast, 0), 30, "the fast partition's first messages")
        assert got[0][0].timestamp == (1, base + 60_000)     # CreateTime, as produced
        for _ in range(50):
            poll(fast, 0)
        assert fast.waiting and len(got[0]) < 300            # it stopped at the bound
        wait_for(lambda: len(poll(slow, 1)) == 600 and slow.at_end, 30, "the slow partition's end")
        wait_for(lambda: len(poll(fast, 0)) == 300, 30, "the rest of the fast partition")
        assert not fast.waiting
    finally:
        fast.close()
        slow.close()
