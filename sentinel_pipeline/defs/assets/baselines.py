"""cost_baselines: what each series should cost on day D, learned from the days before D."""

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sentinel_pipeline.defs.assets.common import (
    add_day_metadata,
    cents,
    day_spans,
    markdown_table,
    user_errors,
    write_days,
)
from sentinel_pipeline.defs.assets.scores import earlier_verdicts
from sentinel_pipeline.defs.checks import (
    BASELINE_CHECK_SPECS,
    baseline_check_results,
    history_gaps,
)
from sentinel_pipeline.defs.partitions import DAILY_TABLE, days_in_context, first_day
from sentinel_pipeline.defs.resources import DetectionResource, StorageResource
from sentinel_pipeline.detection import HISTORY_WINDOW_DAYS, baselines_for_days
from sentinel_pipeline.detection.feedback import accepted_episodes
from sentinel_pipeline.detection.frames import CostMatrix, MatrixBuilder
from sentinel_pipeline.detection.shards import in_shard, merge_shards, shard_count
from sentinel_pipeline.schema import BASELINE_COLUMNS, FEEDBACK_TABLE, SERIES_KEY
from sentinel_pipeline.storage import TableStore


def _progress(context: dg.AssetExecutionContext, days: list[date]) -> Callable[[date], None]:
    """Log every 30th day of a long backfill, so the UI shows it moving."""

    def log(day: date) -> None:
        done = (day - days[0]).days + 1
        if done % 30 == 0 or day == days[-1]:
            context.log.info(f"cost_baselines: computed {done}/{len(days)} days")

    return log


def history_window(day: date) -> tuple[date, date]:
    """The raw_daily_costs days the baselines of ``day`` may read: D-90..D-1, from the first
    partition on (the window is empty on the first day)."""
    return max(day - timedelta(days=HISTORY_WINDOW_DAYS), first_day()), day - timedelta(days=1)


def never_loaded(loaded: set[date], days: list[date]) -> list[date]:
    """Raw days inside the history of ``days`` that were never materialised although an earlier
    day of that history was: read as-is they would look like days without spend. A history with
    no day at all yet (a first backfill) is allowed; its baselines are empty or thin, which the
    coverage check reports."""
    start, _ = history_window(days[0])
    _, end = history_window(days[-1])
    window = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    first = next((d for d in window if d in loaded), None)
    return [] if first is None else [d for d in window if d > first and d not in loaded]


class RawHistory:
    """The raw_daily_costs days start..end, read when the method says which days it looks at
    (``baselines_for_days`` calls it with them): those days' key and cost columns go straight
    from the files into the series x day matrix; of the other days only the dates are read.
    ``days`` then holds the usage dates of every day read (what the history checks need)."""

    def __init__(self, store: TableStore, start: date, end: date, shard: int = 0,
                 shards: int = 1) -> None:
        self.store, self.start, self.end = store, start, end
        self.shard, self.shards = shard, shards
        self.days: set[date] = set()

    def __call__(self, first: date, last: date) -> CostMatrix:
        builder = MatrixBuilder(first, last)
        for table in self.tables(first, last):
            if self.shards > 1 and "cost" in table.column_names:
                # Every shard notes every day read, whether or not its series had rows that
                # day: the history checks are about the files, not the shard.
                builder.add(table.select(["usage_date"]))
                table = in_shard(table, self.shard, self.shards)
            builder.add(table)
        self.days = builder.days
        return builder.matrix()

    def tables(self, first: date, last: date) -> Iterator[pa.Table]:
        """Each day's file: its dates, and its keys and costs when a date is in first..last."""

        def wanted(dates: pa.Table) -> list[str]:
            if "usage_date" not in dates.column_names:  # no dates: no row can be in the window
                return []
            column = dates.column("usage_date")
            if not pa.types.is_date32(column.type):  # an odd file: read all, let the builder see
                return [*SERIES_KEY, "cost"]
            low, high = (x.as_py() for x in pc.min_max(column).values())
            inside = low is not None and low <= last and high >= first
            return [*SERIES_KEY, "cost"] if inside else []

        days = (self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1))
        for _, table in self.store.iter_arrow("raw_daily_costs", days, ["usage_date"], wanted):
            yield table


