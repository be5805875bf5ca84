"""cost_anomalies: the days whose actual cost is far from its baseline, scored and classified."""

from datetime import timedelta

import dagster as dg
import pandas as pd

from sentinel_pipeline.assets.common import markdown_table, user_errors, write_days
from sentinel_pipeline.detection import anomalies_for_days
from sentinel_pipeline.partitions import DAILY_TABLE, days_in_context, earlier_days
from sentinel_pipeline.quality_checks import anomalies_consistent
from sentinel_pipeline.resources import CostSourceResource, DetectionResource, StorageResource
from sentinel_pipeline.schema import ANOMALY_COLUMNS

ANOMALY_PREVIEW = ["usage_date", "service", "account_id", "region", "actual_cost",
                   "expected_cost", "impact", "score", "kind"]


@dg.asset(
    **DAILY_TABLE,
    deps=[
        "raw_daily_costs",
        "cost_baselines",
        # The day before, to continue episodes it already alerted (rather than alert again).
        earlier_days("cost_anomalies", -1, -1),
    ],
    check_specs=[dg.AssetCheckSpec(
        "consistent", asset="cost_anomalies", blocking=True,
        description="impact = actual - expected, known kinds, finite scores, episodes start "
        "on or before their day. Blocking: alerts are not built from inconsistent rows.")],
    description=(
        "Series whose cost on day D is unusual against cost_baselines: actual vs expected, "
        "$ impact, % change, score, kind (spike, sustained, level_shift, new_spend, drop), "
        "anomaly_start and alert (True on the day an episode is first worth telling). "
        "Empty file = quiet day."
    ),
)
def cost_anomalies(
    context: dg.AssetExecutionContext,
    storage: StorageResource,
    detection: DetectionResource,
    source: CostSourceResource,
) -> dg.MaterializeResult:
    days = days_in_context(context)
    store = storage.store()
    with user_errors():
        config = detection.config()
        raw = store.read_range("raw_daily_costs", days[0], days[-1])
        baselines = store.read_range("cost_baselines", days[0], days[-1])
        previous = store.read_partition("cost_anomalies", days[0] - timedelta(days=1))
        frames = anomalies_for_days(raw, baselines, days, config, previous)
        frames = {day: with_root_causes(context, source, frame) for day, frame in frames.items()}
        write_days(context, store, "cost_anomalies", frames, ANOMALY_COLUMNS)
    found = [f for f in frames.values() if len(f)]
    everything = pd.concat(found, ignore_index=True) if found else pd.DataFrame(
        columns=ANOMALY_COLUMNS)
    top = everything.sort_values("impact", ascending=False)
    drilled = int((everything["root_causes"].fillna("") != "").sum()) if len(everything) else 0
    passed, details = anomalies_consistent(frames)
    return dg.MaterializeResult(
        check_results=[dg.AssetCheckResult(check_name="consistent", passed=passed,
                                           metadata=details)],
        metadata={
            "dagster/row_count": len(everything),
            "method": config.method,
            "anomalies": len(everything),
            "alerts": int(everything["alert"].sum()) if len(everything) else 0,
            "root_causes_found": drilled,
            "root_cause_requests": sum(f.attrs.get("source_requests", 0) for f in frames.values()),
            "total_impact": dg.MetadataValue.float(float(everything["impact"].clip(lower=0).sum())),
            "top_anomalies": dg.MetadataValue.md(markdown_table(top, ANOMALY_PREVIEW)),
        }
    )


def with_root_causes(
    context: dg.AssetExecutionContext, source: CostSourceResource, frame: pd.DataFrame
) -> pd.DataFrame:
    """Ask the source where the money went, for the rows that will be alerted only."""
    out = frame.copy()
    out["root_causes"] = ""
    flagged = out.index[out["alert"].astype(bool)] if len(out) else out.index
    if len(flagged):
        context.log.info(f"Drilling down into {len(flagged)} alerted series ({source.source})")
        causes = source.root_causes(out.loc[flagged])
        out.loc[flagged, "root_causes"] = list(causes)
        out.attrs["source_requests"] = getattr(causes, "requests", 0)  # billed API calls
    return out
