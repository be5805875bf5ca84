"""Seed vs robust on the same labeled synthetic data, over several seeds, side by side.

Why: one table that says whether the default detector meets its targets (F1, recall, false
alerts, new services) and, per pattern, where it does not, so tuning starts from numbers.

Usage (from the repository root):
    .venv/bin/python -m benchmarks.quality.run [--seeds 5] [--series 400] [--days 150]
        [--methods seed robust] [--dump DIR]
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.quality.generator import (
    EVENT_KINDS,
    HISTORY_COLUMNS,
    TRAPS,
    Dataset,
    generate_dataset,
)
from benchmarks.quality.scorer import score
from sentinel_pipeline.detection import DetectionConfig, anomalies_for_days, baselines_for_days

METHODS: tuple[str, ...] = ("seed", "robust")
TARGETS: dict[str, tuple[str, float]] = {
    "f1": (">=", 0.85),
    "recall": (">=", 0.9),
    "false_per_100_series_month": ("<=", 2.0),
    "new_services_detected": (">=", 1.0),
}


def detect(data: Dataset, method: str) -> tuple[pd.DataFrame, float]:
    """All anomaly rows of the evaluation days and the detector's wall time in seconds."""
    cfg = DetectionConfig(method=method)
    days = [data.eval_start + pd.Timedelta(days=i).to_pytimedelta() for i in range(data.eval_days)]
    history = data.history[HISTORY_COLUMNS]
    started = time.perf_counter()
    base = baselines_for_days(history, days, cfg)
    found = anomalies_for_days(history, pd.concat(base.values(), ignore_index=True), days, cfg)
    frames = [f for f in found.values() if len(f)]
    wall = time.perf_counter() - started
    anomalies = pd.concat(frames, ignore_index=True) if frames else found[days[0]]
    return anomalies, wall


def evaluate(data: Dataset, method: str) -> dict[str, Any]:
    """Detect with ``method`` on ``data`` and score it; adds ``wall_s``."""
    anomalies, wall = detect(data, method)
    result = score(anomalies, data.events, len(data.series), data.eval_days, data.eval_start,
                   series=data.series)
    result["wall_s"] = wall
    result["_warmup_days"] = data.config.warmup_days
    result["_anomalies"] = anomalies
    return result


