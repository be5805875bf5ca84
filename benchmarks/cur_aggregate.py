"""Benchmark: CUR 2.0 line items into daily series, timed beside a plain DuckDB GROUP BY.

Targets (issue 14): the `cur` source within 2x of DuckDB over the same files; the 10 M line
item month also <= 15 s and <= 2 GB peak RSS.

Two cases, each on files a child process writes (realistic hourly line items: a few thousand
series, hundreds of usage types, 100,000 resource ids, every CUR 2.0 column the source reads
plus the big ones it must skip, snappy Parquet in the Data Exports layout with manifests):

* ``month``: 10 M line items of one billing period in 10 files, one manifest.
* ``periods``: three billing periods of 2 M line items in 3 files each, each with a manifest,
  plus a file per period that its manifest does not list (a delivery in progress: read by
  neither side), asked for a range that starts and ends inside a period.

Each case is measured in a fresh child process, `read_cur` (the code path of the `cur` source;
its wall time, and its peak RSS before DuckDB first runs) and DuckDB taking turns: ``SELECT
usage day, service, account, region, SUM(cost measure) ... WHERE the range and the line item
types ... GROUP BY`` over the files the manifests list, with DuckDB's default threads (one per
core). The two results are compared (series-days and sums); the medians, their ratio and the
load average are printed.

Usage: python benchmarks/cur_aggregate.py [--case month periods] [--cost unblended]
       [--repeat 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

EXPORT = "bench-cur"
TYPES = ("Usage", "DiscountedUsage", "SavingsPlanCoveredUsage")
CASES = {
    # name: (periods, line items per period, files per period, stale file, first, last)
    "month": (["2025-06"], 10_000_000, 10, False, "2025-06-01", "2025-06-30"),
    "periods": (["2025-04", "2025-05", "2025-06"], 2_000_000, 3, True,
                "2025-04-10", "2025-06-20"),
}
_COST_SQL = {
    "unblended": "line_item_unblended_cost",
    "net_unblended": "line_item_net_unblended_cost",
    # The AWS amortized formula, as the module docstring of sources/cur.py gives it.
    "amortized": """CASE line_item_line_item_type
        WHEN 'SavingsPlanCoveredUsage' THEN coalesce(savings_plan_savings_plan_effective_cost, 0)
        WHEN 'SavingsPlanRecurringFee' THEN coalesce(savings_plan_total_commitment_to_date, 0)
            - coalesce(savings_plan_used_commitment, 0)
        WHEN 'SavingsPlanNegation' THEN 0 WHEN 'SavingsPlanUpfrontFee' THEN 0
        WHEN 'DiscountedUsage' THEN coalesce(reservation_effective_cost, 0)
        WHEN 'RIFee' THEN coalesce(reservation_unused_amortized_upfront_fee_for_billing_period, 0)
            + coalesce(reservation_unused_recurring_fee, 0)
        WHEN 'Fee' THEN CASE WHEN coalesce(reservation_reservation_a_r_n, '') <> '' THEN 0
            ELSE coalesce(line_item_unblended_cost, 0) END
        ELSE coalesce(line_item_unblended_cost, 0) END""",
}


def _labels(prefix: str, count: int) -> pa.Array:
    return pa.array([f"{prefix}{i:05d}" for i in range(count)])


def _pick(dictionary: pa.Array, codes: np.ndarray) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), dictionary)


def _line_items(rng: np.random.Generator, series: np.ndarray, period: str, n: int) -> pa.Table:
    """`n` hourly line items of one billing period, spread over its days and `series`."""
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
    first = dt.date.fromisoformat(f"{period}-01")
    days = ((first + dt.timedelta(days=32)).replace(day=1) - first).days
    start = np.datetime64(f"{period}-01T00:00", "ms")
    pick = series[rng.integers(0, len(series), n)]
    service, rest = np.divmod(pick, len(accounts) * len(regions))
    account, region = np.divmod(rest, len(regions))
    hours = rng.integers(0, days * 24, n)
    kind = rng.choice(len(item_types), n, p=[0.86, 0.05, 0.05, 0.02, 0.01, 0.01])
    cost = rng.lognormal(-2, 1.5, n)
    cost[kind == 3] *= -1
    return pa.table({
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


def generate(root: Path, case: str) -> None:
    """Write the case's periods: data files, a manifest listing them, maybe a stale file."""
    periods, rows, files, stale, _, _ = CASES[case]
    rng = np.random.default_rng(7)
    # ~3,000 series actually used: each series is one (service, account, region) triple.
    series = rng.choice(20 * 40 * 8, 3000, replace=False)
    for period in periods:
        data = root / EXPORT / "data" / f"BILLING_PERIOD={period}"
        data.mkdir(parents=True)
        names = []
        per_file = rows // files
        for number in range(1, files + 1 + int(stale)):
            n = per_file if number != files else rows - per_file * (files - 1)
            name = f"{EXPORT}-{number:05d}.snappy.parquet"
            pq.write_table(_line_items(rng, series, period, n), data / name,
                           compression="snappy", row_group_size=1 << 20)
            if number <= files:
                names.append(f"s3://bench-bucket/{EXPORT}/data/BILLING_PERIOD={period}/{name}")
        meta = root / EXPORT / "metadata" / f"BILLING_PERIOD={period}"
        meta.mkdir(parents=True)
        (meta / f"{EXPORT}-Manifest.json").write_text(json.dumps({"dataFiles": names}))


