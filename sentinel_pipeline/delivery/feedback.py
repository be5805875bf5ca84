"""Feedback from Slack on alerts: reactions and thread replies become verdicts (issue 16).

No public endpoint is needed (no Events API, no interactivity URL): Sentinel *reads* each
alert message it delivered in the last ``SENTINEL_FEEDBACK_DAYS`` days, the way a person would
look at the channel:

- ``reactions.get`` on the message: a reaction named in ``reactions`` (defaults:
  :white_check_mark: / :heavy_check_mark: expected, :spiral_calendar_pad: / :calendar: planned,
  :x: / :no_entry_sign: not an anomaly) is that user's verdict;
- ``conversations.replies`` of its thread: a reply whose text starts with ``expected``,
  ``planned`` or ``not an anomaly`` (``not anomaly``, ``not_anomaly``), optionally followed by
  ``:`` and a reason, is that user's verdict with the reason.

Only what people can be held to counts: ``users.info`` must return a real user of the
workspace (not a bot, not deleted, not Slackbot, of the token's team as auth.test names it, not
a member of another workspace in a shared channel; with ``allowed_users`` one of those IDs), and
the message must be one the ledger has as an alert's own message whose alert is still in
``annotated_alerts``. Anything else changes nothing.

One row per (alert_key, user). Slack says when a reply was written but not when a reaction was
added, so a user's latest verdict reply wins, and without one their reaction (several verdict
reactions by one user: the first of VERDICTS' order among them, a rare and ambiguous case).
The table is rebuilt from what Slack shows now for every message read, so removing a reaction
(or deleting the reply) removes the row; ``seen_at`` (when Sentinel first saw that verdict) is
kept from the stored table while the row stays the same. Messages that could not be read, or
are older than the window, keep their stored rows.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

import pandas as pd

from sentinel_pipeline.delivery.ledger import DeliveryLedger, alert_key
from sentinel_pipeline.delivery.sinks import DeliveryError, Posted
from sentinel_pipeline.schema import FEEDBACK_COLUMNS, FEEDBACK_TABLE, VERDICTS, episode_key
from sentinel_pipeline.storage import TableStore

DEFAULT_REACTIONS: dict[str, tuple[str, ...]] = {
    "expected": ("white_check_mark", "heavy_check_mark"),
    "planned": ("spiral_calendar_pad", "calendar"),
    "not_anomaly": ("x", "no_entry_sign"),
}
MAX_REASON_CHARS = 500
# "expected: reason", "Planned - reason", "not an anomaly", "not_anomaly: ..." (case-insensitive)
_REPLY = re.compile(
    r"^\s*(?P<verdict>expected|planned|not[ _]an?[ _]anomaly|not[ _]anomaly)\b"
    r"\s*(?:[:\-–—]\s*(?P<reason>.*))?$", re.IGNORECASE | re.DOTALL)
USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")  # a Slack user ID
VERDICT_WORDS = {"expected": "expected", "planned": "planned", "not_anomaly": "not an anomaly"}
# What the table's rows are compared on (seen_at is kept while these stay the same).
SAME_ROW = ["alert_key", "user_id", "verdict", "reason", "source"]


class FeedbackReader(Protocol):
    """What feedback needs from Slack (SlackSink has it)."""

    def reacted(self, channel: str, posted: Posted) -> dict[str, Any]: ...

    def thread(self, channel: str, posted: Posted) -> list[dict[str, Any]]: ...

    def user(self, user_id: str) -> dict[str, Any] | None: ...

    def team(self) -> str: ...


def parse_reactions(text: str) -> dict[str, tuple[str, ...]]:
    """``"expected=white_check_mark,heavy_check_mark;planned=calendar;not_anomaly=x"`` ->
    {verdict: names}; verdicts not named keep their defaults. ValueError names the mistake."""
    out = dict(DEFAULT_REACTIONS)
    for part in filter(None, (p.strip() for p in text.split(";"))):
        verdict, _, names = part.partition("=")
        verdict = verdict.strip()
        if verdict not in VERDICTS or not names.strip():
            raise ValueError(f"feedback reactions: {part!r} is not <verdict>=<name>[,<name>] "
                             f"with a verdict of {', '.join(VERDICTS)}")
        out[verdict] = tuple(n.strip().strip(":") for n in names.split(",") if n.strip())
    return out


def feedback_hint(reactions: Mapping[str, tuple[str, ...]] = DEFAULT_REACTIONS) -> str:
    """The line under each alert telling people how to answer it."""
    parts = [f":{reactions[v][0]}: {VERDICT_WORDS[v]}" for v in VERDICTS if reactions.get(v)]
    return f"React {' · '.join(parts)}, or reply `expected: &lt;reason&gt;`"


def reply_verdict(text: str) -> tuple[str, str] | None:
    """(verdict, reason) of a thread reply that gives one, else None."""
    match = _REPLY.match(text or "")
    if not match:
        return None
    word = re.sub(r"[ _]+", " ", match["verdict"].lower())
    verdict = word if word in ("expected", "planned") else "not_anomaly"
    reason = " ".join((match["reason"] or "").split())
    reason = reason.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return verdict, reason[:MAX_REASON_CHARS]


def empty_feedback() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in FEEDBACK_COLUMNS})


@dataclass
class Collected:
    """The new table and what happened while reading Slack."""

    frame: pd.DataFrame
    messages_read: int = 0
    errors: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # why a reaction or reply did not count


@dataclass
class _Users:
    """users.info, once per user and collection."""

    reader: FeedbackReader
    allowed: frozenset[str]
    cache: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    workspace: str | None = None  # the token's team ID, asked once

    def name(self, user_id: str) -> str | None:
        """The user's display name if they may give feedback, else None."""
        if not USER_ID.match(user_id or "") or user_id == "USLACKBOT":
            return None
        if self.allowed and user_id not in self.allowed:
            return None
        if user_id not in self.cache:
            self.cache[user_id] = self.reader.user(user_id)
        user = self.cache[user_id]
        if (not user or user.get("id") not in (None, user_id) or user.get("deleted")
                or user.get("is_bot") or user.get("is_app_user")):
            return None
        if self.workspace is None:
            self.workspace = self.reader.team()
        if self.workspace and user.get("team_id") not in (None, "", self.workspace):
            return None  # a member of another workspace (a Slack Connect channel)
        profile = user.get("profile") or {}
        return str(profile.get("display_name") or user.get("real_name")
                   or profile.get("real_name") or user.get("name") or user_id)


