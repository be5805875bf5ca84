"""One Messages API request per batch of anomalies, and the checks its answer must pass.

The real ``anthropic.Anthropic`` client is used as configured by its own environment variables
(ANTHROPIC_BASE_URL for a proxy or a test server); the key comes from the resource. Retries are
ours, not the SDK's: anthropic 2.12 sleeps as long as a ``retry-after`` header says, without a
cap, so one 429 with ``retry-after: 3600`` would hang a daily run for an hour. Here every wait is
capped and the number of attempts is bounded.

Everything that can go wrong raises AnnotationError (or an SDK error); the caller turns any of
them into the deterministic fallback, so a run never fails because of the model.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sentinel_pipeline.annotation.prompt import (
    ACTIONS,
    FIELD_LIMITS,
    SYSTEM_PROMPT,
    TOOL,
    TOOL_NAME,
    user_message,
)

# The SDK is imported when a request is made: it is half the time of loading the definitions
# (every run, sensor tick, CLI command and code server), and most of them never call Claude.
if TYPE_CHECKING:
    import anthropic
    from anthropic.types import MessageParam, ToolChoiceToolParam

# Longest single wait between attempts, whatever the server asks (seconds).
MAX_RETRY_WAIT = 20.0
_BACKOFF_START = 0.5

# $ per million tokens (input, output) by model family, from the public price list.
_PRICES: list[tuple[re.Pattern[str], tuple[float, float]]] = [
    (re.compile(r"^claude-haiku-4-5(-\d{8})?$"), (1.0, 5.0)),
    (re.compile(r"^claude-sonnet-4(-\d{1,2})?(-\d{8})?$"), (3.0, 15.0)),
    (re.compile(r"^claude-opus-4-([5-9]|\d{2})(-\d{8})?$"), (5.0, 25.0)),
]

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")
_SPACES = re.compile(r"\s+")


class AnnotationError(Exception):
    """The model's answer cannot be used (refusal, no tool call, bad structure)."""


@dataclass
class Usage:
    """Tokens and requests of a run, and what they cost."""

    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    requests: int = 0

    def add(self, input_tokens: int, output_tokens: int) -> None:
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        self.requests += 1

    @property
    def cost_usd(self) -> float | None:
        """Estimated $ cost, None when the model's price is not known here."""
        price = model_price(self.model)
        if price is None:
            return None
        return (self.input_tokens * price[0] + self.output_tokens * price[1]) / 1_000_000


def model_price(model: str) -> tuple[float, float] | None:
    """($ per M input tokens, $ per M output tokens) of a model id, or None if unknown."""
    for pattern, price in _PRICES:
        if pattern.match(model):
            return price
    return None


@dataclass(frozen=True)
class Explanation:
    """The validated fields the model wrote for one anomaly."""

    explanation: str
    likely_cause: str
    where_to_look: str
    action: str
    confidence: float

    def as_row(self, annotator: str) -> dict[str, Any]:
        return {"explanation": self.explanation, "likely_cause": self.likely_cause,
                "where_to_look": self.where_to_look, "action": self.action,
                "confidence": self.confidence, "annotator": annotator}


@dataclass
class ClaudeSettings:
    """What a request needs; built by the Dagster resource from the environment."""

    api_key: str = field(repr=False)  # never in a repr, log line or error
    model: str
    max_tokens: int = 8000
    timeout_seconds: float = 60.0
    max_retries: int = 2
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)


def clean_text(value: Any, limit: int) -> str:
    """Printable single-line text, at most ``limit`` characters ('' when not a string)."""
    if not isinstance(value, str):
        return ""
    text = _SPACES.sub(" ", _CONTROL.sub(" ", value)).strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def read_explanation(item: Mapping[str, Any]) -> Explanation | None:
    """An item of the tool input (or a cached one), checked field by field; None when any
    field is unusable."""
    texts = {name: clean_text(item.get(name), limit) for name, limit in FIELD_LIMITS.items()}
    action = item.get("action")
    action = action.strip().lower() if isinstance(action, str) else ""
    confidence = item.get("confidence")
    if (not all(texts.values()) or action not in ACTIONS or isinstance(confidence, bool)
            or not isinstance(confidence, int | float) or not 0.0 <= confidence <= 1.0):
        return None
    return Explanation(action=action, confidence=float(confidence), **texts)


