"""The labeled series of the public benchmark: 4 FOCUS-calibrated services x seeds, 730 days each,
year 2 carrying 27 injected events (3 per anomaly type x intensity).

Source of the protocol and of the calibration figures: github.com/seoyoungleeme/
finops-cost-anomaly-benchmark, commit df55842, MIT licence (Copyright (c) its authors). The
``CALIBRATION`` table below is data copied from its
``outputs/results_full_strict/focus_calibration_stats.csv`` (fitted there on the FOCUS 1.0 sample
data, grouped by ProviderName / ServiceCategory); the code here is our own re-implementation of
the algorithm described by its ``finops_benchmark/data.py``, written so that it consumes the
random numbers in the same order and therefore produces the same series and events:

- baseline: ``default_rng(seed)``, one ``normal(0, noise_pct, n_days)`` draw, multiplied by the
  expected cost (trend x weekday factor by calendar weekday, +5 % of trend on days 28-31);
- injection: ``default_rng(seed + 10_000)``; gradual events first (high, mid, low), then spikes
  (low, mid, high), then contextual ones (low, mid, high); per event one length draw, then slot
  draws ``integers(year2_start, n_days - length - buffer)`` until a free slot (buffer 3 and 500
  tries for gradual, buffer 2 and 300 tries otherwise; contextual starts must fall on day index
  % 7 == 5, a Saturday from 2024-01-01, and a draw that does not still uses up a try).

The published calibration figures are rounded to 4 decimals (their run used the unrounded fit),
so the series differ from theirs by at most ~1e-4 relative; event positions are identical.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd

N_DAYS = 730
YEAR2_START = 365
START_DATE = date(2024, 1, 1)
SEEDS: tuple[int, ...] = (0, 1, 2)
EVENTS_PER_COMBO = 3  # the "full strict" run: exactly 3 events per (type, intensity)
INJECTION_SEED_OFFSET = 10_000
MONTH_END_DAY = 28  # days of month >= this carry a batch surcharge of 5 % of the trend
MONTH_END_SURCHARGE = 0.05

TYPES: tuple[str, ...] = ("spike", "contextual", "gradual")
INTENSITIES: tuple[str, ...] = ("low", "mid", "high")
# Injected cost: spike/contextual add multiple x expected on each day; gradual adds
# pct x (k + 1) x expected on its k-th day (k from 0).
SPIKE_MULTIPLE = {"low": 0.30, "mid": 1.00, "high": 3.00}
CONTEXTUAL_MULTIPLE = {"low": 0.50, "mid": 1.00, "high": 2.00}
GRADUAL_DAILY_PCT = {"low": 0.03, "mid": 0.05, "high": 0.10}
GRADUAL_DAYS = (7, 14)  # inclusive
SHORT_DAYS = (1, 2)  # inclusive: spikes and contextual events last 1 or 2 days
GRADUAL_BUFFER, SHORT_BUFFER = 3, 2
GRADUAL_TRIES, SHORT_TRIES = 500, 300
SATURDAY_INDEX = 5  # contextual events start where day index % 7 == 5


@dataclass(frozen=True)
class Calibration:
    """Baseline parameters of one service (fitted on FOCUS 1.0 by the benchmark's authors)."""

    service: str
    base_level: float
    monthly_growth: float
    noise_pct: float
    weekly_factor: tuple[float, ...]  # Monday .. Sunday


# focus_calibration_stats.csv of the "full strict" run (commit df55842), MIT licence.
CALIBRATION: tuple[Calibration, ...] = (
    Calibration("AWS / Compute", 156.4667, 0.10, 0.15,
                (0.7391, 1.6629, 1.2504, 0.5443, 0.5497, 1.0086, 1.2451)),
    Calibration("AWS / Databases", 18.5, -0.02, 0.15,
                (0.9945, 1.2223, 0.7782, 0.9418, 0.733, 0.6864, 1.6437)),
    Calibration("AWS / Other", 54.0427, 0.10, 0.15,
                (0.9468, 1.0595, 0.8488, 0.8407, 0.9461, 1.1174, 1.2409)),
    Calibration("Oracle / Compute", 24.6667, 0.10, 0.15,
                (0.9374, 1.0256, 0.553, 0.6789, 0.896, 1.6724, 1.2368)),
)


@dataclass(frozen=True)
class Event:
    event_id: int  # in placement order, from 1
    anomaly_type: str
    intensity: str
    start_day: int
    end_day: int  # inclusive
    total_cost: float  # injected $ over the event


@dataclass
class Cell:
    """One labeled series: a service calibration x a seed."""

    service: str
    seed: int
    dates: list[date]
    cost: np.ndarray  # observed (with the events)
    expected: np.ndarray  # noise-free baseline
    cost_impact: np.ndarray  # injected $ per day, 0 on normal days
    event_id: np.ndarray  # 0 on normal days
    anomaly_type: np.ndarray  # "none" on normal days
    intensity: np.ndarray  # "none" on normal days
    events: list[Event] = field(default_factory=list)  # sorted by start day
    year2_start: int = YEAR2_START

    @property
    def name(self) -> str:
        return f"{self.service}#seed{self.seed}"

    @property
    def is_anomaly(self) -> np.ndarray:
        return self.event_id > 0


def calendar(n_days: int = N_DAYS, start: date = START_DATE) -> list[date]:
    return [start + timedelta(days=i) for i in range(n_days)]


def baseline(cal: Calibration, seed: int, n_days: int = N_DAYS,
             start: date = START_DATE) -> tuple[np.ndarray, np.ndarray]:
    """(observed, expected) normal costs: linear monthly growth, weekday factor, month-end
    surcharge, and Gaussian noise proportional to the expected cost."""
    rng = np.random.default_rng(seed)
    days = np.arange(n_days)
    dates = pd.date_range(start, periods=n_days, freq="D")
    trend = cal.base_level * (1.0 + (cal.monthly_growth / 30.0) * days)
    weekday_effect = trend * (np.asarray(cal.weekly_factor, dtype=float)[dates.day_of_week] - 1.0)
    month_end = np.where(dates.day >= MONTH_END_DAY, trend * MONTH_END_SURCHARGE, 0.0)
    expected = trend + weekday_effect + month_end
    observed = expected + rng.normal(0.0, cal.noise_pct, n_days) * expected
    return observed, expected


@dataclass
class _Placer:
    """Random non-overlapping slots in year 2 (the draws are the protocol: keep their order)."""

    rng: np.random.Generator
    n_days: int
    year2_start: int
    taken: np.ndarray

    def slot(self, length: int, buffer: int, tries: int, saturday: bool = False) -> int | None:
        for _ in range(tries):
            start = int(self.rng.integers(self.year2_start, self.n_days - length - buffer))
            if saturday and start % 7 != SATURDAY_INDEX:
                continue
            if not self.taken[max(0, start - buffer):start + length + buffer].any():
                return start
        return None

    def take(self, start: int, length: int, buffer: int) -> None:
        self.taken[max(0, start - buffer):start + length + buffer] = True


def inject(observed: np.ndarray, expected: np.ndarray, seed: int,
           year2_start: int = YEAR2_START, per_combo: int = EVENTS_PER_COMBO,
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Event]]:
    """(cost with events, injected $ per day, event id per day, events sorted by start)."""
    n = len(observed)
    rng = np.random.default_rng(seed + INJECTION_SEED_OFFSET)
    taken = np.zeros(n, dtype=bool)
    taken[:year2_start] = True
    placer = _Placer(rng, n, year2_start, taken)
    impact = np.zeros(n)
    ids = np.zeros(n, dtype=np.int64)
    events: list[Event] = []

    def count() -> int:  # per_combo 0: the benchmark's default random 3..5 events per combo
        return per_combo if per_combo > 0 else int(rng.integers(3, 6))

    def place(kind: str, level: str, length: int, start: int, buffer: int) -> None:
        k = np.arange(length)
        idx = start + k
        if kind == "gradual":
            added = expected[idx] * GRADUAL_DAILY_PCT[level] * (k + 1)
        elif kind == "spike":
            added = expected[idx] * SPIKE_MULTIPLE[level]
        else:
            added = expected[idx] * CONTEXTUAL_MULTIPLE[level]
        impact[idx] = added
        ids[idx] = len(events) + 1
        placer.take(start, length, buffer)
        events.append(Event(len(events) + 1, kind, level, start, start + length - 1,
                            float(added.sum())))

    for level in ("high", "mid", "low"):
        for _ in range(count()):
            length = int(rng.integers(GRADUAL_DAYS[0], GRADUAL_DAYS[1] + 1))
            start = placer.slot(length, GRADUAL_BUFFER, GRADUAL_TRIES)
            if start is not None:
                place("gradual", level, length, start, GRADUAL_BUFFER)
    for kind in ("spike", "contextual"):
        for level in INTENSITIES:
            for _ in range(count()):
                length = int(rng.integers(SHORT_DAYS[0], SHORT_DAYS[1] + 1))
                start = placer.slot(length, SHORT_BUFFER, SHORT_TRIES,
                                    saturday=kind == "contextual")
                if start is not None:
                    place(kind, level, length, start, SHORT_BUFFER)
    events.sort(key=lambda e: e.start_day)
    return observed + impact, impact, ids, events


