"""cost_baselines: what each series should cost on day D, learned from the days before D."""

from collections.abc import Callable
from datetime import date, timedelta

import dagster as dg

from sentinel_pipeline.defs.assets.common import markdown_table, user_errors, write_days
from sentinel_pipeline.defs.checks import (
    BASELINE_CHECK_SPECS,
    baseline_check_results,
    history_gaps,
)
from sentinel_pipeline.defs.partitions import DAILY_TABLE, days_in_context, earlier_days
from sentinel_pipeline.defs.resources import DetectionResource, StorageResource
from sentinel_pipeline.detection import HISTORY_WINDOW_DAYS, baselines_for_days
from sentinel_pipeline.schema import BASELINE_COLUMNS


def _progress(context: dg.AssetExecutionContext, days: list[date]) -> Callable[[date], None]:
    """Log every 30th day of a long backfill, so the UI shows it moving."""

    def log(day: date) -> None:
        done = (day - days[0]).days + 1
        if done % 30 == 0 or day == days[-1]:
            context.log.info(f"cost_baselines: computed {done}/{len(days)} days")

    return log


@dg.asset(
    **DAILY_TABLE,
    deps=[earlier_days("raw_daily_costs", -HISTORY_WINDOW_DAYS, -1)],
    check_specs=BASELINE_CHECK_SPECS,
    description=(
        "Expected cost per series for day D with its lower/upper band, computed only from "
        "raw_daily_costs of the days before D (never D itself), by the configured method."
    ),
)
def cost_baselines(
    context: dg.AssetExecutionContext, storage: StorageResource, detection: DetectionResource
) -> dg.MaterializeResult:
    days = days_in_context(context)
    store = storage.store()
    with user_errors():
        config = detection.config()
        history = store.read_range(
            "raw_daily_costs", days[0] - timedelta(days=HISTORY_WINDOW_DAYS), days[-1]
        )
        gaps = history_gaps(history)
        if gaps:
            context.log.warning(
                f"raw_daily_costs has {len(gaps)} empty day(s) inside the history read "
                f"({', '.join(map(str, gaps[:5]))}{'...' if len(gaps) > 5 else ''}): a lost "
                "day, not a quiet one; rerun those days so baselines are not dragged down")
        frames = baselines_for_days(history, days, config, progress=_progress(context, days))
        write_days(context, store, "cost_baselines", frames, BASELINE_COLUMNS)
    last = frames[days[-1]]
    covered = int((last["history_days"] >= 7).sum()) if len(last) else 0
    top = last.sort_values("expected_cost", ascending=False)
    return dg.MaterializeResult(
        check_results=baseline_check_results(frames, history),
        metadata={
            "dagster/row_count": int(sum(len(f) for f in frames.values())),
            "method": config.method,
            "series": len(last),
            "series_with_7_days_history": covered,
            "expected_total": dg.MetadataValue.float(float(last["expected_cost"].sum())),
            "largest_baselines": dg.MetadataValue.md(markdown_table(
                top, ["service", "account_id", "region", "expected_cost", "lower", "upper"])),
        }
    )
