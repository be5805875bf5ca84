"""Benchmark: the daily run of cost_baselines (one day D over 90 days of raw_daily_costs history).

Builds its own data: N series x 91 daily Parquet files (D-90..D) written through the project's
TableStore in a temp dir (fixed seed; gaps, series that start and stop, a few split rows), then,
in a fresh process so its peak RSS is its own, runs what the cost_baselines asset runs for day D
(``RawHistory`` -> ``baselines_for_days`` -> ``write_partition``) and prints wall, CPU and peak
RSS split into read+matrix / kernel / writing, then a reference in the same process doing the same
reads (DuckDB over the same files: the same columns, rows summed per series and day, pivoted into
the same series x day numpy matrix) and the ratio of the two.

With --dagster, a third process materialises cost_baselines, cost_anomalies and cost_scores
of day D through Dagster (their checks and metadata included).

Usage: python benchmarks/daily_run.py [--series 100000] [--data DIR] [--dagster]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

DAY = date(2026, 9, 1)
HISTORY = 90
TABLE = "raw_daily_costs"
REGIONS = [f"{area}-{n}" for area in ("us-east", "us-west", "eu-west", "ap-south", "sa-east")
           for n in range(1, 5)]


# ---------------------------------------------------------------------------------- the data
def build_once(root: str, n: int) -> None:
    """build() unless ``root`` already holds the table (a --data folder of an earlier run)."""
    if not os.path.isdir(os.path.join(root, TABLE)):
        started = time.perf_counter()
        rows = build(root, n)
        print(f"built {n:,} series x {HISTORY + 1} days ({rows:,} rows) in "
              f"{time.perf_counter() - started:.0f} s under {root}")


def build(root: str, n: int, seed: int = 14) -> int:
    """Write N series x 91 days of raw_daily_costs under ``root``; returns the rows written."""
    from sentinel_pipeline.schema import RAW_COLUMNS, conform
    from sentinel_pipeline.storage import TableStore

    rng = np.random.default_rng(seed)
    i = np.arange(n)
    account = i // 100
    pair = (i % 100) * 24 + account % 24  # 100 distinct (service, region) pairs per account
    services = pa.array([f"svc-{k:03d}" for k in range(120)])
    accounts = pa.array([f"{k:012d}" for k in range(account.max() + 1)])
    regions = pa.array(REGIONS)
    base = np.exp(rng.uniform(-2, 7, n))
    start = np.where(rng.random(n) < 0.05, rng.integers(0, HISTORY, n), 0)
    stop = np.where(rng.random(n) < 0.02, rng.integers(1, HISTORY + 1, n), HISTORY + 1)
    store = TableStore(root)
    rows = 0
    for d in range(HISTORY + 1):
        day = DAY - timedelta(days=HISTORY - d)
        live = (start <= d) & (d < stop) & (rng.random(n) < 0.97)
        ids = np.flatnonzero(live)
        split = ids[rng.random(len(ids)) < 0.003]  # a series' day in two rows, summed on read
        ids = np.concatenate([ids, split])
        cost = base[ids] * (0.7 if day.weekday() >= 5 else 1.0) * rng.lognormal(0, 0.1, len(ids))
        cost[len(ids) - len(split):] *= 0.4
        cost[: len(ids) - len(split)][np.isin(ids[: len(ids) - len(split)], split)] *= 0.6
        order = rng.permutation(len(ids))
        ids, cost = ids[order], cost[order]
        frame = pd.DataFrame({
            "usage_date": np.full(len(ids), day, dtype=object),
            "service": pd.array(services.take(pa.array(pair[ids] // 20)), dtype="string"),
            "account_id": pd.array(accounts.take(pa.array(account[ids])), dtype="string"),
            "region": pd.array(regions.take(pa.array(pair[ids] % 20)), dtype="string"),
            "cost": cost,
            "currency": "USD",
            "estimated": False,
            "source": "benchmark",
        })
        store.write_partition(TABLE, day, conform(frame, RAW_COLUMNS))
        rows += len(ids)
    return rows


# ----------------------------------------------------------------------------- measuring
def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024


def _load() -> str:
    """The machine's load (1, 5, 15 min, as uptime prints it): it is shared, 2 cores."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