def alert_row(store: TableStore, key: str,
               cache: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any] | None:
    """The annotated_alerts row of an alert key (None: not, or no longer, an alert)."""
    day = key[:10]
    if day not in cache:
        try:
            frame = store.read_partition("annotated_alerts", date.fromisoformat(day))
        except ValueError:
            frame = None
        rows = frame.to_dict("records") if frame is not None else []
        cache[day] = {alert_key(row): {str(k): v for k, v in row.items()} for row in rows}
    return cache[day].get(key)


def _verdicts(reactions: list[dict[str, Any]], replies: list[dict[str, Any]],
              by_name: Mapping[str, str]) -> dict[str, tuple[str, str, str]]:
    """user -> (verdict, reason, source): the latest reply, else the first reaction."""
    out: dict[str, tuple[str, str, str]] = {}
    order = {v: i for i, v in enumerate(VERDICTS)}
    for reaction in reactions:
        verdict = by_name.get(str(reaction.get("name") or "").split("::")[0])
        for user in reaction.get("users") or []:
            if verdict is None or not isinstance(user, str):
                continue
            current = out.get(user)
            if current is None or order[verdict] < order[current[0]]:
                out[user] = (verdict, "", "reaction")
    for reply in sorted(replies, key=lambda m: float(m.get("ts") or 0)):
        if reply.get("bot_id") or reply.get("subtype") or not isinstance(reply.get("user"), str):
            continue
        found = reply_verdict(str(reply.get("text") or ""))
        if found is not None:
            out[reply["user"]] = (found[0], found[1], "reply")
    return out


