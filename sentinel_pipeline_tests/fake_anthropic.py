"""A local stand-in for the Anthropic Messages API, for the real anthropic client to talk to.

Each POST /v1/messages is recorded (headers and JSON body) and answered by the next scripted
responder, or by the default one when the script is used up. A responder gets the request body
and returns a Reply: status, JSON (or raw bytes), headers, and an optional delay before answering.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from sentinel_pipeline.annotation.prompt import TOOL_NAME, parse_data_block
from sentinel_pipeline_tests.local_http import local_server


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict/list -> JSON; bytes -> sent as is
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


Responder = Callable[[dict], Reply]


def anomalies_of(body: dict) -> list[dict]:
    """The anomalies Sentinel put in the data block of a request."""
    return parse_data_block(body["messages"][0]["content"])


def default_item(anomaly: dict) -> dict:
    return {
        "id": anomaly["id"],
        "explanation": f"Claude says {anomaly['service']} rose by ${anomaly['impact']}.",
        "likely_cause": f"more {anomaly['service']} usage",
        "where_to_look": "aws ce get-cost-and-usage --granularity DAILY",
        "action": "review",
        "confidence": 0.8,
    }


def message(body: dict, content: list[dict], stop_reason: str = "tool_use") -> Reply:
    """A Messages API answer; token counts are ~4 characters per token of what was sent."""
    sent = len(body.get("system", "")) + len(json.dumps(body.get("messages", "")))
    sent += len(json.dumps(body.get("tools", "")))
    return Reply(body={
        "id": "msg_fake", "type": "message", "role": "assistant",
        "model": body.get("model", "unknown"), "content": content,
        "stop_reason": stop_reason, "stop_sequence": None,
        "usage": {"input_tokens": sent // 4, "output_tokens": len(json.dumps(content)) // 4},
    })


def tool_answer(body: dict, items: list[dict] | None = None,
                write: Callable[[dict], dict] = default_item) -> Reply:
    """The tool call a well-behaved model makes: one item per anomaly (or the given items)."""
    if items is None:
        items = [write(a) for a in anomalies_of(body)]
    return message(body, [{"type": "tool_use", "id": "toolu_fake", "name": TOOL_NAME,
                           "input": {"alerts": items}}])


def error(status: int, kind: str = "api_error", headers: dict[str, str] | None = None) -> Reply:
    return Reply(status=status, headers=headers or {},
                 body={"type": "error", "error": {"type": kind, "message": f"fake {status}"}})


class FakeAnthropic:
    """The server; ``script`` answers requests in order, then ``default``."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.script: list[Responder] = []
        self.default: Responder = tool_answer
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                body = json.loads(raw)
                headers = {k.lower(): v for k, v in self.headers.items()}
                with fake._lock:
                    fake.requests.append({"path": self.path, "headers": headers, "body": body,
                                          "raw": raw.decode(), "at": time.time()})
                    responder = fake.script.pop(0) if fake.script else fake.default
                reply = responder(body)
                time.sleep(reply.delay)
                data = reply.body if isinstance(reply.body, bytes) else json.dumps(
                    reply.body).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    pass

        self.handler = Handler
        self.url = ""


@contextmanager
def fake_anthropic() -> Iterator[FakeAnthropic]:
    fake = FakeAnthropic()
    with local_server(fake.handler) as url:
        fake.url = url
        yield fake
