"""Benchmark: Sentinel on real operational series with known incidents (NAB), as a proxy.

No public labeled set of daily cloud bills exists; the Numenta Anomaly Benchmark's 47 "real"
series (AWS CloudWatch metrics, ad exchange prices, known-cause system failures, traffic,
tweets; MIT licence since 2024) have labeled incident windows and the shapes of real
operations: daily cycles, level changes, heavy tails, wandering levels. Not in the repository
(about 9 MB): pass a checkout of github.com/numenta/NAB with ``--nab``.

Each real day is cut into 7 equal bins of 3 h 26 min and every bin's mean taken as one "day"
of a bill, so a series' daily cycle lands on Sentinel's weekday profile (hourly means as days
put a 24-point cycle into a model with a 7-day one, and both methods read it as noise). Each
series is scaled to a median of $1,000 a bin, every series starts on the same date, and the
bins from the 71st on are scored (``baselines_for_days`` / ``scores_for_days``, the pipeline's
own code). An alert is a true one when it falls inside a labeled window or within 7 bins (one
real day) after it; a window is found when one does. Figures: false alerts per 100
series-months (30 bins a month), windows found, and the same split by kind.

Usage: python -m benchmarks.real_series --nab PATH [--method robust] [--drops]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks import shapes
from benchmarks.shapes import START
from sentinel_pipeline.detection import DetectionConfig, baselines_for_days, scores_for_days

BINS_PER_DAY = 7
HISTORY = 70  # bins before the first scored one
SLACK = BINS_PER_DAY  # bins after a window an alert still counts as finding it
MONTH = 30


@dataclass
class Series:
    name: str
    costs: np.ndarray  # a bin per "day", NaN where the metric had no point
    windows: list[tuple[int, int]]  # labeled windows as inclusive bin ranges


def _bins(stamps: pd.Series) -> np.ndarray:
    """Bin numbers from the first day's midnight: day x 7 + the bin of the time of day."""
    first = stamps.dt.normalize().min()
    day = (stamps.dt.normalize() - first).dt.days.to_numpy()
    minute = (stamps - stamps.dt.normalize()).dt.total_seconds().to_numpy() / 60
    return day * BINS_PER_DAY + np.floor(minute / (1440 / BINS_PER_DAY)).astype(int)


def load(nab: Path) -> list[Series]:
    """NAB's real series, binned, scaled, with their windows."""
    windows = json.loads((nab / "labels" / "combined_windows.json").read_text())
    out = []
    for path in sorted((nab / "data").glob("real*/*.csv")):
        key = f"{path.parent.name}/{path.name}"
        frame = pd.read_csv(path, parse_dates=["timestamp"])
        bins = _bins(frame["timestamp"])
        means = frame.groupby(bins)["value"].mean()
        costs = np.full(int(bins.max()) + 1, np.nan)
        costs[means.index.to_numpy()] = means.to_numpy()
        floor = np.nanmin(costs)
        if floor <= 0:  # counts and rates with zeros: a bill has none below its base
            costs = costs - floor + np.nanmedian(costs - floor) * 0.01 + 1e-9
        costs *= 1000 / np.nanmedian(costs)
        first = frame["timestamp"].dt.normalize().min()
        marks = []
        for start, end in windows.get(key, []):
            edges = _bins(pd.Series(pd.to_datetime([first, start, end])))[1:]
            marks.append((int(edges[0]), int(edges[1])))
        out.append(Series(key, costs, marks))
    return out


def cost_rows(series: list[Series]) -> pd.DataFrame:
    """The series as raw cost rows (shapes.cost_rows), each from START: padded with NaN to the
    longest, so a series has no row after its end."""
    matrix = np.full((len(series), max(len(s.costs) for s in series)), np.nan)
    for row, s in zip(matrix, series, strict=True):
        row[:len(s.costs)] = s.costs
    return shapes.cost_rows(matrix)


@dataclass
class Figures:
    """One series' figures: false and true alerts, windows scored and found, series-months."""

    false: int
    true: int
    windows: int
    found: int
    months: float


def evaluate(series: list[Series], config: DetectionConfig
             ) -> tuple[dict[str, Figures], dict[str, int]]:
    """Each series' figures, and the false alerts by kind (drops counted when the config
    alerts on them)."""
    rows = cost_rows(series)
    days = sorted(d for d in set(rows["usage_date"]) if d >= START + timedelta(days=HISTORY))
    base = baselines_for_days(rows, days, config)
    scored = scores_for_days(rows, pd.concat(base.values(), ignore_index=True), days, config)
    out = pd.concat(scored.values(), ignore_index=True)
    alerts = out[out["alert"].astype(bool)]
    false_by_kind: dict[str, int] = {}
    figures: dict[str, Figures] = {}
    for i, s in enumerate(series):
        mine = alerts[alerts["service"] == f"s{i}"]
        at = (pd.to_datetime(mine["usage_date"]) - pd.Timestamp(START)).dt.days.to_numpy()
        scored_windows = [(a, b) for a, b in s.windows if b + SLACK >= HISTORY]
        hits = [(at >= a) & (at <= b + SLACK) for a, b in scored_windows]
        inside = np.logical_or.reduce(hits) if hits else np.zeros(len(at), dtype=bool)
        for kind in mine["kind"].astype(str).to_numpy()[~inside]:
            false_by_kind[kind] = false_by_kind.get(kind, 0) + 1
        figures[s.name] = Figures(int((~inside).sum()), int(inside.sum()), len(scored_windows),
                                  sum(bool(hit.any()) for hit in hits),
                                  np.isfinite(s.costs[HISTORY:]).sum() / MONTH)
    return figures, false_by_kind


def _total(figures: list[Figures]) -> Figures:
    return Figures(*(sum(column) for column in zip(
        *((f.false, f.true, f.windows, f.found, f.months) for f in figures), strict=True)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nab", type=Path, required=True, help="a checkout of numenta/NAB")
    parser.add_argument("--method", default="robust")
    parser.add_argument("--drops", action="store_true", help="count drop alerts too")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    series = load(args.nab)
    figures, false_by_kind = evaluate(
        series, DetectionConfig(method=args.method, alert_on_drops=args.drops))
    total = _total(list(figures.values()))
    by_kind = {k: round(float(100 * v / total.months), 1) for k, v in sorted(false_by_kind.items())}
    print(f"{args.method}: {100 * total.false / total.months:.1f} false alerts per 100 "
          f"series-months {by_kind}; windows found {total.found} of {total.windows} "
          f"({len(series)} series, {time.perf_counter() - started:.0f} s)")
    groups: dict[str, list[Figures]] = {}
    for name, one in figures.items():
        groups.setdefault(name.split("/")[0], []).append(one)
    for group, members in groups.items():
        g = _total(members)
        print(f"  {group:18s} {len(members):2d} series {g.months:6.1f} series-months: "
              f"{100 * g.false / g.months:6.1f} false alerts per 100, windows "
              f"{g.found}/{g.windows}")
    if args.verbose:
        for name, f in figures.items():
            print(f"  {name:60s} false {f.false:3d} true {f.true:3d} windows "
                  f"{f.found}/{f.windows} months {f.months:.1f}")


if __name__ == "__main__":
    main()
