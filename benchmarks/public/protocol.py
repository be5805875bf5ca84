"""Thresholds and metrics of the public benchmark's protocol, re-implemented from its
description (github.com/seoyoungleeme/finops-cost-anomaly-benchmark, commit df55842, MIT
licence, ``finops_benchmark/evaluation.py`` and ``experiment.py``).

Per cell (one series), on year 2 only:
- threshold: the year-1 ``100 * (1 - budget)`` percentile of the model's non-NaN scores (numpy's
  linear interpolation; +inf when it has none); a day alerts when its score, NaN read as 0, is
  strictly above it;
- day-level precision (0 without alerts), recall, F1, AUPRC (average precision of the score,
  NaN read as 0, as scikit-learn defines it), false alarm rate (alerted normal days / normal
  days);
- per event: detected when any of its days alerts; delay = first alerted day - start; cost to
  detect (MCTD) = injected $ from its start to the day before the first alert, all of it if
  missed; cost-weighted recall = injected $ of detected events / all injected $.
Overall figures are the plain mean over cells; detection rates per type or intensity pool the
events of all cells (every cell has the same number of each, so it is the same as a mean).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from benchmarks.public.generator import INTENSITIES, TYPES, Cell

DEFAULT_BUDGET = 0.01


def threshold(scores: np.ndarray, year2_start: int, budget: float = DEFAULT_BUDGET) -> float:
    year1 = np.asarray(scores[:year2_start], dtype=float)
    year1 = year1[~np.isnan(year1)]
    if len(year1) == 0:
        return math.inf
    return float(np.percentile(year1, 100.0 * (1.0 - budget)))


def alerts(scores: np.ndarray, limit: float) -> np.ndarray:
    return np.nan_to_num(np.asarray(scores, dtype=float), nan=0.0) > limit


def average_precision(truth: np.ndarray, scores: np.ndarray) -> float:
    """sum over distinct score thresholds (descending) of (R_n - R_{n-1}) * P_n, as
    sklearn.metrics.average_precision_score; 0 when there is no positive."""
    y = np.asarray(truth, dtype=bool)
    s = np.asarray(scores, dtype=float)
    positives = int(y.sum())
    if positives == 0:
        return 0.0
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    # The last index of each run of equal scores: one operating point per distinct threshold.
    last = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]
    tp = np.cumsum(y)[last]
    predicted = last + 1
    precision = tp / predicted
    recall = tp / positives
    gained = np.diff(np.r_[0.0, recall])
    return float(np.sum(gained * precision))


@dataclass(frozen=True)
class EventResult:
    event_id: int
    anomaly_type: str
    intensity: str
    detected: bool
    delay: float  # NaN when missed
    total_cost: float
    cost_to_detect: float


@dataclass(frozen=True)
class CellResult:
    cell: str
    threshold: float
    alerts_year2: int
    precision: float
    recall: float
    f1: float
    auprc: float
    false_alarm_rate: float
    event_recall: float
    mean_delay: float
    cost_weighted_recall: float
    mean_cost_to_detect: float
    events: tuple[EventResult, ...]


def event_results(cell: Cell, flags: np.ndarray) -> list[EventResult]:
    out = []
    for ev in cell.events:
        span = flags[ev.start_day:ev.end_day + 1]
        if span.any():
            first = ev.start_day + int(np.argmax(span))
            delay = float(first - ev.start_day)
            cost = float(cell.cost_impact[ev.start_day:first].sum())
        else:
            delay = math.nan
            cost = float(cell.cost_impact[ev.start_day:ev.end_day + 1].sum())
        out.append(EventResult(ev.event_id, ev.anomaly_type, ev.intensity, bool(span.any()),
                               delay, ev.total_cost, cost))
    return out


def evaluate(cell: Cell, flags: np.ndarray, scores: np.ndarray | None,
             limit: float = math.nan) -> CellResult:
    """Metrics of one cell from its per-day alert flags and (for AUPRC) scores; ``limit`` is
    only recorded."""
    flags = np.asarray(flags, dtype=bool)
    y2 = slice(cell.year2_start, None)
    truth, hit = cell.is_anomaly[y2], flags[y2]
    tp = int((truth & hit).sum())
    n_alerts, n_true = int(hit.sum()), int(truth.sum())
    precision = tp / n_alerts if n_alerts else 0.0
    recall = tp / n_true if n_true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    auprc = (average_precision(truth, np.nan_to_num(scores[y2], nan=0.0))
             if scores is not None else math.nan)
    normal = ~truth
    far = float((hit & normal).sum() / normal.sum()) if normal.any() else 0.0
    events = event_results(cell, flags)
    detected = [e for e in events if e.detected]
    total = sum(e.total_cost for e in events)
    return CellResult(
        cell=cell.name,
        threshold=limit,
        alerts_year2=n_alerts,
        precision=precision,
        recall=recall,
        f1=f1,
        auprc=auprc,
        false_alarm_rate=far,
        event_recall=len(detected) / len(events) if events else 0.0,
        mean_delay=float(np.mean([e.delay for e in detected])) if detected else math.nan,
        cost_weighted_recall=sum(e.total_cost for e in detected) / total if total > 0 else 0.0,
        mean_cost_to_detect=float(np.mean([e.cost_to_detect for e in events])) if events else 0.0,
        events=tuple(events),
    )


def evaluate_scores(cell: Cell, scores: np.ndarray,
                    budget: float = DEFAULT_BUDGET) -> tuple[CellResult, np.ndarray]:
    """The protocol for a scoring model: year-1 threshold, then ``evaluate``; also the flags."""
    limit = threshold(scores, cell.year2_start, budget)
    flags = alerts(scores, limit)
    return evaluate(cell, flags, scores, limit), flags


SUMMARY_FIELDS: tuple[str, ...] = (
    "f1", "precision", "recall", "event_recall", *TYPES, *INTENSITIES,
    "cost_weighted_recall", "mean_cost_to_detect", "false_alarm_rate", "auprc", "mean_delay",
)


def summarize(results: list[CellResult]) -> dict[str, float]:
    """Mean over cells, and detection rate per anomaly type and per intensity (pooled)."""
    out: dict[str, float] = {}
    for name in ("f1", "precision", "recall", "event_recall", "cost_weighted_recall",
                 "mean_cost_to_detect", "false_alarm_rate", "auprc", "mean_delay"):
        values = np.array([getattr(r, name) for r in results], dtype=float)
        out[name] = float(np.nanmean(values)) if (~np.isnan(values)).any() else math.nan
    events = [e for r in results for e in r.events]
    for kind in TYPES:
        group = [e.detected for e in events if e.anomaly_type == kind]
        out[kind] = float(np.mean(group)) if group else math.nan
    for level in INTENSITIES:
        group = [e.detected for e in events if e.intensity == level]
        out[level] = float(np.mean(group)) if group else math.nan
    return out
