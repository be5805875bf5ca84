"""Detector settings shared by both methods (the knobs users tune from Dagster or the CLI)."""

from __future__ import annotations

from dataclasses import dataclass

from sentinel_pipeline import settings
from sentinel_pipeline.settings import METHODS


@dataclass(frozen=True)
class DetectionConfig:
    """Thresholds of the detector.

    The seed method uses only its own fixed rule (z > 2, +50 %, $1 floor, 7 rows of 30 days);
    the robust method uses every field. Defaults and their reasons: settings.py.
    """

    method: str = settings.METHOD
    min_impact: float = settings.MIN_IMPACT
    min_pct_change: float = settings.MIN_PCT_CHANGE
    score_threshold: float = settings.SCORE_THRESHOLD
    lookback_days: int = settings.LOOKBACK_DAYS
    alert_on_drops: bool = settings.ALERT_ON_DROPS

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(
                f"Unknown detection method {self.method!r}: choose one of {', '.join(METHODS)}."
            )
        if not 14 <= self.lookback_days <= 90:
            raise ValueError(
                f"lookback_days={self.lookback_days} is out of range: use 14 to 90 days."
            )
        if self.min_impact < 0 or self.min_pct_change < 0 or self.score_threshold <= 0:
            raise ValueError(
                "min_impact and min_pct_change must be >= 0 and score_threshold > 0 "
                f"(got {self.min_impact}, {self.min_pct_change}, {self.score_threshold})."
            )
