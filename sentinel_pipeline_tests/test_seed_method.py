"""The seed method reproduces the blog's rule exactly, boundaries included."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sentinel_pipeline.detection import DetectionConfig, detect

DAY = date(2025, 3, 10)
SEED = DetectionConfig(method="seed")


def _rows(history: list[float], today: float | None, service: str = "EC2",
          days_back: list[int] | None = None) -> list[dict]:
    """History values on the days just before DAY (or the given offsets), then DAY's cost."""
    offsets = days_back or list(range(len(history), 0, -1))
    rows = [
        {"usage_date": DAY - timedelta(days=o), "service": service, "account_id": "111",
         "region": "us-east-1", "cost": v, "currency": "USD"}
        for o, v in zip(offsets, history, strict=True)
    ]
    if today is not None:
        rows.append({"usage_date": DAY, "service": service, "account_id": "111",
                     "region": "us-east-1", "cost": today, "currency": "USD"})
    return rows


def _flagged(rows: list[dict]) -> pd.DataFrame:
    return detect(pd.DataFrame(rows), DAY, SEED)


# mean 10, sample std exactly 4
WIDE = [6.0, 14.0, 6.0, 14.0, 6.0, 14.0, 10.0]
# mean 10, sample std exactly 1
NARROW = [9.0, 11.0, 9.0, 11.0, 9.0, 11.0, 10.0]


def test_spike_is_flagged_with_its_numbers() -> None:
    found = _flagged(_rows(WIDE, 30.0))
    assert len(found) == 1
    row = found.iloc[0]
    assert row["expected_cost"] == 10.0
    assert row["score"] == pytest.approx(5.0)
    assert row["pct_change"] == pytest.approx(200.0)
    assert row["impact"] == pytest.approx(20.0)
    assert row["kind"] == "spike" and row["method"] == "seed"


def test_z_exactly_two_is_not_flagged_but_just_above_is() -> None:
    assert len(_flagged(_rows(WIDE, 18.0))) == 0  # z = 2.0, +80 %
    assert len(_flagged(_rows(WIDE, 18.01))) == 1


def test_increase_of_exactly_fifty_percent_is_not_flagged() -> None:
    assert len(_flagged(_rows(NARROW, 15.0))) == 0  # +50 %, z = 5
    assert len(_flagged(_rows(NARROW, 15.01))) == 1


def test_cost_just_under_one_dollar_is_skipped() -> None:
    tiny = [0.1, 0.3, 0.1, 0.3, 0.1, 0.3, 0.2]
    assert len(_flagged(_rows(tiny, 0.99))) == 0
    assert len(_flagged(_rows(tiny, 1.0))) == 1


def test_zero_std_and_zero_mean_are_skipped() -> None:
    assert len(_flagged(_rows([10.0] * 7, 100.0))) == 0
    assert len(_flagged(_rows([-1.0, 1.0, -1.0, 1.0, -1.0, 1.0, 0.0], 50.0))) == 0


def test_exactly_seven_days_of_history_is_enough_and_six_is_not() -> None:
    assert len(_flagged(_rows(WIDE, 30.0))) == 1
    assert len(_flagged(_rows(WIDE[1:], 30.0))) == 0


def test_history_is_the_seven_latest_rows_within_thirty_days() -> None:
    # Rows spread over the window count; a row 30 days back is outside the 30 days ending on D.
    spread = [29, 25, 20, 15, 10, 5, 1]
    assert len(_flagged(_rows(WIDE, 30.0, days_back=spread))) == 1
    outside = [30, 25, 20, 15, 10, 5, 1]
    assert len(_flagged(_rows(WIDE, 30.0, days_back=outside))) == 0
    # Older rows beyond the 7 latest are ignored, however large.
    rows = _rows([1000.0, 1000.0, 1000.0, *WIDE], 30.0)
    found = _flagged(rows)
    assert found.iloc[0]["expected_cost"] == 10.0


def test_no_row_on_the_day_means_no_flag() -> None:
    assert len(_flagged(_rows(WIDE, None))) == 0


def test_sorted_by_percent_increase_descending() -> None:
    rows = _rows(WIDE, 30.0, "A") + _rows(WIDE, 50.0, "B") + _rows(NARROW, 16.0, "C")
    found = _flagged(rows)
    assert list(found["service"]) == ["B", "A", "C"]


def _reference(rows: pd.DataFrame, day: date) -> list[tuple[str, float, float]]:
    """The rule as the seed states it, one series at a time (slow, obvious)."""
    window = rows[(rows["usage_date"] > day - timedelta(days=30)) & (rows["usage_date"] <= day)]
    out = []
    for service, series in window.groupby("service"):
        series = series.sort_values("usage_date")
        if len(series) < 8 or not (series["usage_date"] == day).any():
            continue
        cost = float(series.loc[series["usage_date"] == day, "cost"].iloc[0])
        if cost < 1.0:
            continue
        history = series[series["usage_date"] < day].tail(7)["cost"]
        mean, std = history.mean(), history.std()
        if std == 0 or mean == 0:
            continue
        z = (cost - mean) / std
        pct = (cost - mean) / mean * 100
        if z > 2.0 and pct > 50:
            out.append((str(service), round(pct, 9), round(z, 9)))
    return sorted(out, key=lambda t: -t[1])


@settings(max_examples=60, deadline=None)
@given(
    data=st.lists(
        st.tuples(st.integers(0, 5), st.integers(0, 40),
                  st.floats(0, 500, allow_nan=False).map(lambda v: round(v, 2))),
        min_size=1, max_size=120,
    )
)
def test_vectorised_seed_matches_the_per_series_reference(data: list) -> None:
    rows = pd.DataFrame(
        [{"usage_date": DAY - timedelta(days=d), "service": f"S{s}", "account_id": "1",
          "region": "r", "cost": c, "currency": "USD"} for s, d, c in data]
    ).drop_duplicates(["usage_date", "service"])
    found = detect(rows, DAY, SEED)
    got = [(r.service, round(r.pct_change, 9), round(r.score, 9)) for r in found.itertuples()]
    assert sorted(got) == sorted(_reference(rows, DAY))
    assert np.all(np.diff(found["pct_change"].to_numpy()) <= 0)