def validate(tool_input: Any, ids: list[str]) -> dict[str, Explanation]:
    """The usable explanations by anomaly id.

    Unknown ids are ignored; an id given twice is dropped (which text belongs to it is not
    clear); an item that fails a check is dropped. Dropped and missing ids get the fallback.
    Each explanation comes from the one item that names its id, so no item's text can land
    on another anomaly.
    """
    if not isinstance(tool_input, Mapping) or not isinstance(tool_input.get("alerts"), list):
        raise AnnotationError("the tool input has no 'alerts' list")
    wanted = set(ids)
    seen: dict[str, int] = {}
    found: dict[str, Explanation] = {}
    for item in tool_input["alerts"]:
        if not isinstance(item, Mapping) or not isinstance(item.get("id"), str):
            continue
        key = item["id"].strip()
        if key not in wanted:
            continue
        seen[key] = seen.get(key, 0) + 1
        explanation = read_explanation(item)
        if explanation is not None:
            found[key] = explanation
    return {key: value for key, value in found.items() if seen[key] == 1}


def _retryable(exc: Exception) -> bool:
    import anthropic

    if isinstance(exc, anthropic.APIConnectionError):  # includes APITimeoutError
        return True
    if isinstance(exc, anthropic.APIStatusError):
        hint = exc.response.headers.get("x-should-retry")
        if hint in ("true", "false"):
            return hint == "true"
        return exc.status_code in (408, 409, 429) or exc.status_code >= 500
    return False


def _wait_seconds(exc: Exception, attempt: int) -> float:
    """The server's retry-after when it gives one, else exponential backoff; capped."""
    import anthropic

    wait = _BACKOFF_START * 2**attempt
    if isinstance(exc, anthropic.APIStatusError):
        headers = exc.response.headers
        for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
            try:
                wait = float(headers[name]) * scale
                break
            except (KeyError, TypeError, ValueError):
                continue
    return max(0.0, min(wait, MAX_RETRY_WAIT))


def _create(client: anthropic.Anthropic, settings: ClaudeSettings, content: str) -> Any:
    """messages.create with bounded retries on 429, 5xx, timeouts and connection errors."""
    import anthropic

    messages: list[MessageParam] = [{"role": "user", "content": content}]
    tool_choice: ToolChoiceToolParam = {"type": "tool", "name": TOOL_NAME}
    for attempt in range(settings.max_retries + 1):
        try:
            return client.messages.create(
                model=settings.model,
                max_tokens=settings.max_tokens,
                system=SYSTEM_PROMPT,
                tools=[TOOL],
                tool_choice=tool_choice,
                messages=messages,
            )
        except anthropic.APIError as exc:
            if attempt >= settings.max_retries or not _retryable(exc):
                raise
            settings.sleep(_wait_seconds(exc, attempt))
    raise AssertionError("unreachable")  # pragma: no cover


def request_explanations(
    settings: ClaudeSettings, items: list[dict], usage: Usage
) -> dict[str, Explanation]:
    """Ask Claude about one batch (rendered by prompt.render_anomaly); explanations by id.

    Tokens are added to ``usage`` as soon as an answer arrives, even one that is then refused
    or rejected: they were paid for.
    """
    import anthropic

    client = anthropic.Anthropic(api_key=settings.api_key, timeout=settings.timeout_seconds,
                                 max_retries=0)
    try:
        message = _create(client, settings, user_message(items))
    finally:
        client.close()
    tokens = getattr(message, "usage", None)
    usage.add(int(getattr(tokens, "input_tokens", 0) or 0),
              int(getattr(tokens, "output_tokens", 0) or 0))
    if message.stop_reason == "refusal":
        raise AnnotationError("the model refused to answer (stop_reason=refusal)")
    calls = [block for block in message.content or []
             if getattr(block, "type", None) == "tool_use" and block.name == TOOL_NAME]
    if not calls:
        raise AnnotationError(f"no {TOOL_NAME} call in the answer "
                              f"(stop_reason={message.stop_reason})")
    tool_input = calls[0].input
    if isinstance(tool_input, str):  # some proxies pass the arguments as a JSON string
        try:
            tool_input = json.loads(tool_input)
        except ValueError as exc:
            raise AnnotationError("the tool input is not JSON") from exc
    return validate(tool_input, [item["id"] for item in items])
