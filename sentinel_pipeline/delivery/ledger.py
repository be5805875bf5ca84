"""The delivery ledger: which alerts were already sent, so each is posted exactly once.

Sensor cursors can be reset and partitions rerun; the ledger in the data dir is what makes
delivery idempotent across both. It also remembers where each alert's own message is (its ts
and channel ID: feedback is read from it and its episode's news is added to it), each day
message per channel (releases before issue 16, and a busy day's overflow), which follow-up
replies and status edits were made, which weekly digests went out, and which posts were
attempted but not yet confirmed.

Exactly once across crashes
    Each post is recorded as ``pending`` (its key, channel, alerts, time) *before* it is sent,
    and carries Slack message metadata ``{"event_type": "sentinel_alert", "event_payload":
    {"key": ...}}``. Once Slack answers, the pending entry becomes ``alerts`` / ``messages`` /
    ``digests`` entries. A pending entry found later means the process died (or Slack timed
    out) mid-post: before posting again, the channel's recent history (``conversations.history``
    with ``include_all_metadata``, or ``conversations.replies`` for a thread reply) is searched
    for the key; if the post is there it is adopted (recorded with its ts), never reposted. See
    deliver.py for when an attempt not found is given up and what happens without the
    ``channels:history`` scope (nothing is reposted automatically).

Damage never causes a repost
    The file is version 3: a ``sequence`` number raised by every write, the ``count`` of
    entries (the ledger only grows: delivered entries are never removed) and a SHA-256
    ``checksum`` of its content. Every update writes the new content first to
    ``ledger.prev.json`` and then to ``ledger.json`` (each write is atomic: write then rename,
    or one S3 PUT), so ``ledger.prev.json`` always holds the newest generation Sentinel wrote.
    On reading:

    - neither file: the first run, an empty ledger;
    - ``ledger.json`` valid: used, merged with a valid ``ledger.prev.json`` (the newer by
      sequence wins, entries of either are kept: a union can only prevent posts, never cause
      one), which also recovers from a crash between the two writes;
    - ``ledger.json`` missing, unreadable, not JSON, not an object, ``null``, ``{}``, a wrong
      shape or type in any section, a checksum or count mismatch, or an old format while
      ``ledger.prev.json`` exists: LedgerError naming the file, what is wrong and the fix
      (``python -m sentinel_pipeline.delivery.ledger restore``). Nothing is posted until then.
      The fallback is not automatic: what the damaged file held cannot be read, so it cannot be
      proven that the copy is complete (e.g. when something else than Sentinel wrote it).

    Version 1 (a flat object of alert keys) and version 2 files of earlier releases are read
    when no ``ledger.prev.json`` exists yet (and are rewritten as version 3), but never an empty
    one: no release wrote ``{}`` or ``null``, so those are damage too.

Why a file in the data dir (and not the Dagster instance's database or S3 conditional writes)
    - The ledger describes what was posted *about the tables in the data dir*; it travels with
      them (a copied or restored data dir keeps its delivery history), while DAGSTER_HOME is
      often a throw-away SQLite instance (``dagster dev``, tests, a new container). Keeping it
      there would repost every recent alert whenever the instance is recreated.
    - The delivery library must not import Dagster (DESIGN.md); the instance offers no public
      key-value API with transactions (the sensor cursor is meant to be reset by people, and
      ``run_storage.kvs`` is internal), so it would be an adapter over private API.
    - The source of truth about what reached Slack is Slack itself: the metadata stamped on
      every post makes the ledger a cache plus an intent log that can be checked against the
      channel, which no database next to Sentinel could replace.
    - Writers: the alert sensor (ticks are serialised by the daemon) and the weekly digest op.
      Locally an exclusive lock file (``ledger.lock``) makes each read-modify-write atomic. On
      S3 two writers can still race: the sensor and the digest op updating within the same
      second could lose one's update. S3 conditional writes (``If-Match`` on the ETag, a
      compare-and-swap) would close that; they need a conditional write in storage.py and are
      the next step if the ledger lives on S3. This is the one known gap.

File format (``_delivery/ledger.json``)::

    {"version": 3, "sequence": 42, "count": 130, "checksum": "sha256:...", "written_at": "...",
     "alerts":   {"2025-03-01|AWS Lambda|1111|us-east-1": {"channel", "reference", "post",
                  "kind": "alert", "ts", "channel_id", "day", ...}},
     "messages": {"2025-03-01|#cost-alerts": {"ts", "channel_id", "reference", ...}},
     "digests":  {"digest|2025-W09": {"channel", "reference", ...}},
     "followups": {"followup|resolved|<episode_id>": {"ts", "thread_ts", ...},
                   "update|<alert key>": {"day", "digest", ...}},
     "pending":  {"2025-03-01|AWS Lambda|1111|us-east-1": {"kind", "channel", "alerts", ...}}}

An alert entry without ``kind`` went out in the day message named by its ``post`` (or, in
version 1 files, in an unknown message). ``followups`` is left out while empty, so the files
of releases before issue 16 read (and check) as they were written; a release before it refuses
a ledger with follow-ups as damaged, which is safe (it posts nothing).

Edit it only with ``python -m sentinel_pipeline.delivery.ledger`` (``check``, ``restore``,
``resolve``): a hand edit breaks the checksum and stops delivery.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from sentinel_pipeline.delivery.sinks import Posted
from sentinel_pipeline.errors import SentinelError
from sentinel_pipeline.schema import episode_key
from sentinel_pipeline.storage import TableStore

LEDGER_PATH = "_delivery/ledger.json"
PREV_PATH = "_delivery/ledger.prev.json"
LOCK_PATH = "_delivery/ledger.lock"
VERSION = 3
SECTIONS: tuple[str, ...] = ("alerts", "messages", "digests")  # grow-only
# Grow-only too, but absent from files written before follow-ups existed (issue 16): an
# empty optional section is left out of the file and of its checksum, so those files stay valid.
OPTIONAL: tuple[str, ...] = ("followups",)
ALL_SECTIONS: tuple[str, ...] = (*SECTIONS, *OPTIONAL)
PENDING = "pending"
# message/reply: a day's alerts in one message (before issue 16, and the overflow of a busy
# day); alert: one alert's own message; followup: a reply in an alert's thread.
KINDS = frozenset({"message", "reply", "digest", "alert", "followup"})
COMMAND = "python -m sentinel_pipeline.delivery.ledger"

Entries = dict[str, dict[str, Any]]


class LedgerError(SentinelError):
    """The delivery ledger cannot be trusted; nothing is posted until it is fixed."""


def alert_key(row: pd.Series | Mapping[Any, Any]) -> str:
    """One alert per series and day: a rerun that rescales the numbers is the same alert. The
    same name as the episode that starts that day (unowned keys as before owners existed)."""
    return episode_key(row["service"], row["account_id"], row["region"], row.get("owner"),
                       row["usage_date"])


def message_key(day: str, channel: str) -> str:
    return f"{day}|{channel}"


def reply_key(day: str, channel: str, alert_keys: list[str]) -> str:
    """A thread reply is named by the alerts it carries (the same alerts, the same reply)."""
    digest = hashlib.sha256("\n".join(sorted(alert_keys)).encode()).hexdigest()[:16]
    return f"{day}|{channel}|reply|{digest}"


def digest_key(week: str) -> str:
    return f"digest|{week}"


def followup_key(what: str, episode_id: str) -> str:
    """One follow-up reply per episode and kind of news (``resolved``, ``accepted``)."""
    return f"followup|{what}|{episode_id}"


def update_key(alert: str) -> str:
    """The last status Sentinel wrote into an alert's message (chat.update)."""
    return f"update|{alert}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _where(store: TableStore, rel: str) -> str:
    return f"{store.root}/{rel}" if store.is_s3 else str(Path(store.root) / rel)