# What the plain asset and the sharded graph asset (defs/shards.py) share, so the UI shows the
# same asset, description and checks whichever runs.
BASELINES_DESCRIPTION = (
    "Expected cost per series for day D with its lower/upper band, by the configured method, "
    f"computed only from raw_daily_costs of the {HISTORY_WINDOW_DAYS} days before D (D-"
    f"{HISTORY_WINDOW_DAYS}..D-1, never D itself; robust also reads cost_anomalies of those "
    "days and cost_scores of D-1, see episode_days_left_out), read from storage: the "
    "dependency on "
    "raw_daily_costs is declared on the same day so a backfill materialises the days you "
    "select, and each day's metadata names the history it read (history_read, "
    "history_days_with_costs). A raw day never materialised inside that history fails the "
    "run, naming the days to backfill first. An episode marked expected or planned in "
    "alert_feedback has its new level adopted from the day after its alert (robust only; "
    "accepted_levels). autocorr (robust): the lag-1 autocorrelation of a series' noise where "
    "its lookback shows one; its drift is then judged in a wider unit "
    "(series_with_autocorrelated_noise). episode_days_left_out (robust): days of an earlier "
    "episode in the lookback replaced by the model's cost, so the level and noise are those of "
    "normal days (series_with_episodes_left_out): a run of days far above normal, or an "
    "episode Sentinel flagged that is over (the cost came back), read from cost_anomalies of "
    "the lookback's days, or a run of days that stood out without an alert (score 3 or more, "
    "cost_scores.unusual_days of D-1), or scored day by day within a range run; episodes "
    "answered in Slack stay in. monthly_cost (robust): the $ of expected_cost that is a "
    "monthly charge due that day (on its date or a day off it) or a monthly cycle (prices "
    "that reset on the 1st, a month-end close), seen the two months before "
    "(series_with_monthly_costs, monthly_cost_total). early_cost (robust): a monthly charge "
    "due the next day (on that date both months before) that may come a day early; not in "
    "expected_cost, it is taken as expected where the day's excess is that charge. With "
    "SENTINEL_SHARDS set, the series are split by a hash of their key into shards computed by "
    "separate steps, joined into the same rows."
)
BASELINES_ASSET: dict[str, Any] = {
    **DAILY_TABLE, "check_specs": BASELINE_CHECK_SPECS, "description": BASELINES_DESCRIPTION}


@dataclass
class BaselineShard:
    """One shard's baselines of the run's days, and the raw days its history read (every
    shard reads every day's file, so those agree)."""

    frames: dict[date, pd.DataFrame]
    history_days: set[date] = field(default_factory=set)
    shards: int = 1


@dg.asset(
    **BASELINES_ASSET,
    # Same-day dependency (partitions.py says why): baselines[D] runs with raw_daily_costs[D] in
    # one run, and reads raw D-90..D-1 from storage, never D itself.
    deps=["raw_daily_costs"],
)
def cost_baselines(
    context: dg.AssetExecutionContext, storage: StorageResource, detection: DetectionResource
) -> dg.MaterializeResult:
    return publish_baselines(context, storage, detection,
                             [compute_shard(context, storage, detection)])


def series_estimate(store: TableStore, day: date) -> int:
    """Series of a run, for choosing its shard count before reading any history: the rows of
    the latest raw_daily_costs day up to ``day`` (one row per series and day, give or take
    split rows), read from one column of one file."""
    for have in reversed(store.partitions("raw_daily_costs")):
        if have <= day:
            table = store.read_arrow("raw_daily_costs", have, ["usage_date"])
            return table.num_rows if table is not None else 0
    return 0


def compute_shard(context: dg.AssetExecutionContext, storage: StorageResource,
                  detection: DetectionResource, shard: int = 0,
                  max_shards: int = 1) -> BaselineShard:
    """The baselines of the run's days for the series of ``shard``, of the shards the run
    uses (``shard_count``: at most ``max_shards``, which the definitions fixed); a shard the
    run does not use returns no rows. Unsharded: shard 0 of 1, every series."""
    days = days_in_context(context)
    store = storage.store()
    with user_errors():
        config = detection.config()
        _require_history(store, days)
        shards = 1
        if max_shards > 1:
            series = series_estimate(store, days[-1])
            shards = shard_count(series, detection.shard_series, max_shards)
            context.log.info(f"cost_baselines: about {series:,} series, {shards} shard(s) of "
                             f"at most {max_shards}; this is shard {shard}")
            if shard >= shards:
                return BaselineShard({}, shards=shards)
        history = RawHistory(store, history_window(days[0])[0], days[-1], shard, shards)
        # Episodes people marked expected / planned: their level is adopted (feedback.py);
        # the days of episodes Sentinel flagged, and those that stood out without an alert, are
        # left out of the history (verdicts.py).
        frames = baselines_for_days(history, days, config, progress=_progress(context, days),
                                    feedback=store.read_table(FEEDBACK_TABLE),
                                    earlier=earlier_verdicts(store, days, config))
    return BaselineShard(frames, history.days, shards)


