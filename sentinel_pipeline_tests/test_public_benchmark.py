"""The public benchmark harness (benchmarks/public) reproduces the published protocol: the
generator places the same events every time, our EWMA and SeasonalNaiveMAD land on the published
figures, the metrics' arithmetic is right on hand-made cases, and Sentinel runs through it."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest

from benchmarks.public.ceiling import noise_rates, page, true_z
from benchmarks.public.generator import (
    CALIBRATION,
    INTENSITIES,
    TYPES,
    Cell,
    Event,
    long_frame,
    make_cell,
    make_cells,
)
from benchmarks.public.models import ewma_scores, seasonal_naive_mad_scores
from benchmarks.public.oracle import observed_episodes, true_baselines, true_noise
from benchmarks.public.protocol import (
    alerts,
    average_precision,
    evaluate,
    evaluate_scores,
    summarize,
    threshold,
)
from benchmarks.public.run import PUBLISHED, main, run_sentinel
from sentinel_pipeline.detection import DetectionConfig
from sentinel_pipeline.detection.robust import LEVEL_ERROR


@pytest.fixture(scope="module")
def cells() -> list[Cell]:
    return make_cells()


def test_every_cell_has_3_events_per_type_and_intensity_without_overlap(cells: list[Cell]) -> None:
    assert len(cells) == 12
    for cell in cells:
        assert len(cell.events) == 27
        combos = Counter((e.anomaly_type, e.intensity) for e in cell.events)
        assert combos == {(t, i): 3 for t in TYPES for i in INTENSITIES}
        days = np.zeros(len(cell.dates), dtype=int)
        for e in cell.events:
            assert cell.year2_start <= e.start_day <= e.end_day < len(cell.dates)
            days[e.start_day:e.end_day + 1] += 1
            assert (cell.event_id[e.start_day:e.end_day + 1] == e.event_id).all()
            assert e.total_cost == pytest.approx(
                cell.cost_impact[e.start_day:e.end_day + 1].sum())
            if e.anomaly_type == "contextual":
                assert cell.dates[e.start_day].weekday() == 5  # Saturday
        assert days.max() == 1  # no day in two events
        assert ((days == 1) == cell.is_anomaly).all()
        assert (cell.cost_impact[~cell.is_anomaly] == 0).all()
        starts = [e.start_day for e in cell.events]
        assert starts == sorted(starts)


def test_the_generator_is_deterministic() -> None:
    a, b = make_cell(CALIBRATION[2], 1), make_cell(CALIBRATION[2], 1)
    assert a.events == b.events
    assert np.array_equal(a.cost, b.cost)
    assert make_cell(CALIBRATION[2], 2).events != a.events
    # Pinned (a regression guard: the EWMA test is what ties these draws to the published run).
    first = [(e.event_id, e.anomaly_type, e.intensity, e.start_day, e.end_day)
             for e in make_cell(CALIBRATION[0], 0).events[:4]]
    assert first == [(27, "contextual", "high", 369, 370), (11, "spike", "low", 380, 380),
                     (10, "spike", "low", 394, 394), (14, "spike", "mid", 405, 406)]
    assert len(long_frame([a])) == len(a.dates)


@pytest.mark.parametrize(("name", "scorer"), [
    ("EWMA", lambda c: ewma_scores(c.cost, c.year2_start)),
    ("SeasonalNaiveMAD", lambda c: seasonal_naive_mad_scores(c.cost)),
])
def test_our_baselines_reproduce_the_published_figures(cells: list[Cell], name: str,
                                                       scorer: Callable[[Cell], np.ndarray],
                                                       ) -> None:
    summary = summarize([evaluate_scores(c, scorer(c))[0] for c in cells])
    published = PUBLISHED[name]
    assert summary["f1"] == pytest.approx(published["f1"], abs=0.02)
    assert summary["cost_weighted_recall"] == pytest.approx(
        published["cost_weighted_recall"], abs=0.02)
    assert summary["mean_cost_to_detect"] == pytest.approx(
        published["mean_cost_to_detect"], rel=0.03)
    assert summary["event_recall"] == pytest.approx(published["event_recall"], abs=0.02)


def test_seasonal_naive_mad_on_a_hand_made_series() -> None:
    y = np.arange(1.0, 31.0)
    s = seasonal_naive_mad_scores(y)
    assert np.isnan(s[:3]).all()  # fewer than 3 days of history
    # Day 3 uses the fallback window [1, 2, 3]: median 2, MAD 1, |4 - 2| / 1.4826.
    assert s[3] == pytest.approx(2 / 1.4826)
    # Day 21: same weekday 7, 14, 21 days before -> values 15, 8, 1; median 8, MAD 7.
    assert s[21] == pytest.approx((22 - 8) / (1.4826 * 7))


def _tiny_cell() -> Cell:
    """10 days, year 2 from day 4; event 1 on days 5-7 ($10, $20, $30), event 2 on day 9 ($5)."""
    n = 10
    impact = np.zeros(n)
    impact[5:8] = [10.0, 20.0, 30.0]
    impact[9] = 5.0
    ids = np.zeros(n, dtype=np.int64)
    ids[5:8], ids[9] = 1, 2
    kinds = np.array(["none"] * n, dtype=object)
    kinds[5:8], kinds[9] = "gradual", "spike"
    levels = np.array(["none"] * n, dtype=object)
    levels[5:8], levels[9] = "high", "low"
    events = [Event(1, "gradual", "high", 5, 7, 60.0), Event(2, "spike", "low", 9, 9, 5.0)]
    dates = [date(2024, 1, 1) + timedelta(days=i) for i in range(n)]
    return Cell("tiny", 0, dates, np.ones(n) + impact, np.ones(n), impact, ids, kinds, levels,
                events, year2_start=4)


def test_metrics_on_a_hand_made_cell() -> None:
    cell = _tiny_cell()
    flags = np.zeros(10, dtype=bool)
    flags[[0, 4, 7]] = True  # day 0 is year 1 (ignored); day 4 a false alarm; day 7 in event 1
    r = evaluate(cell, flags, None)
    assert r.alerts_year2 == 2
    assert r.precision == pytest.approx(0.5)
    assert r.recall == pytest.approx(1 / 4)  # 4 anomalous days in year 2
    assert r.f1 == pytest.approx(2 * 0.5 * 0.25 / 0.75)
    assert r.false_alarm_rate == pytest.approx(1 / 2)  # normal year-2 days: 4 and 8
    assert r.event_recall == pytest.approx(0.5)
    assert r.mean_delay == pytest.approx(2.0)
    ev1, ev2 = r.events
    assert (ev1.detected, ev1.cost_to_detect) == (True, 30.0)  # $10 + $20 before day 7
    assert (ev2.detected, ev2.cost_to_detect) == (False, 5.0)  # missed: all of it
    assert r.mean_cost_to_detect == pytest.approx(17.5)
    assert r.cost_weighted_recall == pytest.approx(60 / 65)
    assert math.isnan(r.auprc)

    none = evaluate(cell, np.zeros(10, dtype=bool), np.zeros(10))
    assert (none.precision, none.recall, none.f1, none.false_alarm_rate) == (0, 0, 0, 0)
    assert none.cost_weighted_recall == 0 and none.mean_cost_to_detect == pytest.approx(32.5)
    assert math.isnan(none.mean_delay)

    s = summarize([r, none])
    assert s["f1"] == pytest.approx(r.f1 / 2)
    assert s["mean_delay"] == pytest.approx(2.0)  # cells without detections are skipped
    assert s["gradual"] == pytest.approx(0.5) and s["spike"] == 0.0
    assert s["high"] == pytest.approx(0.5) and math.isnan(s["mid"])


def test_true_baselines_hold_the_truth_and_the_open_episode() -> None:
    cell = _tiny_cell()
    normal = np.array([1.0, 0.98, 1.0, 0.98, 1.0, 1.0, 1.0, 1.0, 0.98, 1.0])
    expected = np.full(10, 100.0)
    impact = expected * np.array([0, 0, 0, 0, 0, 0.3, 0.4, 0.5, 0, 0.1])
    cell = replace(cell, cost=expected * normal + impact, expected=expected, cost_impact=impact)
    sd = true_noise(cell)  # from the normal days only
    assert sd == pytest.approx(np.std(np.log([1.0, 0.98, 1.0, 0.98, 1.0, 0.98])))
    days = cell.dates[1:]
    rows = true_baselines([cell], days, DetectionConfig(method="robust"))
    assert rows["usage_date"].tolist() == days
    assert (rows["expected_cost"] == 100.0).all()
    # _z multiplies the log scale by the level error: divided here, so z is the true one.
    assert rows["log_scale"].iloc[0] * LEVEL_ERROR == pytest.approx(sd)
    assert rows["noise_df"].isna().all()
    by_day = rows.set_index(rows["history_days"])
    # The run before each day: days 5-7 are above expected by > 1 sd, the normal days never.
    assert by_day["elevated_days"].tolist() == [0, 0, 0, 0, 0, 1, 2, 3, 0]
    assert by_day.loc[8, "prior_actual"] == pytest.approx(130 + 140 + 150)
    assert by_day.loc[8, "prior_expected"] == pytest.approx(300)
    assert by_day.loc[9, "prior_actual"] == 0
    # Baselines learned from the costs without the events never see the episode: counted on
    # the observed costs against each day's own expected cost and noise, they do.
    clean = replace(cell, cost=expected * normal)
    learned = true_baselines([clean], days, DetectionConfig(method="robust"))
    assert (learned["elevated_days"] == 0).all()
    observed = observed_episodes(learned, [cell]).set_index("history_days")
    assert observed["elevated_days"].tolist() == [0, 0, 0, 0, 0, 1, 2, 3, 0]
    assert observed.loc[8, "prior_actual"] == pytest.approx(130 + 140 + 150)
    assert observed.loc[8, "prior_expected"] == pytest.approx(300)
    assert (observed["expected_cost"] == 100.0).all()


def test_the_ceilings_detector_alarms_goes_on_and_counts_its_false_alerts() -> None:
    # Columns k, a, h, c: a day bar alone; a CUSUM alone; both, going on while z >= 1.
    params = np.array([[1.0, 3.0, np.inf, np.inf], [1.0, np.inf, 2.5, np.inf],
                       [1.0, 3.0, 2.5, 1.0]])
    z = np.array([0.0, 3.5, 1.2, 0.2, 2.0, 2.0, 1.5, 0.0, 0.0])
    flags, alarms = page(z, params)
    # The day bar: day 1 only. The CUSUM (k = 1): 2.5 on day 1, 2.7 on day 2 (> 2.5), then
    # restarted: 1 + 1 on days 4-5, 2.5 on day 6 is not above 2.5.
    assert np.flatnonzero(flags[:, 0]).tolist() == [1]
    assert np.flatnonzero(flags[:, 1]).tolist() == [2]
    # Both, going on: day 1's alarm goes on through day 2 (1.2 >= 1), ends on day 3; the CUSUM
    # held during it, restarted after the alarm: 0 on day 3, 1, 2, 2.5 on days 4-6, no alarm.
    assert np.flatnonzero(flags[:, 2]).tolist() == [1, 2]
    assert alarms.tolist() == [1, 1, 1]
    # On N(0, 1) days a day bar of 3 alarms at P(Z > 3) a day: 4.05 per 100 series-month.
    rate = noise_rates(params[:1], 400_000)[0]
    assert rate == pytest.approx(0.00135 * 3000, rel=0.1)


def test_the_ceilings_z_is_the_true_residual_in_dollars_or_logs() -> None:
    cell = _tiny_cell()
    expected = np.full(10, 100.0)
    noise = np.array([1.1, 0.9, 1.1, 0.9, 1.1, 0.9, 1.1, 0.9, 1.1, 0.9])
    impact = np.where(np.arange(10) == 5, 100.0, 0.0)
    cell = replace(cell, cost=expected * noise + impact, expected=expected, cost_impact=impact,
                   event_id=np.where(impact > 0, 1, 0))
    normal = np.r_[noise[:5], noise[6:]]  # the sd is measured on the days without an event
    dollars = true_z(cell, "dollars")
    assert dollars[5] == pytest.approx((0.9 + 1.0 - 1.0) / np.std(normal - 1.0))
    assert dollars[0] == pytest.approx(0.1 / np.std(normal - 1.0))
    logs = true_z(cell, "log")
    assert logs[5] == pytest.approx(np.log(1.9) / np.std(np.log(normal)))
    with pytest.raises(ValueError, match="Unknown space 'linear'"):
        true_z(cell, "linear")


def test_threshold_and_alerts_follow_the_protocol() -> None:
    scores = np.r_[np.arange(100.0), np.nan, [50.0, np.nan, 99.5, 98.0]]
    limit = threshold(scores, 101, budget=0.01)
    assert limit == pytest.approx(np.percentile(np.arange(100.0), 99))  # NaN ignored
    assert alerts(scores, limit).tolist()[-4:] == [False, False, True, False]
    assert not alerts(np.array([limit]), limit)[0]  # strictly above
    assert threshold(np.full(5, np.nan), 5) == math.inf


def test_average_precision_is_sklearns() -> None:
    # Thresholds 0.9, 0.8, 0.7, 0.1: (R, P) = (.5, 1), (.5, .5), (1, 2/3), (1, .5).
    assert average_precision(np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.7, 0.1])) == (
        pytest.approx(0.5 + 0.5 * 2 / 3))
    # Tied scores are one threshold: (R, P) = (.5, .5) then (1, 2/3).
    assert average_precision(np.array([1, 0, 1]), np.array([0.5, 0.5, 0.2])) == (
        pytest.approx(0.25 + 0.5 * 2 / 3))
    assert average_precision(np.array([0, 0]), np.array([1.0, 2.0])) == 0.0
    assert average_precision(np.array([1, 1, 0]), np.array([3.0, 2.0, 1.0])) == 1.0


def test_sentinel_runs_through_the_harness() -> None:
    """Robust here, seed in the CLI test below (each runs ~2 s: 729 days of baselines)."""
    cell = make_cell(CALIBRATION[0], 0)
    shipped, p99, at_budget, oracle, truth = run_sentinel([cell], "robust", 0.01)
    assert shipped.name.endswith("as shipped") and p99.name.endswith("p99 score")
    assert at_budget.name == "Sentinel robust at 0.01 (s=2.33)"
    # Baselines learned without the injected events: the events stand out more against them
    # (median event score 2.4 against 2.2 here; 2.4 against 1.7 before the days that stood
    # out without an alert were left out too; 2.5 against 2.1 while a day's drift was scored
    # on days not above normal; 1.3 before the days of episodes Sentinel flagged were left out
    # of the history it learns from).
    assert oracle.name == "robust, oracle's clean history as shipped"
    events = cell.is_anomaly
    assert (np.nanmedian(oracle.scores[cell.name][events])
            > np.nanmedian(shipped.scores[cell.name][events]) + 0.1)
    normal = ~events & (np.arange(len(cell.dates)) >= cell.year2_start)
    assert (np.nanmedian(shipped.scores[cell.name][events])
            > max(1.5, np.nanmedian(shipped.scores[cell.name][normal]) + 1.5))
    # The rules fed the true expected cost and noise score the events higher still, and a day
    # below expected scores exactly its log residual over the true noise (no level error, no
    # degrees of freedom to pay for).
    assert truth.name == "robust rules, true baselines as shipped"
    assert (np.nanmedian(truth.scores[cell.name][events])
            > np.nanmedian(oracle.scores[cell.name][events]))
    z = np.log(cell.cost / cell.expected) / true_noise(cell)
    below = np.flatnonzero(truth.scores[cell.name] < 0)
    assert len(below) > 200
    np.testing.assert_allclose(truth.scores[cell.name][below], z[below], rtol=1e-6)
    # A threshold at the budget alerts on more days than the shipped one, never fewer.
    flagged = shipped.flags[cell.name]
    assert (at_budget.flags[cell.name] >= flagged).mean() > 0.99
    scores = shipped.scores[cell.name]
    assert len(scores) == len(cell.dates)
    assert np.isnan(scores[0])  # the first day is not scored
    assert np.isfinite(scores[cell.year2_start:]).mean() > 0.9
    assert math.isnan(shipped.thresholds[cell.name])
    assert math.isfinite(p99.thresholds[cell.name])
    assert len(shipped.results[0].events) == 27


def test_the_cli_prints_the_table_and_dumps(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--seeds", "0", "--methods", "seed", "--dump", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Sentinel seed as shipped" in out and "Prophet" in out and "published" in out
    assert (tmp_path / "predictions.csv").exists() and (tmp_path / "events.csv").exists()