def collect_feedback(
    store: TableStore,
    reader: FeedbackReader | None,
    ledger: DeliveryLedger,
    today: date,
    days: int = 30,
    reactions: Mapping[str, tuple[str, ...]] = DEFAULT_REACTIONS,
    allowed_users: Iterable[str] = (),
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Collected:
    """The alert_feedback table as Slack shows it now (see the module docstring).

    ``reader`` None (dry run: the outbox) reads nothing: the stored table stays as it is.
    Slack errors on one message keep its stored rows and are listed in ``errors``; an error
    that is not about one message (token refused, Slack down) is raised as DeliveryError.
    """
    stored = store.read_table(FEEDBACK_TABLE)
    stored = empty_feedback() if stored is None else stored
    result = Collected(stored.reindex(columns=FEEDBACK_COLUMNS).reset_index(drop=True))
    if reader is None:
        return result
    by_name = {name: verdict for verdict, names in reactions.items() for name in names}
    users = _Users(reader, frozenset(u.strip() for u in allowed_users if u.strip()))
    seen_at = now().isoformat(timespec="seconds")
    alert_rows: dict[str, dict[str, dict[str, Any]]] = {}
    read_keys: set[str] = set()
    rows: list[dict[str, Any]] = []
    for key, entry, posted in _posted_alerts(ledger, today, days):
        row = alert_row(store, key, alert_rows)
        if row is None:
            result.ignored.append(f"{key}: not in annotated_alerts any more")
            continue
        try:
            message = reader.reacted(entry["channel"], posted)
            replies = (reader.thread(entry["channel"], posted)
                       if message.get("reply_count") else [])
            given = [r for r in message.get("reactions") or [] if isinstance(r, dict)]
            found = _verdicts(given, replies, by_name)
        except DeliveryError as exc:
            if not exc.channel_only and exc.code not in ("message_not_found",
                                                         "thread_not_found"):
                raise
            result.errors.append(f"{key}: {exc}")
            continue
        read_keys.add(key)
        result.messages_read += 1
        for user_id, (verdict, reason, source) in sorted(found.items()):
            name = users.name(user_id)
            if name is None:
                result.ignored.append(f"{key}: {user_id} is not a person of the workspace "
                                      "allowed to give feedback")
                continue
            rows.append({
                "alert_key": key,
                "episode_id": episode_key(row["service"], row["account_id"], row["region"],
                                          row.get("owner"),
                                          _day(row.get("anomaly_start"), key[:10])),
                "service": row["service"], "account_id": row["account_id"],
                "region": row["region"], "owner": str(row.get("owner") or ""),
                "anomaly_start": _day(row.get("anomaly_start"), key[:10]),
                "kind": row.get("kind"), "verdict": verdict, "user_id": user_id,
                "user_name": name, "reason": reason, "channel": entry["channel"],
                "message_ts": posted.ts, "seen_at": seen_at, "source": source,
            })
    fresh = pd.DataFrame(rows, columns=FEEDBACK_COLUMNS) if rows else empty_feedback()
    kept = result.frame[~result.frame["alert_key"].isin(read_keys)]
    if len(fresh) and len(result.frame):  # the same verdict as before: first seen then
        before = {tuple(str(v) for v in r[:-1]): r[-1] for r in
                  result.frame[[*SAME_ROW, "seen_at"]].itertuples(index=False, name=None)}
        fresh["seen_at"] = [before.get(tuple(str(v) for v in r), fresh.at[i, "seen_at"])
                            for i, r in zip(fresh.index,
                                            fresh[SAME_ROW].itertuples(index=False, name=None),
                                            strict=True)]
    frames = [f for f in (kept, fresh) if len(f)]
    table = pd.concat(frames, ignore_index=True) if frames else empty_feedback()
    result.frame = (table.sort_values(["alert_key", "user_id"], kind="stable")
                    .reset_index(drop=True).astype({"seen_at": str}))
    return result


def _posted_alerts(ledger: DeliveryLedger, today: date,
                   days: int) -> Iterator[tuple[str, dict[str, Any], Posted]]:
    """The alert messages posted to Slack for the ``days`` days ending ``today``: each one's
    ledger key and entry, and where it is (the window collect_feedback and slack_state read)."""
    since = (today - timedelta(days=max(days, 1) - 1)).isoformat()
    for key, entry in ledger.alert_messages(since, destination="slack"):
        yield key, entry, Posted(str(entry["ts"]),
                                 str(entry.get("channel_id") or entry["channel"]),
                                 str(entry.get("reference", "")))


def _present(value: Any) -> bool:
    return value is not None and value is not pd.NaT and not (
        isinstance(value, float) and pd.isna(value))


def _day(value: Any, fallback: str) -> str:
    if not _present(value):
        return fallback
    return value.isoformat()[:10] if hasattr(value, "isoformat") else str(value)[:10]


def slack_state(reader: FeedbackReader, ledger: DeliveryLedger, today: date,
                days: int = 30) -> str:
    """A cheap fingerprint of what people did on the alert messages of the window (one
    reactions.get per message: its reactions, reply count and latest reply): when it has not
    changed, the feedback has not either, and no run is needed. Edited replies are seen at the
    next change."""
    import hashlib
    import json

    state = []
    for key, entry, posted in _posted_alerts(ledger, today, days):
        try:
            message = reader.reacted(entry["channel"], posted)
        except DeliveryError as exc:
            if not exc.channel_only and exc.code != "message_not_found":
                raise
            message = {"error": exc.code}
        reactions = sorted((str(r.get("name")), sorted(map(str, r.get("users") or [])))
                           for r in message.get("reactions") or [] if isinstance(r, dict))
        state.append([key, reactions, message.get("reply_count") or 0,
                      str(message.get("latest_reply") or ""), message.get("error", "")])
    return hashlib.sha256(json.dumps(state).encode()).hexdigest()[:16]
