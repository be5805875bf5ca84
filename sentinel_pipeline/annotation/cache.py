"""Claude's explanations kept by anomaly fingerprint, so rerunning an unchanged day is free.

A fingerprint covers what the explanation depends on: the series, the day, the rounded numbers,
the kind, the root causes, the model and the prompt version. Change any of them and the anomaly
is asked about again. Only model answers are cached (a fallback is retried on the next run).

One small JSON file per day, ``{data_dir}/_annotation_cache/date=YYYY-MM-DD.json``, rewritten whole
through TableStore (local or S3) with the day's current entries only, so it never grows.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date

import pandas as pd

from sentinel_pipeline.annotation.claude import Explanation, read_explanation
from sentinel_pipeline.annotation.prompt import PROMPT_VERSION, finite_number
from sentinel_pipeline.errors import StorageError
from sentinel_pipeline.schema import SERIES_KEY
from sentinel_pipeline.sources.root_causes import from_json
from sentinel_pipeline.storage import TableStore

CACHE_FOLDER = "_annotation_cache"
_NUMBERS = ("actual_cost", "expected_cost", "impact", "pct_change", "score")


def fingerprint(row: pd.Series, model: str) -> str:
    """sha256 of everything the explanation of this anomaly depends on."""
    parts = {
        "series": [str(row[c]) for c in SERIES_KEY],
        "day": pd.Timestamp(row["usage_date"]).date().isoformat(),
        "numbers": [finite_number(row.get(c)) for c in _NUMBERS],
        "kind": str(row["kind"]),
        "root_causes": from_json(row.get("root_causes")),
        "model": model,
        "prompt": PROMPT_VERSION,
    }
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class AnnotationCache:
    """Read and rewrite one day's cached explanations."""

    def __init__(self, store: TableStore) -> None:
        self.store = store

    @staticmethod
    def _path(day: date) -> str:
        return f"{CACHE_FOLDER}/date={day.isoformat()}.json"

    def load(self, day: date) -> dict[str, tuple[str, Explanation]]:
        """fingerprint -> (annotator, explanation); an unreadable file counts as empty."""
        try:
            payload = self.store.read_json(self._path(day))
        except (StorageError, ValueError):
            return {}
        out: dict[str, tuple[str, Explanation]] = {}
        if not isinstance(payload, dict):
            return out
        for key, entry in payload.get("entries", {}).items():
            # The same checks as a fresh answer, so a hand-edited file cannot slip past them.
            explanation = read_explanation(entry) if isinstance(entry, dict) else None
            if explanation is not None and isinstance(entry.get("annotator"), str):
                out[key] = (entry["annotator"], explanation)
        return out

    def save(self, day: date, entries: dict[str, tuple[str, Explanation]]) -> None:
        """Replace the day's file with exactly these entries (none: nothing is written)."""
        if not entries:
            return
        payload = {
            "prompt_version": PROMPT_VERSION,
            "entries": {key: explanation.as_row(annotator)
                        for key, (annotator, explanation) in sorted(entries.items())},
        }
        self.store.write_json(self._path(day), payload)
