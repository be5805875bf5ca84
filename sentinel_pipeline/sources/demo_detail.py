"""Root causes for the demo source, so `make demo` alerts say where the money went as the
Cost Explorer and CUR sources do.

Each demo series is split into usage types by fixed shares (what a real bill of that service
is made of), and the cost a known anomaly adds goes to one unusual usage type and resource of
its own, as a forgotten GPU instance or a runaway NAT gateway would appear in line items.
"""

from __future__ import annotations

import hashlib

import pandas as pd

from sentinel_pipeline.schema import SERIES_KEY, with_owner
from sentinel_pipeline.sources.demo import demo_normal_costs, generate_demo_costs
from sentinel_pipeline.sources.root_causes import rank_each, window

# service -> (usual usage types and their share of normal spend, the usage type an anomaly
# adds, the resource id prefix of that usage or "" when the service has no per-resource lines)
_USAGE: dict[str, tuple[tuple[tuple[str, float], ...], str, str]] = {
    "Amazon Elastic Compute Cloud - Compute": (
        (("BoxUsage:m6i.xlarge", 0.55), ("BoxUsage:c6i.2xlarge", 0.30),
         ("SpotUsage:m6i.large", 0.15)), "BoxUsage:p4d.24xlarge", "i-0"),
    "Amazon Relational Database Service": (
        (("InstanceUsage:db.r6g.xlarge", 0.70), ("RDS:GP3-Storage", 0.20),
         ("RDS:ChargedBackupUsage", 0.10)), "InstanceUsage:db.r6g.4xlarge", "db-"),
    "Amazon Simple Storage Service": (
        (("TimedStorage-ByteHrs", 0.70), ("Requests-Tier1", 0.20),
         ("DataTransfer-Out-Bytes", 0.10)), "Requests-Tier1", "arn:aws:s3:::bucket-"),
    "EC2 - Other": (
        (("EBS:VolumeUsage.gp3", 0.60), ("NatGateway-Bytes", 0.25),
         ("EBS:SnapshotUsage", 0.15)), "NatGateway-Bytes", "nat-0"),
    "Amazon DynamoDB": (
        (("ReadRequestUnits", 0.50), ("WriteRequestUnits", 0.40),
         ("TimedStorage-ByteHrs", 0.10)), "WriteRequestUnits", "table/"),
    "AWS Lambda": (
        (("Lambda-GB-Second", 0.85), ("Request", 0.15)), "Lambda-GB-Second", "function:"),
    "Amazon CloudWatch": (
        (("DataProcessing-Bytes", 0.50), ("MetricMonitorUsage", 0.30),
         ("TimedStorage-ByteHrs", 0.20)), "DataProcessing-Bytes", "log-group:"),
    "AWS Data Transfer": (
        (("DataTransfer-Out-Bytes", 0.60), ("DataTransfer-Regional-Bytes", 0.40)),
        "DataTransfer-Out-Bytes", ""),
    "Amazon SageMaker": (
        (("Notebook:ml.t3.medium", 1.0),), "Hosting:ml.g5.12xlarge", "endpoint/"),
}
_DEFAULT_USAGE: tuple[tuple[tuple[str, float], ...], str, str] = (
    (("Usage", 0.80), ("Requests", 0.20)), "Requests", "")


# A drill-down generates the demo costs of the days it ranks: alerts spread over a year are
# taken a month of days at a time (each with its BASELINE_DAYS before), so a year's backfill
# does not hold a year of every series twice (2.4 GB at 10,000 series) to explain 100 alerts.
CHUNK_DAYS = 31


def demo_root_causes(anomalies: pd.DataFrame, series_count: int, owners: bool = False
                     ) -> list[str]:
    """For each anomaly row, the JSON list of the usage types that grew most (see module)."""
    if len(anomalies) == 0:
        return []
    days = window(anomalies)[0]
    out = [""] * len(anomalies)
    positions = sorted(range(len(days)), key=lambda i: days[i])
    while positions:
        first = days[positions[0]]
        chunk = [i for i in positions if (days[i] - first).days < CHUNK_DAYS]
        positions = positions[len(chunk):]
        rows = anomalies.iloc[chunk]
        for i, causes in zip(chunk, _root_causes(rows, series_count, owners), strict=True):
            out[i] = causes
    return out


def _root_causes(anomalies: pd.DataFrame, series_count: int, owners: bool) -> list[str]:
    days, first, last = window(anomalies)
    actual = generate_demo_costs(first, last, series_count, owners)
    normal = demo_normal_costs(first, last, series_count, owners)
    wanted = with_owner(anomalies)[SERIES_KEY].astype(str).drop_duplicates()
    actual = actual.merge(wanted, on=SERIES_KEY)
    normal = normal.merge(wanted, on=SERIES_KEY)
    both = actual.merge(normal, on=["usage_date", *SERIES_KEY], how="outer",
                        suffixes=("", "_normal")).fillna({"cost": 0.0, "cost_normal": 0.0})
    by_series = {key: _detail(series, str(key[0]), str(key[1]))
                 for key, series in both.groupby(SERIES_KEY, sort=False)}
    return rank_each(anomalies, days, by_series)


def _detail(series: pd.DataFrame, service: str, account_id: str) -> pd.DataFrame:
    usual, unusual, prefix = _USAGE.get(service, _DEFAULT_USAGE)
    parts = [pd.DataFrame({"usage_date": series["usage_date"], "usage_type": name,
                           "resource_id": "", "cost": series["cost_normal"] * share})
             for name, share in usual]
    extra = series[series["cost"] - series["cost_normal"] > 0.005]
    if len(extra):
        resource = ""
        if prefix:
            digest = hashlib.sha256(f"{service}|{account_id}".encode()).hexdigest()
            resource = prefix + digest[:12]
        parts.append(pd.DataFrame({"usage_date": extra["usage_date"], "usage_type": unusual,
                                   "resource_id": resource,
                                   "cost": extra["cost"] - extra["cost_normal"]}))
    return pd.concat(parts, ignore_index=True)
