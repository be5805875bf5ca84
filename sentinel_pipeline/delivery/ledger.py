"""The delivery ledger: which alerts were already sent, so each is posted exactly once.

Sensor cursors can be reset and partitions rerun; the ledger in the data dir is what makes
delivery idempotent across both.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd

from sentinel_pipeline.storage import TableStore

LEDGER_PATH = "_delivery/ledger.json"


def alert_key(row: pd.Series | dict[str, Any]) -> str:
    """One alert per series and day: a rerun that rescales the numbers is the same alert."""
    return "|".join(str(row[c]) for c in ("usage_date", "service", "account_id", "region"))


class DeliveryLedger:
    """Alert keys already delivered, stored as one JSON object in the data dir."""

    def __init__(self, store: TableStore) -> None:
        self.store = store
        self.entries: dict[str, dict[str, Any]] = store.read_json(LEDGER_PATH) or {}

    def delivered(self, key: str) -> bool:
        return key in self.entries

    def record(self, keys: list[str], destination: str, reference: str) -> None:
        """Mark keys delivered and persist at once, before anything else can fail."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        for key in keys:
            self.entries[key] = {"delivered_at": now, "destination": destination,
                                 "reference": reference}
        self.store.write_json(LEDGER_PATH, self.entries)
