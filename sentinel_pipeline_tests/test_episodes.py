"""anomaly_episodes: the life of an alerted anomaly, from hand-made cost_anomalies days (pure)
and through the real pipeline (demo backfill, single-day reruns on a real instance)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd

from sentinel_pipeline.delivery.ledger import alert_key
from sentinel_pipeline.detection.episodes import (
    episodes_for_days,
    rebuild_previous,
    unepisoded_alerts,
)
from sentinel_pipeline.schema import (
    ANOMALY_COLUMNS,
    EPISODE_COLUMNS,
    FEEDBACK_COLUMNS,
    UP_KINDS,
    conform,
    episode_key,
)
from sentinel_pipeline.storage import TableStore
from sentinel_pipeline_tests.conftest import Backfill, run_days

D1 = date(2025, 3, 3)
D = [D1 + timedelta(days=i) for i in range(8)]


def row(day: date, service: str, kind: str, start: date, alert: bool, impact: float,
        owner: str = "") -> dict:
    return {"usage_date": day, "service": service, "account_id": "111", "region": "us-east-1",
            "owner": owner, "actual_cost": 100 + impact, "expected_cost": 100.0,
            "lower": 90.0, "upper": 110.0, "impact": impact, "pct_change": impact,
            "score": 6.0, "kind": kind, "method": "robust", "currency": "USD",
            "anomaly_start": start, "alert": alert, "root_causes": ""}


def days_of(*rows: dict) -> dict[date, pd.DataFrame]:
    frame = pd.DataFrame(list(rows), columns=ANOMALY_COLUMNS)
    return {d: conform(frame[frame["usage_date"] == d], ANOMALY_COLUMNS) for d in D}


def status(out: dict[date, pd.DataFrame], service: str = "S") -> list[tuple]:
    """(day, status, days, impact_to_date) of a service's episode rows, day by day."""
    found = []
    for day, frame in sorted(out.items()):
        for _, r in frame[frame["service"] == service].iterrows():
            found.append((day, r["status"], r["days"], round(r["impact_to_date"], 2)))
    return found


def test_an_episode_opens_goes_on_and_resolves_once() -> None:
    anomalies = days_of(
        row(D[0], "S", "spike", D[0], True, 50.0),
        row(D[1], "S", "level_shift", D[0], False, 30.0),
        row(D[2], "S", "level_shift", D[0], False, 20.0),
        # D[3]: back to normal
    )
    out = episodes_for_days(anomalies, D[:5], None)
    assert status(out) == [(D[0], "open", 1, 50.0), (D[1], "ongoing", 2, 80.0),
                           (D[2], "ongoing", 3, 100.0), (D[3], "resolved", 3, 100.0)]
    resolved = out[D[3]].iloc[0]
    assert resolved["resolved_on"] == D[3]
    assert resolved["alert_day"] == D[0]
    assert resolved["alert_key"] == alert_key(anomalies[D[0]].iloc[0])
    assert resolved["episode_id"] == episode_key("S", "111", "us-east-1", "", D[0])
    assert list(out[D[3]].columns[:len(EPISODE_COLUMNS)]) == EPISODE_COLUMNS
    assert len(out[D[4]]) == 0


def test_a_traced_back_episode_counts_days_from_its_start_and_drops_are_not_episodes() -> None:
    anomalies = days_of(
        row(D[2], "S", "sustained", D[0], True, 40.0),
        row(D[3], "S", "sustained", D[0], False, 45.0),
        row(D[2], "T", "drop", D[2], True, -80.0),
        row(D[3], "U", "sustained", D[1], False, 10.0),  # elevated, never alerted: no episode
    )
    out = episodes_for_days(anomalies, D[:5], None)
    assert status(out) == [(D[2], "open", 3, 40.0), (D[3], "ongoing", 4, 85.0),
                           (D[4], "resolved", 4, 85.0)]
    assert status(out, "T") == []
    assert status(out, "U") == []


def test_a_bigger_realert_resolves_the_old_episode_and_opens_a_new_one() -> None:
    anomalies = days_of(
        row(D[0], "S", "spike", D[0], True, 50.0),
        row(D[1], "S", "spike", D[1], True, 150.0),
    )
    out = episodes_for_days(anomalies, D[:3], None)
    day2 = out[D[1]].set_index("anomaly_start")["status"].to_dict()
    assert day2 == {D[1]: "open", D[0]: "resolved"}


def feedback(verdict: str, start: date = D[0], service: str = "S") -> pd.DataFrame:
    key = episode_key(service, "111", "us-east-1", "", start)
    frame = pd.DataFrame([{
        "alert_key": key, "episode_id": key, "service": service, "account_id": "111",
        "region": "us-east-1", "owner": "", "anomaly_start": start, "kind": "spike",
        "verdict": verdict, "user_id": "U42", "user_name": "ann", "reason": "",
        "channel": "C1", "message_ts": "1.1", "seen_at": "2025-03-04T09:00:00+00:00",
        "source": "reaction"}], columns=FEEDBACK_COLUMNS)
    return conform(frame, FEEDBACK_COLUMNS)


def test_an_accepted_episode_is_shown_accepted_once_then_leaves() -> None:
    anomalies = days_of(
        row(D[0], "S", "spike", D[0], True, 50.0),
        row(D[1], "S", "level_shift", D[0], False, 30.0),  # (detection would stop these rows)
        row(D[2], "S", "level_shift", D[0], False, 30.0),
    )
    out = episodes_for_days(anomalies, D[:4], None, feedback("planned"))
    assert status(out) == [(D[0], "open", 1, 50.0), (D[1], "accepted", 2, 80.0)]
    assert out[D[1]].iloc[0]["verdict"] == "planned"
    assert out[D[1]].iloc[0]["verdict_by"] == "U42"
    # not_anomaly is shown as the verdict but does not end the episode.
    out = episodes_for_days(anomalies, D[:4], None, feedback("not_anomaly"))
    assert [s for _, s, _, _ in status(out)] == ["open", "ongoing", "ongoing", "resolved"]
    # Feedback on an episode that does not exist changes nothing.
    plain = episodes_for_days(anomalies, D[:4], None)
    other = episodes_for_days(anomalies, D[:4], None, feedback("expected", D[5], "Z"))
    for day in D[:4]:
        pd.testing.assert_frame_equal(other[day], plain[day])


