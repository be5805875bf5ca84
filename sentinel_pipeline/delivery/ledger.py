"""The delivery ledger: which alerts were already sent, so each is posted exactly once.

Sensor cursors can be reset and partitions rerun; the ledger in the data dir is what makes
delivery idempotent across both. It also remembers each day's message per channel, so an alert
found later for a day already reported is posted as a reply in that message's thread, and which
weekly digests went out.

File format (``_delivery/ledger.json``)::

    {"version": 2,
     "alerts":   {"2025-03-01|AWS Lambda|1111|us-east-1": {"channel", "reference", ...}},
     "messages": {"2025-03-01|#cost-alerts": {"ts", "channel_id", "reference", ...}},
     "digests":  {"digest|2025-W09": {"channel", "reference", ...}}}

A version-1 file (a flat object of alert keys) is read as the ``alerts`` part.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd

from sentinel_pipeline.delivery.sinks import Posted
from sentinel_pipeline.schema import SERIES_KEY
from sentinel_pipeline.storage import TableStore

LEDGER_PATH = "_delivery/ledger.json"
SECTIONS: tuple[str, ...] = ("alerts", "messages", "digests")


def alert_key(row: pd.Series | dict[str, Any]) -> str:
    """One alert per series and day: a rerun that rescales the numbers is the same alert."""
    day = row["usage_date"]
    day = day.isoformat() if hasattr(day, "isoformat") else str(day)
    return "|".join([day[:10], *(str(row[c]) for c in SERIES_KEY)])


def message_key(day: str, channel: str) -> str:
    return f"{day}|{channel}"


def digest_key(week: str) -> str:
    return f"digest|{week}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _load(store: TableStore) -> dict[str, dict[str, Any]]:
    raw = store.read_json(LEDGER_PATH) or {}
    if "version" not in raw:  # version 1: a flat object of alert keys, dates maybe with a time
        raw = {"alerts": {k[:10] + k[k.find("|"):]: v for k, v in raw.items() if "|" in k}}
    return {section: dict(raw.get(section) or {}) for section in SECTIONS}


class DeliveryLedger:
    """Alerts, messages and digests already delivered, as one JSON object in the data dir."""

    def __init__(self, store: TableStore) -> None:
        self.store = store
        self.data = _load(store)

    @property
    def alerts(self) -> dict[str, dict[str, Any]]:
        return self.data["alerts"]

    def delivered(self, key: str) -> bool:
        return key in self.data["alerts"]

    def message(self, day: str, channel: str) -> Posted | None:
        """The day's message in the channel (where its thread is), if one was posted."""
        entry = self.data["messages"].get(message_key(day, channel))
        if not entry:
            return None
        return Posted(entry.get("ts", ""), entry.get("channel_id", ""),
                      entry.get("reference", ""))

    def digest_sent(self, week: str) -> bool:
        return digest_key(week) in self.data["digests"]

    def record(self, keys: list[str], channel: str, destination: str, reference: str,
               day: str | None = None, message: Posted | None = None) -> None:
        """Mark alerts delivered (and the day's message, if new) and persist at once.

        Called right after each successful post, before anything else can fail; the file is
        re-read first so an entry written meanwhile by another writer is kept.
        """
        now = _now()
        updates: dict[str, dict[str, dict[str, Any]]] = {"alerts": {}, "messages": {}}
        for key in keys:
            updates["alerts"][key] = {"delivered_at": now, "channel": channel,
                                      "destination": destination, "reference": reference}
        if day is not None and message is not None:
            updates["messages"][message_key(day, channel)] = {
                "posted_at": now, "ts": message.ts, "channel_id": message.channel_id,
                "reference": message.reference, "destination": destination}
        self._save(updates)

    def record_digest(self, week: str, channel: str, destination: str, reference: str) -> None:
        self._save({"digests": {digest_key(week): {
            "delivered_at": _now(), "channel": channel, "destination": destination,
            "reference": reference}}})

    def _save(self, updates: dict[str, dict[str, dict[str, Any]]]) -> None:
        fresh = _load(self.store)
        for section, entries in updates.items():
            fresh[section].update(entries)
        self.data = fresh
        self.store.write_json(LEDGER_PATH, {"version": 2, **fresh})