@contextmanager
def phase(results: dict[str, tuple[float, float]], name: str) -> Iterator[None]:
    wall, cpu = time.perf_counter(), _cpu()
    yield
    results[name] = (time.perf_counter() - wall, _cpu() - cpu)


def job(root: str) -> tuple[dict[str, tuple[float, float]], int, float]:
    """What the cost_baselines asset runs for one day, phase by phase."""
    from sentinel_pipeline.defs.assets.baselines import RawHistory
    from sentinel_pipeline.defs.checks import history_gaps
    from sentinel_pipeline.detection import HISTORY_WINDOW_DAYS, DetectionConfig, baselines_for_days
    from sentinel_pipeline.schema import BASELINE_COLUMNS, conform
    from sentinel_pipeline.storage import TableStore

    store = TableStore(root)
    config = DetectionConfig()
    results: dict[str, tuple[float, float]] = {}
    matrix_seconds: list[float] = []
    with phase(results, "read+matrix+kernel"):
        history = RawHistory(store, DAY - timedelta(days=HISTORY_WINDOW_DAYS), DAY)
        timed = _timed_loader(history, matrix_seconds)
        frames = baselines_for_days(timed, [DAY], config)
        history_gaps(history.days)
    with phase(results, "writing"):
        frame = frames[DAY]
        store.write_partition("cost_baselines", DAY, conform(frame, BASELINE_COLUMNS))
    wall, cpu = results.pop("read+matrix+kernel")
    first, last = DAY - timedelta(days=config.lookback_days), DAY - timedelta(days=1)
    with phase(results, "read"):  # the reads alone, again, to split read from matrix
        sum(table.num_rows for table in history.tables(first, last))
    results["matrix"] = (matrix_seconds[0] - results["read"][0],
                         matrix_seconds[1] - results["read"][1])
    results["read+matrix"] = (matrix_seconds[0], matrix_seconds[1])
    results["kernel"] = (wall - matrix_seconds[0], cpu - matrix_seconds[1])
    results["writing"] = results.pop("writing")
    return results, len(frame), float(frame["expected_cost"].sum())


def job_before(root: str) -> tuple[dict[str, tuple[float, float]], int, float]:
    """The same day by the code before issue 14 (whole files read into pandas, then pivoted),
    for before/after figures: run with PYTHONPATH pointing at an export of that commit."""
    from sentinel_pipeline.defs.checks import days_with_costs, history_gaps
    from sentinel_pipeline.detection import HISTORY_WINDOW_DAYS, DetectionConfig, robust
    from sentinel_pipeline.detection.frames import to_matrix
    from sentinel_pipeline.schema import BASELINE_COLUMNS, conform
    from sentinel_pipeline.storage import TableStore

    store = TableStore(root)
    config = DetectionConfig()
    span = timedelta(days=robust.history_days(config))
    results: dict[str, tuple[float, float]] = {}
    with phase(results, "read"):
        history = store.read_range(TABLE, DAY - timedelta(days=HISTORY_WINDOW_DAYS), DAY)
        history_gaps(days_with_costs(history))
    with phase(results, "matrix"):
        matrix = to_matrix(history, DAY - span, DAY - timedelta(days=1))
        del history
    with phase(results, "kernel"):
        frame = robust.baselines_from_matrix(matrix.window(DAY - span, DAY - timedelta(days=1)),
                                             DAY, config)
    with phase(results, "writing"):
        store.write_partition("cost_baselines", DAY, conform(frame, BASELINE_COLUMNS))
    results["read+matrix"] = (results["read"][0] + results["matrix"][0],
                              results["read"][1] + results["matrix"][1])
    return results, len(frame), float(frame["expected_cost"].sum())


def _timed_loader(loader: Callable[[date, date], Any], out: list[float]) -> Callable[[date, date],
                                                                                      Any]:
    def timed(first: date, last: date) -> Any:
        wall, cpu = time.perf_counter(), _cpu()
        matrix = loader(first, last)
        out.extend([time.perf_counter() - wall, _cpu() - cpu])
        return matrix
    return timed