def make_cell(cal: Calibration, seed: int, n_days: int = N_DAYS,
              year2_start: int = YEAR2_START, per_combo: int = EVENTS_PER_COMBO) -> Cell:
    observed, expected = baseline(cal, seed, n_days)
    cost, impact, ids, events = inject(observed, expected, seed, year2_start, per_combo)
    by_id = {e.event_id: e for e in events}
    kinds = np.array(["none"] * n_days, dtype=object)
    levels = np.array(["none"] * n_days, dtype=object)
    for day in np.flatnonzero(ids):
        kinds[day] = by_id[int(ids[day])].anomaly_type
        levels[day] = by_id[int(ids[day])].intensity
    return Cell(cal.service, seed, calendar(n_days), cost, expected, impact, ids, kinds, levels,
                events, year2_start)


def make_cells(seeds: tuple[int, ...] | list[int] = SEEDS,
               calibration: tuple[Calibration, ...] = CALIBRATION) -> list[Cell]:
    """The benchmark's cells, service-major (as its runner loops: service, then seed)."""
    return [make_cell(cal, seed) for cal in calibration for seed in seeds]


def long_frame(cells: list[Cell]) -> pd.DataFrame:
    """Every cell as one series of Sentinel's raw cost rows (service = the cell's name)."""
    parts = [pd.DataFrame({
        "usage_date": cell.dates,
        "service": cell.name,
        "account_id": "benchmark",
        "region": "global",
        "cost": cell.cost.astype(float),
        "currency": "USD",
    }) for cell in cells]
    return pd.concat(parts, ignore_index=True)
