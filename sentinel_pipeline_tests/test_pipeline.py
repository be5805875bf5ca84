"""The four assets through the real Definitions, job and a real Dagster instance on tmp folders."""

from __future__ import annotations

import filecmp
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from sentinel_pipeline.cli import failure_messages
from sentinel_pipeline.definitions import defs
from sentinel_pipeline.schema import (
    ALERT_COLUMNS,
    ANOMALY_COLUMNS,
    BASELINE_COLUMNS,
    EPISODE_COLUMNS,
    RAW_COLUMNS,
    SCORE_COLUMNS,
    conform,
)
from sentinel_pipeline.sources.demo import demo_known_anomalies
from sentinel_pipeline.storage import TableStore
from sentinel_pipeline_tests.conftest import Backfill, run_days

TABLES = {
    "raw_daily_costs": RAW_COLUMNS,
    "cost_baselines": BASELINE_COLUMNS,
    "cost_anomalies": ANOMALY_COLUMNS,
    "cost_scores": SCORE_COLUMNS,
    "anomaly_episodes": EPISODE_COLUMNS,
    "annotated_alerts": ALERT_COLUMNS,
}


def test_definition_graph_is_pinned() -> None:
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == set(TABLES) | {"alert_feedback"}  # not daily: Slack's answers, one table
    parents = {k: {p.to_user_string() for p in graph.get(dg.AssetKey(k)).parent_keys}
               for k in TABLES}
    assert parents == {
        "raw_daily_costs": set(),
        "cost_baselines": {"raw_daily_costs"},
        "cost_scores": {"raw_daily_costs", "cost_baselines"},
        "cost_anomalies": {"cost_scores"},  # its unusual rows
        "anomaly_episodes": {"cost_anomalies"},
        "annotated_alerts": {"cost_anomalies", "anomaly_episodes"},
    }
    for key in TABLES:
        node = graph.get(dg.AssetKey(key))
        assert isinstance(node.partitions_def, dg.DailyPartitionsDefinition)
        assert node.partitions_def.timezone == "UTC"
        assert node.backfill_policy == dg.BackfillPolicy.single_run()
        assert node.description
    # Every dependency is on the same day, so a UI backfill gives every asset exactly the days
    # selected, in one run; the earlier days an asset reads come from storage (partitions.py).
    for child, parents_of_child in parents.items():
        for parent in parents_of_child:
            mapping = graph.get_partition_mapping(dg.AssetKey(child), dg.AssetKey(parent))
            assert isinstance(mapping, dg.TimeWindowPartitionMapping), (child, parent)
            assert (mapping.start_offset, mapping.end_offset) == (0, 0), (child, parent)
    assert defs.resolve_job_def("sentinel_daily_job") is not None
    schedule = defs.resolve_schedule_def("sentinel_daily_schedule")
    assert schedule.cron_schedule == "0 9 * * *"
    assert schedule.execution_timezone in (None, "UTC")
    repository = defs.get_repository_def()
    sensors = {s.name for s in repository.sensor_defs}
    assert sensors == {"alert_delivery_sensor", "run_failure_alert_sensor", "restatement_sensor",
                       "raw_costs_freshness_sensor", "abandoned_cli_runs_sensor", "feedback_sensor"}
    assert {s.name for s in repository.schedule_defs} == {
        "sentinel_daily_schedule", "weekly_digest_schedule"}
    assert {j.name for j in repository.get_all_jobs()} >= {
        "sentinel_daily_job", "sentinel_weekly_digest_job"}


def test_backfill_is_one_run_writing_one_file_per_day(demo_backfill: Backfill) -> None:
    assert demo_backfill.result.success
    assert len(demo_backfill.instance.get_runs()) >= 1
    run_ids = {demo_backfill.result.run_id}
    days = pd.date_range(demo_backfill.start, demo_backfill.end).date
    for table, columns in TABLES.items():
        records = demo_backfill.instance.fetch_materializations(
            dg.AssetKey(table), limit=1000).records
        from_backfill = [r for r in records if r.run_id in run_ids]
        assert sorted({r.partition_key for r in from_backfill}) == [d.isoformat() for d in days]
        for day in days:
            path = demo_backfill.data_dir / table / f"date={day}" / "data.parquet"
            assert path.exists(), path
        sample = pd.read_parquet(demo_backfill.data_dir / table / f"date={days[-1]}" /
                                 "data.parquet")
        assert list(sample.columns[: len(columns)]) == columns


def test_raw_table_reads_as_one_hive_dataset(demo_backfill: Backfill) -> None:
    import pyarrow.dataset as ds

    dataset = ds.dataset(demo_backfill.data_dir / "raw_daily_costs", format="parquet",
                         partitioning="hive")
    table = dataset.to_table()
    assert table.num_rows > 90 * 20
    assert set(RAW_COLUMNS) <= set(table.column_names)
    assert table.schema.field("cost").type == "double"