# ----------------------------------------------------------------- encoding and validation
def _empty() -> dict[str, Entries]:
    return {section: {} for section in (*ALL_SECTIONS, PENDING)}


def _count(data: dict[str, Entries]) -> int:
    return sum(len(data.get(section) or {}) for section in ALL_SECTIONS)


def _stored(data: dict[str, Entries]) -> dict[str, Entries]:
    """The sections as written: optional ones only when they hold something."""
    return {s: data.get(s) or {} for s in (*ALL_SECTIONS, PENDING)
            if s not in OPTIONAL or data.get(s)}


def _checksum(sequence: int, data: dict[str, Entries]) -> str:
    body = json.dumps({"sequence": sequence, **_stored(data)},
                      sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(body.encode()).hexdigest()


def encode(data: dict[str, Entries], sequence: int) -> bytes:
    payload = {"version": VERSION, "sequence": sequence, "count": _count(data),
               "checksum": _checksum(sequence, data), "written_at": _now(),
               **_stored(data)}
    return json.dumps(payload, indent=2, default=str).encode()


@dataclass
class _Copy:
    """One of the two files as read: ok (version 3), legacy (1 or 2), missing or damaged."""

    state: str
    data: dict[str, Entries] = field(default_factory=_empty)
    sequence: int = 0
    reason: str = ""
    written_at: str = ""

    def summary(self) -> str:
        return (f"sequence {self.sequence}, {len(self.data['alerts'])} alert(s), "
                f"{len(self.data['messages'])} message(s), {len(self.data['digests'])} "
                f"digest(s), {len(self.data[PENDING])} pending, written {self.written_at}")


def _damaged(reason: str) -> _Copy:
    return _Copy("damaged", reason=reason)


def _entries(value: Any, section: str) -> Entries:
    """A section: an object of string keys to objects; ValueError naming what is wrong."""
    if not isinstance(value, dict):
        raise ValueError(f"section {section!r} is {_kind(value)}, not an object")
    for key, entry in value.items():
        if not isinstance(entry, dict):
            raise ValueError(f"{section}[{key!r}] is {_kind(entry)}, not an object")
    return dict(value)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "a number")


