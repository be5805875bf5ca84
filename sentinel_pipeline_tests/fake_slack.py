"""A local stand-in for the Slack Web API, so the real slack_sdk client is exercised over HTTP."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class FakeSlack:
    """Records chat.postMessage calls; `script` holds the responses to give, then `ok` ones."""

    url: str = ""
    posts: list[dict[str, Any]] = field(default_factory=list)
    auth_headers: list[str] = field(default_factory=list)
    script: list[tuple[int, dict[str, Any], dict[str, str]]] = field(default_factory=list)
    calls: int = 0


@contextmanager
def fake_slack() -> Iterator[FakeSlack]:
    state = FakeSlack()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output clean
            return

        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            with lock:
                state.calls += 1
                state.auth_headers.append(self.headers.get("Authorization", ""))
                if state.script:
                    status, payload, headers = state.script.pop(0)
                else:
                    status, payload, headers = 200, {}, {}
                    state.posts.append(json.loads(body or b"{}"))
                    ts = f"1700000000.{len(state.posts):06d}"
                    payload = {"ok": True, "channel": "C123", "ts": ts}
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/api/"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
