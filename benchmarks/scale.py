"""Benchmark: how a 365-day backfill grows with the number of series.

Runs benchmarks/backfill.py once per size, each in a fresh Python process so the peak RSS is
that run's own, and prints wall time, peak memory and their growth against the smallest size.
Usage: python benchmarks/scale.py [--days 365] [--series 1000 3000 10000]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

BACKFILL = Path(__file__).with_name("backfill.py")
_FIGURES = re.compile(r"wall time ([\d.]+) s, peak RSS (\d+) MB")


def run_once(days: int, series: int) -> tuple[float, int, str]:
    """One backfill in its own process: (wall seconds, peak RSS MB, its full output)."""
    done = subprocess.run(
        [sys.executable, str(BACKFILL), "--days", str(days), "--series", str(series)],
        capture_output=True, text=True, check=False,
    )
    output = done.stdout + done.stderr
    found = _FIGURES.search(done.stdout)
    if done.returncode != 0 or found is None or "success=True" not in done.stdout:
        raise SystemExit(f"backfill of {series} series failed:\n{output[-3000:]}")
    return float(found.group(1)), int(found.group(2)), done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--series", type=int, nargs="+", default=[1000, 3000, 10000])
    args = parser.parse_args()

    rows = []
    for series in sorted(args.series):
        wall, peak, output = run_once(args.days, series)
        print(output, flush=True)
        rows.append((series, wall, peak))

    base_series, base_wall, base_peak = rows[0]
    print(f"\n{args.days}-day backfill, demo source, robust method, one run per size")
    print(f"{'series':>8} {'wall s':>8} {'peak MB':>8} {'x series':>9} {'x wall':>7} {'x mem':>6}")
    for series, wall, peak in rows:
        print(f"{series:>8} {wall:>8.1f} {peak:>8} {series / base_series:>9.1f} "
              f"{wall / base_wall:>7.2f} {peak / base_peak:>6.2f}")


if __name__ == "__main__":
    main()
