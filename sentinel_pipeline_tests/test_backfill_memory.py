"""The join of a range's costs and baselines on packed integer keys (frames.py) gives the rows,
order, types and values of the merge on the text keys it replaced, and scoring a range gives
the same frames; the reference below is that text merge, as it was."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from sentinel_pipeline.detection import DetectionConfig, anomalies_for_days, scores_for_days
from sentinel_pipeline.detection.frames import (
    _PackedKeys,
    join_actual_and_baselines,
    series_codes,
    split_days,
    usage_days,
)
from sentinel_pipeline.schema import BASELINE_COLUMNS, SERIES_KEY


def _reference_daily_totals(rows: pd.DataFrame) -> pd.DataFrame:
    columns = ["usage_date", *SERIES_KEY, "actual_cost", "currency"]
    if rows is None or len(rows) == 0:
        return pd.DataFrame({c: [] for c in columns})
    frame = rows.assign(usage_date=usage_days(rows))
    if "currency" not in frame.columns:
        frame = frame.assign(currency="USD")
    frame = frame.astype({k: "string" for k in SERIES_KEY})
    return frame.groupby(["usage_date", *SERIES_KEY], as_index=False, dropna=False).agg(
        actual_cost=("cost", "sum"), currency=("currency", "first")
    )


def _reference_keyed(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(usage_date=usage_days(frame)).astype({k: "string" for k in SERIES_KEY})


def reference_join(actual: pd.DataFrame, baselines: pd.DataFrame) -> pd.DataFrame:
    """join_actual_and_baselines before the packed keys: an outer merge on the text keys."""
    if baselines is None or len(baselines) == 0:
        baselines = pd.DataFrame({c: [] for c in BASELINE_COLUMNS})
    base = _reference_keyed(baselines).drop(columns=["method"])
    merged = _reference_keyed(_reference_daily_totals(actual)).merge(
        base, on=["usage_date", *SERIES_KEY], how="outer")
    merged["actual_cost"] = merged["actual_cost"].fillna(0.0)
    merged["currency"] = merged["currency"].astype("string").fillna("USD")
    return merged


def reference_split_days(frame: pd.DataFrame, days: list[date]) -> dict[date, pd.DataFrame]:
    if len(frame) == 0:
        return {d: frame for d in days}
    keys = usage_days(frame)
    return {day: frame[keys == np.datetime64(day, "D")].reset_index(drop=True) for day in days}


FIRST = date(2025, 3, 1)
DAYS = [FIRST + timedelta(days=i) for i in range(12)]


def _series(n: int, rng: np.random.Generator) -> pd.DataFrame:
    services = ["AmazonEC2", "AmazonS3", "AWSLambda", "Zeta", "ébène", "b", "B", "a b", ""]
    regions = ["us-east-1", "eu-west-1", "ap-south-1", None]
    return pd.DataFrame({
        "service": rng.choice(services, n),
        "account_id": [f"{rng.integers(10**11, 10**12)}" for _ in range(n)],
        "region": [regions[i] for i in rng.integers(0, len(regions), n)],
        "owner": rng.choice(["", "team-a", "Team B"], n),
    }).drop_duplicates(ignore_index=True)


def _inputs(seed: int = 7, n_series: int = 300) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Costs with gaps, several rows of a series on a day (summed), a series new mid-range,
    series with costs but no baselines and baselines without costs; baselines as stored."""
    rng = np.random.default_rng(seed)
    series = _series(n_series, rng)
    rows, base = [], []
    for i, key in series.iterrows():
        born = DAYS[int(rng.integers(0, 4))] if i % 7 == 0 else FIRST
        for day in DAYS:
            if day < born:
                continue
            spends = rng.random() > 0.15  # gaps
            if spends:
                for _ in range(1 + int(rng.random() < 0.2)):  # sometimes two rows a day
                    rows.append({"usage_date": day, **key, "cost": float(rng.gamma(2, 40)),
                                 "currency": None if rng.random() < 0.05 else "USD",
                                 "estimated": False, "source": "demo"})
            if i % 11 == 5 or (day == born and i % 7 == 0):
                continue  # no baseline: no history yet, or never
            if not spends and rng.random() < 0.5:
                continue
            history = int(rng.integers(0, 60))
            base.append({"usage_date": day, **key,
                         "expected_cost": float(rng.gamma(2, 40)),
                         "lower": float(rng.gamma(2, 10)), "upper": float(rng.gamma(2, 80)),
                         "scale": float(rng.gamma(2, 5)), "history_days": history,
                         "elevated_days": int(rng.integers(0, 4)),
                         "log_scale": float(rng.random()) if history > 20 else np.nan,
                         "noise_df": float(rng.integers(5, 40)) if history > 20 else np.nan,
                         "prior_actual": float(rng.gamma(2, 40)),
                         "prior_expected": float(rng.gamma(2, 40)),
                         "cusum": float(rng.random() * 3), "cusum_large": float(rng.random()),
                         "method": "robust"})
    actual = pd.DataFrame(rows)
    baselines = pd.DataFrame(base)
    # As read back from the tables: dates as dates, text as pandas' text.
    return (actual.astype({k: "str" for k in [*SERIES_KEY, "currency"]}),
            baselines.astype({k: "str" for k in [*SERIES_KEY, "method"]}))


