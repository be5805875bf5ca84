"""Benchmark: one day's cost_baselines unsharded (one step, in process) vs sharded by series
into SENTINEL_SHARDS steps run side by side by Dagster's multiprocess executor.

Builds N series x 91 daily raw_daily_costs files (benchmarks/daily_run.py's demo-like data,
fixed seed) in a temp dir, then materialises cost_baselines of day D through Dagster twice,
each in a fresh process so its peak RSS is its own:

- unsharded: the plain asset, in-process executor, ephemeral instance (as `sentinel backfill`);
- sharded: the graph-backed asset with --shards shard steps and a merge step, multiprocess
  executor (max_concurrent = shards) on a stored instance in a temp DAGSTER_HOME; every step is
  a process of its own that loads the code, and the shards' frames go to the merge step
  through the IO manager (pickles on disk).

Prints for each: wall, CPU (the process and its step processes), peak RSS of the run process
and of the largest step process, and the speed-up, with the load average (the machine is
shared). Checks the two runs wrote the same files. Scoring is not sharded: cost_anomalies and
cost_scores of a day are a join and a pass over the day's rows, a fifth of the baselines' time
at a million series (README, Scale).

Usage: python benchmarks/sharded.py [--series 300000] [--shards 2] [--days 1] [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from daily_run import DAY, HISTORY, build_once  # noqa: E402  (the data of the daily benchmark)


def _usage() -> dict[str, float]:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"cpu": me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime,
            "peak_gb": me.ru_maxrss / 1024**2, "child_peak_gb": kids.ru_maxrss / 1024**2}


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def baselines_job() -> Any:
    """cost_baselines alone, from Definitions built in this process's environment (the step
    processes of the multiprocess executor rebuild the same job from it)."""
    from sentinel_pipeline.definitions import build_definitions

    return build_definitions().resolve_job_def("sentinel_daily_job").get_subset(
        asset_selection={_key()})


def _key() -> Any:
    import dagster as dg

    return dg.AssetKey("cost_baselines")


def _tags(days: int) -> dict[str, str]:
    """Day D, or the ``days`` days ending on D in one run (a single-run backfill)."""
    if days == 1:
        return {"dagster/partition": DAY.isoformat()}
    return {"dagster/asset_partition_range_start": str(DAY - timedelta(days=days - 1)),
            "dagster/asset_partition_range_end": DAY.isoformat()}


def measure(root: str, shards: int, days: int) -> dict[str, Any]:
    """The measured child process: one run of cost_baselines over the days ending on D."""
    import dagster as dg

    started, before = time.perf_counter(), _usage()
    if shards < 2:
        instance = dg.DagsterInstance.ephemeral()
        result = baselines_job().execute_in_process(instance=instance, tags=_tags(days))
        ok = result.success
    else:
        instance = dg.DagsterInstance.get()  # DAGSTER_HOME: a stored instance, as processes need
        multiprocess: dict[str, Any] = {"max_concurrent": shards}
        if os.environ.get("BENCH_FORKSERVER"):  # steps forked from a server with the code loaded
            multiprocess["start_method"] = {"forkserver": {
                "preload_modules": ["sentinel_pipeline.definitions"]}}
        run_config = {"execution": {"config": {"multiprocess": multiprocess}}}
        with dg.execute_job(dg.reconstructable(baselines_job), instance=instance,
                            run_config=run_config, tags=_tags(days)) as result:
            ok = result.success
            steps = _step_seconds(instance, result.run_id)
    after = _usage()
    return {"ok": ok, "wall": time.perf_counter() - started, "cpu": after["cpu"] - before["cpu"],
            "peak_gb": after["peak_gb"], "child_peak_gb": after["child_peak_gb"],
            **({"steps": steps} if shards >= 2 else {})}


def _step_seconds(instance: Any, run_id: str) -> dict[str, list[float]]:
    """Each step's start and end, in seconds from the run's first event: where the time of a
    sharded run goes (process start-up is the gap before a step's start)."""
    import dagster as dg

    records = instance.all_logs(run_id)
    origin = min(r.timestamp for r in records)
    out: dict[str, list[float]] = {}
    for r in records:
        kind = r.dagster_event.event_type if r.dagster_event else None
        if r.step_key and kind in (dg.DagsterEventType.STEP_START,
                                   dg.DagsterEventType.STEP_SUCCESS):
            out.setdefault(r.step_key, []).append(round(r.timestamp - origin, 1))
    out["cpu"] = [float(m.split(" in ")[-1].split(" s CPU")[0]) for r in records
                  if "s CPU" in (m := r.user_message) and "cost_baselines shard" in m]
    return out


def _run_child(root: str, shards: int, days: int, forkserver: bool = False) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="sentinel-shard-home-") as home:
        Path(home, "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        env = {**os.environ, "SENTINEL_DATA_DIR": root, "SENTINEL_SHARDS": str(shards),
               "SENTINEL_SHARD_SERIES": "0", "DAGSTER_HOME": home,
               "SENTINEL_START_DATE": str(DAY - timedelta(days=HISTORY)),
               **({"BENCH_FORKSERVER": "1"} if forkserver else {})}
        load = _load()
        out = subprocess.run([sys.executable, __file__, "--measure", root, "--shards",
                              str(shards), "--days", str(days)],
                             env=env, check=True, capture_output=True, text=True)
        figures: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
        figures["load_before"], figures["load_after"] = load, _load()
        figures["bytes"] = b"".join(
            p.read_bytes() for p in sorted(Path(root, "cost_baselines").rglob("*.parquet")))
        shutil.rmtree(Path(root, "cost_baselines"))
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--series", type=int, default=300_000)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--days", type=int, default=1,
                        help="days of cost_baselines in the run, ending on D (a backfill: "
                        "the history is read once, the kernel runs per day)")
    parser.add_argument("--data", help="use (or build into) this folder instead of a temp dir")
    parser.add_argument("--forkserver", action="store_true",
                        help="also the sharded run with the multiprocess executor's forkserver "
                        "start method (the code loaded once, each step forked from it)")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # the measured child process
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.shards, args.days)))
        return
    with tempfile.TemporaryDirectory(prefix="sentinel-sharded-") as tmp:
        root = args.data or tmp
        build_once(root, args.series)
        print(f"machine: {os.cpu_count()} cores; load average now {_load()}")
        print(f"cost_baselines of {args.days} day(s) ending {DAY}")
        runs = {"unsharded (1 step, in process)": _run_child(root, 1, args.days),
                f"sharded into {args.shards} (multiprocess)": _run_child(root, args.shards,
                                                                        args.days)}
        if args.forkserver:
            runs[f"sharded into {args.shards} (multiprocess, forkserver)"] = _run_child(
                root, args.shards, args.days, forkserver=True)
        for name, f in runs.items():
            # Forked steps are children of the forkserver, which outlives the measure: their
            # CPU and RSS are not in the run process's children.
            forked = "forkserver" in name
            cpu = "CPU of steps not seen" if forked else f"{f['cpu']:.1f} s CPU"
            step_rss = "" if forked or "unsharded" in name else (
                f", {f['child_peak_gb']:.2f} GB (largest step process)")
            print(f"{name}: {'ok' if f['ok'] else 'FAILED'}, {f['wall']:.1f} s wall, {cpu}, "
                  f"peak RSS {f['peak_gb']:.2f} GB (run process){step_rss}; load before "
                  f"{f['load_before']}, after {f['load_after']}")
        plain, sharded, *_ = runs.values()
        timings = sharded.get("steps", {})
        shard_cpu = timings.pop("cpu", [])
        steps = ", ".join(f"{k.split('.')[-1]} {v[0]:.1f}-{v[-1]:.1f} s"
                          for k, v in timings.items())
        print(f"sharded steps (start-end from the run's first event): {steps}; CPU of each "
              f"shard's work: {', '.join(f'{c:.1f} s' for c in shard_cpu)}")
        for name, f in list(runs.items())[1:]:
            ratio = "" if "forkserver" in name else f"; CPU ratio {f['cpu'] / plain['cpu']:.2f}x"
            print(f"{name}: speed-up (unsharded wall / its wall) {plain['wall'] / f['wall']:.2f}x"
                  f"{ratio}; same files: {plain['bytes'] == f['bytes']}")


if __name__ == "__main__":
    main()
