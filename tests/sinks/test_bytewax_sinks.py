"""The sink partition's overlapped write: one write in flight, in order, waited for by the next
write, the epoch's snapshot and close; a writer's error surfaces at the next of them.

The writer here is a recorder (the partition's logic is what is tested; the real writers have
their own tests against real servers, and the live pipeline tests use them through this class)."""
from __future__ import annotations

import threading

import pytest

from schemas.window_rows import WindowRows
from sinks.bytewax_sinks import _Partition


class Recorder:
    def __init__(self):
        self.written: list[int] = []
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.fail = None
        self.closed = False

    def write(self, windows):
        self.entered.set()
        assert self.gate.wait(10)
        if self.fail:
            raise self.fail
        self.written += [w.start for w in windows]

    def write_alerts(self, alerts, source):
        pass

    def close(self):
        self.closed = True


def window(start: int) -> WindowRows:
    return WindowRows(start, 10, True)


def test_a_write_runs_while_the_dataflow_goes_on_and_the_snapshot_waits_for_it():
    rec = Recorder()
    part = _Partition(rec, "src", "test", overlap=True)
    part.write_batch([window(1)])               # returns with the write in flight
    assert rec.entered.wait(5) and rec.written == []
    snap = threading.Thread(target=part.snapshot)
    snap.start()
    snap.join(0.3)
    assert snap.is_alive(), "the snapshot must wait for the write in flight"
    rec.gate.set()
    snap.join(5)
    assert not snap.is_alive() and rec.written == [1]
    part.write_batch([window(2)])
    part.write_batch([window(3)])               # waits for 2 first: in order, one at a time
    part.close()
    assert rec.written == [1, 2, 3] and rec.closed


def test_a_writer_error_ends_the_flow_at_the_next_call():
    rec = Recorder()
    rec.fail = ValueError("schema mismatch")
    part = _Partition(rec, "src", "test", overlap=True)
    part.write_batch([window(1)])
    rec.gate.set()
    with pytest.raises(ValueError, match="schema mismatch"):
        part.snapshot()


def test_without_overlap_the_write_is_done_on_return():
    rec = Recorder()
    rec.gate.set()
    part = _Partition(rec, "src", "test")
    part.write_batch([window(1)])
    assert rec.written == [1]
