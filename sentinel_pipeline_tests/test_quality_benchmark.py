"""The quality benchmark measures what it claims: labels match the data, the scorer's arithmetic
is exact, and both methods run through it end to end."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from benchmarks.quality.generator import (
    EVENT_KINDS,
    SERIES_KEY,
    GeneratorConfig,
    generate,
    generate_dataset,
)
from benchmarks.quality.run import evaluate, report
from benchmarks.quality.scorer import score


def _series_costs(history: pd.DataFrame, key: tuple[str, str, str]) -> pd.Series:
    """Cost by day of one series."""
    mask = np.logical_and.reduce([history[k] == v for k, v in zip(SERIES_KEY, key, strict=True)])
    return history[mask].set_index("usage_date")["cost"].sort_index()


def _key(row: pd.Series) -> tuple[str, str, str]:
    return (row["service"], row["account_id"], row["region"])


def test_generator_is_deterministic_per_seed() -> None:
    history, events = generate(60, 100, seed=7)
    again, events_again = generate(60, 100, seed=7)
    pd.testing.assert_frame_equal(history, again)
    pd.testing.assert_frame_equal(events, events_again)
    other, _ = generate(60, 100, seed=8)
    assert not history["cost"].equals(other["cost"])


def test_default_patterns_are_all_present_and_well_formed() -> None:
    data = generate_dataset(200, 100, seed=3)
    history, events = data.history, data.events
    assert set(events["kind"]) == set(EVENT_KINDS)
    counts = events["kind"].value_counts()
    assert counts.max() - counts.min() <= 1  # balanced over kinds
    assert len(events) == 100  # half the series
    assert (events["start_date"] >= data.eval_start).all()
    assert not history.duplicated(["usage_date", *SERIES_KEY]).any()
    assert (history["cost"] != 0).all()  # days without spend have no row
    assert (history["cost"] < 0).any()  # credits and refunds
    traps = set("+".join(data.series["traps"]).split("+"))
    assert {"weekly", "growth", "noisy", "monthly_only", "monthly_extra", "weekly_charge",
            "tiny", "credits", "refunds", "quiet"} <= traps
    worthy = events[events["kind"] != "drop"]
    on_first_day = worthy[~worthy["kind"].isin(["ramp", "small_bill_overrun"])]
    assert (on_first_day["extra_per_day"] >= 50).all()
    # A ramp is material on its last day, a small-bill overrun over its days, neither on day 1.
    assert (worthy["extra_total"] >= 50).all()
    overrun = worthy[worthy["kind"] == "small_bill_overrun"]
    assert (overrun["extra_per_day"] < 20).all()


def test_labels_match_the_costs() -> None:
    cfg = GeneratorConfig(traps=("quiet",),
                          events=("spike", "new_spend", "small_series_spike", "level_shift"))
    data = generate_dataset(80, 100, seed=11, config=cfg)
    history = data.history
    for _, ev in data.events.iterrows():
        costs = _series_costs(history, _key(ev))
        start = ev["start_date"]
        before = costs[costs.index < start]
        week = before[before.index >= start - timedelta(days=7)]
        if ev["kind"] in ("spike", "small_series_spike"):
            jump = costs[start] - week.median()
            assert jump == pytest.approx(ev["extra_per_day"], abs=0.2 * week.median() + 1)
            floor = 100 if ev["kind"] == "small_series_spike" else 50
            assert ev["extra_per_day"] >= floor
        elif ev["kind"] == "new_spend":
            assert len(before) == 0 and costs.index.min() == start
            assert 60 <= costs[start] <= 2500
        elif ev["kind"] == "level_shift":
            after = costs[costs.index >= start]
            assert after.median() / week.median() == pytest.approx(
                1 + ev["pct"] / 100, rel=0.15)
            assert ev["end_date"] == max(history["usage_date"])
    # A small series' spike is on a series dwarfed by its account's biggest series.
    small = data.events[data.events["kind"] == "small_series_spike"]
    for _, ev in small.iterrows():
        mine = _series_costs(history, _key(ev)).median()
        account = history[history["account_id"] == ev["account_id"]]
        biggest = account.groupby(SERIES_KEY)["cost"].median().max()
        assert mine * 10 <= biggest


D = date(2025, 3, 1)


def _row(key: str, day: date, alert: bool = True, kind: str = "spike") -> dict:
    return {"usage_date": day, "service": key, "account_id": "1", "region": "r",
            "actual_cost": 100.0, "expected_cost": 10.0, "kind": kind, "alert": alert}


def _event(key: str, kind: str, start: date, end: date) -> dict:
    return {"service": key, "account_id": "1", "region": "r", "kind": kind,
            "start_date": start, "end_date": end, "traps": "quiet"}


def test_scorer_numbers_on_a_hand_made_case() -> None:
    # Two alert-worthy events: A's spike (3-05) and B's level shift (3-10 .. 3-30).
    events = pd.DataFrame([
        _event("A", "spike", D + timedelta(days=4), D + timedelta(days=4)),
        _event("B", "level_shift", D + timedelta(days=9), D + timedelta(days=29)),
    ])
    anomalies = pd.DataFrame([
        _row("A", D + timedelta(days=5)),  # detects A, 1 day late: true
        _row("B", D + timedelta(days=19)),  # during B but 10 days in: true, B still missed
        _row("D", D + timedelta(days=11)),  # no event: false
        _row("B", D + timedelta(days=10), alert=False, kind="level_shift"),  # not sent: ignored
        _row("D", D - timedelta(days=5)),  # before the evaluation window: ignored
    ])
    series = pd.DataFrame({"service": ["A", "B", "D"], "account_id": "1", "region": "r",
                           "traps": ["quiet", "weekly", "noisy+weekly"]})
    result = score(anomalies, events, n_series=10, n_days=30, eval_start=D, series=series)
    assert result["recall"] == 0.5
    assert result["precision"] == pytest.approx(2 / 3)
    assert result["f1"] == pytest.approx(4 / 7)
    assert result["false_flags"] == 1
    # 1 false alert over 10 series x 30 days = 10 series-months
    assert result["false_per_100_series_month"] == pytest.approx(10.0)
    assert result["median_delay_days"] == 1.0
    assert result["recall_by_kind"] == {"level_shift": 0.0, "spike": 1.0}
    assert result["false_by_trap"] == {"quiet": 0, "weekly": 1, "noisy": 1}
    assert result["false_by_trap_rate"]["noisy"] == pytest.approx(100.0)  # 1 series-month
    assert np.isnan(result["new_services_detected"])


def test_both_methods_run_through_the_benchmark() -> None:
    data = generate_dataset(40, 90, seed=1)
    results = {m: [evaluate(data, m)] for m in ("seed", "robust")}
    for per_seed in results.values():
        r = per_seed[0]
        assert 0 <= r["recall"] <= 1 and r["flags"] >= r["false_flags"] >= 0
        assert r["events"] == len(data.events[data.events["kind"] != "drop"])
    text = report(results, 40, 90, 1)
    assert "robust" in text and "F1" in text and "new services detected" in text
