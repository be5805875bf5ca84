"""A local stand-in for the Slack Web API, so the real slack_sdk client is exercised over HTTP.

Serves chat.postMessage (JSON) and the three steps of ``files_upload_v2``:
files.getUploadURLExternal, the upload URL itself, files.completeUploadExternal (form bodies).
``script`` holds responses to give to the next API calls (before any normal answer): a status,
a JSON payload (or raw bytes, for malformed answers) and headers; ``delay_seconds`` makes every
API call answer late (client timeouts).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs

from sentinel_pipeline_tests.local_http import local_server


@dataclass
class FakeSlack:
    """What the fake received; channel names get stable IDs (C0001, ...) like Slack's."""

    url: str = ""
    posts: list[dict[str, Any]] = field(default_factory=list)
    auth_headers: list[str] = field(default_factory=list)
    script: list[tuple[int, dict[str, Any] | bytes, dict[str, str]]] = field(default_factory=list)
    calls: int = 0
    call_times: list[float] = field(default_factory=list)
    delay_seconds: float = 0.0
    method_script: dict[str, list[tuple[int, dict[str, Any] | bytes, dict[str, str]]]] = field(
        default_factory=dict)  # like script, for one API method only
    channel_ids: dict[str, str] = field(default_factory=dict)
    uploads: dict[str, bytes] = field(default_factory=dict)  # file id -> bytes received
    files: list[dict[str, Any]] = field(default_factory=list)  # completeUploadExternal forms
    upload_names: dict[str, str] = field(default_factory=dict)  # file id -> filename

    def channel_id(self, channel: str) -> str:
        if channel.startswith("C") and channel[1:].isdigit():
            return channel
        return self.channel_ids.setdefault(channel, f"C{len(self.channel_ids) + 1:04d}")

    def top_level(self) -> list[dict[str, Any]]:
        return [p for p in self.posts if not p.get("thread_ts")]

    def replies(self) -> list[dict[str, Any]]:
        return [p for p in self.posts if p.get("thread_ts")]


@contextmanager
def fake_slack() -> Iterator[FakeSlack]:
    state = FakeSlack()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output clean
            return

        def _send(self, status: int, payload: dict[str, Any] | bytes,
                  headers: dict[str, str] | None = None) -> None:
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                pass

        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            if self.path.startswith("/upload/"):
                file_id = self.path.rsplit("/", 1)[-1]
                with lock:
                    state.uploads[file_id] = body
                self._send(200, f"OK - {len(body)}".encode())
                return
            method = self.path.rsplit("/", 1)[-1]
            with lock:
                state.calls += 1
                state.call_times.append(time.monotonic())
                state.auth_headers.append(self.headers.get("Authorization", ""))
                scripted = state.script.pop(0) if state.script else None
                if scripted is None and state.method_script.get(method):
                    scripted = state.method_script[method].pop(0)
            if state.delay_seconds:  # stuck before processing: the client times out first
                time.sleep(state.delay_seconds)
                self._send(504, {"ok": False, "error": "timeout"})
                return
            if scripted is not None:
                self._send(*scripted)
                return
            self._send(200, self._answer(method, body))

        def _answer(self, method: str, body: bytes) -> dict[str, Any]:
            is_json = "json" in (self.headers.get("Content-Type") or "")
            form = {} if is_json else {k: v[0] for k, v in parse_qs(body.decode()).items()}
            with lock:
                if method == "chat.postMessage":
                    post = json.loads(body or b"{}") if is_json else form
                    state.posts.append(post)
                    ts = f"1700000000.{len(state.posts):06d}"
                    return {"ok": True, "channel": state.channel_id(post["channel"]), "ts": ts}
                if method == "files.getUploadURLExternal":
                    file_id = f"F{len(state.upload_names) + 1:04d}"
                    state.upload_names[file_id] = form.get("filename", "")
                    host, port = self.server.server_address[:2]
                    return {"ok": True, "file_id": file_id,
                            "upload_url": f"http://{host}:{port}/upload/{file_id}"}
                if method == "files.completeUploadExternal":
                    files = json.loads(form.get("files", "[]"))
                    state.files.append({**form, "files": files})
                    return {"ok": True, "files": [{"id": f["id"], "title": f.get("title")}
                                                  for f in files]}
            return {"ok": False, "error": "unknown_method"}

    with local_server(Handler) as url:
        state.url = f"{url}/api/"
        yield state
