"""Benchmark: aggregate 10 million CUR 2.0 line items into daily series (target <= 15 s, <= 2 GB).

A child process writes one month of realistic hourly line items (a few thousand series,
hundreds of usage types, 100,000 resource ids, every CUR 2.0 column the source reads plus the
large product map) as several snappy Parquet files in the Data Exports layout, with a manifest.
This process then times `read_cur` over the whole month, the same code path as the `cur`
source, and reports wall time and its peak RSS (generation memory is not counted).

Usage: python benchmarks/cur_aggregate.py [--rows 10000000] [--files 10] [--cost unblended]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

EXPORT = "bench-cur"
PERIOD = "2025-06"
DAYS = 30


def _labels(prefix: str, count: int) -> pa.Array:
    return pa.array([f"{prefix}{i:05d}" for i in range(count)])


def _pick(dictionary: pa.Array, codes: np.ndarray) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), dictionary)


def generate(root: Path, rows: int, files: int) -> None:
    """Write `rows` line items in `files` Parquet files plus the period's manifest."""
    rng = np.random.default_rng(7)
    services = pa.array(["AmazonEC2", "AmazonS3", "AmazonRDS", "AWSLambda", "AmazonDynamoDB",
                         "AmazonCloudWatch", "AmazonVPC", "AmazonEKS", "AmazonECS",
                         "AmazonElastiCache", "AmazonRedshift", "AmazonKinesis", "AWSGlue",
                         "AmazonSageMaker", "AmazonOpenSearchService", "AmazonSNS",
                         "AmazonSQS", "AWSDataTransfer", "AmazonRoute53", "AWSBackup"])
    accounts = pa.array([f"{100000000000 + i * 7919}" for i in range(40)])
    regions = pa.array(["us-east-1", "us-east-2", "us-west-2", "eu-west-1", "eu-central-1",
                        "ap-southeast-1", "ap-northeast-1", ""])
    item_types = pa.array(["Usage", "DiscountedUsage", "SavingsPlanCoveredUsage", "Credit",
                           "Tax", "SavingsPlanNegation"])
    usage_types, resources = _labels("USE1-UsageType-", 600), _labels("i-0resource", 100_000)
    # ~3,000 series actually used: each series is one (service, account, region) triple.
    series = rng.choice(len(services) * len(accounts) * len(regions), 3000, replace=False)
    start = np.datetime64(f"{PERIOD}-01T00:00", "ms")
    data = root / EXPORT / "data" / f"BILLING_PERIOD={PERIOD}"
    data.mkdir(parents=True)
    names = []
    per_file = rows // files
    for number in range(1, files + 1):
        n = per_file if number < files else rows - per_file * (files - 1)
        pick = series[rng.integers(0, len(series), n)]
        service, rest = np.divmod(pick, len(accounts) * len(regions))
        account, region = np.divmod(rest, len(regions))
        hours = rng.integers(0, DAYS * 24, n)
        kind = rng.choice(len(item_types), n, p=[0.86, 0.05, 0.05, 0.02, 0.01, 0.01])
        cost = rng.lognormal(-2, 1.5, n)
        cost[kind == 3] *= -1
        table = pa.table({
            "bill_billing_period_start_date": pa.array(np.full(n, start), pa.timestamp("ms")),
            "identity_line_item_id": _pick(_labels("li-", 50_000), rng.integers(0, 50_000, n)),
            "line_item_usage_start_date": pa.array(start + hours * 3_600_000, pa.timestamp("ms")),
            "line_item_usage_account_id": _pick(accounts, account),
            "line_item_product_code": _pick(services, service),
            "line_item_line_item_type": _pick(item_types, kind),
            "line_item_usage_type": _pick(usage_types, rng.integers(0, 600, n)),
            "line_item_resource_id": _pick(resources, rng.integers(0, 100_000, n)),
            "line_item_currency_code": _pick(pa.array(["USD"]), np.zeros(n)),
            "line_item_unblended_cost": cost,
            "line_item_net_unblended_cost": cost * 0.95,
            "product_region_code": _pick(regions, region),
            "savings_plan_savings_plan_effective_cost": np.where(kind == 2, cost * 0.7, 0.0),
            "reservation_effective_cost": np.where(kind == 1, cost * 0.6, 0.0),
            "reservation_unused_amortized_upfront_fee_for_billing_period": np.zeros(n),
            "reservation_unused_recurring_fee": np.zeros(n),
            "savings_plan_total_commitment_to_date": np.zeros(n),
            "savings_plan_used_commitment": np.zeros(n),
            "reservation_reservation_a_r_n": _pick(pa.array(["", "arn:aws:ec2:ri/1"]),
                                                   (kind == 1).astype(np.int32)),
        })
        name = f"{EXPORT}-{number:05d}.snappy.parquet"
        pq.write_table(table, data / name, compression="snappy", row_group_size=1 << 20)
        names.append(f"s3://bench-bucket/{EXPORT}/data/BILLING_PERIOD={PERIOD}/{name}")
    meta = root / EXPORT / "metadata" / f"BILLING_PERIOD={PERIOD}"
    meta.mkdir(parents=True)
    (meta / f"{EXPORT}-Manifest.json").write_text(json.dumps({"dataFiles": names}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--cost", default="unblended")
    parser.add_argument("--generate", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        generate(Path(args.generate), args.rows, args.files)
        return
    from sentinel_pipeline.sources.cur import read_cur

    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--generate", tmp, "--rows", str(args.rows),
                        "--files", str(args.files)], check=True)
        size = sum(p.stat().st_size for p in Path(tmp).rglob("*.parquet"))
        print(f"generated {args.rows:,} line items in {args.files} files "
              f"({size / 1e6:,.0f} MB) in {time.perf_counter() - began:.1f} s")
        first = dt.date.fromisoformat(f"{PERIOD}-01")
        last = first + dt.timedelta(days=DAYS - 1)
        began = time.perf_counter()
        rows_result = read_cur(str(Path(tmp) / EXPORT), first, last, cost=args.cost,
                        today=dt.date(2026, 1, 1))
        rows = rows_result.rows
        wall = time.perf_counter() - began
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    meta = rows_result.metadata
    print(f"aggregated {meta['cur_line_items_scanned']:,} line items ({args.cost}) into "
          f"{len(rows):,} series-days ({rows[['service', 'account_id', 'region']].drop_duplicates().shape[0]:,} series)")  # noqa: E501
    print(f"wall time {wall:.1f} s (target <= 15 s), peak RSS {peak:,.0f} MB (target <= 2,048 MB)")


if __name__ == "__main__":
    main()