def _check_pending(pending: Entries) -> None:
    for key, entry in pending.items():
        ok = (entry.get("kind") in KINDS and isinstance(entry.get("channel"), str)
              and isinstance(entry.get("attempted_epoch"), int | float)
              and isinstance(entry.get("alerts"), list)
              and all(isinstance(k, str) for k in entry["alerts"]))
        if not ok:
            raise ValueError(f"pending[{key!r}] lacks kind, channel, alerts or attempted_epoch")


def parse(raw: bytes | None) -> _Copy:
    """Read one ledger file, checking the shape and type of every section and the checksum."""
    if raw is None:
        return _Copy("missing")
    try:
        payload = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return _damaged(f"not UTF-8 text ({len(raw)} bytes of binary data)")
    except ValueError as exc:
        return _damaged(f"not valid JSON: {exc}" if raw.strip() else "empty file")
    if not isinstance(payload, dict):
        return _damaged(f"it holds {_kind(payload)} instead of the ledger object")
    if not payload:
        return _damaged("it holds an empty object {}, which Sentinel never writes")
    version = payload.get("version")
    try:
        if version is None:  # version 1: a flat object of alert keys, dates maybe with a time
            alerts = _entries(payload, "alerts")
            if not all("|" in key for key in alerts):
                raise ValueError("it is neither a version 1 ledger (alert keys) nor has a version")
            data = _empty()
            data["alerts"] = {k[:10] + k[k.find("|"):]: v for k, v in alerts.items()}
            return _Copy("legacy", data)
        if version == 2:
            data = _empty()
            for section in SECTIONS:
                data[section] = _entries(payload.get(section) or {}, section)
            if not _count(data):
                raise ValueError("a version 2 ledger without any entry, which was never written")
            return _Copy("legacy", data)
        if version != VERSION:
            raise ValueError(f"version {version!r} is not one this Sentinel reads ({VERSION}): "
                             "was it written by a newer Sentinel? Upgrade, or restore")
        data = {section: _entries(payload.get(section), section)
                for section in (*SECTIONS, PENDING)}
        for section in OPTIONAL:
            data[section] = (_entries(payload[section], section) if section in payload
                             else {})
        _check_pending(data[PENDING])
        sequence = payload.get("sequence")
        if not isinstance(sequence, int) or isinstance(sequence, bool) or sequence < 1:
            raise ValueError("its 'sequence' is missing or not a positive integer")
        if payload.get("count") != _count(data):
            raise ValueError(f"it says it holds {payload.get('count')!r} entries but holds "
                             f"{_count(data)}")
        if payload.get("checksum") != _checksum(sequence, data):
            raise ValueError("its checksum does not match its content (edited by hand, or "
                             "partly overwritten)")
    except ValueError as exc:
        return _damaged(str(exc))
    return _Copy("ok", data, sequence, written_at=str(payload.get("written_at") or "?"))


