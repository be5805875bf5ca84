"""cost_anomalies: the days whose actual cost is far from its baseline, scored and classified."""

from datetime import date

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sentinel_pipeline.defs.assets.common import (
    add_day_metadata,
    impact_above_expected,
    markdown_table,
    require_days,
    user_errors,
    write_days,
)
from sentinel_pipeline.defs.checks import ANOMALY_CHECK_SPECS, anomaly_check_results
from sentinel_pipeline.defs.partitions import DAILY_TABLE, days_in_context
from sentinel_pipeline.defs.resources import CostSourceResource, StorageResource
from sentinel_pipeline.detection import anomalies_of_scores
from sentinel_pipeline.schema import (
    ANOMALY_COLUMNS,
    ANOMALY_KINDS,
    SCORE_COLUMNS,
    SERIES_KEY,
)
from sentinel_pipeline.storage import TableStore

ANOMALY_PREVIEW = ["usage_date", *SERIES_KEY, "actual_cost",
                   "expected_cost", "impact", "score", "kind"]


@dg.asset(
    **DAILY_TABLE,
    # Same-day dependency (partitions.py says why): the unusual rows of cost_scores.
    deps=["cost_scores"],
    check_specs=ANOMALY_CHECK_SPECS,
    description=(
        "Series whose cost on day D is unusual against cost_baselines: the rows of cost_scores "
        f"with a kind ({', '.join(ANOMALY_KINDS)}), with actual vs expected, $ impact, "
        "% change, score, anomaly_start and alert (True on the day an episode is first worth "
        "telling), and for alerts the root causes the source finds. Empty file = quiet day: a "
        "day is only taken from cost_scores of that same day, and fails naming the days to "
        "materialise when it is missing. A series whose alert of a kind was marked "
        "not_anomaly in alert_feedback needs a higher score for that kind from the next day on "
        "(column threshold; cost_scores lists those series)."
    ),
)
def cost_anomalies(
    context: dg.AssetExecutionContext,
    storage: StorageResource,
    source: CostSourceResource,
) -> dg.MaterializeResult:
    days = days_in_context(context)
    store = storage.store()
    with user_errors():
        require_days(store, "cost_scores", days, "cost_anomalies")
        frames = {day: unusual_scores(store, day) for day in days}
        frames, source_requests = with_root_causes(context, source, frames)
        write_days(context, store, "cost_anomalies", frames, ANOMALY_COLUMNS)
    methods: set[str] = set()
    for day in days:
        rows = frames[day]
        methods.update(rows["method"].astype(str).unique() if len(rows) else ())
        top = rows.sort_values("impact", ascending=False) if len(rows) else rows
        add_day_metadata(context, day, {
            "dagster/row_count": len(rows),
            "anomalies": len(rows),
            "alerts": int(rows["alert"].sum()) if len(rows) else 0,
            "root_causes_found": int((rows["root_causes"].fillna("") != "").sum())
            if len(rows) else 0,
            "total_impact": impact_above_expected(rows),
            "top_anomalies": dg.MetadataValue.md(markdown_table(top, ANOMALY_PREVIEW)),
        })
    return dg.MaterializeResult(
        check_results=anomaly_check_results(frames),
        metadata={
            "method": ", ".join(sorted(methods)) or "none (no anomalies)",
            "root_cause_requests": source_requests,  # billed calls of the whole run
        }
    )


def unusual_scores(store: TableStore, day: date) -> pd.DataFrame:
    """The rows of cost_scores[day] with a kind, as cost_anomalies lists them: only those rows
    are made pandas (a day of a million series has a few hundred)."""
    table = store.read_arrow("cost_scores", day, SCORE_COLUMNS + ["threshold"])
    if table is None or table.num_rows == 0:
        return anomalies_of_scores(pd.DataFrame(columns=SCORE_COLUMNS), "robust")
    kinds = table.column("kind").cast(pa.string())
    table = table.filter(pc.fill_null(pc.not_equal(kinds, ""), False))
    for i, field in enumerate(table.schema):  # text as text, not categories (as scored)
        if pa.types.is_dictionary(field.type):
            table = table.set_column(i, field.name,
                                     table.column(i).cast(field.type.value_type))
    frame = table.to_pandas()
    method = str(frame["method"].iloc[0]) if len(frame) else "robust"
    return anomalies_of_scores(frame, method)


def with_root_causes(
    context: dg.AssetExecutionContext,
    source: CostSourceResource,
    frames: dict[date, pd.DataFrame],
) -> tuple[dict[date, pd.DataFrame], int]:
    """Ask the source where the money went, for the largest alerted rows only (at most
    ``source.max_drill_downs`` a run: a year's backfill must not make thousands of billed Cost
    Explorer calls), in one call for the whole run; returns the frames and the billed requests."""
    out = {day: frame.assign(root_causes="") for day, frame in frames.items()}
    alerted = [rows.assign(_day=day) for day, f in out.items()
               if len(rows := f[f["alert"].astype(bool)])]
    picked = pd.concat(alerted) if alerted else pd.DataFrame()
    if len(picked) > source.max_drill_downs:
        context.log.info(f"{len(picked)} alerts: drilling into the {source.max_drill_downs} "
                         "largest by $ impact (max_drill_downs)")
        picked = picked.sort_values("impact", ascending=False).head(source.max_drill_downs)
    if len(picked) == 0:
        return out, 0
    picked = picked.sort_values("_day", kind="stable")
    context.log.info(f"Drilling down into {len(picked)} alerted series ({source.source})")
    found = source.root_causes(picked.drop(columns="_day").reset_index(drop=True))
    for day, row, cause in zip(picked["_day"], picked.index, found.causes, strict=True):
        out[day].at[row, "root_causes"] = cause
    return out, found.requests  # billed API calls