def _files(root: str, first: date, last: date) -> list[str]:
    paths = [os.path.join(root, TABLE, f"date={first + timedelta(days=i)}", "data.parquet")
             for i in range((last - first).days + 1)]
    return [p for p in paths if os.path.exists(p)]


def reference_duckdb(root: str, first: date, last: date) -> tuple[float, float, int]:
    """The same reads by DuckDB (the same columns, rows summed per series and day, an integer
    id per series by a join) scattered into the same dense series x day matrix with numpy."""
    import duckdb

    wall, cpu = time.perf_counter(), _cpu()
    con = duckdb.connect()
    got = con.execute(
        "WITH g AS (SELECT service, account_id, region, usage_date - ?::DATE AS d, "
        "sum(cost) AS c FROM read_parquet(?) WHERE usage_date BETWEEN ? AND ? GROUP BY ALL), "
        "k AS (SELECT service, account_id, region, row_number() OVER () - 1 AS s "
        "FROM (SELECT DISTINCT service, account_id, region FROM g)) "
        "SELECT k.s, g.d, g.c FROM g JOIN k USING (service, account_id, region)",
        [first, _files(root, first, last), first, last]).fetchnumpy()
    con.close()
    s, d, c = (np.asarray(got[k]) for k in ("s", "d", "c"))
    n_series = int(s.max()) + 1 if len(s) else 0
    values = np.zeros((n_series, (last - first).days + 1))
    present = np.zeros(values.shape, dtype=bool)
    values[s, d] = c
    present[s, d] = True
    return time.perf_counter() - wall, _cpu() - cpu, n_series