def _same(new: pd.DataFrame, old: pd.DataFrame) -> None:
    assert list(new.columns) == list(old.columns)
    assert list(new.dtypes) == list(old.dtypes)
    pd.testing.assert_frame_equal(new, old, check_exact=True)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_join_is_the_text_merge(seed: int) -> None:
    actual, baselines = _inputs(seed)
    assert actual["region"].isna().any()  # a key part missing sorts last
    _same(join_actual_and_baselines(actual, baselines), reference_join(actual, baselines))


def test_join_of_other_key_types_and_edge_cases() -> None:
    actual, baselines = _inputs(4, 80)
    # Account ids stored as numbers on one side: compared as text, as before.
    numeric = actual.assign(account_id=actual["account_id"].astype("int64"))
    _same(join_actual_and_baselines(numeric, baselines), reference_join(numeric, baselines))
    # Dates as timestamps, no currency column, object text.
    other = actual.assign(usage_date=pd.to_datetime(actual["usage_date"])).drop(
        columns="currency").astype({k: object for k in SERIES_KEY})
    _same(join_actual_and_baselines(other, baselines), reference_join(other, baselines))
    # A duplicated baseline row: each of its copies joined, as the merge does.
    doubled = pd.concat([baselines, baselines.iloc[[3, 10]]], ignore_index=True)
    _same(join_actual_and_baselines(actual, doubled), reference_join(actual, doubled))
    # One side empty.
    for a, b in [(actual, baselines.iloc[:0]), (actual.iloc[:0], baselines),
                 (actual, None), (pd.DataFrame(), baselines)]:
        _same(join_actual_and_baselines(a, b), reference_join(a, b))


def test_split_days_is_the_same() -> None:
    actual, baselines = _inputs(5, 60)
    merged = reference_join(actual, baselines)
    days = [*DAYS, DAYS[-1] + timedelta(days=1)]  # a day without rows
    for frame in (merged, merged.sample(frac=1.0, random_state=1)):  # in day order or not
        new, old = split_days(frame, days), reference_split_days(frame, days)
        assert list(new) == list(old)
        for day in days:
            _same(new[day], old[day])


@pytest.mark.parametrize("method", ["robust", "seed"])
def test_scoring_a_range_is_unchanged(method: str, monkeypatch: pytest.MonkeyPatch) -> None:
    actual, baselines = _inputs(6, 200)
    config = DetectionConfig(method=method)
    new = scores_for_days(actual, baselines, DAYS, config)
    new_anomalies = anomalies_for_days(actual, baselines, DAYS, config)
    import sentinel_pipeline.detection as detection

    monkeypatch.setattr(detection, "join_actual_and_baselines", reference_join)
    monkeypatch.setattr(detection, "split_days", reference_split_days)
    old = scores_for_days(actual, baselines, DAYS, config)
    old_anomalies = anomalies_for_days(actual, baselines, DAYS, config)
    for day in DAYS:
        _same(new[day], old[day])
        _same(new_anomalies[day], old_anomalies[day])
    assert sum(len(f) for f in new_anomalies.values()) > 0


def _reference_codes(frames: list[pd.DataFrame]) -> np.ndarray:
    """_walk_episodes' series codes before series_codes: a MultiIndex of the text keys."""
    keys = pd.concat([f[SERIES_KEY].astype("string") for f in frames], ignore_index=True)
    return pd.MultiIndex.from_frame(keys).factorize()[0]


def test_series_codes_name_the_same_series() -> None:
    actual, baselines = _inputs(8, 150)
    merged = reference_join(actual, baselines)
    previous = merged.iloc[::5].assign(account_id=lambda f: f["account_id"].astype(object))
    for frames in ([merged], [merged, previous]):
        new, old = series_codes(frames if len(frames) > 1 else frames[0]), \
            _reference_codes(frames)
        # The same partition of the rows: each code of one maps to exactly one of the other.
        pairs = pd.DataFrame({"new": new, "old": old}).drop_duplicates()
        assert pairs["new"].is_unique and pairs["old"].is_unique
    assert merged["region"].isna().any()


def test_joined_keys_are_packed_not_merged_as_text() -> None:
    actual, baselines = _inputs(9, 50)
    assert _PackedKeys.of(actual, baselines) is not None