def _require_history(store: TableStore, days: list[date]) -> None:
    missing = never_loaded(set(store.partitions("raw_daily_costs")), days)
    if missing:
        raise dg.Failure(
            description=(
                f"cost_baselines for {day_spans(days)} reads raw_daily_costs "
                f"{history_window(days[0])[0]}..{history_window(days[-1])[1]}, "
                f"which was never materialised for {day_spans(missing)}: those days would "
                "count as days without spend. Backfill them first (`sentinel backfill "
                f"--start {missing[0]} --end {missing[-1]}`, or the four assets for those "
                "days in the UI), or start this range at the first of them."
            ),
            allow_retries=False,
        )


def merge_baseline_shards(parts: list[BaselineShard], days: list[date]) -> BaselineShard:
    """The shards' rows of each day in the unsharded order (merge_shards)."""
    if len(parts) == 1:
        return parts[0]
    # Each shard's day is dropped once merged, so the run holds the days about once.
    frames = {day: merge_shards([p.frames.pop(day) for p in parts if day in p.frames])
              for day in days}
    used = max(p.shards for p in parts)
    return BaselineShard(frames, set().union(*(p.history_days for p in parts)), used)


def publish_baselines(context: dg.AssetExecutionContext, storage: StorageResource,
                      detection: DetectionResource,
                      parts: list[BaselineShard]) -> dg.MaterializeResult:
    """Write the days of the shards' baselines (one file a day, as the unsharded asset) with
    the per-day metadata, the checks and the run's metadata."""
    days = days_in_context(context)
    store = storage.store()
    with user_errors():
        config = detection.config()
        whole = merge_baseline_shards(parts, days)
        frames, history_days = whole.frames, whole.history_days
        gaps = history_gaps(history_days)
        if gaps:
            context.log.warning(
                f"raw_daily_costs has {len(gaps)} empty day(s) inside the history read "
                f"({', '.join(map(str, gaps[:5]))}{'...' if len(gaps) > 5 else ''}): a lost "
                "day, not a quiet one; rerun those days so baselines are not dragged down")
        if len(parts) > 1:
            context.log.info(f"cost_baselines: the rows of {whole.shards} shard(s) used of "
                             f"{len(parts)} joined in the unsharded order")
        write_days(context, store, "cost_baselines", frames, BASELINE_COLUMNS)
        accepted = accepted_episodes(store.read_table(FEEDBACK_TABLE))
    for day in days:
        add_day_metadata(context, day, _day_metadata(frames[day], day, history_days, accepted,
                                                     config.method))
    return dg.MaterializeResult(
        check_results=baseline_check_results(frames, gaps),
        metadata={"method": config.method},
    )


def _day_metadata(frame: pd.DataFrame, day: date, history_days: set[date],
                  accepted: pd.DataFrame, method: str) -> Mapping[str, Any]:
    start, end = history_window(day)
    top = frame.sort_values("expected_cost", ascending=False) if len(frame) else frame
    return {
        "dagster/row_count": len(frame),
        "series": len(frame),
        "series_with_7_days_history": int((frame["history_days"] >= 7).sum())
        if len(frame) else 0,
        "expected_total": cents(frame["expected_cost"].sum() if len(frame) else 0),
        # The partitions of raw_daily_costs this day was computed from (not declared as a
        # partition mapping, see the description): the lineage of the day, in the UI.
        "history_read": f"{start}..{end}" if start <= end else "none (first day)",
        "history_days_with_costs": sum(start <= d <= end for d in history_days),
        # Series whose accepted episode's level is the baseline from this day on.
        "accepted_levels": int((accepted["alert_day"] < day).sum())
        if method == "robust" else 0,
        # Series whose noise comes in runs of busy days (autocorr > 0): their drift is judged
        # in a wider unit, so such a run is not taken for a slow rise.
        "series_with_autocorrelated_noise": int((frame["autocorr"].fillna(0) > 0).sum())
        if method == "robust" and len(frame) else 0,
        # Series whose lookback held an episode, left out of their level and noise.
        "series_with_episodes_left_out": int((frame["episode_days_left_out"] > 0).sum())
        if method == "robust" and len(frame) else 0,
        # Series whose expected cost holds a monthly charge or cycle due this day, and its $.
        "series_with_monthly_costs": int((frame["monthly_cost"].fillna(0) > 0).sum())
        if len(frame) else 0,
        "monthly_cost_total": cents(frame["monthly_cost"].fillna(0).sum() if len(frame) else 0),
        "largest_baselines": dg.MetadataValue.md(markdown_table(
            top, [*SERIES_KEY, "expected_cost", "lower", "upper"])),
    }
