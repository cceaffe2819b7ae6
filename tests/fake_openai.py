"""A local OpenAI-compatible Chat Completions endpoint for the AI gateway's tests: real HTTP on
127.0.0.1, the real wire format (JSON answers, SSE streams in chunked encoding). Each request is
recorded (headers, JSON body); answers come from a script, in order, then a default echo.

    with FakeOpenAI() as ai:
        ai.script.append(Reply(status=429, headers={"Retry-After": "0"}))
        ai.script.append(Reply(stream=["Hel", "lo"]))
        ... ai.url, ai.requests, ai.disconnects
"""
from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional


@dataclass
class Reply:
    status: int = 200
    headers: dict = field(default_factory=dict)
    body: Optional[dict] = None             # a JSON answer (default: a completion of `text`)
    text: str = "ok"
    stream: Optional[list] = None           # text deltas, sent as chat.completion.chunk events
    usage: Optional[dict] = None            # sent in the last chunk (or the answer)
    tool_calls: Optional[list] = None
    gate: Optional[threading.Event] = None  # a stream waits for it after its first delta, an answer before it
    delay_s: float = 0.0                    # between stream events
    done: bool = True                       # end the stream with data: [DONE]
    cut: bool = False                       # end the stream in the middle of a chunk
    raw: Optional[list] = None              # SSE text sent as it is (pieces), instead of `stream`


def completion(text: str, usage: Optional[dict] = None, tool_calls: Optional[list] = None) -> dict:
    msg = {"role": "assistant", "content": text if not tool_calls else None}
    if tool_calls:
        msg["tool_calls"] = tool_calls
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "fake",
            "choices": [{"index": 0, "message": msg, "finish_reason": "tool_calls" if tool_calls else "stop"}],
            "usage": usage or {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}


def chunk(delta: Optional[str] = None, usage: Optional[dict] = None) -> str:
    obj = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": "fake",
           "choices": [] if delta is None else [{"index": 0, "delta": {"content": delta}, "finish_reason": None}]}
    if usage:
        obj["usage"] = usage
    return f"data: {json.dumps(obj)}\n\n"


def tool_call_stream(arguments: str, name: str = "aggregate_flows") -> list[str]:
    """SSE pieces (Reply.raw) of a model's streamed turn that calls `name`, its arguments in two pieces."""
    def ev(delta):
        return "data: " + json.dumps({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": "fake",
                                      "choices": [{"index": 0, "delta": delta}]}) + "\n\n"
    half = len(arguments) // 2
    return [ev({"role": "assistant", "tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                                     "function": {"name": name, "arguments": ""}}]}),
            ev({"tool_calls": [{"index": 0, "function": {"arguments": arguments[:half]}}]}),
            ev({"tool_calls": [{"index": 0, "function": {"arguments": arguments[half:]}}]}),
            "data: [DONE]\n\n"]


class FakeOpenAI:
    def __init__(self):
        self.script: list[Reply] = []
        self.requests: list[dict] = []
        self.disconnects = 0
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with fake.lock:
                    fake.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                    reply = fake.script.pop(0) if fake.script else Reply()
                try:
                    if reply.stream is not None or reply.raw is not None:
                        self._stream(reply)
                    else:
                        self._json(reply)
                except (BrokenPipeError, ConnectionResetError):
                    with fake.lock:
                        fake.disconnects += 1
                    self.close_connection = True

            def _json(self, reply: Reply):
                if reply.gate is not None:      # the answer held until the test lets it go
                    reply.gate.wait(30)
                if reply.body is not None:
                    data = reply.body
                elif reply.status == 200:
                    data = completion(reply.text, reply.usage, reply.tool_calls)
                else:
                    data = {"error": {"message": f"fake error {reply.status}", "type": "server_error"}}
                raw = json.dumps(data).encode()
                self.send_response(reply.status)
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _stream(self, reply: Reply):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                pieces = list(reply.raw) if reply.raw is not None else [chunk(d) for d in reply.stream]
                if reply.raw is None:
                    pieces += [chunk(None, reply.usage)] if reply.usage else []
                    pieces += ["data: [DONE]\n\n"] if reply.done else []
                for i, p in enumerate(pieces):
                    if i and reply.delay_s:
                        threading.Event().wait(reply.delay_s)
                    data = p.encode()
                    if reply.cut and i == len(pieces) - 1:
                        self.wfile.write(f"{len(data) + 10:x}\r\n".encode() + data)     # a chunk never finished
                        self.wfile.flush()
                        self.connection.shutdown(socket.SHUT_RDWR)
                        self.close_connection = True
                        return
                    self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                    self.wfile.flush()
                    if i == 0 and reply.gate is not None:
                        reply.gate.wait(30)
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):     # a client that went away: expected here
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeOpenAI":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
