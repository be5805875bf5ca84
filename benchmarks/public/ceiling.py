"""What any detector of the usual kind could reach on the public benchmark at a given false-alert
budget, knowing the answer: the generator's true expected cost and noise.

Why: issue 12 asks for F1 >= 0.60, event recall >= 0.85, gradual >= 0.70, cost-weighted recall
>= 0.95 and a mean $ to detect below 19.7 on this benchmark, and, in-repo, at most 1 false alert
per 100 series-month. This module asks whether those goals can hold together at all, apart
from any estimate: each day's z is computed from the true expected cost and the true noise,
and a textbook detector is run on it, in two spaces:

- "dollars": z = (cost - expected) / (expected x noise), the generator's own noise model (it
  adds normal noise of a fixed share of the expected cost: symmetric in dollars);
- "log": z = log(cost / expected) / noise, the space Sentinel models costs in (a bill's noise
  grows with its level and its rises are bounded below by zero, not above).

The detector (``page``): an alarm when the day's z passes ``a`` or Page's one-sided CUSUM with
reference ``k`` passes ``h`` (restarted after an alarm); the episode then goes on, each day
flagged, while z >= ``c``. Its false alerts are counted on simulated N(0, 1) days (alarms per
100 series-month of 30 days), and for each budget the grid's best F1 (and, separately, its
best event recall and lowest $ to detect) is reported. The parameters are chosen on the
benchmark itself, so each figure is a ceiling of the family, not a detector.

Usage: python -m benchmarks.public.ceiling [--noise-days N]
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Sequence

import numpy as np

from benchmarks.public.generator import Cell, make_cells
from benchmarks.public.protocol import evaluate, summarize

SPACES = ("dollars", "log")
# The grid: CUSUM reference k, day bar a, CUSUM bar h, continuation bar c (inf: never).
KS = (0.5, 0.75, 1.0, 1.5)
DAY_BARS = (3.0, 3.25, 3.5, 3.75, 4.0, np.inf)
CUSUM_BARS = (2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, np.inf)
GO_ON_BARS = (1.0, 1.5, 2.0)
# Alarms per 100 series-month of normal noise. Sentinel's shipped threshold promises 0.27 (its
# measured normal shape 0.31); the in-repo goal is <= 1; the benchmark's own 1 % budget of
# days is up to 30.
BUDGETS = (0.3, 1.0, 3.0, 10.0, 30.0)
MONTH_DAYS = 30


def grid() -> np.ndarray:
    """Every (k, a, h, c) of the grid, a row each."""
    return np.array(list(itertools.product(KS, DAY_BARS, CUSUM_BARS, GO_ON_BARS)))


def true_z(cell: Cell, space: str) -> np.ndarray:
    """Each day's residual over the true expected cost, in units of the noise measured on the
    cell's normal days in that space."""
    if space == "dollars":
        residual = cell.cost / cell.expected - 1.0
    elif space == "log":
        residual = np.log(cell.cost / cell.expected)
    else:
        raise ValueError(f"Unknown space {space!r}: choose one of {', '.join(SPACES)}.")
    return residual / float(np.std(residual[~cell.is_anomaly]))


def page(z: np.ndarray, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The flagged days (days x parameter rows) and the number of alarms per row of ``params``
    (columns k, a, h, c) over the days' z, all rows at once."""
    k, a, h, c = params.T
    flags = np.zeros((len(z), len(params)), dtype=bool)
    alarms = np.zeros(len(params), dtype=np.int64)
    cusum = np.zeros(len(params))
    episode = np.zeros(len(params), dtype=bool)
    for day, value in enumerate(z):
        going_on = episode & (value >= c)
        # Inside an episode the CUSUM holds: the evidence was spent on its alarm.
        cusum = np.where(going_on, cusum, np.maximum(cusum + value - k, 0.0))
        alarm = ~going_on & ((value > a) | (cusum > h))
        alarms += alarm
        cusum[alarm] = 0.0
        episode = going_on | alarm
        flags[day] = episode
    return flags, alarms


def noise_rates(params: np.ndarray, days: int, seed: int = 1) -> np.ndarray:
    """Alarms per 100 series-month of each parameter row on ``days`` of N(0, 1) noise."""
    _, alarms = page(np.random.default_rng(seed).standard_normal(days), params)
    return alarms / days * MONTH_DAYS * 100


def ceilings(cells: list[Cell], space: str, params: np.ndarray,
             rates: np.ndarray) -> list[dict[str, float]]:
    """Per budget: the best F1's figures, the best event recall and gradual detection, and the
    lowest mean $ to detect among the parameter rows within it."""
    flags = [page(true_z(cell, space), params)[0] for cell in cells]
    figures = [summarize([evaluate(cell, flags[i][:, row], np.zeros(len(cell.cost)), 0.0)
                          for i, cell in enumerate(cells)]) for row in range(len(params))]
    out = []
    for budget in BUDGETS:
        within = [row for row in range(len(params)) if rates[row] <= budget]
        best = max(within, key=lambda row: figures[row]["f1"])
        out.append({
            "budget": budget, "rate": float(rates[best]), **figures[best],
            "k": float(params[best, 0]), "a": float(params[best, 1]),
            "h": float(params[best, 2]), "c": float(params[best, 3]),
            "best_event_recall": max(figures[row]["event_recall"] for row in within),
            "best_gradual": max(figures[row]["gradual"] for row in within),
            "best_cost_recall": max(figures[row]["cost_weighted_recall"] for row in within),
            "lowest_cost_to_detect": min(figures[row]["mean_cost_to_detect"] for row in within),
        })
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--noise-days", type=int, default=600_000,
                        help="N(0, 1) days the false-alert rates are counted on")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    cells = make_cells()
    params = grid()
    rates = noise_rates(params, args.noise_days)
    print(f"Ceilings on the public benchmark: true expected cost and noise, an alarm when z > a "
          f"or CUSUM(k) > h, going on while z >= c; {len(params)} parameter sets, false alerts "
          f"per 100 series-month counted on {args.noise_days:,} N(0, 1) days; best F1 per "
          "budget, then the best event recall, gradual, $ recall and lowest $ to detect of any "
          "set within it.")
    print(f"{'space':<8} {'budget':>6} {'rate':>5} {'F1':>6} {'prec':>5} {'ev.rec':>6} "
          f"{'grad':>5} {'$rec':>5} {'MCTD$':>6} {'FAR':>6}   k     a     h     c   | "
          f"{'max ev.rec':>10} {'max grad':>8} {'max $rec':>8} {'min MCTD$':>9}")
    for space in SPACES:
        for row in ceilings(cells, space, params, rates):
            print(f"{space:<8} {row['budget']:>6g} {row['rate']:>5.2f} {row['f1']:>6.3f} "
                  f"{row['precision']:>5.2f} {row['event_recall']:>6.3f} {row['gradual']:>5.2f} "
                  f"{row['cost_weighted_recall']:>5.2f} {row['mean_cost_to_detect']:>6.1f} "
                  f"{row['false_alarm_rate']:>6.4f} {row['k']:>4g} {row['a']:>5g} "
                  f"{row['h']:>5g} {row['c']:>5g} | {row['best_event_recall']:>10.3f} "
                  f"{row['best_gradual']:>8.2f} {row['best_cost_recall']:>8.3f} "
                  f"{row['lowest_cost_to_detect']:>9.1f}")
    print(f"({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