def test_an_episode_anyone_accepted_is_accepted_as_detection_reads_it() -> None:
    anomalies = days_of(
        row(D[0], "S", "spike", D[0], True, 50.0),
        row(D[1], "S", "level_shift", D[0], False, 30.0),
    )
    later = feedback("not_anomaly").assign(user_id="U7", seen_at="2025-03-05T09:00:00+00:00")
    both = pd.concat([feedback("expected"), later], ignore_index=True)
    out = episodes_for_days(anomalies, D[:3], None, both)
    assert [s for _, s, _, _ in status(out)] == ["open", "accepted"]
    assert out[D[1]].iloc[0]["verdict"] == "not_anomaly"  # the latest word is shown
    assert out[D[1]].iloc[0]["verdict_by"] == "U7"


def test_one_range_equals_day_by_day_from_stored_or_rebuilt_episodes() -> None:
    anomalies = days_of(
        row(D[0], "S", "spike", D[0], True, 50.0),
        row(D[1], "S", "level_shift", D[0], False, 30.0),
        row(D[2], "S", "level_shift", D[0], False, 25.0),
        row(D[1], "V", "sustained", D[0], True, 12.0, owner="team-a"),
        row(D[2], "V", "sustained", D[0], False, 12.0, owner="team-a"),
        row(D[3], "V", "sustained", D[0], False, 12.0, owner="team-a"),
    )
    whole = episodes_for_days(anomalies, D[:6], None)
    previous = None
    for day in D[:6]:
        one = episodes_for_days(anomalies, [day], previous)[day]
        pd.testing.assert_frame_equal(one, whole[day])
        previous = one
    # The days before a run replayed from cost_anomalies give the same day as stored.
    rebuilt = rebuild_previous({d: anomalies[d] for d in D[:2]})
    assert rebuilt is not None
    pd.testing.assert_frame_equal(episodes_for_days(anomalies, [D[2]], rebuilt)[D[2]],
                                  whole[D[2]])
    v = whole[D[2]][whole[D[2]]["service"] == "V"].iloc[0]
    assert v["episode_id"].endswith("|team-a")
    assert v["impact_to_date"] == 24.0


def test_the_check_finds_an_alert_without_episode() -> None:
    anomalies = days_of(row(D[0], "S", "spike", D[0], True, 50.0))[D[0]]
    out = episodes_for_days({D[0]: anomalies}, [D[0]], None)[D[0]]
    assert unepisoded_alerts(anomalies, out) == []
    assert unepisoded_alerts(anomalies, out.iloc[0:0]) == [
        episode_key("S", "111", "us-east-1", "", D[0])]


# ------------------------------------------------------------------ through the pipeline
def test_every_alerted_rise_of_the_demo_backfill_opens_an_episode(demo_backfill: Backfill) -> None:
    store = TableStore(str(demo_backfill.data_dir))
    alerts = store.read_range("annotated_alerts", demo_backfill.start, demo_backfill.end)
    episodes = store.read_range("anomaly_episodes", demo_backfill.start, demo_backfill.end)
    rises = alerts[alerts["kind"].isin(UP_KINDS)]
    assert len(rises) > 0
    opened = episodes[episodes["status"] == "open"]
    assert sorted(opened["alert_key"]) == sorted(alert_key(r) for _, r in rises.iterrows())
    # Each episode opens once and ends at most once.
    assert not opened["episode_id"].duplicated().any()
    ended = episodes[episodes["status"].isin(["resolved", "accepted"])]
    assert not ended["episode_id"].duplicated().any()
    resolved = episodes[episodes["status"] == "resolved"]
    assert (resolved["resolved_on"] == resolved["usage_date"]).all()
    records = demo_backfill.instance.fetch_materializations(
        dg.AssetKey("anomaly_episodes"), limit=1000).records
    assert len({r.partition_key for r in records}) == (demo_backfill.end
                                                       - demo_backfill.start).days + 1


def test_a_single_day_rerun_without_the_day_before_rebuilds_the_same_rows(
        backfill_copy: Path, instance: dg.DagsterInstance, demo_backfill: Backfill) -> None:
    store = TableStore(str(backfill_copy))
    episodes = store.read_range("anomaly_episodes", demo_backfill.start, demo_backfill.end)
    # A day with an episode that began on an earlier day: it must be carried, not reopened.
    carried = episodes[episodes["status"] == "ongoing"]
    day = pd.Timestamp(carried["usage_date"].iloc[len(carried) // 2]).date()
    stored = store.read_partition("anomaly_episodes", day)
    run_days(instance, day, day, assets=["anomaly_episodes"])
    pd.testing.assert_frame_equal(store.read_partition("anomaly_episodes", day), stored)
    (backfill_copy / "anomaly_episodes" / f"date={day - timedelta(days=1)}" /
     "data.parquet").unlink()
    result = run_days(instance, day, day, assets=["anomaly_episodes"])
    pd.testing.assert_frame_equal(store.read_partition("anomaly_episodes", day), stored)
    event = result.get_asset_materialization_events()[0].materialization
    assert event.metadata["ongoing"].value >= 1
    checks = result.get_asset_check_evaluations()
    assert [c.passed for c in checks] == [True]