def run(seeds: Sequence[int], n_series: int, days: int, methods: Sequence[str] = METHODS,
        progress: Callable[[str], None] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Results per method, one dict per seed; every method sees the same data."""
    results: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
    for seed in seeds:
        data = generate_dataset(n_series, days, seed)
        for method in methods:
            results[method].append(evaluate(data, method))
            if progress:
                r = results[method][-1]
                progress(f"seed {seed} ({data.start}..) {method:6s}: F1 {r['f1']:.3f} "
                         f"recall {r['recall']:.3f} precision {r['precision']:.3f} "
                         f"false/100sm {r['false_per_100_series_month']:.2f} "
                         f"({r['wall_s']:.1f} s)")
    return results


# ---------------------------------------------------------------------------------- printing

def _stats(values: list[float]) -> tuple[float, float, float]:
    clean = [v for v in values if v is not None and not math.isnan(v)]
    if not clean:
        return (math.nan, math.nan, math.nan)
    return (float(np.mean(clean)), float(min(clean)), float(max(clean)))


def _fmt(values: list[float], kind: str) -> str:
    mean, lo, hi = _stats(values)
    if math.isnan(mean):
        return "n/a"
    if kind == "pct":
        return f"{mean:6.1%} ({lo:.0%}..{hi:.0%})"
    if kind == "int":
        return f"{mean:7.1f} ({lo:.0f}..{hi:.0f})"
    if kind == "sec":
        return f"{mean:6.2f} ({lo:.2f}..{hi:.2f})"
    return f"{mean:6.3f} ({lo:.3f}..{hi:.3f})"


def _table(header: Sequence[str], rows: list[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True)), line]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


MAIN_ROWS: list[tuple[str, str, str]] = [
    ("f1", "F1", "f3"),
    ("recall", "event recall", "pct"),
    ("precision", "precision of flags", "pct"),
    ("false_per_100_series_month", "false alerts / 100 series-month", "f3"),
    ("median_delay_days", "median detection delay (days)", "f3"),
    ("mean_delay_days", "mean detection delay (days)", "f3"),
    ("new_services_detected", "new services detected", "pct"),
    ("flags", "flags (alerted rows)", "int"),
    ("false_flags", "false flags", "int"),
    ("repeat_flags_per_event", "extra flags per flagged event", "f3"),
    ("drops_recorded", "drops recorded (kind=drop, any alert)", "pct"),
    ("wall_s", "detector wall time per seed (s)", "sec"),
]


def _target(key: str, results: list[dict[str, Any]]) -> str:
    if key not in TARGETS:
        return ""
    op, bound = TARGETS[key]
    mean = _stats([r[key] for r in results])[0]
    ok = mean >= bound if op == ">=" else mean <= bound
    shown = f"{bound:.0%}" if key in ("recall", "new_services_detected") else f"{bound:g}"
    return f"{op} {shown}: {'PASS' if ok else 'FAIL'}"


def report(results: dict[str, list[dict[str, Any]]], n_series: int, days: int,
           n_seeds: int) -> str:
    """The side-by-side summary and per-pattern tables as text."""
    methods = list(results)
    first = results[methods[0]][0]
    lines = [
        f"Sentinel detection quality: {n_seeds} seeds x {n_series} series x {days} days "
        f"(scored after a {first['_warmup_days']}-day warm-up); "
        "mean (min..max) over seeds",
        "",
    ]
    target_method = "robust" if "robust" in results else methods[-1]
    rows = []
    for key, label, kind in MAIN_ROWS:
        if not any(key in r for m in methods for r in results[m]):
            continue
        rows.append([label, *[_fmt([r.get(key, math.nan) for r in results[m]], kind)
                              for m in methods], _target(key, results[target_method])])
    lines.append(_table(["metric", *methods, f"target ({target_method})"], rows))

    kinds = [k for k in EVENT_KINDS if any(k in r["recall_by_kind"]
                                           for m in methods for r in results[m])]
    rows = []
    for kind in kinds:
        n = sum(r["events_by_kind"].get(kind, 0) for r in results[methods[0]])
        cells = [_fmt([r["recall_by_kind"].get(kind, math.nan) for r in results[m]], "pct")
                 for m in methods]
        rows.append([kind + (" (not alert-worthy)" if kind == "drop" else ""), str(n), *cells])
    lines += ["", "Recall per event kind (alerted within 3 days of start)",
              _table(["event kind", "events", *methods], rows)]

    traps = [t for t in TRAPS if t in first.get("series_by_trap", {})]
    if traps:
        rows = []
        for trap in traps:
            n = sum(r["series_by_trap"].get(trap, 0) for r in results[methods[0]])
            cells = []
            for m in methods:
                count = sum(r["false_by_trap"].get(trap, 0) for r in results[m]) / n_seeds
                rate = _stats([r["false_by_trap_rate"].get(trap, math.nan) for r in results[m]])
                cells.append(f"{count:6.1f}  {rate[0]:6.2f} ({rate[1]:.2f}..{rate[2]:.2f})")
            rows.append([trap, f"{n / n_seeds:.0f}", *cells])
        lines += ["", "False alerts per trap (a false alert counts for every trap of its series): "
                  "false flags per seed, per 100 series-month of series with the trap",
                  _table(["trap", "series/seed", *methods], rows)]

    rows = []
    alert_kinds = sorted({k for m in methods for r in results[m] for k in r["false_by_alert_kind"]})
    for kind in alert_kinds:
        per_seed = [sum(r["false_by_alert_kind"].get(kind, 0) for r in results[m]) / n_seeds
                    for m in methods]
        rows.append([kind, *[f"{v:.1f}" for v in per_seed]])
    if rows:
        lines += ["", "False flags per seed by the detector's kind",
                  _table(["alert kind", *methods], rows)]

    if target_method in results:
        pooled: dict[tuple[str, str], list[int]] = {}
        for r in results[target_method]:
            for key, (hit, total) in r.get("recall_by_kind_and_trap", {}).items():
                acc = pooled.setdefault(key, [0, 0])
                acc[0] += hit
                acc[1] += total
        rows = []
        for kind in kinds:
            if kind == "drop":
                continue
            cells = []
            for trap in TRAPS:
                hit, total = pooled.get((kind, trap), (0, 0))
                cells.append(f"{hit / total:.0%} ({total})" if total else "-")
            rows.append([kind, *cells])
        used = [i for i, t in enumerate(TRAPS) if any(r[i + 1] != "-" for r in rows)]
        rows = [[r[0], *[r[i + 1] for i in used]] for r in rows]
        lines += ["", f"{target_method}: recall per event kind x trap of the series, pooled over "
                  "seeds (events)", _table(["event kind", *[TRAPS[i] for i in used]], rows)]
    walls = ", ".join(f"{m} {sum(r['wall_s'] for r in results[m]):.1f} s" for m in methods)
    lines += ["", f"Detector wall time, all seeds: {walls}"]
    return "\n".join(lines)


def _dump(results: dict[str, list[dict[str, Any]]], folder: Path) -> None:
    """Per seed and method: events with detected/delay, false flags, all anomaly rows."""
    folder.mkdir(parents=True, exist_ok=True)
    for method, per_seed in results.items():
        for i, r in enumerate(per_seed):
            r["_events"].to_csv(folder / f"{method}_seed{i}_events.csv", index=False)
            r["_false_rows"].to_csv(folder / f"{method}_seed{i}_false.csv", index=False)
            r["_anomalies"].to_csv(folder / f"{method}_seed{i}_anomalies.csv", index=False)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5, help="number of seeds (0, 1, ...)")
    parser.add_argument("--series", type=int, default=400)
    parser.add_argument("--days", type=int, default=150)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--dump", type=Path, help="write per-seed events/false flags CSVs here")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=FutureWarning)

    started = time.perf_counter()
    results = run(range(args.seeds), args.series, args.days, args.methods, progress=print)
    print()
    print(report(results, args.series, args.days, args.seeds))
    print(f"Total wall time (generation + detection + scoring): "
          f"{time.perf_counter() - started:.1f} s")
    if args.dump:
        _dump(results, args.dump)
        print(f"Details written to {args.dump}/")


if __name__ == "__main__":
    main()
