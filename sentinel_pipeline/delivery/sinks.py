"""Where messages go: Slack through slack_sdk, or an outbox folder in dry run.

Both sinks post a ``{"text", "blocks"}`` message to a channel (optionally as a reply in a
thread) and attach PNG charts. Each post can carry Slack message metadata
(``{"event_type": "sentinel_alert", "event_payload": {"key": ...}}``) and ``find`` looks a
post up by that key in the channel's recent history (the outbox: in its files), so an
interrupted post is adopted rather than posted again (see deliver.py). Slack failures become a
DeliveryError whose text says what to fix and never contains the token.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sentinel_pipeline.errors import SentinelError
from sentinel_pipeline.storage import TableStore

OUTBOX_DIR = "outbox"
MAX_RETRY_AFTER_SECONDS = 60  # a longer Slack back-off is waited for by the next sensor tick
RATE_LIMIT_RETRIES = 3
EVENT_TYPE = "sentinel_alert"  # the Slack message metadata type of every Sentinel post
HISTORY_MARGIN_SECONDS = 600  # look this much before an attempt (clock skew with Slack)
HISTORY_PAGE = 200
HISTORY_MAX_PAGES = 25  # 5,000 messages since the attempt: past that, refuse to guess
HISTORY_SCOPES = "channels:history (public channels) and groups:history (private channels)"
# What each scope is for (README "Slack app"): posting and editing alerts, charts, finding an
# interrupted post and reading feedback replies, reading reactions, telling people from bots.
NEEDED_SCOPES: tuple[str, ...] = ("chat:write", "files:write", "channels:history",
                                  "groups:history", "reactions:read", "users:read")
LIST_SCOPES = "channels:read and groups:read"


class DeliveryError(SentinelError):
    """A message could not be delivered; the alerts stay undelivered and are retried.

    ``channel_only`` marks refusals about one channel (missing, archived, app not invited):
    the other channels and days can still be delivered meanwhile. ``uncertain`` marks failures
    after which the message may have reached Slack all the same (timeouts, 5xx, answers that
    are not Slack's JSON): the attempt stays pending and is looked up before any new post.
    ``code`` is Slack's error code when Slack gave one (``missing_scope``, ...).
    """

    def __init__(self, message: str, channel_only: bool = False, uncertain: bool = False,
                 code: str = "") -> None:
        super().__init__(message)
        self.channel_only = channel_only
        self.uncertain = uncertain
        self.code = code


@dataclass(frozen=True)
class Posted:
    """Where a posted message is: Slack ts and channel ID, or the outbox file."""

    ts: str
    channel_id: str
    reference: str


def post_metadata(key: str, **payload: str | int) -> dict[str, Any]:
    """Slack message metadata naming the ledger key of a post (how it is found again)."""
    return {"event_type": EVENT_TYPE, "event_payload": {"key": key, **payload}}


def metadata_key(message: dict[str, Any]) -> str | None:
    """The ledger key of a Sentinel post, from its metadata (None for any other message)."""
    meta = message.get("metadata")
    if not isinstance(meta, dict) or meta.get("event_type") != EVENT_TYPE:
        return None
    payload = meta.get("event_payload")
    key = payload.get("key") if isinstance(payload, dict) else None
    return key if isinstance(key, str) else None


class AlertSink(Protocol):
    destination: str
    # How long after an attempt a post interrupted by a crash may still land: an attempt not
    # found in the channel is only given up (and posted again) once it is older than this.
    in_flight_seconds: float

    def post(self, channel: str, name: str, message: dict[str, Any],
             thread_ts: str | None = None, metadata: dict[str, Any] | None = None) -> Posted:
        """Post one message; ``name`` (e.g. the day) labels it in errors and outbox files."""
        ...

    def find(self, channel: str, name: str, key: str, since: float,
             thread_ts: str | None = None, channel_id: str = "") -> Posted | None:
        """The post whose metadata carries ``key``, posted after ``since`` (epoch seconds) in
        the channel (or in the thread of ``thread_ts``), or None when there is none. Raises
        DeliveryError when the channel cannot be read (then nobody can tell)."""
        ...

    def upload_png(self, channel: str, posted: Posted, stem: str, png: bytes,
                   title: str) -> str:
        """Attach a PNG in the thread of a posted message; returns its reference."""
        ...

    def update(self, channel: str, posted: Posted, name: str, message: dict[str, Any]) -> str:
        """Replace a posted message's text and blocks (a status line); same content twice is
        harmless, so it needs no ledger entry of its own. Returns its reference."""
        ...


def channel_slug(channel: str) -> str:
    """A channel name that is safe in a file name ('#cost-alerts' -> 'cost-alerts')."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", channel).strip("-") or "channel"


