"""The names a window's DNS responses give addresses (flows/dns.py: DnsCounts.names, the
dns_names table): per (address, record owner, question), the A and AAAA records that said so."""
from __future__ import annotations

import numpy as np
import pytest

from flows import dns as D
from flows.rows import result_tables
from schemas.addresses import from_text
from tests.support import DNS_ANSWERS, DNS_T0, capture_windows, write_dns_answers_capture

S = 10**9


def _windows(path) -> list:
    return capture_windows(path, 10, shards=2)


@pytest.fixture(scope="module")
def answers_pcap(tmp_path_factory):
    path = tmp_path_factory.mktemp("dns") / "answers.pcap"
    write_dns_answers_capture(path)
    return path


def test_each_window_names_the_addresses_its_responses_gave(answers_pcap):
    """CNAME chains are named by both ends (the A record's owner and the question), glue records
    in the additional section count, NXDOMAIN and queries name nothing."""
    got = {r.start // S: r.dns.names for r in _windows(answers_pcap)}
    assert got == DNS_ANSWERS


def test_names_reach_the_table_columns_sorted(answers_pcap):
    r = next(r for r in _windows(answers_pcap) if r.start == DNS_T0 * S)
    t = result_tables(r, "src", 10)["dns_names"]
    want = sorted(DNS_ANSWERS[DNS_T0].items())
    assert [bytes(a) for a in t["addr"]] == [from_text(k[0]) for k, _ in want]
    assert t["name"] == [k[1] for k, _ in want] and t["query"] == [k[2] for k, _ in want]
    assert t["answers"].tolist() == [c for _, c in want] and t["source"] == ["src"] * len(want)


def test_past_max_names_records_are_counted_not_kept(answers_pcap, monkeypatch):
    monkeypatch.setattr(D, "MAX_NAMES", 2)
    r = next(r for r in _windows(answers_pcap) if r.start == DNS_T0 * S)
    assert len(r.dns.names) == 2 and r.dns.names_dropped == 1       # the third key's one record
    rows = result_tables(r, "src", 10)["window_counters"]
    assert ("status", "dns_names_dropped") in set(zip(rows["kind"], rows["name"]))


def test_a_corrupt_messages_names_are_skipped_and_counted():
    """A wire message is read from the broker: an address that is not one, or a None where a
    string belongs, must not stop the window."""
    counts = D.DnsCounts(np.zeros((0, 2), np.uint64), *(np.zeros(0, np.uint64),) * 3,
                         names={("192.0.2.1", "a.example", "a.example"): 2, ("not an address", "b", "b"): 3})
    addr, name, query, answers, bad = counts.name_rows()
    assert name == ["a.example"] and answers.tolist() == [2] and bad == 3

    class L7:
        dns_answers = [[(None, 1, "192.0.2.1"), ("a.example", 1, None), ("a.example", 1, "192.0.2.2")]]
        dns_qname = [None]
    assert D._names(L7, np.array([0]), np.array([5])) == {5: ({("192.0.2.2", "a.example", ""): 1}, 0)}


def test_names_survive_the_wire(answers_pcap):
    """As the engine gets them: each decoded batch through the wire format (schemas/packet_batch.py)."""
    from collectors.capture_file import CaptureFile
    from collectors.decode.decoder import Decoder
    from flows.config import WindowConfig
    from flows.window import LocalPipeline
    from schemas.packet_batch import PacketBatch
    pipe, dec, out = LocalPipeline(WindowConfig(window_s=10, shards=2)), Decoder(), []
    for raw in CaptureFile(str(answers_pcap)).batches():
        out += pipe.feed(PacketBatch.from_bytes(dec.decode(raw).to_bytes()))
    assert {r.start // S: r.dns.names for r in out + pipe.flush()} == DNS_ANSWERS