def _merge(base: _Copy, other: _Copy) -> dict[str, Entries]:
    """``base`` (the newer) plus the delivered entries only ``other`` has: never fewer."""
    data = {section: dict(base.data[section]) for section in (*ALL_SECTIONS, PENDING)}
    for section in ALL_SECTIONS:
        for key, entry in other.data[section].items():
            data[section].setdefault(key, entry)
    posts = {entry.get("post") for entry in data["alerts"].values()}
    for key in list(data[PENDING]):  # confirmed in either copy: no longer pending
        if (key in posts or key in data["messages"] or key in data["digests"]
                or key in data["followups"]):
            data[PENDING].pop(key)
    return data


@dataclass
class _State:
    data: dict[str, Entries]
    sequence: int
    notes: list[str]


def damage_message(store: TableStore, what: str, prev: _Copy) -> str:
    path, copy = _where(store, LEDGER_PATH), _where(store, PREV_PATH)
    data_dir = _where(store, "").rstrip("/")
    head = (f"The delivery ledger {path} is damaged ({what}). Until it is fixed nothing is "
            "posted, so nothing is posted twice.")
    if prev.state == "ok":
        return (f"{head} Fix: restore the last good copy with `{COMMAND} restore --data-dir "
                f"{data_dir}` ({copy}: {prev.summary()}; Sentinel writes it before every "
                "update of ledger.json, so it holds everything Sentinel recorded unless "
                "something else replaced ledger.json), or put back ledger.json from a backup "
                "of the data dir.")
    copy_state = "is missing" if prev.state == "missing" else f"is damaged too ({prev.reason})"
    return (f"{head} There is no good copy to restore: {copy} {copy_state}. Fix: put back "
            f"ledger.json from a backup of the data dir. Only if you accept that the alerts of "
            f"the last days (up to the alert sink's max_age_days) are posted again, move "
            f"{path} away.")


def read_state(store: TableStore) -> _State:
    """The ledger as it stands; LedgerError when it cannot be trusted."""
    current = parse(store.read_bytes(LEDGER_PATH))
    prev = parse(store.read_bytes(PREV_PATH))
    if current.state == "missing" and prev.state == "missing":
        return _State(_empty(), 0, [])  # the first run
    if current.state == "missing":
        raise LedgerError(damage_message(
            store, f"the file is missing while {PREV_PATH.rsplit('/', 1)[-1]} exists", prev))
    if current.state == "damaged":
        raise LedgerError(damage_message(store, current.reason, prev))
    if current.state == "legacy":
        if prev.state != "missing":
            raise LedgerError(damage_message(
                store, "it is in the format of an earlier release while ledger.prev.json "
                "exists: it was overwritten by an older Sentinel or by hand", prev))
        return _State(current.data, 0, [])
    notes: list[str] = []
    if prev.state == "ok":
        base, other = (prev, current) if prev.sequence > current.sequence else (current, prev)
        if base is prev:
            notes.append(f"{_where(store, LEDGER_PATH)} (sequence {current.sequence}) is older "
                         f"than its copy (sequence {prev.sequence}): an update was interrupted; "
                         "the copy is used and ledger.json is rewritten at the next update.")
        return _State(_merge(base, other), base.sequence, notes)
    if prev.state == "damaged":
        notes.append(f"{_where(store, PREV_PATH)} is damaged ({prev.reason}); ledger.json is "
                     "valid and is used, and the copy is rewritten at the next update.")
    return _State(current.data, current.sequence, notes)


