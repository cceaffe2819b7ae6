"""Internal addresses replaced by stable names before anything leaves for the LLM, and put back
in its answer: within one request the same address is always the same name (HOST-1, HOST-2, …),
so the model can still reason about who talked to whom. Addresses outside the internal
networks (the attacker, the public service) are kept: they are what the analysis is about."""
from __future__ import annotations

import ipaddress
import re

# IPv6 written with at least two colons (and maybe a dotted quad at its end), or IPv4 (also
# right after a colon: "src:10.0.0.1", "10.0.0.1:443"); each candidate is then parsed, so that a
# time (12:30:01) or a MAC address is left alone
_V4 = r"\d{1,3}(?:\.\d{1,3}){3}"
_ADDRESS = re.compile(rf"(?<![\w.:])[0-9A-Fa-f]{{0,4}}(?::[0-9A-Fa-f]{{0,4}}){{1,6}}:{_V4}(?![\w:]|\.\d)"
                      rf"|(?<![\w.:])[0-9A-Fa-f]{{0,4}}(?::[0-9A-Fa-f]{{0,4}}){{2,7}}(?![\w:]|\.\d)"
                      rf"|(?<![\w.]){_V4}(?!\w|\.\d)")
_NAME = re.compile(r"\bHOST-(\d+)\b")


class Pseudonyms:
    def __init__(self, networks: list[str]):
        self.networks = [ipaddress.ip_network(n, strict=False) for n in networks]
        self.names: dict[str, str] = {}        # address (normalised) -> name
        self.addresses: dict[str, str] = {}    # name -> address as first written

    def _internal(self, addr) -> bool:
        addr = getattr(addr, "ipv4_mapped", None) or addr          # ::ffff:10.0.0.1 is 10.0.0.1
        return any(addr.version == n.version and addr in n for n in self.networks)

    def hide(self, text: str) -> str:
        def sub(m: re.Match) -> str:
            try:
                addr = ipaddress.ip_address(m.group(0))
            except ValueError:
                return m.group(0)
            if not self._internal(addr):
                return m.group(0)
            key = str(addr)
            if key not in self.names:
                name = f"HOST-{len(self.names) + 1}"
                self.names[key], self.addresses[name] = name, m.group(0)
            return self.names[key]
        return _ADDRESS.sub(sub, text)

    def reveal(self, text: str) -> str:
        """The names put back (a name this request never gave is left as written)."""
        return _NAME.sub(lambda m: self.addresses.get(m.group(0), m.group(0)), text)


_PARTIAL = re.compile(r"H(?:O(?:S(?:T(?:-\d*)?)?)?)?$")


class RevealStream:
    """`reveal` over a streamed answer: a name split between two chunks ("HOS" + "T-3") is held
    back until it is whole, so each piece of text goes on as soon as it can."""

    def __init__(self, names: Pseudonyms):
        self.names = names
        self._held = ""

    def feed(self, text: str) -> str:
        text = self._held + text
        m = _PARTIAL.search(text)
        if m and (m.start() == 0 or not text[m.start() - 1].isalnum()):
            text, self._held = text[:m.start()], text[m.start():]
        else:
            self._held = ""
        return self.names.reveal(text)

    def flush(self) -> str:
        text, self._held = self._held, ""
        return self.names.reveal(text)
