"""Server-Sent Events as an OpenAI-compatible endpoint streams them: lines of `field: value`,
events ended by a blank line; a chat completion sends each chunk as `data: {json}` and ends
with `data: [DONE]`. Pure and incremental: fed whatever the network hands over (an event may
arrive in pieces, several in one), it gives each complete event once."""
from __future__ import annotations

DONE = "[DONE]"


class SseParser:
    def __init__(self):
        self._buf = ""
        self._data: list[str] = []
        self._event = "message"

    def feed(self, text: str) -> list[str]:
        """The data of every event completed by `text` (multi-line data joined by newlines)."""
        return [data for _event, data in self.feed_events(text)]

    def feed_events(self, text: str) -> list[tuple[str, str]]:
        """(event name, data) of every event completed by `text` ("message" when unnamed)."""
        self._buf += text
        out = []
        while True:
            cut = _line_end(self._buf)
            if cut is None:
                return out
            line, self._buf = self._buf[:cut[0]], self._buf[cut[1]:]
            if line == "":
                if self._data:
                    out.append((self._event, "\n".join(self._data)))
                self._data, self._event = [], "message"
            elif not line.startswith(":"):          # ":" starts a comment (keep-alive)
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "data":
                    self._data.append(value)
                elif name == "event":
                    self._event = value

    def close(self) -> list[str]:
        """An event the stream ended inside (no blank line after it): given if it has data."""
        return self.feed("\n\n") if self._buf or self._data else []


def _line_end(buf: str):
    """(end of the first line, start of the next) for \\n, \\r\\n or \\r endings; None if the line is
    not complete (a trailing \\r may be the start of \\r\\n)."""
    for i, ch in enumerate(buf):
        if ch == "\n":
            return i, i + 1
        if ch == "\r":
            if i + 1 == len(buf):
                return None
            return (i, i + 2) if buf[i + 1] == "\n" else (i, i + 1)
    return None
