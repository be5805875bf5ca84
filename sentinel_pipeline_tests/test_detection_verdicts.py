"""Issue 12: the days of episodes Sentinel flagged are left out of the history it learns from
(detection/verdicts.py), whether the days are run as one range or one at a time."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sentinel_pipeline.defs.assets.scores import earlier_verdicts
from sentinel_pipeline.detection import (
    DetectionConfig,
    Earlier,
    anomalies_of_scores,
    baselines_for_days,
    scores_for_days,
)
from sentinel_pipeline.detection.frames import to_matrix
from sentinel_pipeline.detection.robust import UNUSUAL_KEEP
from sentinel_pipeline.detection.verdicts import FlaggedDays
from sentinel_pipeline.schema import SCORE_COLUMNS, conform
from sentinel_pipeline.storage import TableStore
from sentinel_pipeline_tests.test_feedback_detection import feedback, feedback_row
from sentinel_pipeline_tests.test_robust_method import day, noisy, series

CONFIG = DetectionConfig()


def with_ramps(seed: int, noise: float = 0.10) -> list[float]:
    """$1,000 a day, and every 30 days from day 70 a 10-day ramp of +6 % a day (flagged by
    its drift before its days stand 3 noise sds out), then back to normal."""
    values = noisy(200, 1000, noise, seed=seed)
    for start in range(70, 190, 30):
        for k in range(10):
            values[start + k] *= 1 + 0.06 * (k + 1)
    return values


def ramp_history(count: int = 6) -> pd.DataFrame:
    rows = []
    for k in range(count):
        rows += series(with_ramps(seed=k), service=f"R{k}")
    return pd.DataFrame(rows)


def range_run(history: pd.DataFrame, days: list[date],
              fb: pd.DataFrame | None = None) -> tuple[dict, dict]:
    base = baselines_for_days(history, days, CONFIG, feedback=fb)
    scored = scores_for_days(history, pd.concat(base.values(), ignore_index=True), days,
                             CONFIG, feedback=fb)
    return base, scored


def test_a_day_run_alone_learns_what_the_range_learned() -> None:
    """A daily run reads the verdicts cost_scores stored before it (``Earlier``); a range
    scores its own days as it goes. Both must give each day the same baselines, or a backfill
    and the daily runs after it would disagree."""
    history = ramp_history()
    days = [day(d) for d in range(64, 200)]
    base, scored = range_run(history, days)
    assert sum(int(f["episode_days_left_out"].sum()) for f in base.values()) > 0
    for d in (day(110), day(141), day(175)):  # after an episode, inside one, after another
        before = [x for x in days if d - timedelta(days=CONFIG.lookback_days) <= x < d]
        stored = pd.concat([anomalies_of_scores(scored[x], "robust") for x in before],
                           ignore_index=True)
        last = scored[d - timedelta(days=1)]
        earlier = Earlier(stored, anomalies_of_scores(last, "robust"), last)
        alone = baselines_for_days(history, [d], CONFIG, earlier=earlier)[d]
        pd.testing.assert_frame_equal(alone, base[d])
    # Without the stored verdicts the day learns from a history with the episodes in it.
    blind = baselines_for_days(history, [day(110)], CONFIG)[day(110)]
    assert (blind["episode_days_left_out"] < base[day(110)]["episode_days_left_out"]).any()


def test_episodes_the_detector_flagged_are_left_out_once_over() -> None:
    """Ramps of +6 % a day on 10 % noise: most of their days are within 3 noise sds of a
    first estimate, so robust's own rule leaves them in, and the level and noise the next one
    is measured against come out high. Their flagged days are left out: measured here 6 days
    after the third ramp (days 130-139) ended, against the truth (level $1,000, noise 0.10)."""
    history = ramp_history(count=12)
    days = [day(d) for d in range(64, 146)]
    base, scored = range_run(history, days)
    assert pd.concat(scored.values())["alert"].sum() >= 30  # nearly every ramp (36)
    after = base[day(145)]
    blind = baselines_for_days(history, [day(145)], CONFIG)[day(145)]
    assert (after["episode_days_left_out"] > blind["episode_days_left_out"]).mean() > 0.5
    # The noise and level from the history with the flagged days left out are nearer the truth
    # (median noise 0.102 against 0.118, expected cost $1,110 against $1,239; truth ~$995).
    assert abs(after["log_scale"].median() - 0.10) < abs(blind["log_scale"].median() - 0.10)
    assert after["expected_cost"].median() < 0.95 * blind["expected_cost"].median()


def test_days_that_stood_out_without_an_alert_are_left_out_too() -> None:
    """The same ramps with no $ worth an alert (min_impact out of reach): no episode opens, yet
    the days that scored 3 or more at the end of a run of elevated days, and that run, are
    marked in cost_scores.unusual_days and left out once over, in a range and in a daily run
    alike (which reads the marks from the day before's scores)."""
    config = DetectionConfig(min_impact=1e9)
    history = ramp_history()
    days = [day(d) for d in range(64, 150)]
    base = baselines_for_days(history, days, config)
    scored = scores_for_days(history, pd.concat(base.values(), ignore_index=True), days, config)
    rows = pd.concat(scored.values(), ignore_index=True)
    assert not rows["alert"].any() and (rows["unusual_days"] != 0).any()
    # A day's mask is the day before's shifted on by a day, plus the day's own marks.
    for _, one in rows.sort_values("usage_date").groupby("service"):
        masks = one["unusual_days"].to_numpy()
        kept = masks[:-1] & (UNUSUAL_KEEP >> 1)
        assert ((masks[1:] >> 1) & kept == kept).all()
    after = base[day(145)]
    blind = baselines_for_days(history, [day(145)], config)[day(145)]
    assert (after["episode_days_left_out"] > blind["episode_days_left_out"]).all()
    assert after["expected_cost"].median() < 0.9 * blind["expected_cost"].median()
    last = scored[day(144)]
    alone = baselines_for_days(history, [day(145)], config, earlier=Earlier(drift=last))
    pd.testing.assert_frame_equal(alone[day(145)], after)


def test_marks_carry_over_a_day_without_spend_in_a_range_and_a_daily_run_alike() -> None:
    """A day without spend is still scored (its cost is 0), so the marks carry over it, and a
    daily run, which knows only the day before's scores, leaves out the days the range did."""
    config = DetectionConfig(min_impact=1e9)
    values: list[float | None] = list(with_ramps(seed=1))
    values[90] = None  # no spend on day 90, after the ramp of days 70-79 was marked
    history = pd.DataFrame(series(values, service="R"))
    days = [day(d) for d in range(64, 110)]
    base = baselines_for_days(history, days, config)
    scored = scores_for_days(history, pd.concat(base.values(), ignore_index=True), days, config)
    mask = {d: int(f["unusual_days"].iloc[0]) for d, f in scored.items()}
    assert mask[day(89)] != 0 and scored[day(90)]["actual_cost"].iloc[0] == 0
    assert mask[day(90)] & (mask[day(89)] << 1) == (mask[day(89)] << 1) & UNUSUAL_KEEP
    for d in (day(91), day(95)):
        alone = baselines_for_days(history, [d], config,
                                   earlier=Earlier(drift=scored[d - timedelta(days=1)]))
        pd.testing.assert_frame_equal(alone[d], base[d])
    # The marked ramp is left out until the day without spend enters the lookback (a series
    # with such a day is left as it is: robust._without_episodes).
    assert base[day(90)]["episode_days_left_out"].iloc[0] > 0
    assert base[day(95)]["episode_days_left_out"].iloc[0] == 0


def test_a_level_shift_is_the_new_normal_not_an_episode_to_leave_out() -> None:
    """x1.8 for good: the cost never comes back, so its flagged days stay in and the baseline
    adopts the new level (left out, it would be measured against the old one for ever)."""
    rows = []
    for seed in range(6):
        values = [v * (1.8 if i >= 100 else 1) for i, v in enumerate(noisy(160, 500, 0.15,
                                                                            seed=seed))]
        rows += series(values, service=f"S{seed}")
    history = pd.DataFrame(rows)
    days = [day(d) for d in range(95, 160)]
    base, scored = range_run(history, days)
    alerts = pd.concat(scored.values())
    assert alerts.groupby("service")["alert"].sum().tolist() == [1] * 6
    level = base[day(159)]["expected_cost"] / 500
    assert level.median() == pytest.approx(1.8, rel=0.15)


def test_answered_episodes_stay_in_the_history() -> None:
    """An episode someone answered (not_anomaly: it was normal; expected / planned: its level is
    adopted) is never left out, from its start to its last flagged day; feedback on episodes
    Sentinel never flagged changes nothing."""
    history = pd.DataFrame(series(with_ramps(seed=3), service="R"))
    matrix = to_matrix(history, day(0), day(199))
    rows = pd.DataFrame({
        "usage_date": [day(75), day(76), day(104)], "service": "R", "account_id": "111",
        "region": "us-east-1", "owner": "", "kind": ["sustained", "sustained", "spike"],
        "anomaly_start": [day(70), day(70), day(104)]})
    plain = FlaggedDays(matrix, None)
    plain.add(rows)
    assert plain.mask is not None
    assert list(np.flatnonzero(plain.mask[0])) == [*range(70, 77), 104]
    answered = FlaggedDays(matrix, feedback(feedback_row("R", day(70), "sustained",
                                                         "not_anomaly")))
    answered.add(rows)
    assert answered.mask is not None
    assert list(np.flatnonzero(answered.mask[0])) == [104]
    # Drops and new series are not rises to leave out, nor are the seed rule's flags.
    other = FlaggedDays(matrix, None)
    other.add(rows.assign(kind=["drop", "new_spend", "drop"]))
    other.add(rows.assign(method="seed"))
    assert other.mask is None and other.window(slice(None), 0, 200) is None
    # Feedback on an episode Sentinel never flagged: the same baselines.
    days = [day(d) for d in range(64, 120)]
    base, _ = range_run(history, days)
    elsewhere = feedback(feedback_row("Z", day(70), "sustained", "not_anomaly"))
    base_elsewhere, _ = range_run(history, days, elsewhere)
    pd.testing.assert_frame_equal(base_elsewhere[day(119)], base[day(119)])


def test_verdicts_read_back_from_storage_give_the_same_baselines(tmp_path: Path) -> None:
    """What cost_baselines reads (earlier_verdicts: cost_anomalies of the lookback, and
    cost_anomalies and cost_scores of the day before, as parquet files) gives a day run alone,
    and a range starting there, the baselines the whole range gave."""
    history = ramp_history(count=4)
    days = [day(d) for d in range(64, 180)]
    base, scored = range_run(history, days)
    store = TableStore(str(tmp_path))
    start = day(141)
    for d in days:
        if d < start:
            store.write_partition("cost_anomalies", d, anomalies_of_scores(scored[d], "robust"))
    scores_before = conform(scored[start - timedelta(days=1)], SCORE_COLUMNS)
    assert (scores_before["unusual_days"] != 0).any()  # marks to read back, as int64 bits
    store.write_partition("cost_scores", start - timedelta(days=1), scores_before)
    alone = baselines_for_days(history, [start], CONFIG,
                               earlier=earlier_verdicts(store, [start], CONFIG))
    pd.testing.assert_frame_equal(alone[start], base[start])
    span = [start + timedelta(days=i) for i in range(20)]
    again = baselines_for_days(history, span, CONFIG,
                               earlier=earlier_verdicts(store, span, CONFIG))
    for d in span:
        pd.testing.assert_frame_equal(again[d], base[d])
    assert sum(int(again[d]["episode_days_left_out"].sum()) for d in span) > 0
