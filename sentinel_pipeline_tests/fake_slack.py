"""A local stand-in for the Slack Web API, so the real slack_sdk client is exercised over HTTP.

Serves chat.postMessage (JSON; each message kept with its ts and ``metadata`` in
``messages``), the three steps of ``files_upload_v2``: files.getUploadURLExternal, the upload
URL itself, files.completeUploadExternal (form bodies), and the reads Sentinel makes to find an
interrupted post: conversations.history and conversations.replies (arguments in the query
string, as slack_sdk sends them, or GET; channel IDs only, like
Slack; ``oldest``/``latest``/``inclusive``, newest first, ``limit`` and ``cursor`` pages;
metadata only with ``include_all_metadata``) and conversations.list (the channels seen so far
and ``workspace_channels``).
Feedback and follow-ups (issue 16): chat.update (edits a kept message, each edit kept in
``updates``), reactions.get (``full``; the message with its ``reactions``, ``reply_count`` and
``latest_reply``, or ``message_not_found``), users.info (``users``, else ``user_not_found``),
auth.test (team ``T0SENTINEL``),
and helpers standing for people: ``react`` / ``unreact`` and ``reply`` (a thread reply by a
user or a bot).
``script`` holds responses to give to the next API calls (before any normal answer): a status,
a JSON payload (or raw bytes, for malformed answers) and headers; ``delay_seconds`` makes every
API call answer late without processing it (client timeouts); ``post_answer_delay`` makes
chat.postMessage keep the message first and answer late (a post that reached Slack while the
client waits), setting ``post_received`` when the message is kept.
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
from urllib.parse import parse_qs, urlsplit

from sentinel_pipeline_tests.local_http import local_server

READS = frozenset({"conversations.history", "conversations.replies", "conversations.list",
                   "reactions.get", "users.info"})


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
    messages: list[dict[str, Any]] = field(default_factory=list)  # as Slack stores them
    post_answer_delay: float = 0.0
    post_received: threading.Event = field(default_factory=threading.Event)
    workspace_channels: list[str] = field(default_factory=lambda: [
        "#cost-alerts", "#finops", "#team-a", "#ops", "#ml"])
    history_calls: list[dict[str, str]] = field(default_factory=list)  # conversations.* args
    updates: list[dict[str, Any]] = field(default_factory=list)  # chat.update bodies
    refuse_channels: dict[str, str] = field(default_factory=dict)  # channel -> post error
    reactions: dict[tuple[str, str], dict[str, list[str]]] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)  # users.info answers
    read_calls: list[dict[str, str]] = field(default_factory=list)  # reactions/users args

    def person(self, user_id: str, name: str = "", **flags: Any) -> None:
        """A member of the workspace (``is_bot=True`` / ``deleted=True`` / another
        ``team_id`` for the others)."""
        self.users[user_id] = {"id": user_id, "team_id": "T0SENTINEL",
                               "name": name or user_id.lower(),
                               "real_name": name or user_id, "deleted": False, "is_bot": False,
                               "profile": {"display_name": name or ""}, **flags}

    def react(self, message: dict[str, Any], name: str, user: str) -> None:
        users = self.reactions.setdefault((message["channel"], message["ts"]), {})
        users.setdefault(name, [])
        if user not in users[name]:
            users[name].append(user)

    def unreact(self, message: dict[str, Any], name: str, user: str) -> None:
        users = self.reactions.get((message["channel"], message["ts"]), {})
        if user in users.get(name, []):
            users[name].remove(user)
            if not users[name]:
                users.pop(name)

    def reply(self, message: dict[str, Any], user: str, text: str,
              bot: bool = False) -> dict[str, Any]:
        """A thread reply by someone (``bot``: an app's message, with ``bot_id``)."""
        ts = f"{int(time.time())}.{500000 + len(self.messages):06d}"
        kept = {"type": "message", "channel": message["channel"], "ts": ts, "text": text,
                "thread_ts": message["ts"], "user": user}
        if bot:
            kept |= {"bot_id": "B0001", "subtype": "bot_message"}
        self.messages.append(kept)
        return kept

    def message_at(self, ts: str) -> dict[str, Any]:
        return next(m for m in self.messages if m["ts"] == ts)

    def in_channel(self, channel: str) -> list[dict[str, Any]]:
        """The messages kept for a channel (name or ID), oldest first."""
        cid = self.channel_id(channel)
        return [m for m in self.messages if m["channel"] == cid]

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

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            self._api(url.path.rsplit("/", 1)[-1], b"", query)

        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            if self.path.startswith("/upload/"):
                file_id = self.path.rsplit("/", 1)[-1]
                with lock:
                    state.uploads[file_id] = body
                self._send(200, f"OK - {len(body)}".encode())
                return
            url = urlsplit(self.path)
            method = url.path.rsplit("/", 1)[-1]
            if method in READS:  # slack_sdk sends their arguments in the query string
                args = {k: v[0] for k, v in parse_qs(url.query).items()}
                args.update({k: v[0] for k, v in parse_qs(body.decode()).items()})
                self._api(method, b"", args)
                return
            self._api(method, body, None)

        def _api(self, method: str, body: bytes, query: dict[str, str] | None) -> None:
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
            if query is not None:
                self._send(200, self._read(method, query))
                return
            answer = self._answer(method, body)
            if method == "chat.postMessage" and answer.get("ok"):
                state.post_received.set()
                if state.post_answer_delay:  # kept, but the client waits (and may die)
                    time.sleep(state.post_answer_delay)
            self._send(200, answer)

        def _answer(self, method: str, body: bytes) -> dict[str, Any]:
            is_json = "json" in (self.headers.get("Content-Type") or "")
            form = {} if is_json else {k: v[0] for k, v in parse_qs(body.decode()).items()}
            with lock:
                if method == "chat.postMessage":
                    post = json.loads(body or b"{}") if is_json else form
                    if post.get("channel") in state.refuse_channels:
                        return {"ok": False, "error": state.refuse_channels[post["channel"]]}
                    state.posts.append(post)
                    # Slack's ts: the epoch second it was posted, then a unique suffix.
                    ts = f"{int(time.time())}.{len(state.posts):06d}"
                    cid = state.channel_id(post["channel"])
                    kept = {"type": "message", "channel": cid, "ts": ts,
                            "text": post.get("text", ""), "blocks": post.get("blocks")}
                    if post.get("thread_ts"):
                        kept["thread_ts"] = post["thread_ts"]
                    if isinstance(post.get("metadata"), dict):
                        kept["metadata"] = post["metadata"]
                    state.messages.append(kept)
                    return {"ok": True, "channel": cid, "ts": ts}
                if method == "files.getUploadURLExternal":
                    file_id = f"F{len(state.upload_names) + 1:04d}"
                    state.upload_names[file_id] = form.get("filename", "")
                    address: Any = self.server.server_address  # (host, port) for AF_INET
                    host, port = address[:2]
                    return {"ok": True, "file_id": file_id,
                            "upload_url": f"http://{host}:{port}/upload/{file_id}"}
                if method == "auth.test":
                    return {"ok": True, "team_id": "T0SENTINEL", "team": "Sentinel",
                            "user_id": "U0SENTINEL", "bot_id": "B0SENTINEL"}
                if method == "chat.update":
                    update = json.loads(body or b"{}") if is_json else form
                    state.updates.append(update)
                    for message in state.messages:
                        if (message["channel"] == update.get("channel")
                                and message["ts"] == update.get("ts")):
                            message["text"] = update.get("text", "")
                            message["blocks"] = update.get("blocks")
                            message["edited"] = {"ts": f"{time.time():.6f}"}
                            return {"ok": True, "channel": message["channel"],
                                    "ts": message["ts"], "text": message["text"]}
                    return {"ok": False, "error": "message_not_found"}
                if method == "files.completeUploadExternal":
                    files = json.loads(form.get("files", "[]"))
                    state.files.append({**form, "files": files})
                    return {"ok": True, "files": [{"id": f["id"], "title": f.get("title")}
                                                  for f in files]}
            return {"ok": False, "error": "unknown_method"}

        def _read(self, method: str, query: dict[str, str]) -> dict[str, Any]:
            with lock:
                state.history_calls.append({"method": method, **query})
                if method == "conversations.list":
                    for name in state.workspace_channels:
                        state.channel_id(name)
                    channels = [{"id": cid, "name": name.lstrip("#"), "is_private": False}
                                for name, cid in state.channel_ids.items()]
                    return {"ok": True, "channels": channels,
                            "response_metadata": {"next_cursor": ""}}
                if method == "users.info":
                    state.read_calls.append({"method": method, **query})
                    user = state.users.get(query.get("user", ""))
                    return ({"ok": True, "user": user} if user
                            else {"ok": False, "error": "user_not_found"})
                if method == "reactions.get":
                    state.read_calls.append({"method": method, **query})
                    return self._reactions(query)
                if method not in ("conversations.history", "conversations.replies"):
                    return {"ok": False, "error": "unknown_method"}
                cid = query.get("channel", "")
                if cid not in state.channel_ids.values():  # names are not accepted here
                    return {"ok": False, "error": "channel_not_found"}
                inclusive = query.get("inclusive") in ("1", "true", "True")
                oldest = float(query.get("oldest") or 0)
                latest = float(query.get("latest") or 1e12)
                found = []
                for message in state.messages:
                    ts = float(message["ts"])
                    if message["channel"] != cid or not (
                            (oldest <= ts if inclusive else oldest < ts)
                            and (ts <= latest if inclusive else ts < latest)):
                        continue
                    if method == "conversations.history" and message.get("thread_ts"):
                        continue  # replies are not in the channel's history
                    if method == "conversations.replies" and query.get("ts") not in (
                            message["ts"], message.get("thread_ts")):
                        continue
                    found.append(dict(message))
            if method == "conversations.history":
                found.reverse()  # newest first
            if query.get("include_all_metadata") not in ("1", "true", "True"):
                for message in found:
                    message.pop("metadata", None)
            start = int(query.get("cursor") or 0)
            limit = int(query.get("limit") or 100)
            page = found[start:start + limit]
            more = start + limit < len(found)
            return {"ok": True, "messages": page, "has_more": more,
                    "response_metadata": {"next_cursor": str(start + limit) if more else ""}}

        def _reactions(self, query: dict[str, str]) -> dict[str, Any]:
            """reactions.get: the message with its reactions and thread summary (lock held)."""
            cid, ts = query.get("channel", ""), query.get("timestamp", "")
            if cid not in state.channel_ids.values():
                return {"ok": False, "error": "channel_not_found"}
            found = [m for m in state.messages if m["channel"] == cid and m["ts"] == ts]
            if not found:
                return {"ok": False, "error": "message_not_found"}
            message = {k: v for k, v in found[0].items() if k != "metadata"}
            given = state.reactions.get((cid, ts), {})
            if given:
                message["reactions"] = [{"name": name, "users": list(users),
                                         "count": len(users)} for name, users in given.items()]
            replies = [m["ts"] for m in state.messages
                       if m["channel"] == cid and m.get("thread_ts") == ts]
            if replies:
                message |= {"reply_count": len(replies), "latest_reply": max(replies, key=float)}
            return {"ok": True, "type": "message", "channel": cid, "message": message}

    with local_server(Handler) as url:
        state.url = f"{url}/api/"
        yield state
