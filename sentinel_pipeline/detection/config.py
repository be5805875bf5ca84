"""Detector settings shared by both methods (the knobs users tune from Dagster or the CLI)."""

from __future__ import annotations

from dataclasses import dataclass

METHODS: tuple[str, ...] = ("robust", "seed")


@dataclass(frozen=True)
class DetectionConfig:
    """Thresholds of the detector.

    The seed method uses only its own fixed rule (z > 2, +50 %, $1 floor, 7 rows of 30 days);
    the robust method uses every field.
    """

    method: str = "robust"
    # Smallest $ change of one day worth an alert: below it nobody acts, whatever the score.
    min_impact: float = 20.0
    # Smallest % change worth an alert, so huge series do not alert on rounding noise.
    min_pct_change: float = 20.0
    # How many robust standard deviations (MAD-based) away from expected a day must be.
    score_threshold: float = 4.0
    # Days of history the baseline looks at (robust); covers a month and 8 weeks of weekdays.
    lookback_days: int = 63
    # Cost drops are always recorded (kind=drop); they reach Slack only when this is set.
    alert_on_drops: bool = False

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