class OutboxSink:
    """Dry run: each message becomes a JSON file (and each chart a PNG) under {data_dir}/outbox/."""

    destination = "outbox"
    in_flight_seconds = 0.0  # a file is written whole (write then rename) or not at all

    def __init__(self, store: TableStore) -> None:
        self.store = store

    def post(self, channel: str, name: str, message: dict[str, Any],
             thread_ts: str | None = None, metadata: dict[str, Any] | None = None) -> Posted:
        payload = {"channel": channel, **message}
        if thread_ts:
            payload["thread_ts"] = thread_ts
        if metadata:
            payload["metadata"] = metadata
        body = json.dumps(payload, indent=2, sort_keys=True)
        digest = hashlib.sha256(body.encode()).hexdigest()[:10]
        path = self.store.write_bytes(
            f"{OUTBOX_DIR}/{name}-{channel_slug(channel)}-{digest}.json", body.encode())
        # The file path stands for the ts: replies name the message they belong to.
        return Posted(ts=path, channel_id=channel, reference=path)

    def find(self, channel: str, name: str, key: str, since: float,
             thread_ts: str | None = None, channel_id: str = "") -> Posted | None:
        """The outbox files are its history: a file of this name and channel with the key."""
        prefix = f"{name}-{channel_slug(channel)}-"
        for file in self.store.list_dir(OUTBOX_DIR):
            if not (file.startswith(prefix) and file.endswith(".json")):
                continue
            rel = f"{OUTBOX_DIR}/{file}"
            try:
                message = json.loads(self.store.read_bytes(rel) or b"{}")
            except ValueError:
                continue  # not one of ours
            if isinstance(message, dict) and metadata_key(message) == key:
                path = self._path(rel)
                return Posted(ts=path, channel_id=channel, reference=path)
        return None

    def _path(self, rel: str) -> str:
        """The full path write_bytes returns for ``rel``."""
        if self.store.is_s3:
            return f"{self.store.root}/{rel}"
        return str(Path(self.store.root) / rel)

    def upload_png(self, channel: str, posted: Posted, stem: str, png: bytes,
                   title: str) -> str:
        return self.store.write_bytes(f"{OUTBOX_DIR}/{stem}.png", png)

    def update(self, channel: str, posted: Posted, name: str, message: dict[str, Any]) -> str:
        """The message as it now reads, next to the original (which stays as it was sent)."""
        body = json.dumps({"channel": channel, "update_of": posted.reference, **message},
                          indent=2, sort_keys=True)
        return self.store.write_bytes(
            f"{OUTBOX_DIR}/{name}-{channel_slug(channel)}-update.json", body.encode())


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
    "missing_scope": "the Slack app lacks a scope{needed}: it needs chat:write and "
                     "files:write, and to check interrupted posts channels:history, "
                     "groups:history, channels:read and groups:read; add them and reinstall.",
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
        self.client.retry_handlers.append(
            _rate_limit_handler(max_retry_after, retries=RATE_LIMIT_RETRIES))
        # The longest a chat.postMessage call can take with its retries (each try up to the
        # timeout, a connection retry, rate-limit waits), plus a minute for Slack itself.
        self.in_flight_seconds = (timeout * (RATE_LIMIT_RETRIES + 2)
                                  + max_retry_after * RATE_LIMIT_RETRIES + 60.0)
        self._channel_ids: dict[str, str] = {}

    def _call(self, what: str, target: str, fn: Any, **kwargs: Any) -> Any:
        from slack_sdk.errors import SlackApiError, SlackClientError

        try:
            return fn(**kwargs)
        except SlackApiError as exc:
            response = exc.response
            error, needed, definite = "unknown_error", "", False
            if response is not None and isinstance(response.data, dict):
                error = str(response.data.get("error") or f"http_{response.status_code}")[:200]
                needed = str(response.data.get("needed") or "")[:200]
                # Slack's own JSON refusal below 500: the request was not carried out.
                definite = response.status_code < 500
            elif response is not None:
                error = f"unexpected response (HTTP {response.status_code}, not Slack JSON)"
            hint = _HINTS.get(error, "the message stays undelivered and is retried on the "
                                     "next tick.").format(
                channel=target, needed=f" ({needed} for this call)" if needed else "")
            raise DeliveryError(f"Slack refused {what} for {target}: {error}; {hint}",
                                channel_only=error in CHANNEL_ERRORS, uncertain=not definite,
                                code=error) from exc
        except (SlackClientError, OSError, ValueError) as exc:
            raise DeliveryError(
                f"Slack could not be reached for {what} to {target} ({type(exc).__name__}); "
                "it stays undelivered and is retried on the next tick.", uncertain=True,
            ) from exc

    def post(self, channel: str, name: str, message: dict[str, Any],
             thread_ts: str | None = None, metadata: dict[str, Any] | None = None) -> Posted:
        response = self._call(
            f"the message of {name}", channel, self.client.chat_postMessage,
            channel=channel, text=message["text"], blocks=message["blocks"],
            thread_ts=thread_ts, unfurl_links=False, unfurl_media=False, metadata=metadata,
        )
        ts = str(response.get("ts") or "")
        if not ts:
            raise DeliveryError(
                f"Slack answered the message of {name} for {channel} without a message ts; "
                "check SENTINEL_SLACK_API_URL points at the Slack Web API.", uncertain=True,
            )
        channel_id = str(response.get("channel") or channel)
        self._channel_ids[channel] = channel_id
        return Posted(ts=ts, channel_id=channel_id, reference=ts)

    def find(self, channel: str, name: str, key: str, since: float,
             thread_ts: str | None = None, channel_id: str = "") -> Posted | None:
        """Look for the post in conversations.history (conversations.replies for a thread
        reply) with ``include_all_metadata``, from ``since`` minus a margin, page by page."""
        cid = channel_id or self._channel_id(channel)
        what = f"reading the recent history (to check the interrupted post of {name})"
        oldest = f"{max(since - HISTORY_MARGIN_SECONDS, 0):.6f}"
        cursor: str | None = None
        for _ in range(HISTORY_MAX_PAGES):
            args: dict[str, Any] = {"channel": cid, "oldest": oldest, "inclusive": True,
                                    "include_all_metadata": True, "limit": HISTORY_PAGE,
                                    "cursor": cursor}
            if thread_ts:
                response = self._call(what, channel, self.client.conversations_replies,
                                      ts=thread_ts, **args)
            else:
                response = self._call(what, channel, self.client.conversations_history, **args)
            for message in response.get("messages") or []:
                if isinstance(message, dict) and metadata_key(message) == key:
                    ts = str(message.get("ts") or "")
                    return Posted(ts=ts, channel_id=cid, reference=ts)
            cursor = ((response.get("response_metadata") or {}).get("next_cursor")) or None
            if not cursor:
                return None
        raise DeliveryError(
            f"More than {HISTORY_PAGE * HISTORY_MAX_PAGES} messages in {channel} since the "
            f"interrupted post of {name}: Sentinel cannot tell whether it reached Slack.",
            channel_only=True, uncertain=True)

    def _channel_id(self, channel: str) -> str:
        """A channel ID for the conversations.* methods (they do not take '#names')."""
        if re.fullmatch(r"[CGD][A-Z0-9]{6,}", channel):
            return channel
        if channel in self._channel_ids:
            return self._channel_ids[channel]
        name = channel.lstrip("#")
        cursor: str | None = None
        while True:
            response = self._call(
                f"looking up the channel ID (needs {LIST_SCOPES})", channel,
                self.client.conversations_list, types="public_channel,private_channel",
                exclude_archived=True, limit=1000, cursor=cursor)
            for item in response.get("channels") or []:
                if isinstance(item, dict) and item.get("name") == name and item.get("id"):
                    self._channel_ids[channel] = str(item["id"])
                    return self._channel_ids[channel]
            cursor = ((response.get("response_metadata") or {}).get("next_cursor")) or None
            if not cursor:
                raise DeliveryError(
                    f"Channel {channel} is not among the channels the Slack app can see, so "
                    "its history cannot be checked: use its channel ID (C...) in SLACK_CHANNEL "
                    "or the routes file, or invite the app.", channel_only=True, code="not_found")

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

    def update(self, channel: str, posted: Posted, name: str, message: dict[str, Any]) -> str:
        response = self._call(
            f"the update of {name}", channel, self.client.chat_update,
            channel=posted.channel_id, ts=posted.ts, text=message["text"],
            blocks=message["blocks"])
        return str(response.get("ts") or posted.ts)

    # Reads for feedback (issue 16): what people said on an alert's message.
    def reacted(self, channel: str, posted: Posted) -> dict[str, Any]:
        """The message as reactions.get (full) gives it: ``reactions`` (``name``, ``users``),
        and for a thread's parent ``reply_count`` and ``latest_reply``."""
        response = self._call("reading the reactions (needs reactions:read)", channel,
                              self.client.reactions_get, channel=posted.channel_id,
                              timestamp=posted.ts, full=True)
        message = response.get("message")
        return message if isinstance(message, dict) else {}

    def thread(self, channel: str, posted: Posted) -> list[dict[str, Any]]:
        """The replies in the message's thread (the message itself left out), every page."""
        replies: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(HISTORY_MAX_PAGES):
            response = self._call(f"reading the thread (needs {HISTORY_SCOPES})", channel,
                                  self.client.conversations_replies,
                                  channel=posted.channel_id, ts=posted.ts, limit=HISTORY_PAGE,
                                  cursor=cursor)
            replies += [m for m in response.get("messages") or []
                        if isinstance(m, dict) and m.get("ts") != posted.ts]
            cursor = ((response.get("response_metadata") or {}).get("next_cursor")) or None
            if not cursor:
                break
        return replies

    def missing_scopes(self) -> list[str] | None:
        """The scopes Sentinel uses (NEEDED_SCOPES) that the token lacks, from the
        ``x-oauth-scopes`` header Slack sends with every answer; None when no header came
        (a proxy dropped it): then it cannot be told."""
        response = self._call("checking the token (auth.test)", "the workspace",
                              self.client.auth_test)
        headers = {str(k).lower(): v for k, v in (getattr(response, "headers", None)
                                                   or {}).items()}
        granted = headers.get("x-oauth-scopes")
        if isinstance(granted, list):  # some HTTP stacks give each header as a list
            granted = ",".join(str(g) for g in granted)
        if granted is None:
            return None
        have = {scope.strip() for scope in str(granted).split(",") if scope.strip()}
        return [scope for scope in NEEDED_SCOPES if scope not in have]

    def team(self) -> str:
        """The workspace (team ID) of the bot token, from auth.test ('' if Slack gives none)."""
        response = self._call("checking the token (auth.test)", "the workspace",
                              self.client.auth_test)
        return str(response.get("team_id") or "")

    def user(self, user_id: str) -> dict[str, Any] | None:
        """users.info's user, or None when Slack knows no such user (``user_not_found``)."""
        try:
            response = self._call("looking up a user (needs users:read)", user_id,
                                  self.client.users_info, user=user_id)
        except DeliveryError as exc:
            if exc.code in ("user_not_found", "users_not_found"):
                return None
            raise
        user = response.get("user")
        return user if isinstance(user, dict) else None
