"""Benchmark: a single-run backfill of the four assets over demo data.

Prints wall time, per-asset step time, runs created and peak memory (RSS of this process), and
the highest RSS sampled during each step (every 50 ms), to tell which asset holds the peak.
Usage: python benchmarks/backfill.py [--days 240] [--series 70] [--end 2025-12-31]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import threading
import time
import warnings
from datetime import date, timedelta

warnings.filterwarnings("ignore")


def _rss_mb() -> float:
    """This process's resident set now (Linux), in MB; 0 where /proc is not there."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class RssSampler:
    """(time, RSS MB) every ``every`` seconds in a daemon thread, for the peak of each step."""

    def __init__(self, every: float = 0.05) -> None:
        self.samples: list[tuple[float, float]] = []
        self.every = every
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            self.samples.append((time.time(), _rss_mb()))
            time.sleep(self.every)

    def peak(self, start: float, end: float) -> float:
        return max((mb for t, mb in self.samples if start <= t <= end), default=0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=240)
    parser.add_argument("--series", type=int, default=70)
    parser.add_argument("--end", default="2025-12-31")
    parser.add_argument("--method", default="robust", choices=("robust", "seed"))
    args = parser.parse_args()

    root = tempfile.mkdtemp(prefix="sentinel-bench-")
    os.environ["SENTINEL_DATA_DIR"] = os.path.join(root, "data")
    os.environ["SENTINEL_SOURCE"] = "demo"
    os.environ["SENTINEL_START_DATE"] = "2024-01-01"

    import dagster as dg

    from sentinel_pipeline.definitions import defs

    end = date.fromisoformat(args.end)
    start = end - timedelta(days=args.days - 1)
    job = defs.resolve_job_def("sentinel_daily_job")
    run_config = {
        "loggers": {"console": {"config": {"log_level": "WARNING"}}},
        "resources": {
            "source": {"config": {"demo_series": args.series}},
            "detection": {"config": {"method": args.method}},
        },
    }
    tags = {"dagster/asset_partition_range_start": start.isoformat(),
            "dagster/asset_partition_range_end": end.isoformat()}
    os.makedirs(os.path.join(root, "instance"))
    with dg.instance_for_test(temp_dir=os.path.join(root, "instance")) as instance:
        sampler = RssSampler()
        started = time.perf_counter()
        result = job.execute_in_process(instance=instance, tags=tags, run_config=run_config)
        wall = time.perf_counter() - started
        stats = instance.get_run_step_stats(result.run_id)
        steps = {s.step_key: (s.end_time or 0.0) - (s.start_time or 0.0) for s in stats}
        step_peaks = {s.step_key: sampler.peak(s.start_time or 0.0, s.end_time or 0.0)
                      for s in stats}
        runs = len(instance.get_runs())
        materialized = len(result.get_asset_materialization_events())
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"backfill {start}..{end}: {args.days} days x {args.series} series, method {args.method}")
    print(f"  success={result.success} runs={runs} materialisations={materialized}")
    print(f"  wall time {wall:.1f} s, peak RSS {peak_mb:.0f} MB")
    for step, seconds in steps.items():
        print(f"  step {step}: {seconds:.1f} s, RSS up to {step_peaks[step]:.0f} MB")


if __name__ == "__main__":
    main()
