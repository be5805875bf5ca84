"""Tests of the demo cost source: determinism, contract, realistic shapes, known anomalies."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from sentinel_pipeline.schema import RAW_COLUMNS, SERIES_KEY, empty_frame
from sentinel_pipeline.settings import DEMO_SERIES
from sentinel_pipeline.sources import demo
from sentinel_pipeline.sources.demo import (
    demo_known_anomalies,
    generate_demo_costs,
)

START = dt.date(2024, 7, 1)
END = dt.date(2026, 6, 30)  # two years
EC2 = "Amazon Elastic Compute Cloud - Compute"
PROD, DATA = "402913857261", "718265403918"


@pytest.fixture(scope="module")
def two_years() -> pd.DataFrame:
    return generate_demo_costs(START, END)


@pytest.fixture(scope="module")
def two_years_clean() -> pd.DataFrame:
    return demo._generate(START, END, DEMO_SERIES, inject=False)


@pytest.fixture(scope="module")
def known() -> pd.DataFrame:
    return demo_known_anomalies(START, END)


def _series(df: pd.DataFrame, service: str, account: str, region: str) -> pd.Series:
    """Cost of one series indexed by usage_date."""
    m = (df["service"] == service) & (df["account_id"] == account) & (df["region"] == region)
    return df.loc[m].set_index("usage_date")["cost"]


def _by_series(df: pd.DataFrame) -> dict[tuple[str, str, str, str], pd.Series]:
    return {
        key: g.set_index("usage_date")["cost"]
        for key, g in df.groupby(SERIES_KEY, observed=True, sort=False)
    }


# ------------------------------------------------------------------------------ determinism


def test_one_day_alone_equals_same_day_inside_a_range() -> None:
    day = dt.date(2025, 3, 17)
    in_range = generate_demo_costs(dt.date(2025, 2, 20), dt.date(2025, 4, 10), 300)
    alone = generate_demo_costs(day, day, 300)
    inside = in_range[in_range["usage_date"] == day].reset_index(drop=True)
    pd.testing.assert_frame_equal(alone, inside, check_exact=True)


def test_every_day_of_a_range_is_bit_identical_to_that_day_alone() -> None:
    start, end = dt.date(2025, 9, 25), dt.date(2025, 10, 8)
    whole = generate_demo_costs(start, end, 500)
    for offset in range((end - start).days + 1):
        day = start + dt.timedelta(days=offset)
        alone = generate_demo_costs(day, day, 500)
        part = whole[whole["usage_date"] == day]
        assert np.array_equal(alone["cost"].to_numpy(), part["cost"].to_numpy())
        assert (alone["service"].to_numpy() == part["service"].to_numpy()).all()


def test_block_size_does_not_change_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """Large ranges are computed in blocks of days; block edges must not show in the data."""
    start, end = dt.date(2025, 2, 1), dt.date(2025, 3, 15)
    whole = generate_demo_costs(start, end, 300)
    monkeypatch.setattr(demo, "_CHUNK_CELLS", 1000)  # blocks of 3 days
    blocked = generate_demo_costs(start, end, 300)
    pd.testing.assert_frame_equal(whole, blocked, check_exact=True)


def test_two_calls_give_identical_frames() -> None:
    a = generate_demo_costs(dt.date(2025, 1, 1), dt.date(2025, 3, 31), 70)
    b = generate_demo_costs(dt.date(2025, 1, 1), dt.date(2025, 3, 31), 70)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    ka = demo_known_anomalies(dt.date(2025, 1, 1), dt.date(2025, 3, 31), 70)
    kb = demo_known_anomalies(dt.date(2025, 1, 1), dt.date(2025, 3, 31), 70)
    pd.testing.assert_frame_equal(ka, kb, check_exact=True)


def test_a_series_does_not_depend_on_series_count() -> None:
    small = generate_demo_costs(dt.date(2025, 5, 1), dt.date(2025, 6, 30), 30)
    big = generate_demo_costs(dt.date(2025, 5, 1), dt.date(2025, 6, 30), 400)
    merged = small.merge(big, on=["usage_date", *SERIES_KEY], how="left", suffixes=("", "_big"))
    assert merged["cost_big"].notna().all()
    assert np.array_equal(merged["cost"].to_numpy(), merged["cost_big"].to_numpy())


# ------------------------------------------------------------------------------ contract


def test_columns_and_dtypes_match_the_raw_contract(two_years: pd.DataFrame) -> None:
    df = two_years
    assert list(df.columns) == RAW_COLUMNS
    assert df.dtypes.to_dict() == empty_frame(RAW_COLUMNS).dtypes.to_dict()
    assert all(type(d) is dt.date for d in df["usage_date"].head(100))
    assert df["usage_date"].min() == START and df["usage_date"].max() == END
    assert df["account_id"].str.fullmatch(r"\d{12}").all()
    assert (df["currency"] == "USD").all()
    assert (df["source"] == "demo").all()
    assert not df["estimated"].any()
    assert not df.isna().any().any()
    assert np.isfinite(df["cost"].to_numpy()).all()
    assert (df["cost"] != 0).all()


def test_rows_sorted_and_one_per_series_and_day(two_years: pd.DataFrame) -> None:
    keys = ["usage_date", *SERIES_KEY]
    expected = two_years.sort_values(keys, kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(two_years, expected)
    assert not two_years.duplicated(keys).any()


def test_procedural_series_sort_and_stay_unique() -> None:
    df = generate_demo_costs(dt.date(2025, 7, 1), dt.date(2025, 7, 3), 5000)
    keys = ["usage_date", *SERIES_KEY]
    assert not df.duplicated(keys).any()
    expected = df.sort_values(keys, kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(df, expected)
    assert df["account_id"].nunique() > 3
    assert df["region"].nunique() > 6


def test_series_catalogue_is_realistic(two_years: pd.DataFrame) -> None:
    series = two_years[SERIES_KEY].drop_duplicates()
    assert len(series) == DEMO_SERIES
    assert series["account_id"].nunique() == 3
    assert {"us-east-1", "eu-west-1", "us-west-2", "global"} <= set(series["region"])
    for service in (
        EC2,
        "Amazon Simple Storage Service",
        "Amazon Relational Database Service",
        "AWS Lambda",
        "Amazon CloudWatch",
        "Amazon DynamoDB",
        "Amazon Elastic Container Service for Kubernetes",
        "AWS Key Management Service",
        "Amazon Virtual Private Cloud",
        "EC2 - Other",
        "AWS Support (Business)",
        "Tax",
        "Amazon Route 53",
        "AWS Data Transfer",
        "Amazon SageMaker",
    ):
        assert service in set(series["service"]), service


def test_small_series_counts() -> None:
    one = generate_demo_costs(dt.date(2025, 1, 1), dt.date(2025, 1, 31), 1)
    assert len(one) == 31
    assert set(one["service"]) == {EC2}
    assert (one["account_id"] == PROD).all()
    known = demo_known_anomalies(dt.date(2024, 1, 1), dt.date(2025, 12, 31), 5)
    assert len(known) > 0
    assert set(known["service"]) <= set(generate_demo_costs(START, START, 5)["service"]) | {
        "EC2 - Other"
    }


@pytest.mark.parametrize(
    ("start", "end", "count"),
    [
        (dt.date(2025, 1, 2), dt.date(2025, 1, 1), 30),
        (dt.date(2025, 1, 1), dt.date(2025, 1, 1), 0),
        (dt.date(2025, 1, 1), dt.date(2025, 1, 1), -5),
    ],
)
def test_invalid_arguments_raise_value_error(start: dt.date, end: dt.date, count: int) -> None:
    with pytest.raises(ValueError, match="demo source"):
        generate_demo_costs(start, end, count)
    with pytest.raises(ValueError, match="demo source"):
        demo_known_anomalies(start, end, count)


# ------------------------------------------------------------------------------ shapes


def test_compute_is_lower_on_weekends(two_years_clean: pd.DataFrame) -> None:
    cost = _series(two_years_clean, EC2, PROD, "us-east-1")
    cost = cost[(cost.index >= dt.date(2025, 9, 1)) & (cost.index < dt.date(2025, 11, 24))]
    weekend = np.array([d.weekday() >= 5 for d in cost.index])
    ratio = cost[weekend].median() / cost[~weekend].median()
    assert 0.6 < ratio < 0.8


def test_month_start_series_only_bill_on_their_day(two_years: pd.DataFrame) -> None:
    months = pd.date_range(START, END, freq="MS").date
    for service, day in (("AWS Support (Business)", 1), ("Tax", 1), ("AWS Marketplace", 15)):
        rows = two_years[two_years["service"] == service]
        assert set(d.day for d in rows["usage_date"]) == {day}, service
        assert len(rows) == len(months)
        assert (rows["cost"] > 100).all()


def test_tiny_series_stays_in_cents(two_years: pd.DataFrame) -> None:
    kms = _series(two_years, "AWS Key Management Service", PROD, "us-east-1")
    assert len(kms) == (END - START).days + 1
    assert (kms > 0).all() and (kms < 1).all()


def test_credit_series_is_negative_every_day(two_years: pd.DataFrame) -> None:
    credit = _series(two_years, "AWS Promotional Credit", PROD, "global")
    assert len(credit) == (END - START).days + 1
    assert (credit < 0).all()


def test_noise_levels_differ(two_years_clean: pd.DataFrame) -> None:
    def weekday_log_std(service: str, account: str = PROD) -> float:
        cost = _series(two_years_clean, service, account, "us-east-1").iloc[-90:]
        cost = cost[[d.weekday() < 5 for d in cost.index]]
        return float(np.log(cost.to_numpy()).std())

    assert 0.18 < weekday_log_std("AWS Lambda") < 0.33
    assert weekday_log_std("Amazon Relational Database Service") < 0.05


def test_storage_grows_by_a_few_percent_a_month(two_years_clean: pd.DataFrame) -> None:
    s3 = _series(two_years_clean, "Amazon Simple Storage Service", DATA, "us-west-2")
    first = s3[(s3.index >= dt.date(2025, 1, 1)) & (s3.index < dt.date(2025, 2, 1))].mean()
    last = s3[(s3.index >= dt.date(2025, 12, 1)) & (s3.index < dt.date(2026, 1, 1))].mean()
    monthly = (last / first) ** (1 / 11) - 1
    assert 0.01 < monthly < 0.08


def test_base_costs_span_cents_to_thousands(two_years_clean: pd.DataFrame) -> None:
    daily = two_years_clean.groupby(SERIES_KEY, observed=True)["cost"].median().abs()
    assert daily.min() < 0.05
    assert 1000 < daily.max() < 3000


# ------------------------------------------------------------------------------ anomalies


def test_known_anomalies_frame(known: pd.DataFrame) -> None:
    assert list(known.columns) == [
        "start_date",
        "end_date",
        "service",
        "account_id",
        "region",
        "owner",
        "kind",
        "extra_cost_per_day",
    ]
    assert (known["owner"] == "").all()  # no owner key: no owner
    assert set(known["kind"]) == {"spike", "sustained", "level_shift", "new_spend"}
    assert known["start_date"].between(START, END).all()
    assert (known["end_date"] >= known["start_date"]).all()
    assert known["extra_cost_per_day"].dtype == np.float64
    assert (known["extra_cost_per_day"] >= 100).all()
    length = known.apply(lambda r: (r["end_date"] - r["start_date"]).days + 1, axis=1)
    bounds = {"spike": (1, 1), "sustained": (5, 10), "level_shift": (14, 28), "new_spend": (7, 14)}
    for kind, (lo, hi) in bounds.items():
        assert length[known["kind"] == kind].between(lo, hi).all(), kind
    monthly = {"AWS Support (Business)", "Tax", "AWS Marketplace", "AWS Promotional Credit"}
    assert not known["service"].isin(monthly).any()


def test_every_60_day_window_has_three_anomalies_of_two_kinds(known: pd.DataFrame) -> None:
    starts = np.array([d.toordinal() for d in known["start_date"]])
    kinds = known["kind"].to_numpy()
    for first in range(START.toordinal(), END.toordinal() - 59 + 1, 3):
        inside = (starts >= first) & (starts <= first + 59)
        assert inside.sum() >= 3, dt.date.fromordinal(first)
        assert len(set(kinds[inside])) >= 2, dt.date.fromordinal(first)


def test_no_series_gets_two_anomalies_within_30_days() -> None:
    known = demo_known_anomalies(START, END, 300)
    for _, g in known.groupby(SERIES_KEY, observed=True):
        starts = g["start_date"].tolist()
        ends = g["end_date"].tolist()
        for i in range(1, len(starts)):
            assert (starts[i] - starts[i - 1]).days >= 30
            assert starts[i] > ends[i - 1]


def _event_days(known: pd.DataFrame) -> pd.DataFrame:
    """One row per day of each event plus the day after it (phase 'after')."""
    rows = []
    for ev in known.itertuples():
        length = (ev.end_date - ev.start_date).days + 1
        for offset in range(length + 1):
            phase = "start" if offset == 0 else ("during" if offset < length else "after")
            day = ev.start_date + dt.timedelta(days=offset)
            rows.append((day, ev.service, ev.account_id, ev.region, ev.owner, phase,
                         ev.extra_cost_per_day))
    columns = ["usage_date", *SERIES_KEY, "phase", "extra"]
    out = pd.DataFrame(rows, columns=columns)
    return out.astype({c: "string" for c in SERIES_KEY})


@pytest.mark.parametrize("series_count", [DEMO_SERIES, 300])
def test_known_anomalies_match_what_is_injected(series_count: int) -> None:
    start, end = dt.date(2025, 1, 1), dt.date(2025, 12, 31)
    known = demo_known_anomalies(start, end, series_count)
    assert len(known) >= 20
    hi = end + dt.timedelta(days=30)
    keys = ["usage_date", *SERIES_KEY]
    dirty = generate_demo_costs(start, hi, series_count)[[*keys, "cost"]]
    clean = demo._generate(start, hi, series_count, inject=False)[[*keys, "cost"]]
    days = _event_days(known)
    days = days.merge(dirty, on=keys, how="left").merge(
        clean, on=keys, how="left", suffixes=("", "_clean")
    )
    added = days["cost"].fillna(0.0) - days["cost_clean"].fillna(0.0)
    first = days["phase"] == "start"
    np.testing.assert_allclose(added[first], days.loc[first, "extra"], rtol=1e-9, atol=1e-9)
    assert (added[days["phase"] != "after"] >= 100 - 1e-9).all()
    after = days["phase"] == "after"
    assert np.array_equal(
        days.loc[after, "cost"].fillna(0.0), days.loc[after, "cost_clean"].fillna(0.0)
    )
    # outside the listed events nothing differs
    every = _event_days(demo_known_anomalies(start - dt.timedelta(days=28), hi, series_count))
    touched = set(every.loc[every["phase"] != "after", keys].itertuples(index=False, name=None))
    both = dirty.merge(clean, on=keys, how="outer", suffixes=("", "_clean"))
    differs = both[both["cost"].fillna(0.0) != both["cost_clean"].fillna(0.0)]
    assert len(differs) > 0
    assert set(differs[keys].itertuples(index=False, name=None)) <= touched


@pytest.mark.parametrize("series_count", [DEMO_SERIES, 300])
def test_known_anomalies_are_visible_in_the_data(series_count: int) -> None:
    start, end = dt.date(2025, 1, 1), dt.date(2025, 12, 31)
    known = demo_known_anomalies(start, end, series_count)
    data = _by_series(generate_demo_costs(start - dt.timedelta(days=120), end, series_count))
    for ev in known.itertuples():
        cost = data[(ev.service, ev.account_id, ev.region, ev.owner)]
        before = cost[(cost.index < ev.start_date)]
        if ev.kind == "new_spend":
            assert before.index.max() <= ev.start_date - dt.timedelta(days=91)
            episode = cost[(cost.index >= ev.start_date) & (cost.index <= ev.end_date)]
            assert len(episode) == (ev.end_date - ev.start_date).days + 1
            assert (episode >= 150).all()
            continue
        recent = before[before.index >= ev.start_date - dt.timedelta(days=14)]
        normal = recent.median()
        assert cost[ev.start_date] > 1.25 * normal, ev
        assert ev.extra_cost_per_day >= (0.6 if ev.kind == "spike" else 0.4) * normal, ev


# ------------------------------------------------------------------------------ scale


def test_one_day_of_a_million_series() -> None:
    df = generate_demo_costs(dt.date(2025, 6, 2), dt.date(2025, 6, 2), 1_000_000)
    # every series bills daily except Support, Tax (1st), Marketplace (15th) and SageMaker
    # (only during a new_spend episode, none on that day)
    assert len(df) == 1_000_000 - 4
    assert not df["cost"].isna().any()
    assert df["account_id"].str.len().eq(12).all()


def test_a_year_of_ten_thousand_series_has_the_right_row_count() -> None:
    start, end = dt.date(2025, 1, 1), dt.date(2025, 12, 31)
    df = generate_demo_costs(start, end, 10_000)
    days = (end - start).days + 1
    new = demo_known_anomalies(start - dt.timedelta(days=28), end, 10_000)
    new = new[new["kind"] == "new_spend"]
    sagemaker_days = sum(
        (min(e, end) - max(s, start)).days + 1
        for s, e in zip(new["start_date"], new["end_date"], strict=True)
        if e >= start
    )
    expected = days * (10_000 - 4) + 12 * 3 + sagemaker_days
    assert len(df) == expected
    assert df["usage_date"].nunique() == days


def test_demo_drill_down_of_alerts_across_months_equals_one_window(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Alerts over 5 months are drilled into a month at a time (so a year's backfill does not
    generate a year of every series to explain 100 alerts); the causes are the same as from
    one window over all of them."""
    from sentinel_pipeline.sources import demo_detail

    start, end = dt.date(2025, 1, 1), dt.date(2025, 5, 31)
    known = demo_known_anomalies(start + dt.timedelta(days=20), end, 60)
    alerts = known.rename(columns={"start_date": "usage_date"})[
        ["usage_date", "service", "account_id", "region"]].reset_index(drop=True)
    assert alerts["usage_date"].max() - alerts["usage_date"].min() > dt.timedelta(days=62)
    chunked = demo_detail.demo_root_causes(alerts, 60)
    monkeypatch.setattr(demo_detail, "CHUNK_DAYS", 10_000)
    assert chunked == demo_detail.demo_root_causes(alerts, 60)
    assert sum(bool(c) for c in chunked) >= len(alerts) - 1
