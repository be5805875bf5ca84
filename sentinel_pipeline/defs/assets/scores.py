"""cost_scores: every series on every day with its score, not only the unusual ones."""

import ctypes
import gc
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa

from sentinel_pipeline.defs.assets.common import (
    add_day_metadata,
    markdown_table,
    require_days,
    user_errors,
    write_days,
)
from sentinel_pipeline.defs.checks import (
    SCORE_CHECK_SPECS,
    score_check_results,
    score_problems,
)
from sentinel_pipeline.defs.partitions import DAILY_TABLE, days_in_context
from sentinel_pipeline.defs.resources import DetectionResource, StorageResource
from sentinel_pipeline.detection import (
    DetectionConfig,
    Earlier,
    anomalies_of_scores,
    scores_for_days,
)
from sentinel_pipeline.detection.feedback import bars_table, raised_bars
from sentinel_pipeline.schema import (
    BASELINE_COLUMNS,
    FEEDBACK_TABLE,
    SCORE_COLUMNS,
    SERIES_KEY,
    with_owner,
)
from sentinel_pipeline.storage import TableStore

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
        "standard deviations of a one-sided normal tail: the day's own jump, or on a day above "
        "normal the drift of the days before it if larger, so a threshold s means about "
        "P(Z > s) false alarms "
        "per series-day (4: 3 in 100,000). Rank, plot or threshold it; cost_anomalies takes "
        "the rows that pass the detector's rules (kind not ''). threshold: the score the row "
        "had to reach for its kind (the configured bar, raised for a series and kind by "
        "not_anomaly feedback; metadata series_with_raised_bars). unusual_days (robust): the "
        "days of the last 63 that stood out without an alert (score 3 or more at the end of "
        "a run of elevated days), as bits, bit k being k days before D; cost_baselines leaves "
        "them out of the history once over. episode_peak (robust): the open episode's largest "
        "day's $ impact so far (0 if none): a later day alerts again only at twice it."
    ),
)
def cost_scores(
    context: dg.AssetExecutionContext,
    storage: StorageResource,
    detection: DetectionResource,
) -> dg.MaterializeResult:
    days = days_in_context(context)
    store = storage.store()
    found = []
    with user_errors():
        config = detection.config()
        feedback = store.read_table(FEEDBACK_TABLE)
        for frames in score_range(store, days, config, "cost_scores", feedback):
            write_days(context, store, "cost_scores", frames, SCORE_COLUMNS)
            found.append(score_problems(frames))
            for day, rows in frames.items():
                add_day_metadata(context, day, _day_metadata(rows))
            last = frames[max(frames)]
    return dg.MaterializeResult(
        check_results=score_check_results(found),
        metadata={
            "method": config.method,
            "expected_share_above": dg.MetadataValue.json(
                {f"{s:g}": p for s, p in CALIBRATION.items()}),
            **raised_bars_metadata(feedback, config, last),
        },
    )


def _day_metadata(rows: pd.DataFrame) -> dict[str, Any]:
    scores = rows["score"].to_numpy(dtype=float) if len(rows) else np.zeros(0)
    top = rows.sort_values("score", ascending=False) if len(rows) else rows
    scored = scores[np.isfinite(scores)]
    return {
        "dagster/row_count": len(rows),
        "series_scored": len(rows),
        "median_score": float(np.median(scored)) if len(scored) else 0.0,
        # series whose recent days stood out without an alert (left out of their history)
        "series_with_unusual_days": int((rows["unusual_days"].fillna(0) != 0).sum())
        if "unusual_days" in rows.columns else 0,
        **{f"share_above_{s:g}": float((scores > s).mean()) if len(scores) else 0.0
           for s in CALIBRATION},
        "top_scores": dg.MetadataValue.md(markdown_table(top, SCORE_PREVIEW)),
    }


# Days of a range scored at once. Each block carries on from the one before, as a daily run
# carries on from the day before, so the rows are the same as scored all at once; a year of
# 10,000 series scored at once held 3.65 million rows of inputs, scores and their join (2.4 GB).
# A block is written before the next is scored: if a later block fails (an unreadable file),
# the days already written are whole and hold what a successful run writes for them.
SCORE_BLOCK_DAYS = 30


def score_range(store: TableStore, days: list[date], config: DetectionConfig, needed_by: str,
                feedback: pd.DataFrame | None) -> Iterator[dict[date, pd.DataFrame]]:
    """The scores of ``days`` from their stored costs and baselines, SCORE_BLOCK_DAYS days at a
    time: the first block starts from the anomalies and drift statistics stored for the day
    before ``days``, each next one from those of the last day of the block before it. The
    inputs are handed over, not kept here, so they are freed once joined.

    Never score a day without its costs and baselines (an empty result would read as a quiet
    day): every day's are checked before the first block, so a missing one fails naming the
    days before anything is written (e.g. a UI backfill that left cost_baselines out)."""
    require_days(store, "raw_daily_costs", days, needed_by)
    require_days(store, "cost_baselines", days, needed_by)
    previous = previous_anomalies(store, days)
    drift = previous_drift(store, days) if config.method == "robust" else None
    for start in range(0, len(days), SCORE_BLOCK_DAYS):
        block = days[start:start + SCORE_BLOCK_DAYS]
        inputs = list(scoring_inputs(store, block))
        frames = scores_for_days(inputs.pop(0), inputs.pop(0), block, config,
                                 previous, feedback, drift)
        last = frames[block[-1]]
        previous = anomalies_of_scores(last, config.method)  # as cost_anomalies stores them
        drift = last if config.method == "robust" and len(last) else None
        yield frames


