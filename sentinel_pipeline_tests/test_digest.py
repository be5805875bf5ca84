"""The weekly digest's life-of-anomalies figures, on a hand-made week whose numbers are worked
out below, and on the demo backfill's tables.

Week 2025-03-24 (Mon) .. 2025-03-30 (Sun). Episodes (service, owner, start, alert, end):
  S1 team-a  start 03-20, alerted 03-22 (last week), resolved 03-26; $50 over on 03-25
  S2 ""      start 03-25, alerted 03-25, open at week end, $120 so far
  S3 team-a  start 03-26, alerted 03-27, open at week end, $80 so far
  S4 team-b  start 03-27, alerted 03-28, resolved 03-30; its 03-29 row missing, $90 over 3 days
  S5 team-b  start 03-24, alerted 03-24, accepted 03-25
  S6 team-c  start 03-25, alerted 03-26, resolved 03-27, marked not_anomaly
time to detect (alerted in the week): S2 0, S3 1, S4 1, S5 0, S6 1 -> median 1 day
time to resolve (resolved in the week): S1 6, S4 3, S6 2 -> median 3 days
cost avoided: S1 $50 x 6 days (03-26..03-31) + S4 $90/3 x 2 days (03-30..03-31) = $360;
  S5 (accepted) and S6 (not_anomaly) avoided nothing
precision: of the week's alerts S2..S6, S3 (not_anomaly then expected: latest counts), S5
  (expected) and S6 (not_anomaly) have feedback -> 2 of 3
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pandas as pd

from sentinel_pipeline.delivery.digest import (
    DigestInputs,
    build_digest,
    cost_avoided,
    load_digest_inputs,
    open_by_owner,
    precision,
    time_to_detect,
    time_to_resolve,
)
from sentinel_pipeline.delivery.ledger import alert_key
from sentinel_pipeline.delivery.message import MAX_SECTION_CHARS
from sentinel_pipeline.schema import EPISODE_COLUMNS, FEEDBACK_COLUMNS, conform, episode_key
from sentinel_pipeline.storage import TableStore
from sentinel_pipeline_tests.conftest import Backfill

MON = date(2025, 3, 24)
SUN = MON + timedelta(days=6)


def d(day: int) -> date:
    return date(2025, 3, day)


def ep(day: int, service: str, owner: str, start: int, alert: int, status: str,
       impact_to_date: float, actual: float = float("nan"), expected: float = float("nan"),
       verdict: str = "") -> dict:
    last = d(day) - timedelta(days=1) if status == "resolved" else d(day)
    return {"usage_date": d(day), "episode_id": episode_key(service, "1", "r", owner, d(start)),
            "service": service, "account_id": "1", "region": "r", "owner": owner,
            "kind": "spike", "anomaly_start": d(start), "alert_day": d(alert),
            "alert_key": f"{d(alert)}|{service}|1|r" + (f"|{owner}" if owner else ""),
            "status": status, "days": (last - d(start)).days + 1, "actual_cost": actual,
            "expected_cost": expected, "impact_to_date": impact_to_date,
            "resolved_on": d(day) if status == "resolved" else None, "verdict": verdict,
            "verdict_by": "U1" if verdict else "", "currency": "USD"}


def week_episodes() -> pd.DataFrame:
    rows = [
        ep(23, "S1", "team-a", 20, 22, "ongoing", 200.0, 150.0, 100.0),
        ep(24, "S1", "team-a", 20, 22, "ongoing", 300.0, 200.0, 100.0),
        ep(25, "S1", "team-a", 20, 22, "ongoing", 350.0, 150.0, 100.0),
        ep(26, "S1", "team-a", 20, 22, "resolved", 350.0),
        ep(24, "S5", "team-b", 24, 24, "open", 70.0, 170.0, 100.0),
        ep(25, "S5", "team-b", 24, 24, "accepted", 140.0, 170.0, 100.0, "expected"),
        ep(26, "S6", "team-c", 25, 26, "open", 40.0, 140.0, 100.0, "not_anomaly"),
        ep(27, "S6", "team-c", 25, 26, "resolved", 40.0, verdict="not_anomaly"),
        ep(28, "S4", "team-b", 27, 28, "open", 60.0, 130.0, 100.0),
        ep(30, "S4", "team-b", 27, 28, "resolved", 90.0),
    ]
    for day in range(25, 31):
        rows.append(ep(day, "S2", "", 25, 25, "open" if day == 25 else "ongoing",
                       20.0 * (day - 24), 120.0, 100.0))
    for day in range(27, 31):
        rows.append(ep(day, "S3", "team-a", 26, 27, "open" if day == 27 else "ongoing",
                       20.0 * (day - 26), 120.0, 100.0))
    return conform(pd.DataFrame(rows, columns=EPISODE_COLUMNS), EPISODE_COLUMNS)


def week_alerts() -> pd.DataFrame:
    """The week's alerts (annotated_alerts rows): one per episode that alerted in it."""
    episodes = week_episodes()
    opened = episodes[episodes["status"] == "open"]
    return pd.DataFrame({
        "usage_date": opened["alert_day"], "service": opened["service"], "account_id": "1",
        "region": "r", "owner": opened["owner"], "kind": "spike", "impact": 30.0,
        "anomaly_start": opened["anomaly_start"], "explanation": "x"}).reset_index(drop=True)