def test_demo_known_anomalies_are_detected(demo_backfill: Backfill) -> None:
    store = TableStore(str(demo_backfill.data_dir))
    # Leave the first 5 weeks for the baselines to learn.
    start = demo_backfill.start + timedelta(days=35)
    known = demo_known_anomalies(start, demo_backfill.end)
    assert len(known) >= 3
    found = store.read_range("cost_anomalies", start, demo_backfill.end)
    found["usage_date"] = pd.to_datetime(found["usage_date"]).dt.date
    hits = 0
    for event in known.itertuples():
        match = found[(found["service"] == event.service)
                      & (found["account_id"] == event.account_id)
                      & (found["usage_date"] >= event.start_date)
                      & (found["usage_date"] <= event.start_date + timedelta(days=2))]
        hits += len(match) > 0
    assert hits == len(known), f"found {hits} of {len(known)} known anomalies"


def test_cost_scores_keep_every_series_and_agree_with_cost_anomalies(
        demo_backfill: Backfill) -> None:
    store = TableStore(str(demo_backfill.data_dir))
    start = demo_backfill.start + timedelta(days=35)
    raw = store.read_range("raw_daily_costs", start, demo_backfill.end)
    scores = store.read_range("cost_scores", start, demo_backfill.end)
    anomalies = store.read_range("cost_anomalies", start, demo_backfill.end)
    key = ["usage_date", "service", "account_id", "region"]
    for frame in (raw, scores, anomalies):
        frame["usage_date"] = pd.to_datetime(frame["usage_date"]).dt.date
    # Every series that had a cost that day has a score (quiet ones included).
    series_days = raw[key].drop_duplicates()
    assert len(series_days.merge(scores[key], on=key)) == len(series_days)
    assert scores["score"].notna().all()
    # The unusual rows of cost_scores are exactly cost_anomalies, kind for kind.
    unusual = scores[scores["kind"] != ""]
    pairs = unusual.merge(anomalies, on=key, suffixes=("", "_anomaly"))
    assert len(pairs) == len(unusual) == len(anomalies)
    assert (pairs["kind"] == pairs["kind_anomaly"]).all()
    # The days that stood out without an alert: whole int64 bit masks, counted per day in the
    # metadata the UI shows.
    assert str(scores["unusual_days"].dtype) == "int64" and (scores["unusual_days"] >= 0).all()
    events = demo_backfill.result.asset_materializations_for_node("cost_scores")
    counts = [e.metadata["series_with_unusual_days"].value for e in events]
    assert counts and all(isinstance(c, int) for c in counts)
    # A known anomaly's day ranks near the top of its day's scores.
    known = demo_known_anomalies(start, demo_backfill.end).iloc[0]
    day = scores[scores["usage_date"] == known.start_date].sort_values("score", ascending=False)
    top = day.head(3)
    assert ((top["service"] == known.service) & (top["account_id"] == known.account_id)).any()


def test_alerts_carry_explanations_and_metadata(demo_backfill: Backfill) -> None:
    store = TableStore(str(demo_backfill.data_dir))
    alerts = store.read_range("annotated_alerts", demo_backfill.start, demo_backfill.end)
    assert len(alerts) > 0
    assert (alerts["kind"] != "drop").all()
    assert alerts["explanation"].str.len().min() > 40
    assert set(alerts["annotator"]) == {"fallback"}
    events = demo_backfill.result.asset_materializations_for_node("cost_anomalies")
    # Each day's own metadata: the days with an alert have rows and a top-anomalies table (the
    # last day may have none: a quiet day writes an empty partition).
    by_day = {event.partition: event.metadata for event in events}
    alert_days = {pd.Timestamp(d).strftime("%Y-%m-%d") for d in alerts["usage_date"]}
    assert alert_days <= by_day.keys()
    for day in alert_days:
        assert by_day[day]["dagster/row_count"].value > 0
        assert "| usage_date |" in by_day[day]["top_anomalies"].value
    raw_meta = demo_backfill.result.asset_materializations_for_node("raw_daily_costs")[-1].metadata
    assert raw_meta["total_cost"].value > 0 and raw_meta["series"].value >= 20


def test_rerun_of_one_day_rewrites_only_that_day_with_the_same_rows(
    demo_backfill: Backfill, backfill_copy: Path
) -> None:
    data_dir = backfill_copy
    day = date(2025, 3, 15)
    before = {p: p.stat().st_mtime_ns for p in data_dir.rglob("*.parquet")}
    result = run_days(demo_backfill.instance, day, day)
    assert result.success
    changed = {p for p in data_dir.rglob("*.parquet") if p.stat().st_mtime_ns != before.get(p)}
    assert changed == {data_dir / t / f"date={day}" / "data.parquet" for t in TABLES}
    for path in changed:
        original = demo_backfill.data_dir / path.relative_to(data_dir)
        pd.testing.assert_frame_equal(pd.read_parquet(path), pd.read_parquet(original))
        assert filecmp.cmp(path, original, shallow=False)


