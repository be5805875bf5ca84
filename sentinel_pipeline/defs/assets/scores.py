"""cost_scores: every series on every day with its score, not only the unusual ones."""

import dagster as dg
import numpy as np

from sentinel_pipeline.defs.assets.anomalies import raised_bars_metadata, score_range
from sentinel_pipeline.defs.assets.common import (
    add_day_metadata,
    markdown_table,
    user_errors,
    write_days,
)
from sentinel_pipeline.defs.checks import SCORE_CHECK_SPECS, score_check_results
from sentinel_pipeline.defs.partitions import DAILY_TABLE, days_in_context
from sentinel_pipeline.defs.resources import DetectionResource, StorageResource
from sentinel_pipeline.detection import scores_for_days
from sentinel_pipeline.schema import SCORE_COLUMNS, SERIES_KEY

SCORE_PREVIEW = [*SERIES_KEY, "actual_cost", "expected_cost", "impact",
                 "score", "kind"]
# Share of series-days above a score when the score is calibrated: P(Z > s), one-sided normal.
CALIBRATION = {3.0: 1.35e-3, 4.0: 3.17e-5}


@dg.asset(
    **DAILY_TABLE,
    # Same-day dependencies (partitions.py says why). cost_anomalies of the day before (the
    # episodes already open, so they are continued, not alerted again) is read from storage.
    deps=["raw_daily_costs", "cost_baselines"],
    check_specs=SCORE_CHECK_SPECS,
    description=(
        "Every series on day D scored against cost_baselines, quiet ones included: actual, "
        "expected, $ impact, % change, score and kind ('' on a normal day). The score is in "
        "standard deviations of a one-sided normal tail, the larger of the day's own jump and "
        "the drift of the days before it, so a threshold s means about P(Z > s) false alarms "
        "per series-day (4: 3 in 100,000). Rank, plot or threshold it; cost_anomalies takes "
        "the rows that pass the detector's rules (kind not ''). threshold: the score the row "
        "had to reach for its kind (the configured bar, raised for a series and kind by "
        "not_anomaly feedback; metadata series_with_raised_bars)."
    ),
)
def cost_scores(
    context: dg.AssetExecutionContext,
    storage: StorageResource,
    detection: DetectionResource,
) -> dg.MaterializeResult:
    days = days_in_context(context)
    store = storage.store()
    with user_errors():
        config = detection.config()
        frames = score_range(store, days, config, "cost_scores", scores_for_days)
        write_days(context, store, "cost_scores", frames, SCORE_COLUMNS)
    for day in days:
        rows = frames[day]
        scores = rows["score"].to_numpy(dtype=float) if len(rows) else np.zeros(0)
        top = rows.sort_values("score", ascending=False) if len(rows) else rows
        add_day_metadata(context, day, {
            "dagster/row_count": len(rows),
            "series_scored": len(rows),
            "median_score": float(np.median(scored)) if len(scored := scores[np.isfinite(scores)])
            else 0.0,
            **{f"share_above_{s:g}": float((scores > s).mean()) if len(scores) else 0.0
               for s in CALIBRATION},
            "top_scores": dg.MetadataValue.md(markdown_table(top, SCORE_PREVIEW)),
        })
    return dg.MaterializeResult(
        check_results=score_check_results(frames),
        metadata={
            "method": config.method,
            "expected_share_above": dg.MetadataValue.json(
                {f"{s:g}": p for s, p in CALIBRATION.items()}),
            **raised_bars_metadata(store, config, frames[days[-1]]),
        },
    )