def _listed_files(root: Path) -> list[str]:
    """The local paths of the data files the manifests list (what DuckDB is given)."""
    out = []
    for manifest in sorted((root / EXPORT / "metadata").glob("*/*-Manifest.json")):
        period = manifest.parent.name
        for url in json.loads(manifest.read_text())["dataFiles"]:
            out.append(str(root / EXPORT / "data" / period / url.rsplit("/", 1)[-1]))
    return out


def duckdb_reference(files: list[str], first: dt.date, last: dt.date, cost: str) -> pa.Table:
    """The plain DuckDB query: same files, range, line item types and cost measure."""
    import duckdb

    stop = last + dt.timedelta(days=1)
    types = ", ".join(f"'{t}'" for t in TYPES)
    sql = f"""
        SELECT CAST(line_item_usage_start_date AS DATE) AS usage_date,
               line_item_product_code AS service, line_item_usage_account_id AS account_id,
               product_region_code AS region,
               SUM({_COST_SQL[cost]}) AS cost
        FROM read_parquet(?)
        WHERE line_item_usage_start_date >= TIMESTAMP '{first}'
          AND line_item_usage_start_date < TIMESTAMP '{stop}'
          AND line_item_line_item_type IN ({types})
        GROUP BY ALL"""
    with duckdb.connect() as con:
        return con.sql(sql, params=[files]).to_arrow_table()


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} ({os.cpu_count()} cores)"


def measure(root: Path, case: str, cost: str, repeat: int) -> None:
    """Time read_cur and DuckDB in turn in this process (read_cur first: its peak RSS is read
    before DuckDB runs), compare their rows, print the times and the ratio of the medians."""
    import duckdb  # imported before timing either side

    from sentinel_pipeline.sources.cur import read_cur

    _, _, _, _, first_text, last_text = CASES[case]
    first, last = dt.date.fromisoformat(first_text), dt.date.fromisoformat(last_text)
    files = _listed_files(root)
    ours, theirs, peak = [], [], 0.0
    for run in range(repeat):
        began = time.perf_counter()
        result = read_cur(str(root / EXPORT), first, last, cost=cost,
                          line_item_types=",".join(TYPES), today=dt.date(2026, 1, 1))
        ours.append(time.perf_counter() - began)
        if run == 0:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        began = time.perf_counter()
        reference = duckdb_reference(files, first, last, cost)
        theirs.append(time.perf_counter() - began)
    rows, meta = result.rows, result.metadata
    ref = reference.to_pandas()
    ref["region"] = ref["region"].replace("", "global")
    keys = ["usage_date", "service", "account_id", "region"]
    both = rows.merge(ref, on=keys, how="outer", suffixes=("", "_duckdb"), indicator=True)
    unmatched = int((both["_merge"] != "both").sum())
    worst = float((both["cost"] - both["cost_duckdb"]).abs().max())
    wall, ref_wall = statistics.median(ours), statistics.median(theirs)
    print(f"[{case}] read_cur: {meta['cur_line_items_scanned']:,} line items ({cost}, "
          f"{meta['cur_files_read']} files of {meta['cur_billing_periods']}, "
          f"{meta['cur_files_not_in_manifest']} not in a manifest) into {len(rows):,} "
          f"series-days in {wall:.2f} s (median of {repeat}; target <= 15 s), peak RSS "
          f"{peak:,.0f} MB (target <= 2,048 MB)")
    print(f"[{case}] DuckDB {duckdb.__version__} GROUP BY over the same {len(files)} files: "
          f"{ref_wall:.2f} s (median of {repeat}); ratio read_cur / DuckDB = "
          f"{wall / ref_wall:.2f} (target <= 2)")
    print(f"[{case}] runs in turn: read_cur {', '.join(f'{t:.2f}' for t in ours)} s; "
          f"DuckDB {', '.join(f'{t:.2f}' for t in theirs)} s")
    print(f"[{case}] same series-days: {unmatched == 0} ({unmatched} unmatched), largest "
          f"difference of a sum {worst:.2e}; {_load()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", nargs="+", choices=sorted(CASES), default=list(CASES))
    parser.add_argument("--cost", default="unblended", choices=sorted(_COST_SQL))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--generate", help=argparse.SUPPRESS)
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        generate(Path(args.generate), args.case[0])
        return
    if args.measure:
        measure(Path(args.measure), args.case[0], args.cost, args.repeat)
        return
    print(f"start: {_load()}")
    for case in args.case:
        with tempfile.TemporaryDirectory() as tmp:
            began = time.perf_counter()
            subprocess.run([sys.executable, __file__, "--generate", tmp, "--case", case],
                           check=True)
            size = sum(p.stat().st_size for p in Path(tmp).rglob("*.parquet"))
            count = len(list(Path(tmp).rglob("*.parquet")))
            print(f"[{case}] generated {count} files ({size / 1e6:,.0f} MB) in "
                  f"{time.perf_counter() - began:.1f} s")
            subprocess.run([sys.executable, __file__, "--measure", tmp, "--case", case,
                            "--cost", args.cost, "--repeat", str(args.repeat)], check=True)


if __name__ == "__main__":
    main()