def reference_arrow(root: str, first: date, last: date) -> tuple[float, float, int]:
    """The same reads as one pyarrow dataset of the five columns, keys dictionary-encoded and
    combined into one int64, np.unique and a scatter-add: the plain Arrow + numpy way."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    wall, cpu = time.perf_counter(), _cpu()
    keys = ["service", "account_id", "region"]
    table = ds.dataset(_files(root, first, last), format="parquet").to_table(
        columns=["usage_date", *keys, "cost"],
        filter=(ds.field("usage_date") >= first) & (ds.field("usage_date") <= last))
    combined = np.zeros(table.num_rows, dtype=np.int64)
    for key in keys:
        encoded = pc.dictionary_encode(table.column(key).combine_chunks())
        combined = combined * (len(encoded.dictionary) + 1) + encoded.indices.to_numpy()
    _, series = np.unique(combined, return_inverse=True)
    day = (pc.cast(table.column("usage_date"), pa.int32()).to_numpy()
           - np.datetime64(first, "D").astype(np.int64))
    n_series = int(series.max()) + 1 if len(series) else 0
    values = np.zeros((n_series, (last - first).days + 1))
    present = np.zeros(values.shape, dtype=bool)
    np.add.at(values, (series, day), table.column("cost").to_numpy())
    present[series, day] = True
    return time.perf_counter() - wall, _cpu() - cpu, n_series


def run(root: str) -> None:
    """The measured process: the job first (its peak RSS is read right after it), then the
    reference."""
    import sentinel_pipeline.defs.assets.baselines  # Dagster's import, untimed
    from sentinel_pipeline.detection import DetectionConfig

    load_before = _load()
    if hasattr(sentinel_pipeline.defs.assets.baselines, "RawHistory"):
        results, n_rows, total = job(root)
    else:
        print("(code before issue 14: read_range + to_matrix)")
        results, n_rows, total = job_before(root)
    peak = _peak_gb()
    wall = sum(results[name][0] for name in ("read+matrix", "kernel", "writing"))
    cpu = sum(results[name][1] for name in ("read+matrix", "kernel", "writing"))
    span = DetectionConfig().lookback_days
    first, last = DAY - timedelta(days=span), DAY - timedelta(days=1)
    references = {"DuckDB": reference_duckdb(root, first, last),
                  "Arrow + numpy": reference_arrow(root, first, last)}
    print(f"load average before: {load_before}, after: {_load()}")
    print(f"job: {n_rows:,} baseline rows, expected total {total:,.2f}")
    print(f"  {'phase':<14}{'wall s':>9}{'CPU s':>9}")
    for name in ("read", "matrix", "read+matrix", "kernel", "writing"):
        w, c = results[name]
        print(f"  {name:<14}{w:>9.2f}{c:>9.2f}")
    print(f"  {'total':<14}{wall:>9.2f}{cpu:>9.2f}   peak RSS {peak:.2f} GB")
    read_wall, read_cpu = results["read+matrix"]
    for name, (ref_wall, ref_cpu, ref_series) in references.items():
        print(f"reference {name} (the same {span} days into the matrix, {ref_series:,} series): "
              f"{ref_wall:.2f} s wall, {ref_cpu:.2f} s CPU; read+matrix / reference: "
              f"{read_wall / ref_wall:.2f}x wall, {read_cpu / ref_cpu:.2f}x CPU")
    print(f"peak RSS after the job and the references: {_peak_gb():.2f} GB")


def run_dagster(root: str) -> None:
    """The daily run of day D materialised by Dagster itself (in-process, ephemeral instance):
    cost_baselines, then cost_scores and cost_anomalies (its filter) of the same day, each the
    asset's own code end to end with its checks and metadata, in a process of its own so the
    peak RSS is the run's. (annotated_alerts is left out: its cost is the alerts', not the
    series'.) Day D-1 is materialised first, untimed, so day D reads its anomalies and carries
    its drift statistics on from its cost_scores, as every daily run after the first does."""
    os.environ["SENTINEL_START_DATE"] = str(DAY - timedelta(days=HISTORY))
    import dagster as dg

    from sentinel_pipeline.defs.assets.anomalies import cost_anomalies
    from sentinel_pipeline.defs.assets.baselines import cost_baselines
    from sentinel_pipeline.defs.assets.scores import cost_scores
    from sentinel_pipeline.defs.resources import (
        CostSourceResource,
        DetectionResource,
        StorageResource,
    )

    resources = {"storage": StorageResource(data_dir=root), "detection": DetectionResource(),
                 "source": CostSourceResource()}
    instance = dg.DagsterInstance.ephemeral()
    for asset in (cost_baselines, cost_scores, cost_anomalies):
        assert dg.materialize([asset], partition_key=str(DAY - timedelta(days=1)),
                              instance=instance, resources=resources).success
    load_before = _load()
    total_wall, total_cpu = 0.0, 0.0
    for asset in (cost_baselines, cost_scores, cost_anomalies):
        wall, cpu = time.perf_counter(), _cpu()
        result = dg.materialize([asset], partition_key=str(DAY), instance=instance,
                                resources=resources)
        wall, cpu = time.perf_counter() - wall, _cpu() - cpu
        assert result.success
        total_wall, total_cpu = total_wall + wall, total_cpu + cpu
        print(f"Dagster materialisation of {asset.key.to_user_string()}[{DAY}] (in-process): "
              f"{wall:.2f} s wall, {cpu:.2f} s CPU")
    print(f"  daily run (the three assets): {total_wall:.2f} s wall, {total_cpu:.2f} s CPU, "
          f"peak RSS {_peak_gb():.2f} GB; load before {load_before}, after {_load()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--series", type=int, default=100_000)
    parser.add_argument("--data", help="use (or build into) this folder instead of a temp dir")
    parser.add_argument("--dagster", action="store_true",
                        help="also materialise the asset through Dagster (a third process)")
    parser.add_argument("--run", help=argparse.SUPPRESS)  # the measured child processes
    parser.add_argument("--run-dagster", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        run(args.run)
        return
    if args.run_dagster:
        run_dagster(args.run_dagster)
        return
    with tempfile.TemporaryDirectory(prefix="sentinel-daily-") as tmp:
        root = args.data or tmp
        build_once(root, args.series)
        subprocess.run([sys.executable, __file__, "--run", root], check=True)
        if args.dagster:
            subprocess.run([sys.executable, __file__, "--run-dagster", root], check=True)


if __name__ == "__main__":
    main()
