"""The embedded store's sessions (sinks/chdb_store.py): reads from several threads run on
sessions of their own, each answer computed with its own parameters; a write changes the store's
version before and after, so a read that overlapped it is never cached as current."""
from __future__ import annotations

import threading

from sinks import chdb_store
from tests.support import capture_windows, dns_answers_written, rows_of, write_dns_answers_capture


def test_parallel_reads_each_get_the_answer_to_their_own_parameters(tmp_path):
    store = chdb_store.ChdbStore(str(tmp_path / "store"))
    threads, wrong, done = 6, [], []

    def ask(i: int) -> None:
        for k in range(60):
            n = i * 1000 + k
            got = store.query("SELECT {n:UInt32} * 2, {s:String}", "TabSeparated", {"n": n, "s": f"t{n}"})
            if got != f"{n * 2}\tt{n}\n":
                wrong.append((n, got))
        done.append(i)

    workers = [threading.Thread(target=ask, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert len(done) == threads and wrong == []
    with store._sessions.reader() as one, store._sessions.reader() as other:
        assert one is not other and one is not store.sess     # a read does not wait for another, nor a write


def test_a_write_changes_the_version_before_and_after_it(tmp_path):
    store = chdb_store.ChdbStore(str(tmp_path / "store"))
    seen = []
    writer = store.sess

    class Watching:             # the real session; notes the version while the statement runs
        def query(self, *a, **kw):
            seen.append(chdb_store.write_version(store.path))
            return writer.query(*a, **kw)

    before = chdb_store.write_version(store.path)
    store.sess = Watching()
    store.query("CREATE TABLE IF NOT EXISTS default.t (x UInt8) ENGINE = Memory")
    store.sess = writer
    after = chdb_store.write_version(store.path)
    assert before < seen[0] < after         # a read begun during the write sees neither end's version
    store.query("SELECT 1")
    assert chdb_store.write_version(store.path) == after


def test_dns_names_are_written_once_however_often(tmp_path):
    write_dns_answers_capture(tmp_path / "dns.pcap")
    store = chdb_store.ChdbStore(str(tmp_path / "store"))
    rows = rows_of(capture_windows(tmp_path / "dns.pcap", 10), "dns")
    store.write(rows)
    store.write(rows)
    assert dns_answers_written(store.rows, "dns")