def feedback_rows() -> pd.DataFrame:
    def row(service: str, alert: int, verdict: str, user: str, seen: str,
            owner: str = "") -> dict:
        key = f"{d(alert)}|{service}|1|r" + (f"|{owner}" if owner else "")
        return {"alert_key": key, "episode_id": "", "service": service, "account_id": "1",
                "region": "r", "owner": owner, "anomaly_start": d(alert), "kind": "spike",
                "verdict": verdict, "user_id": user, "user_name": user, "reason": "",
                "channel": "C", "message_ts": "1.2", "seen_at": seen, "source": "reaction"}

    rows = [
        row("S3", 27, "not_anomaly", "U1", "2025-03-28T10:00:00+00:00", "team-a"),
        row("S3", 27, "expected", "U2", "2025-03-28T11:00:00+00:00", "team-a"),
        row("S5", 24, "expected", "U1", "2025-03-25T09:00:00+00:00", "team-b"),
        row("S6", 26, "not_anomaly", "U1", "2025-03-27T09:00:00+00:00", "team-c"),
        row("S1", 22, "not_anomaly", "U1", "2025-03-23T09:00:00+00:00", "team-a"),  # last week
    ]
    return conform(pd.DataFrame(rows, columns=FEEDBACK_COLUMNS), FEEDBACK_COLUMNS)


def test_life_figures_match_the_hand_computed_week() -> None:
    episodes = week_episodes()
    assert time_to_detect(episodes, MON, SUN) == 1.0
    assert time_to_resolve(episodes, MON, SUN) == 3.0
    assert cost_avoided(episodes, MON, SUN) == 50.0 * 6 + 30.0 * 2
    owners = open_by_owner(episodes, SUN)
    assert owners.to_dict("records") == [
        {"owner": "untagged", "episodes": 1, "impact": 120.0},
        {"owner": "team-a", "episodes": 1, "impact": 80.0}]
    keys = [alert_key(r) for _, r in week_alerts().iterrows()]
    assert len(keys) == 5
    assert precision(keys, feedback_rows()) == (2, 3)
    assert precision(keys, None) == (0, 0)


def _inputs(feedback: pd.DataFrame | None, episodes: pd.DataFrame | None = None
            ) -> DigestInputs:
    costs = pd.DataFrame({"usage_date": [MON - timedelta(days=1), MON], "service": ["S1", "S1"],
                          "cost": [100.0, 110.0]})
    return DigestInputs(MON, costs, week_alerts(),
                        week_episodes() if episodes is None else episodes, feedback)


def _texts(message: dict) -> list[str]:
    return [b["text"]["text"] for b in message["blocks"] if b["type"] == "section"]


def test_digest_shows_owners_times_precision_and_cost_avoided() -> None:
    message = build_digest(_inputs(feedback_rows()))
    text = "\n".join(_texts(message))
    assert "*Open anomalies by owner* at week end:" in text
    assert "• untagged: 1 open, $120.00 above expected so far" in text
    assert "• team-a: 1 open, $80.00 above expected so far" in text
    # "Still open" among the week's alerts is the same "open" as by owner: S2 and S3.
    assert "*still open* at week end: 2" in text
    assert "• S2 · 1 · r: spike since 2025-03-25" in text
    assert "• S3 · 1 · r: spike since 2025-03-26" in text
    assert "*Time to detect* (median, start to alert): 1 day" in text
    assert "start to back to normal): 3 days over 3 resolved" in text
    assert "*Precision:* 67% (2 of 3 alerts with feedback were real)" in text
    assert "$360.00" in text
    text = "\n".join(_texts(build_digest(_inputs(None))))
    assert "*Precision:* no feedback yet" in text


def test_digest_without_episodes_and_with_many_owners_stays_within_slack_limits() -> None:
    text = "\n".join(_texts(build_digest(_inputs(None, pd.DataFrame()))))
    assert "none." in text and "n/a" in text and "$0.00" in text
    many = pd.concat([week_episodes().assign(owner=f"team-{i:02d}" + "x" * 150)
                      for i in range(40)], ignore_index=True)
    message = build_digest(_inputs(feedback_rows(), many))
    assert len(message["blocks"]) <= 50
    assert all(len(t) <= MAX_SECTION_CHARS for t in _texts(message))
    assert "… and 32 more owners." in "\n".join(_texts(message))


def test_digest_of_the_demo_backfill_reads_episodes(demo_backfill: Backfill,
                                                    backfill_copy: Path) -> None:
    store = TableStore(str(backfill_copy))
    week = date(2025, 3, 24)
    inputs = load_digest_inputs(store, week)
    assert len(inputs.episodes) > 0 and inputs.feedback is None
    text = "\n".join(_texts(build_digest(inputs)))
    assert "*Precision:* no feedback yet" in text
    assert "*Time to detect*" in text and "*Cost avoided*" in text
