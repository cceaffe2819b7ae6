"""The AI gateway's pure parts: the SSE parser (however the stream is cut into pieces, the same
events), and pseudonymisation (internal addresses hidden consistently, put back in the answer,
also when a name is split between streamed pieces)."""
from __future__ import annotations

from hypothesis import given, settings, strategies as st

from api.ai.pseudonym import Pseudonyms, RevealStream
from api.ai.sse import DONE, SseParser

EVENTS = [{"data": ['{"a": 1}']}, {"data": ["line one", "line two"]}, {"data": [DONE]}]


def _wire(newline: str) -> str:
    text = ": keep-alive" + newline + newline
    for e in EVENTS:
        text += "event: message" + newline + "".join(f"data: {d}{newline}" for d in e["data"]) + newline
    return text


@settings(max_examples=200, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=12),
       newline=st.sampled_from(["\n", "\r\n", "\r"]))
def test_sse_events_are_the_same_however_the_stream_is_cut(cuts, newline):
    wire = _wire(newline)
    p, got, last = SseParser(), [], 0
    for c in sorted(min(c, len(wire)) for c in cuts) + [len(wire)]:
        got += p.feed(wire[last:c])
        last = c
    got += p.close()
    assert got == ['{"a": 1}', "line one\nline two", DONE]


def test_sse_data_without_a_space_and_an_unfinished_last_event():
    p = SseParser()
    assert p.feed("data:x\n\ndata: y") == ["x"]
    assert p.close() == ["y"]


def test_internal_addresses_get_stable_names_and_come_back():
    p = Pseudonyms(["10.0.0.0/8", "fd00::/8"])
    text = ("10.1.2.3 sent 4,000 SYNs to 10.1.2.4 and to 8.8.8.8; 10.1.2.3 again at 12:30:01; "
            "fd00::1 and 2001:db8::1, MAC 02:42:ac:11:00:02, version 1.2.3.4.5; 10.1.2.4:443, src:10.9.9.9, "
            "::ffff:10.1.2.3; last fd00::1.")
    hidden = p.hide(text)
    assert hidden == ("HOST-1 sent 4,000 SYNs to HOST-2 and to 8.8.8.8; HOST-1 again at 12:30:01; "
                      "HOST-3 and 2001:db8::1, MAC 02:42:ac:11:00:02, version 1.2.3.4.5; HOST-2:443, src:HOST-4, "
                      "HOST-5; last HOST-3.")
    assert p.reveal(hidden) == text
    assert p.reveal("HOST-9 is unknown; HOST-10x is not a name") == "HOST-9 is unknown; HOST-10x is not a name"


@settings(max_examples=200, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=80), max_size=8))
def test_names_split_between_streamed_pieces_come_back_whole(cuts):
    p = Pseudonyms(["10.0.0.0/8"])
    for i in range(1, 13):
        p.hide(f"10.0.0.{i}")
    answer = "HOST-1 talked to HOST-12 (HOST-2 was quiet); HOSTS and HOST-x are words."
    r, out, last = RevealStream(p), "", 0
    for c in sorted(min(c, len(answer)) for c in cuts) + [len(answer)]:
        out += r.feed(answer[last:c])
        last = c
    out += r.flush()
    assert out == "10.0.0.1 talked to 10.0.0.12 (10.0.0.2 was quiet); HOSTS and HOST-x are words."


def test_sse_event_names_go_with_their_data():
    p = SseParser()
    assert p.feed_events("event: chunk\ndata: 1\n\ndata: 2\n\nevent: error\nda") == [("chunk", "1"), ("message", "2")]
    assert p.feed_events("ta: x\n\n") == [("error", "x")]
