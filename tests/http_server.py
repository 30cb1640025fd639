"""A real HTTP server on 127.0.0.1 that misbehaves on demand (download tests and the download fuzzing suite).

`Server` holds what is served and how; `serve()` starts it in a thread and stops it. Each request's behaviour
can also come from `script(n, first_byte_asked)`, returning overrides of the fields below for that request
only (the fuzzing suite draws a script per example).
"""
from __future__ import annotations

import re
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterator


@dataclass(repr=False)
class Server:
    """What the test server serves and how it misbehaves; `requests` logs (path, Range header)."""

    base: str = ""
    files: dict[str, bytes] = field(default_factory=dict, repr=False)
    content_type: str = "application/octet-stream"
    drop_first: int = 0  # the first N requests send half of the body, then close the connection
    ignore_range: bool = False  # always answer 200 with the whole body
    per_connection: int | None = None  # at most this many body bytes per connection
    fail_first: int = 0  # the first N requests get a 503
    chunk_delay: float = 0.0  # seconds between 16 KiB pieces of the body
    trickle: float = 0.0  # > 0: send the body one byte at a time, this many seconds apart
    shift: int = 0  # answer a Range request with the bytes from (asked + shift) but claim the asked range
    length_lie: int = 0  # add this to Content-Length (the body stays the same)
    total_lie: int = 0  # add this to the total of Content-Range
    script: Callable[[int, int | None], dict] | None = field(default=None, repr=False)
    requests: list[tuple[str, str | None]] = field(default_factory=list, repr=False)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    stop: threading.Event = field(default_factory=threading.Event, repr=False)

    def __repr__(self) -> str:  # hypothesis prints the fixture in a failing example: keep it short
        return f"Server({self.base!r}, {len(self.requests)} requests)"

    def url(self, path: str) -> str:
        return self.base + path

    def ranges(self) -> list[str]:
        return [r for _, r in self.requests if r]


def _handler(state: Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep pytest output clean
            pass

        def do_GET(self) -> None:
            with state.lock:
                state.requests.append((self.path, self.headers.get("Range")))
                n = len(state.requests)
            m = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
            asked = int(m.group(1)) if m else None
            how = {k: getattr(state, k) for k in ("content_type", "ignore_range", "per_connection", "chunk_delay",
                                                  "trickle", "shift", "length_lie", "total_lie")}
            how["status"] = 503 if n <= state.fail_first else None
            how["drop"] = n <= state.drop_first
            if state.script is not None:
                how.update(state.script(n, asked))
            body = state.files.get(self.path.split("#")[0])
            if body is None:
                self.send_error(404)
                return
            if how["status"]:
                self.send_error(how["status"])
                return
            start = 0
            if asked is not None and not how["ignore_range"]:
                start = asked
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range",
                                 f"bytes {start}-{len(body) - 1}/{len(body) + how['total_lie']}")
            else:
                self.send_response(200)
            payload = body[min(len(body), start + how["shift"]) if asked is not None else start:]
            self.send_header("Content-Type", how["content_type"])
            self.send_header("Content-Length", str(max(0, len(payload) + how["length_lie"])))
            self.end_headers()
            limit = len(payload) // 2 if how["drop"] else len(payload)
            if how["per_connection"] is not None:
                limit = min(limit, how["per_connection"])
            try:
                if how["trickle"] > 0:
                    for i in range(limit):
                        if state.stop.wait(how["trickle"]):
                            break
                        self.wfile.write(payload[i:i + 1])
                        self.wfile.flush()
                elif how["chunk_delay"] > 0:
                    for i in range(0, limit, 16384):
                        self.wfile.write(payload[i:min(i + 16384, limit)])
                        self.wfile.flush()
                        time.sleep(how["chunk_delay"])
                else:
                    self.wfile.write(payload[:limit])
                if limit < len(payload) or how["length_lie"] > 0:  # hang up mid-body
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up on us: fine
                self.close_connection = True

    return Handler


@contextmanager
def serve(state: Server) -> Iterator[Server]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield state
    finally:
        state.stop.set()
        httpd.shutdown()
        httpd.server_close()