@contextlib.contextmanager
def _locked(store: TableStore) -> Iterator[None]:
    """An exclusive lock around a read-modify-write (local data dirs; see the docstring)."""
    if store.is_s3:
        yield
        return
    import fcntl

    path = Path(store.root) / LOCK_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_state(store: TableStore, data: dict[str, Entries], sequence: int) -> None:
    """The copy first, then ledger.json: the copy always holds the newest generation."""
    body = encode(data, sequence)
    store.write_bytes(PREV_PATH, body)
    store.write_bytes(LEDGER_PATH, body)


# ------------------------------------------------------------------------------ the ledger
class DeliveryLedger:
    """Alerts, messages and digests delivered, and posts attempted, in the data dir.

    Raises LedgerError (naming the file and the fix) when the ledger is damaged. ``notes``
    holds what was repaired on reading (worth a warning in the log).
    """

    def __init__(self, store: TableStore) -> None:
        self.store = store
        state = read_state(store)
        self.data, self.sequence, self.notes = state.data, state.sequence, state.notes

    @property
    def alerts(self) -> dict[str, dict[str, Any]]:
        return self.data["alerts"]

    def delivered(self, key: str) -> bool:
        return key in self.data["alerts"]

    def alert_message(self, key: str) -> Posted | None:
        """The alert's own message (issue 16), or None: not delivered, or delivered inside a
        day message by an earlier release (or as the overflow of a busy day)."""
        entry = self.data["alerts"].get(key)
        if not entry or entry.get("kind") != "alert" or not entry.get("ts"):
            return None
        return Posted(str(entry["ts"]), str(entry.get("channel_id") or entry["channel"]),
                      str(entry.get("reference", "")))

    def thread_of(self, key: str) -> tuple[Posted, bool] | None:
        """Where to reply about a delivered alert: its own message (True), or the day
        message that carried it (False: shared with other alerts); None if unknown."""
        own = self.alert_message(key)
        if own is not None:
            return own, True
        entry = self.data["alerts"].get(key)
        post = str((entry or {}).get("post") or "")
        if not entry or not post:
            return None  # version 1 entries do not say which message carried them
        day, channel = post.split("|", 1)[0], entry.get("channel", "")
        root = self.message(day, channel)
        return (root, False) if root is not None and root.ts else None

    def alert_messages(self, since_day: str, destination: str = "slack"
                       ) -> list[tuple[str, dict[str, Any]]]:
        """Alerts with a message of their own about ``since_day`` or later, oldest first."""
        return sorted((key, entry) for key, entry in self.data["alerts"].items()
                      if entry.get("kind") == "alert" and entry.get("ts")
                      and key[:10] >= since_day
                      and entry.get("destination", destination) == destination)

    def alert_message_count(self, day: str, channel: str) -> int:
        """How many alerts of ``day`` already have a message of their own in ``channel``."""
        return sum(1 for entry in self.data["alerts"].values()
                   if entry.get("kind") == "alert" and entry.get("day") == day
                   and entry.get("channel") == channel)

    def followup_sent(self, key: str) -> bool:
        return key in self.data["followups"]

    def last_update(self, alert: str) -> dict[str, Any]:
        """What the last chat.update of the alert's message wrote ({} if none)."""
        return dict(self.data["followups"].get(update_key(alert)) or {})

    def record_update(self, alert: str, day: str, digest: str) -> None:
        """Remember the status written into the alert's message (so it is not rewritten)."""
        def change(data: dict[str, Entries]) -> None:
            data["followups"][update_key(alert)] = {"day": day, "digest": digest,
                                                   "updated_at": _now()}

        self._save(change)

    def message(self, day: str, channel: str) -> Posted | None:
        """The day's message in the channel (where its thread is), if one was posted."""
        entry = self.data["messages"].get(message_key(day, channel))
        if not entry:
            return None
        return Posted(entry.get("ts", ""), entry.get("channel_id", ""),
                      entry.get("reference", ""))

    def channel_id(self, channel: str, destination: str) -> str:
        """The channel's ID from an earlier message to it ('' if none is known)."""
        for key, entry in self.data["messages"].items():
            if (key.split("|", 1)[-1] == channel and entry.get("channel_id")
                    and entry.get("destination", destination) == destination):
                return str(entry["channel_id"])
        for entry in self.data["alerts"].values():
            if (entry.get("kind") == "alert" and entry.get("channel") == channel
                    and entry.get("channel_id")
                    and entry.get("destination", destination) == destination):
                return str(entry["channel_id"])
        return ""

    def digest_sent(self, week: str) -> bool:
        return digest_key(week) in self.data["digests"]

    def pending(self, key: str) -> dict[str, Any] | None:
        return self.data[PENDING].get(key)

    def pending_of_day(self, day: str) -> list[tuple[str, dict[str, Any]]]:
        return sorted((k, v) for k, v in self.data[PENDING].items() if v.get("day") == day)

    def begin(self, key: str, kind: str, channel: str, destination: str, name: str,
              alerts: list[str], day: str = "", thread_ts: str = "",
              channel_id: str = "") -> dict[str, Any]:
        """Record a post as pending *before* sending it (persisted at once)."""
        entry = {"kind": kind, "channel": channel, "destination": destination, "name": name,
                 "day": day, "alerts": list(alerts), "thread_ts": thread_ts,
                 "channel_id": channel_id, "attempted_at": _now(),
                 "attempted_epoch": round(time.time(), 3)}

        def change(data: dict[str, Entries]) -> None:
            data[PENDING][key] = entry

        self._save(change)
        return entry

    def confirm(self, key: str, posted: Posted, adopted: bool = False) -> None:
        """The pending post reached its destination: record what it delivered."""
        fallback = self.data[PENDING].get(key)

        def change(data: dict[str, Entries]) -> None:
            entry = data[PENDING].pop(key, None) or fallback
            if entry is None:
                raise LedgerError(f"No pending post {key!r} in {_where(self.store, LEDGER_PATH)}"
                                  " to confirm.")
            now, channel, destination = _now(), entry["channel"], entry["destination"]
            extra: dict[str, Any] = {"adopted": True} if adopted else {}
            if entry["kind"] == "alert":  # its own message: kept to follow up and read feedback
                extra |= {"kind": "alert", "ts": posted.ts, "channel_id": posted.channel_id,
                          "day": entry["day"]}
            for alert in entry["alerts"]:
                data["alerts"][alert] = {"delivered_at": now, "channel": channel,
                                         "destination": destination,
                                         "reference": posted.reference, "post": key, **extra}
            if entry["kind"] == "message":
                data["messages"][message_key(entry["day"], channel)] = {
                    "posted_at": now, "ts": posted.ts, "channel_id": posted.channel_id,
                    "reference": posted.reference, "destination": destination, **extra}
            elif entry["kind"] == "digest":
                data["digests"][key] = {"delivered_at": now, "channel": channel,
                                        "destination": destination,
                                        "reference": posted.reference, **extra}
            elif entry["kind"] == "followup":
                data["followups"][key] = {"delivered_at": now, "channel": channel,
                                          "destination": destination, "ts": posted.ts,
                                          "thread_ts": entry.get("thread_ts", ""),
                                          "reference": posted.reference, **extra}

        self._save(change)

    def abandon(self, key: str, ended: bool = False) -> None:
        """The post certainly did not happen (Slack refused it, or it was checked): forget
        the attempt. With ``ended`` the attempt stays pending (it may have reached Slack) but
        is marked as no longer in flight from this process."""
        def change(data: dict[str, Entries]) -> None:
            if ended and key in data[PENDING]:
                data[PENDING][key] = {**data[PENDING][key], "ended_epoch": round(time.time(), 3)}
            else:
                data[PENDING].pop(key, None)

        self._save(change)

    def _save(self, change: Callable[[dict[str, Entries]], None]) -> None:
        """Re-read (so an entry written meanwhile is kept), change, write both copies."""
        with _locked(self.store):
            state = read_state(self.store)
            change(state.data)
            write_state(self.store, state.data, state.sequence + 1)
        self.data, self.sequence, self.notes = state.data, state.sequence + 1, []


