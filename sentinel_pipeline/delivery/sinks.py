"""Where alert messages go: Slack through slack_sdk, or an outbox folder in dry run."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Protocol

from sentinel_pipeline.errors import SentinelError
from sentinel_pipeline.storage import TableStore

OUTBOX_DIR = "outbox"


class DeliveryError(SentinelError):
    """A message could not be delivered; the alerts stay undelivered and are retried."""


class AlertSink(Protocol):
    """Posts one message; returns a reference (Slack ts or outbox path)."""

    destination: str

    def post(self, day: str, message: dict[str, Any]) -> str: ...


class OutboxSink:
    """Dry run: each message becomes a JSON file under {data_dir}/outbox/."""

    destination = "outbox"

    def __init__(self, store: TableStore, channel: str) -> None:
        self.store = store
        self.channel = channel

    def post(self, day: str, message: dict[str, Any]) -> str:
        payload = {"channel": self.channel, **message}
        body = json.dumps(payload, indent=2, sort_keys=True)
        digest = hashlib.sha256(body.encode()).hexdigest()[:10]
        return self.store.write_bytes(f"{OUTBOX_DIR}/{day}-{digest}.json", body.encode())


class SlackSink:
    """Posts with the real slack_sdk WebClient (base URL configurable for proxies and tests)."""

    destination = "slack"

    def __init__(self, token: str, channel: str, base_url: str) -> None:
        from slack_sdk import WebClient
        from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

        self.channel = channel
        self.client = WebClient(token=token, base_url=base_url, timeout=30)
        self.client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=3))

    def post(self, day: str, message: dict[str, Any]) -> str:
        from slack_sdk.errors import SlackApiError, SlackClientError

        try:
            response = self.client.chat_postMessage(
                channel=self.channel, text=message["text"], blocks=message["blocks"]
            )
        except SlackApiError as exc:
            error = exc.response.get("error", "unknown_error") if exc.response else "unknown"
            hint = {
                "invalid_auth": "SLACK_BOT_TOKEN is not valid: create a new bot token.",
                "not_authed": "SLACK_BOT_TOKEN is not valid: create a new bot token.",
                "channel_not_found": f"channel {self.channel} does not exist: set SLACK_CHANNEL.",
                "not_in_channel": f"invite the bot to {self.channel}.",
            }.get(error, "the alerts stay undelivered and are retried on the next tick.")
            raise DeliveryError(f"Slack refused the message for {day}: {error}; {hint}") from exc
        except (SlackClientError, OSError) as exc:
            raise DeliveryError(
                f"Slack could not be reached for {day} ({type(exc).__name__}); "
                "the alerts stay undelivered and are retried on the next tick."
            ) from exc
        return str(response.get("ts", ""))
