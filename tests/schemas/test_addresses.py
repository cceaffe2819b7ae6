"""Address columns to text: the vectorised column conversion agrees with the one-address one,
for IPv4-mapped and IPv6 rows mixed in any order."""
from __future__ import annotations

import ipaddress

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.addresses import V4_PREFIX, column_to_text, from_text, to_text

v4 = st.binary(min_size=4, max_size=4).map(lambda b: V4_PREFIX + b)
v6 = st.binary(min_size=16, max_size=16)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(v4, v6), max_size=50))
def test_column_to_text_is_to_text_of_each_row(addrs):
    col = np.frombuffer(b"".join(addrs), np.uint8).reshape(-1, 16)
    assert column_to_text(col) == [to_text(a) for a in addrs]


def test_text_round_trips():
    for text in ("192.0.2.1", "0.0.0.0", "255.255.255.255", "2001:db8::1", "::1"):
        assert column_to_text(np.frombuffer(from_text(text), np.uint8).reshape(1, 16)) == [text]
    assert str(ipaddress.ip_address("::ffff:1.2.3.4").ipv4_mapped) == to_text(from_text("1.2.3.4"))