def raised_bars_metadata(feedback: pd.DataFrame | None, config: DetectionConfig,
                         scored: pd.DataFrame) -> dict[str, Any]:
    """The series of ``scored`` whose bar not_anomaly feedback raised (detection/feedback.py),
    for the UI; feedback on series that were not scored is left out."""
    if config.method != "robust" or len(scored) == 0:
        return {"series_with_raised_bars": 0}
    bars = bars_table(raised_bars(feedback, config.score_threshold))
    if len(bars):
        # The few rows that could be a raised series first (a million series as Python
        # tuples took seconds), then the exact match.
        maybe = scored
        for key in SERIES_KEY:
            maybe = maybe[maybe[key].astype(str).isin(bars[key].astype(str))]
        known = set(maybe[SERIES_KEY].astype(str).itertuples(index=False, name=None))
        bars = bars[[k in known for k in
                     bars[SERIES_KEY].astype(str).itertuples(index=False, name=None)]]
    return {
        "series_with_raised_bars": len(bars),
        "raised_bars": dg.MetadataValue.md(markdown_table(
            bars, [*SERIES_KEY, "kind", "raises", "threshold"])),
    }


def scoring_inputs(store: TableStore, days: list[date]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The costs and baselines of ``days`` (score_range has checked they are there).

    Only the columns scoring reads, text as categories and dates as datetime64: a year of
    10,000 series is 3.65 million rows of each, which as Python dates and text per row took
    1.3 GB before the join even started."""
    release_freed_memory()  # what the steps before this one freed
    return (_read_days(store, "raw_daily_costs", days, SCORED_RAW_COLUMNS),
            _read_days(store, "cost_baselines", days, BASELINE_COLUMNS))


SCORED_RAW_COLUMNS = ["usage_date", *SERIES_KEY, "cost", "currency"]


def _read_days(store: TableStore, table: str, days: list[date],
               columns: list[str]) -> pd.DataFrame:
    """``columns`` of the days from days[0] to days[-1] that have rows (an empty frame if
    none), read as Arrow a day at a time and made one pandas frame."""
    n = (days[-1] - days[0]).days + 1
    # Read with the system allocator (freed pages go back to the OS), not Arrow's default
    # pool, which kept the ~500 MB a year's files took to decode for the rest of the step.
    pool = pa.system_memory_pool()
    default = pa.default_memory_pool()
    pa.set_memory_pool(pool)
    try:
        tables = [t for i in range(max(n, 0)) if (t := store.read_arrow(
            table, days[0] + timedelta(days=i), columns)) is not None and t.num_rows]
    finally:
        pa.set_memory_pool(default)
    if not tables:
        return pd.DataFrame()
    try:
        whole = pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        frames = [t.to_pandas(date_as_object=False, memory_pool=pool) for t in tables]
        del tables
        return pd.concat(frames, ignore_index=True)
    del tables
    frame = whole.to_pandas(date_as_object=False, self_destruct=True, memory_pool=pool)
    del whole
    release_freed_memory()
    return frame


def release_freed_memory() -> None:
    """Free what only reference cycles still hold (earlier steps of the run) and give the
    pages freed so far back to the OS: glibc keeps freed blocks under 32 MB, column-sized
    here, in its heap, so the decoding of a year's files stayed resident."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


def earlier_verdicts(store: TableStore, days: list[date], config: DetectionConfig) -> Earlier:
    """What cost_baselines of ``days`` learns Sentinel's own verdicts from (robust only,
    detection/verdicts.py): cost_anomalies of the lookback before the first day, and the
    scores of the day before it (their unusual_days: the days that stood out without an
    episode) and its anomalies, from which the days of the range are scored as they go (a run
    of one day scores none: it needs no anomalies). Days never scored have no verdicts:
    nothing of them is left out."""
    if config.method != "robust":
        return Earlier()
    lookback = [days[0] - timedelta(days=config.lookback_days), days[0] - timedelta(days=1)]
    anomalies = _read_days(store, "cost_anomalies", lookback, VERDICT_COLUMNS)
    earlier = Earlier(anomalies if len(anomalies) else None)
    earlier.drift = previous_drift(store, days)
    if len(days) > 1:
        earlier.previous = previous_anomalies(store, days)
    return earlier


VERDICT_COLUMNS = ["usage_date", *SERIES_KEY, "kind", "anomaly_start", "method"]


def previous_drift(store: TableStore, days: list[date]) -> pd.DataFrame | None:
    """The drift statistics cost_scores stored for the day before ``days`` and the days that
    stood out (None if that day was never scored; no columns from scores written before they
    existed): the CUSUMs, the unusual days and the open episodes' peaks carry on from them,
    so a daily run and a backfill of the same days score alike."""
    table = store.read_arrow("cost_scores", days[0] - timedelta(days=1),
                             ["usage_date", *SERIES_KEY, "cusum", "cusum_large", "unusual_days",
                              "episode_peak"])
    return None if table is None else with_owner(table.to_pandas())


def previous_anomalies(store: TableStore, days: list[date]) -> pd.DataFrame | None:
    """cost_anomalies of the day before ``days`` (None if never written): the episodes already
    open, so they are continued, not alerted again."""
    return store.read_partition("cost_anomalies", days[0] - timedelta(days=1))