# ------------------------------------------------------------------------- the command
def restore(store: TableStore) -> str:
    """Put back ledger.json from ledger.prev.json (the damaged file is kept aside)."""
    with _locked(store):
        current = parse(store.read_bytes(LEDGER_PATH))
        prev = parse(store.read_bytes(PREV_PATH))
        if prev.state != "ok":
            why = "is missing" if prev.state == "missing" else f"is damaged ({prev.reason})"
            raise LedgerError(f"Cannot restore: {_where(store, PREV_PATH)} {why}. Put back "
                              "ledger.json from a backup of the data dir.")
        if current.state == "ok" and current.sequence >= prev.sequence:
            return f"{_where(store, LEDGER_PATH)} is valid ({current.summary()}): nothing to do."
        kept = ""
        raw = store.read_bytes(LEDGER_PATH)
        if raw is not None:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            kept = store.write_bytes(f"_delivery/ledger.damaged-{stamp}.json", raw)
        write_state(store, prev.data, prev.sequence + 1)
    return (f"Restored {_where(store, LEDGER_PATH)} from {_where(store, PREV_PATH)} "
            f"({prev.summary()})" + (f"; the damaged file is kept as {kept}." if kept else "."))


def resolve(store: TableStore, key: str, ts: str | None) -> str:
    """Settle a pending post by hand: ``ts`` of the message found in the channel, or None
    when it is not there (it is then posted on the next tick)."""
    ledger = DeliveryLedger(store)
    entry = ledger.pending(key)
    if entry is None:
        raise LedgerError(f"No pending post {key!r} in {_where(store, LEDGER_PATH)}; pending: "
                          f"{sorted(ledger.data[PENDING]) or 'none'}.")
    if ts is None:
        ledger.abandon(key)
        return f"{key}: marked not posted; it is posted on the next tick."
    channel_id = entry.get("channel_id") or entry["channel"]
    ledger.confirm(key, Posted(ts=ts, channel_id=channel_id, reference=ts), adopted=True)
    return f"{key}: recorded as posted (ts {ts}); it is not posted again."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=COMMAND, description="Check, restore or settle the Sentinel delivery ledger.")
    parser.add_argument("--data-dir", default=os.environ.get("SENTINEL_DATA_DIR")
                        or "./.sentinel/data", help="SENTINEL_DATA_DIR (folder or s3:// URL)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="validate the ledger and its copy")
    sub.add_parser("restore", help="put back ledger.json from ledger.prev.json")
    settle = sub.add_parser("resolve", help="settle a pending (interrupted) post by hand")
    settle.add_argument("key", help="the pending post's key (as the error names it)")
    how = settle.add_mutually_exclusive_group(required=True)
    how.add_argument("--posted", metavar="TS", help="it is in the channel: its message ts")
    how.add_argument("--not-posted", action="store_true", help="it is not in the channel")
    args = parser.parse_args(argv)
    store = TableStore(args.data_dir)
    try:
        if args.command == "check":
            ledger = DeliveryLedger(store)
            print(f"{_where(store, LEDGER_PATH)}: valid, sequence {ledger.sequence}, "
                  f"{len(ledger.alerts)} alert(s), {len(ledger.data[PENDING])} pending "
                  f"{sorted(ledger.data[PENDING])}")
            for note in ledger.notes:
                print(note)
        elif args.command == "restore":
            print(restore(store))
        else:
            print(resolve(store, args.key, None if args.not_posted else args.posted))
    except SentinelError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
