"""Feedback changes detection (issue 16): accepted levels, raised bars, and only while it lasts.

Costs of four flat series are written as raw_daily_costs files, the other assets run on a real
Dagster instance over a range in one run, then again with feedback rows in alert_feedback:
  A, B  double on 2025-03-02 (a level shift); A is marked expected, B is not
  C, D  jump +60 % for one day on 2025-02-28 and again on 2025-03-10; C's first one is marked
        not_anomaly, D's is not
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from sentinel_pipeline.detection import DetectionConfig, baselines_for_days, scores_for_days
from sentinel_pipeline.detection.feedback import (
    MAX_RAISES,
    NOT_ANOMALY_STEP,
    accepted_episodes,
    raised_bars,
)
from sentinel_pipeline.schema import FEEDBACK_COLUMNS, RAW_COLUMNS, SERIES_KEY, conform
from sentinel_pipeline.storage import TableStore
from sentinel_pipeline_tests.conftest import run_days

START = date(2025, 1, 1)
RAW_END = date(2025, 3, 20)
SHIFT = date(2025, 3, 2)
SPIKES = (date(2025, 2, 28), date(2025, 3, 10))
RUN = (date(2025, 2, 20), date(2025, 3, 15))
DETECTED = ["cost_baselines", "cost_anomalies", "cost_scores", "anomaly_episodes"]


def synthetic_raw() -> pd.DataFrame:
    """Four series around $100 a day with 3 % noise, shifted and spiked as the module says."""
    rng = np.random.default_rng(7)
    rows = []
    for service in ["A", "B", "C", "D"]:
        for i in range((RAW_END - START).days + 1):
            day = START + timedelta(days=i)
            cost = 100.0 * (1 + rng.normal(0, 0.03))
            if service in "AB" and day >= SHIFT:
                cost *= 2
            if service in "CD" and day in SPIKES:
                cost *= 1.6
            rows.append({"usage_date": day, "service": service, "account_id": "111",
                         "region": "us-east-1", "owner": "", "cost": cost, "currency": "USD",
                         "estimated": False, "source": "test"})
    return conform(pd.DataFrame(rows), RAW_COLUMNS)


def feedback_row(service: str, day: date, kind: str, verdict: str, user: str = "U1") -> dict:
    key = f"{day}|{service}|111|us-east-1"
    return {"alert_key": key, "episode_id": key, "service": service, "account_id": "111",
            "region": "us-east-1", "owner": "", "anomaly_start": day, "kind": kind,
            "verdict": verdict, "user_id": user, "user_name": "ann", "reason": "",
            "channel": "C1", "message_ts": "1.1", "seen_at": "2025-03-05T10:00:00+00:00",
            "source": "reaction"}


def feedback(*rows: dict) -> pd.DataFrame:
    return conform(pd.DataFrame(list(rows), columns=FEEDBACK_COLUMNS), FEEDBACK_COLUMNS)


FEEDBACK = [
    feedback_row("A", SHIFT, "spike", "expected"),
    feedback_row("C", SPIKES[0], "spike", "not_anomaly"),
    # Feedback on alerts Sentinel never made: matches nothing.
    feedback_row("Z", SHIFT, "spike", "expected"),
    feedback_row("Z", SHIFT, "sustained", "not_anomaly"),
]


@pytest.fixture
def costs(sentinel_env: Path) -> TableStore:
    store = TableStore(str(sentinel_env))
    raw = synthetic_raw()
    for day, rows in raw.groupby("usage_date"):
        store.write_partition("raw_daily_costs", day, rows.reset_index(drop=True))
    return store


def _run(instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    return run_days(instance, *RUN, assets=DETECTED)


def _read(store: TableStore, table: str) -> pd.DataFrame:
    return store.read_range(table, *RUN)


def _alerts(store: TableStore) -> set[tuple[str, date]]:
    rows = _read(store, "cost_anomalies")
    rows = rows[rows["alert"]]
    return {(s, pd.Timestamp(d).date()) for s, d in zip(rows["service"], rows["usage_date"],
                                                        strict=True)}


def _metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    for event in result.get_asset_materialization_events():
        if event.asset_key == dg.AssetKey(asset):
            return event.materialization.metadata
    raise AssertionError(asset)


def test_feedback_accepts_levels_raises_bars_and_is_undone_by_removing_it(
        costs: TableStore, instance: dg.DagsterInstance) -> None:
    store = costs
    _run(instance)
    before = {t: _read(store, t) for t in DETECTED}
    assert {("A", SHIFT), ("B", SHIFT), ("C", SPIKES[0]), ("D", SPIKES[0]),
            ("C", SPIKES[1]), ("D", SPIKES[1])} <= _alerts(store)

    store.write_table("alert_feedback", feedback(*FEEDBACK))
    result = _run(instance)
    alerts = _alerts(store)
    # expected on A: the alert people answered stays; from the next day its level is normal.
    assert ("A", SHIFT) in alerts
    anomalies = _read(store, "cost_anomalies")
    a_after = anomalies[(anomalies["service"] == "A")
                        & (pd.to_datetime(anomalies["usage_date"]).dt.date > SHIFT)]
    assert len(a_after) == 0
    b_after = anomalies[(anomalies["service"] == "B")
                        & (pd.to_datetime(anomalies["usage_date"]).dt.date > SHIFT)]
    assert len(b_after) > 5  # B, not accepted, is still an open episode
    baselines = _read(store, "cost_baselines")
    a_base = baselines[(baselines["service"] == "A")
                       & (pd.to_datetime(baselines["usage_date"]).dt.date > SHIFT)]
    assert a_base["expected_cost"].between(180, 220).all()  # the new level, at once
    # not_anomaly on C's spike: the same jump again is no alert for C, still one for D.
    assert ("C", SPIKES[1]) not in alerts
    assert ("D", SPIKES[1]) in alerts
    assert ("C", SPIKES[0]) in alerts  # the dismissed alert itself is kept
    scores = _read(store, "cost_scores")
    on_day = scores[pd.to_datetime(scores["usage_date"]).dt.date == SPIKES[1]].set_index("service")
    assert on_day.loc["C", "threshold"] == pytest.approx(
        DetectionConfig().score_threshold + NOT_ANOMALY_STEP)
    assert on_day.loc["D", "threshold"] == pytest.approx(DetectionConfig().score_threshold)
    assert on_day.loc["C", "score"] > DetectionConfig().score_threshold  # it would have alerted
    assert _metadata(result, "cost_scores")["series_with_raised_bars"].value == 1
    # The episodes: A shown accepted the day after its alert, then gone; B goes on.
    episodes = _read(store, "anomaly_episodes")
    a_eps = episodes[episodes["service"] == "A"]
    assert list(a_eps["status"]) == ["open", "accepted"]
    assert (a_eps["verdict"] == ["expected", "expected"]).all()
    assert set(episodes.loc[episodes["service"] == "B", "status"]) >= {"open", "ongoing"}

    # The same feedback rows read again: the same tables.
    with_feedback = {t: _read(store, t) for t in DETECTED}
    _run(instance)
    for table in DETECTED:
        pd.testing.assert_frame_equal(_read(store, table), with_feedback[table])

    # Reactions removed: the normal bars and levels again.
    store.write_table("alert_feedback", feedback())
    _run(instance)
    for table in ["cost_baselines", "cost_anomalies"]:
        pd.testing.assert_frame_equal(_read(store, table), before[table])
    assert {("A", SHIFT), ("C", SPIKES[1])} <= _alerts(store)


def _detect(raw: pd.DataFrame, days: list[date],
            fb: pd.DataFrame | None) -> dict[date, pd.DataFrame]:
    config = DetectionConfig()
    baselines = baselines_for_days(raw, days, config, feedback=fb)
    return scores_for_days(raw, pd.concat(baselines.values()), days, config, None, fb)


def test_feedback_on_unknown_alerts_changes_nothing() -> None:
    raw = synthetic_raw()
    days = [RUN[0] + timedelta(days=i) for i in range((RUN[1] - RUN[0]).days + 1)]
    plain = _detect(raw, days, None)
    unknown = _detect(raw, days, feedback(*FEEDBACK[2:]))
    for day in days:
        pd.testing.assert_frame_equal(unknown[day], plain[day])


def test_raised_bars_count_distinct_alerts_and_stop_at_the_cap() -> None:
    rows = [feedback_row("C", date(2025, 2, d), "spike", "not_anomaly", user)
            for d in (1, 5, 9, 13, 17) for user in ("U1", "U2")]  # two users: one raise each
    rows.append(feedback_row("C", date(2025, 2, 3), "level_shift", "not_anomaly"))
    rows.append(feedback_row("C", date(2025, 2, 3), "drop", "expected"))  # not a bar
    bars = raised_bars(feedback(*rows), 4.0)
    assert set(bars["kind"]) == {"spike"}  # a level shift is the spike that went on
    assert list(bars["raises"]) == [1, 2, 3, 3, 3, 3]
    assert bars["threshold"].max() == 4.0 + NOT_ANOMALY_STEP * MAX_RAISES
    assert (bars[SERIES_KEY[0]] == "C").all()


def test_accepted_episodes_take_the_alert_day_from_the_alert_key() -> None:
    row = feedback_row("A", SHIFT, "sustained", "planned")
    row["alert_key"] = f"{SHIFT + timedelta(days=2)}|A|111|us-east-1"
    accepted = accepted_episodes(feedback(row, feedback_row("B", SHIFT, "spike", "not_anomaly")))
    assert len(accepted) == 1
    assert accepted.loc[0, "anomaly_start"] == SHIFT
    assert accepted.loc[0, "alert_day"] == SHIFT + timedelta(days=2)
    assert len(accepted_episodes(None)) == 0
