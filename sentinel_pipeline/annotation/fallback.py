"""The deterministic explanation: always available, no network, same input gives same words.

It is what every alert carries when no model is configured or the model fails, so it must stand
on its own: what moved, by how much, against what, and where a person would look first.
"""

from __future__ import annotations

import math

import pandas as pd

from sentinel_pipeline.formatting import money
from sentinel_pipeline.schema import ALERT_COLUMNS, conform
from sentinel_pipeline.sources.root_causes import (
    BASELINE_DAYS,
    describe,
    from_json,
    where_the_money_went,
)

ANNOTATOR_NAME = "fallback"

# Service name fragments -> (where to look, what usually causes a jump there).
_HINTS: list[tuple[str, str, str]] = [
    ("compute", "EC2 console > Instances and Auto Scaling groups, filtered by region",
     "more or larger instances running than usual (a scale-out, a load test, or instances "
     "left running)"),
    ("ec2 - other", "EC2 console > Volumes, Snapshots and NAT gateways",
     "EBS volumes, snapshots, NAT gateway or data processing charges"),
    ("elastic compute", "EC2 console > Instances and Auto Scaling groups",
     "more or larger instances running than usual"),
    ("simple storage", "S3 console > Storage Lens, and the bucket metrics for requests",
     "more stored data, a request burst, or a lifecycle rule that stopped working"),
    ("relational database", "RDS console > Databases (instance class, storage, snapshots)",
     "a larger instance class, extra replicas, storage growth or snapshot exports"),
    ("lambda", "Lambda console > Functions sorted by invocations and duration",
     "a jump in invocations or duration, often a retry loop or a new trigger"),
    ("cloudwatch", "CloudWatch > Logs ingestion and custom metrics",
     "verbose logging, new custom metrics or dashboards"),
    ("dynamodb", "DynamoDB console > Tables (capacity mode, consumed capacity)",
     "a burst of reads/writes on on-demand tables or a capacity change"),
    ("kubernetes", "EKS console > Clusters, and the node groups' EC2 instances",
     "new clusters or node groups"),
    ("data transfer", "Cost Explorer grouped by usage type (DataTransfer-Out, inter-region)",
     "more data leaving the region or the internet"),
    ("sagemaker", "SageMaker console > Endpoints, Notebook instances and Training jobs",
     "endpoints or notebooks left running, or a large training job"),
    ("key management", "KMS console > Customer managed keys and request metrics",
     "more keys or API requests"),
    ("route 53", "Route 53 console > Hosted zones and query logs", "more queries or zones"),
]
_DEFAULT_HINT = ("Cost Explorer filtered to this service and account, grouped by usage type",
                 "more usage of this service than its recent pattern")


def _hint(service: str) -> tuple[str, str]:
    name = service.lower()
    for fragment, where, cause in _HINTS:
        if fragment in name:
            return where, cause
    return _DEFAULT_HINT


def explain_row(row: pd.Series) -> dict[str, object]:
    """Explanation fields of one anomaly; action is one of stop | review | accept, as Claude's."""
    where, cause = _hint(str(row["service"]))
    actual, expected, impact = row["actual_cost"], row["expected_cost"], row["impact"]
    pct = row.get("pct_change")
    kind = str(row["kind"])
    place = f"{row['service']} in account {row['account_id']} ({row['region']})"
    if kind == "new_spend":
        explanation = (f"{place} had no spend in the lookback window and cost {money(actual)} "
                       f"on {row['usage_date']}: a new service or resource started billing.")
        likely = f"something new was launched: {cause}"
        action, advice = "review", "Confirm the new spend is intended and has an owner."
    elif kind == "drop":
        explanation = (f"{place} cost {money(actual)} on {row['usage_date']}, "
                       f"{money(-impact)} less than the expected {money(expected)}.")
        likely = "resources were stopped or deleted, a credit applied, or data is missing"
        action, advice = "review", "Confirm the drop is intended and billing data is complete."
    elif kind in ("sustained", "level_shift"):
        since = row.get("anomaly_start")
        pct_text = "" if pct is None or pd.isna(pct) else f" ({pct:+.0f} %)"
        explanation = (f"{place} has cost more than expected every day since {since}; on "
                       f"{row['usage_date']} it cost {money(actual)}, {money(impact)} above the "
                       f"expected {money(expected)}{pct_text}.")
        likely = f"a lasting increase: {cause}"
        action, advice = (("stop", f"Find and stop what was started around {since}.")
                          if impact >= 500 else ("review", f"Check what changed around {since}."))
    else:
        pct_text = "" if pct is None or pd.isna(pct) else f" ({pct:+.0f} %)"
        explanation = (f"{place} cost {money(actual)} on {row['usage_date']}, "
                       f"{money(impact)} more than the expected {money(expected)}{pct_text}; "
                       f"score {row['score']:.1f}.")
        likely = cause
        action, advice = (("stop", "Find and stop what is running unexpectedly.")
                          if impact >= 500
                          else ("review", "Check whether the increase is expected."))
    causes = from_json(row.get("root_causes"))
    currency = row.get("currency")
    grew_most = describe(causes, impact, limit=2, currency=currency)
    if grew_most and kind != "drop":
        # The source saw below the series: name the material lines that grew instead of a
        # generic guess, against their own 14-day average (root_causes says why).
        likely = (f"{likely}; the lines that grew most over their {BASELINE_DAYS}-day "
                  f"average: {grew_most}")
        explanation = f"{explanation} {where_the_money_went(causes, impact, currency)}"
    return {
        "explanation": f"{explanation} {advice}",
        "likely_cause": likely,
        "where_to_look": where,
        "action": action,
        "confidence": math.nan,  # nothing was inferred: the numbers are stated, not judged
        "annotator": ANNOTATOR_NAME,
    }


def explain(anomalies: pd.DataFrame) -> pd.DataFrame:
    """annotated_alerts rows: every anomaly column plus its written explanation."""
    if len(anomalies) == 0:
        return conform(anomalies, ALERT_COLUMNS)
    fields = pd.DataFrame([explain_row(row) for _, row in anomalies.iterrows()],
                          index=anomalies.index)
    return conform(pd.concat([anomalies, fields], axis=1), ALERT_COLUMNS)