@pytest.mark.parametrize("block", [7, 30])
def test_a_range_scored_in_blocks_equals_it_scored_at_once(
    demo_backfill: Backfill, monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    """cost_scores scores a long range SCORE_BLOCK_DAYS days at a time (memory), each block
    carrying on from the last day of the one before: the rows are those of one block, open
    episodes and drift across block ends included."""
    from sentinel_pipeline.defs.assets import scores
    from sentinel_pipeline.detection import DetectionConfig

    store = TableStore(str(demo_backfill.data_dir))
    days = [date(2025, 1, 1) + timedelta(days=i) for i in range(90)]

    def scored(block_days: int) -> dict[date, pd.DataFrame]:
        monkeypatch.setattr(scores, "SCORE_BLOCK_DAYS", block_days)
        return {day: conform(frame, SCORE_COLUMNS) for frames in scores.score_range(
            store, days, DetectionConfig(), "cost_scores", None) for day, frame in frames.items()}

    whole, blocked = scored(len(days)), scored(block)
    assert list(blocked) == days
    for day in days:
        pd.testing.assert_frame_equal(blocked[day], whole[day], obj=str(day))
    # Episodes do cross the blocks' ends (else this test would prove little).
    ends = [days[i] for i in range(block, len(days), block)]
    assert any((whole[d]["kind"] != "").any() and (whole[d - timedelta(days=1)]["kind"] != "")
               .any() for d in ends), ends


def test_schedule_requests_yesterdays_partition(instance: dg.DagsterInstance) -> None:
    schedule = defs.resolve_schedule_def("sentinel_daily_schedule")
    context = dg.build_schedule_context(
        instance=instance, scheduled_execution_time=datetime(2025, 3, 10, 9, 0, tzinfo=UTC)
    )
    requests = schedule.evaluate_tick(context).run_requests
    assert requests and len(requests) == 1
    assert requests[0].partition_key == "2025-03-09"
    assert requests[0].tags.get("sentinel/trigger") == "schedule"


def test_baselines_never_read_the_day_itself(
    demo_backfill: Backfill, backfill_copy: Path
) -> None:
    """Changing day D's raw costs changes D's anomalies, never D's baseline."""
    data_dir = backfill_copy
    day = date(2025, 3, 20)
    store = TableStore(str(data_dir))
    raw = store.read_partition("raw_daily_costs", day)
    raw.loc[0, "cost"] = raw.loc[0, "cost"] * 50 + 5000
    store.write_partition("raw_daily_costs", day, raw)
    baseline_before = store.read_partition("cost_baselines", day)
    from sentinel_pipeline.definitions import defs as definitions

    selection = [dg.AssetKey(k) for k in ("cost_baselines", "cost_scores", "cost_anomalies")]
    result = definitions.resolve_job_def("sentinel_daily_job").execute_in_process(
        instance=demo_backfill.instance, partition_key=day.isoformat(), asset_selection=selection)
    assert result.success
    pd.testing.assert_frame_equal(store.read_partition("cost_baselines", day), baseline_before)
    anomalies = store.read_partition("cost_anomalies", day)
    assert raw.loc[0, "service"] in set(anomalies["service"])


def test_nothing_is_written_when_the_data_dir_is_not_writable(
    sentinel_env: Path, instance: dg.DagsterInstance, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the data dir should be")
    monkeypatch.setenv("SENTINEL_DATA_DIR", str(blocker / "data"))
    result = run_days(instance, date(2025, 2, 1), date(2025, 2, 3), raise_on_error=False)
    assert not result.success
    message = "\n".join(failure_messages(result))
    assert "Cannot write" in message and "SENTINEL_DATA_DIR" in message
    assert blocker.read_text() == "a file where the data dir should be"


def test_missing_source_folder_fails_clearly_and_writes_nothing(
    sentinel_env: Path, instance: dg.DagsterInstance, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SENTINEL_SOURCE", "focus")
    monkeypatch.setenv("SENTINEL_SOURCE_PATH", str(tmp_path / "no-such-exports"))
    result = run_days(instance, date(2025, 2, 1), date(2025, 2, 3), raise_on_error=False)
    assert not result.success
    message = "\n".join(failure_messages(result))
    assert "no-such-exports" in message and "SENTINEL_SOURCE_PATH" in message
    assert not list(sentinel_env.rglob("*.parquet"))
    # A user error is not retried: one attempt only.
    retries = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert retries == []
