"""Where messages go: Slack through slack_sdk, or an outbox folder in dry run.

Both sinks post a ``{"text", "blocks"}`` message to a channel (optionally as a reply in a
thread) and attach PNG charts. Slack failures become a DeliveryError whose text says what to
fix and never contains the token.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Protocol

from sentinel_pipeline.errors import SentinelError
from sentinel_pipeline.storage import TableStore

OUTBOX_DIR = "outbox"
MAX_RETRY_AFTER_SECONDS = 60  # a longer Slack back-off is waited for by the next sensor tick


class DeliveryError(SentinelError):
    """A message could not be delivered; the alerts stay undelivered and are retried.

    ``channel_only`` marks refusals about one channel (missing, archived, app not invited):
    the other channels and days can still be delivered meanwhile.
    """

    def __init__(self, message: str, channel_only: bool = False) -> None:
        super().__init__(message)
        self.channel_only = channel_only


@dataclass(frozen=True)
class Posted:
    """Where a posted message is: Slack ts and channel ID, or the outbox file."""

    ts: str
    channel_id: str
    reference: str


class AlertSink(Protocol):
    destination: str

    def post(self, channel: str, name: str, message: dict[str, Any],
             thread_ts: str | None = None) -> Posted:
        """Post one message; ``name`` (e.g. the day) labels it in errors and outbox files."""
        ...

    def upload_png(self, channel: str, posted: Posted, stem: str, png: bytes,
                   title: str) -> str:
        """Attach a PNG in the thread of a posted message; returns its reference."""
        ...


def channel_slug(channel: str) -> str:
    """A channel name that is safe in a file name ('#cost-alerts' -> 'cost-alerts')."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", channel).strip("-") or "channel"


class OutboxSink:
    """Dry run: each message becomes a JSON file (and each chart a PNG) under {data_dir}/outbox/."""

    destination = "outbox"

    def __init__(self, store: TableStore) -> None:
        self.store = store

    def post(self, channel: str, name: str, message: dict[str, Any],
             thread_ts: str | None = None) -> Posted:
        payload = {"channel": channel, **message}
        if thread_ts:
            payload["thread_ts"] = thread_ts
        body = json.dumps(payload, indent=2, sort_keys=True)
        digest = hashlib.sha256(body.encode()).hexdigest()[:10]
        path = self.store.write_bytes(
            f"{OUTBOX_DIR}/{name}-{channel_slug(channel)}-{digest}.json", body.encode())
        # The file path stands for the ts: replies name the message they belong to.
        return Posted(ts=path, channel_id=channel, reference=path)

    def upload_png(self, channel: str, posted: Posted, stem: str, png: bytes,
                   title: str) -> str:
        return self.store.write_bytes(f"{OUTBOX_DIR}/{stem}.png", png)


def _rate_limit_handler(max_wait: int, retries: int) -> Any:
    """slack_sdk's 429 handler (sleeps Retry-After), refusing waits longer than ``max_wait``:
    a sensor tick should not sleep for minutes; the next tick retries instead."""
    from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

    class BoundedRateLimitRetry(RateLimitErrorRetryHandler):
        def _can_retry(self, *, state: Any, request: Any, response: Any = None,
                       error: Any = None) -> bool:
            if response is None or response.status_code != 429:
                return False
            for key, value in response.headers.items():
                if key.lower() == "retry-after":
                    raw = value[0] if isinstance(value, list) else value
                    try:
                        return int(raw) <= max_wait
                    except (TypeError, ValueError):
                        return True
            return True

    return BoundedRateLimitRetry(max_retry_count=retries)


CHANNEL_ERRORS = frozenset({"channel_not_found", "not_in_channel", "is_archived"})
_HINTS = {
    "invalid_auth": "SLACK_BOT_TOKEN is not valid: create a new bot token (xoxb-...) and set it.",
    "not_authed": "SLACK_BOT_TOKEN is not valid: create a new bot token (xoxb-...) and set it.",
    "token_revoked": "SLACK_BOT_TOKEN was revoked: create a new bot token and set it.",
    "account_inactive": "the Slack app's token is inactive: reinstall the app, set the new token.",
    "missing_scope": "the Slack app lacks a scope: add chat:write and files:write, reinstall.",
    "not_in_channel": "invite the Sentinel app to {channel} (/invite @Sentinel).",
    "channel_not_found": "channel {channel} does not exist or the app cannot see it: fix "
                         "SLACK_CHANNEL or the routes file, or invite the app.",
    "is_archived": "channel {channel} is archived: unarchive it or route alerts elsewhere.",
    "ratelimited": "Slack is rate limiting the app; the alerts are retried on the next tick.",
}


class SlackSink:
    """Posts with the real slack_sdk WebClient (base URL configurable for proxies and tests).

    dagster-slack's SlackResource builds ``WebClient(token)`` with Slack's fixed URL and no
    timeout or retry settings, so the client is built here instead.
    """

    destination = "slack"

    def __init__(self, token: str, base_url: str, timeout: float = 30.0,
                 max_retry_after: int = MAX_RETRY_AFTER_SECONDS) -> None:
        from slack_sdk import WebClient

        # urllib takes fractional timeouts although the SDK's hint says int.
        self.client = WebClient(token=token, base_url=base_url, timeout=timeout)  # type: ignore[arg-type]
        self.client.retry_handlers.append(_rate_limit_handler(max_retry_after, retries=3))

    def _call(self, what: str, target: str, fn: Any, **kwargs: Any) -> Any:
        from slack_sdk.errors import SlackApiError, SlackClientError

        try:
            return fn(**kwargs)
        except SlackApiError as exc:
            response = exc.response
            error = "unknown_error"
            if response is not None and isinstance(response.data, dict):
                error = str(response.data.get("error") or f"http_{response.status_code}")[:200]
            elif response is not None:
                error = f"unexpected response (HTTP {response.status_code}, not Slack JSON)"
            hint = _HINTS.get(error, "the message stays undelivered and is retried on the "
                                     "next tick.").format(channel=target)
            raise DeliveryError(f"Slack refused {what} for {target}: {error}; {hint}",
                                channel_only=error in CHANNEL_ERRORS) from exc
        except (SlackClientError, OSError, ValueError) as exc:
            raise DeliveryError(
                f"Slack could not be reached for {what} to {target} ({type(exc).__name__}); "
                "it stays undelivered and is retried on the next tick."
            ) from exc

    def post(self, channel: str, name: str, message: dict[str, Any],
             thread_ts: str | None = None) -> Posted:
        response = self._call(
            f"the message of {name}", channel, self.client.chat_postMessage,
            channel=channel, text=message["text"], blocks=message["blocks"],
            thread_ts=thread_ts, unfurl_links=False, unfurl_media=False,
        )
        ts = str(response.get("ts") or "")
        if not ts:
            raise DeliveryError(
                f"Slack answered the message of {name} for {channel} without a message ts; "
                "check SENTINEL_SLACK_API_URL points at the Slack Web API."
            )
        return Posted(ts=ts, channel_id=str(response.get("channel") or channel), reference=ts)

    def upload_png(self, channel: str, posted: Posted, stem: str, png: bytes,
                   title: str) -> str:
        # files.completeUploadExternal wants a channel ID: take the one chat.postMessage gave.
        response = self._call(
            f"the chart {stem}", channel, self.client.files_upload_v2,
            channel=posted.channel_id, content=png, filename=f"{stem}.png", title=title,
            thread_ts=posted.ts,
        )
        file = response.get("file") or {}
        return str(file.get("id") or "")
