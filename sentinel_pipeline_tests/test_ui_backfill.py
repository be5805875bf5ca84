"""Backfills as the UI launches them, and what each day's materialisation then shows.

The UI's Materialize dialog (asset catalog, four assets, a range of days) sends GraphQL
``launchPartitionBackfill`` with the asset keys and the list of days; the daemon turns that into
runs of Dagster's implicit asset job. Here that happens for real: ``dagster-webserver`` and
``dagster-daemon`` on a temp instance with the production run queue (deploy/dagster.yaml), on a
copy of the demo tables, and the test asserts the runs, their tags, the files written and each
day's metadata, for the dialog of the asset catalog (an asset backfill) and of the job's page (a
job backfill). The other tests need no server: the run queue's tagging, and the daily job in
process for per-day metadata of a range run and the failures that replace computing a day from
missing inputs.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest
import yaml

from sentinel_pipeline.cli import failure_messages
from sentinel_pipeline.defs.partitions import ASSET_NAMES
from sentinel_pipeline.storage import TableStore
from sentinel_pipeline_tests.conftest import Backfill, run_days
from sentinel_pipeline_tests.dagster_servers import REPO, DagsterServers, dagster_servers

# Inside the shared demo backfill (2025-01-01..03-31): 1 alert on 03-17, none on 03-18, 2 on 03-19.
DAYS = [date(2025, 3, 17), date(2025, 3, 18), date(2025, 3, 19)]
ALERTS_PER_DAY = {date(2025, 3, 17): 1, date(2025, 3, 18): 0, date(2025, 3, 19): 2}
BACKFILL_TIMEOUT_S = 240

LAUNCH = """
mutation LaunchPartitionBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on UnauthorizedError { message }
  }
}"""

BACKFILL = """
query Backfill($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { status error { message } }
    ... on PythonError { message }
  }
}"""

RUNS = """
query Runs($filter: RunsFilter!) {
  runsOrError(filter: $filter) {
    ... on Runs {
      results {
        runId jobName status startTime endTime
        tags { key value }
        assetSelection { path }
        assetCheckSelection { name assetKey { path } }
        stepStats { stepKey status startTime endTime }
      }
    }
  }
}"""

MATERIALISATIONS = """
query Materialisations($key: AssetKeyInput!, $partitions: [String!]) {
  assetOrError(assetKey: $key) {
    ... on Asset {
      assetMaterializations(partitions: $partitions) {
        partition runId
        metadataEntries {
          label
          ... on IntMetadataEntry { intValue }
          ... on FloatMetadataEntry { floatValue }
          ... on TextMetadataEntry { text }
        }
      }
    }
  }
}"""

FINISHED = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


def _files(data_dir: Path) -> dict[Path, int]:
    """Every table file and its modification time (a rewrite renames a new file into place)."""
    return {p: p.stat().st_mtime_ns for table in ASSET_NAMES
            for p in (data_dir / table).glob("date=*/data.parquet")}


@dataclass
class Servers:
    servers: DagsterServers
    data_dir: Path


@dataclass
class UiBackfill:
    servers: DagsterServers
    data_dir: Path
    days: list[date]
    backfill_id: str
    status: str
    before_files: dict[Path, int]
    after_files: dict[Path, int]
    before_rows: dict[tuple[str, date], pd.DataFrame]


@pytest.fixture(scope="module")
def servers(demo_backfill: Backfill, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    """A real webserver and daemon with the production run queue (polled every second instead
    of every 5 s), on a copy of the demo tables."""
    root = tmp_path_factory.mktemp("ui_backfill")
    data_dir = root / "data"
    shutil.copytree(demo_backfill.data_dir, data_dir)
    queue = yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text())["run_coordinator"]
    queue["config"]["dequeue_interval_seconds"] = 1
    env = {"SENTINEL_DATA_DIR": str(data_dir), "SENTINEL_SOURCE": "demo",
           "SENTINEL_SOURCE_PATH": "", "SLACK_BOT_TOKEN": "", "ANTHROPIC_API_KEY": "",
           "SENTINEL_DAGSTER_URL": ""}
    with dagster_servers(root, env, {"run_coordinator": queue}) as running:
        yield Servers(running, data_dir)


def launch_and_wait(servers: Servers, days: list[date], **params: Any) -> UiBackfill:
    """Launch a backfill of the four assets over ``days`` with the UI's parameters (plus
    ``params``) and wait until it is finished."""
    store = TableStore(str(servers.data_dir))
    before_rows = {(t, d): store.read_partition(t, d) for t in ASSET_NAMES for d in days}
    before_files = _files(servers.data_dir)
    started = time.monotonic()
    launched = servers.servers.graphql(LAUNCH, {"backfillParams": {
        # What LaunchAssetChoosePartitionsDialog sends: the asset keys, the days of the chosen
        # range one by one, and the UI's tag.
        "tags": [{"key": "dagster/from_ui", "value": "true"}],
        "assetSelection": [{"path": [name]} for name in ASSET_NAMES],
        "partitionNames": [d.isoformat() for d in days],
        "fromFailure": False,
        **params,
    }})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill_id = launched["backfillId"]
    status = ""
    while status not in FINISHED:
        if time.monotonic() - started > BACKFILL_TIMEOUT_S:
            pytest.fail(f"backfill still {status} after {BACKFILL_TIMEOUT_S}s:\n"
                        f"{servers.servers.tail('daemon')}")
        servers.servers.alive()
        time.sleep(0.5)
        answer = servers.servers.graphql(BACKFILL, {"id": backfill_id})[
            "partitionBackfillOrError"]
        assert answer["__typename"] == "PartitionBackfill", answer
        status = answer["status"]
    print(f"backfill {backfill_id}: {status} {time.monotonic() - started:.1f}s after launch")
    return UiBackfill(servers.servers, servers.data_dir, days, backfill_id, status,
                      before_files, _files(servers.data_dir), before_rows)


@pytest.fixture(scope="module")
def ui_backfill(servers: Servers) -> UiBackfill:
    """The four assets over DAYS from the asset catalog's Materialize dialog: the assets'
    common job is dagster's implicit asset job, so the dialog sends no job (an asset backfill)."""
    return launch_and_wait(servers, DAYS)


def _runs(ui: UiBackfill) -> list[dict[str, Any]]:
    answer = ui.servers.graphql(RUNS, {"filter": {"tags": [
        {"key": "dagster/backfill", "value": ui.backfill_id}]}})
    return list(answer["runsOrError"]["results"])


def _one_tagged_run(ui: UiBackfill, job: str) -> dict[str, Any]:
    assert ui.status in ("COMPLETED", "COMPLETED_SUCCESS"), ui.servers.tail("daemon")
    runs = _runs(ui)
    assert len(runs) == 1, [(r["runId"], r["assetSelection"]) for r in runs]
    run = runs[0]
    assert run["status"] == "SUCCESS"
    assert run["jobName"] == job
    tags = {t["key"]: t["value"] for t in run["tags"]}
    assert tags["sentinel/pipeline"] == "daily"  # what the run queue limits on
    assert tags["dagster/from_ui"] == "true"
    assert (tags["dagster/asset_partition_range_start"],
            tags["dagster/asset_partition_range_end"]) == (str(ui.days[0]), str(ui.days[-1]))
    return run


def _wrote_exactly_the_days(ui: UiBackfill) -> None:
    after = ui.after_files
    assert set(after) == set(ui.before_files)  # no day that was not there before
    rewritten = {p.relative_to(ui.data_dir).as_posix()
                 for p, mtime in after.items() if ui.before_files[p] != mtime}
    assert rewritten == {f"{t}/date={d}/data.parquet" for t in ASSET_NAMES for d in ui.days}
    # Same inputs, same rows: every day was computed from its baselines and history, not from
    # nothing (an empty anomalies file would differ here).
    store = TableStore(str(ui.data_dir))
    for (table, day), before in ui.before_rows.items():
        pd.testing.assert_frame_equal(store.read_partition(table, day), before,
                                      obj=f"{table} {day}")


def test_a_ui_backfill_of_the_four_assets_is_one_tagged_run(ui_backfill: UiBackfill) -> None:
    # dagster's implicit asset job (the asset pages'), tagged by the run queue
    run = _one_tagged_run(ui_backfill, "__ASSET_JOB")
    assert sorted(k["path"][0] for k in run["assetSelection"]) == sorted(ASSET_NAMES)


def test_a_ui_backfill_writes_exactly_the_selected_days(ui_backfill: UiBackfill) -> None:
    _wrote_exactly_the_days(ui_backfill)


def test_a_backfill_from_the_daily_jobs_page_is_one_run_of_the_job(
    ui_backfill: UiBackfill, servers: Servers
) -> None:
    """From the job's page the dialog names the job's partition set (a job backfill)."""
    days = [date(2025, 3, 24), date(2025, 3, 25), date(2025, 3, 26)]
    backfill = launch_and_wait(servers, days, selector={
        "partitionSetName": "sentinel_daily_job_partition_set",
        "repositorySelector": {"repositoryLocationName": "sentinel",
                               "repositoryName": "__repository__"}})
    _one_tagged_run(backfill, "sentinel_daily_job")
    _wrote_exactly_the_days(backfill)


def _metadata(ui: UiBackfill, asset: str) -> dict[str, list[dict[str, Any]]]:
    """partition -> the materialisations of that day (metadata by label) from the run."""
    answer = ui.servers.graphql(MATERIALISATIONS, {"key": {"path": [asset]},
                                                   "partitions": [str(d) for d in ui.days]})
    run_ids = {r["runId"] for r in _runs(ui)}
    out: dict[str, list[dict[str, Any]]] = {str(d): [] for d in ui.days}
    for event in answer["assetOrError"]["assetMaterializations"]:
        if event["runId"] in run_ids:
            out[event["partition"]].append({
                e["label"]: e.get("intValue", e.get("floatValue", e.get("text")))
                for e in event["metadataEntries"]})
    return out


def test_each_day_of_a_ui_backfill_shows_its_own_metadata(ui_backfill: UiBackfill) -> None:
    store = TableStore(str(ui_backfill.data_dir))
    for asset in ASSET_NAMES:
        events = _metadata(ui_backfill, asset)
        # one materialisation per day and asset: nothing counted twice in the UI
        assert {day: len(found) for day, found in events.items()} == {str(d): 1 for d in DAYS}
        for day in DAYS:
            assert events[str(day)][0]["dagster/row_count"] == len(store.read_partition(asset,
                                                                                        day))
    alerts = _metadata(ui_backfill, "annotated_alerts")
    assert {str(d): alerts[str(d)][0]["alerts"] for d in DAYS} == {
        str(d): n for d, n in ALERTS_PER_DAY.items()}  # 1, 0 and 2, not 3 on every day
    costs = _metadata(ui_backfill, "raw_daily_costs")
    for day in DAYS:
        raw = store.read_partition("raw_daily_costs", day)
        assert costs[str(day)][0]["total_cost"] == round(float(raw["cost"].sum()), 2)


# ------------------------------------------------------------------ in process
def _by_day(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, dict[str, Any]]:
    return {str(m.partition): {k: v.value for k, v in m.metadata.items()}
            for m in result.asset_materializations_for_node(asset)}


def test_a_range_run_records_each_days_own_counts_and_totals(
    demo_backfill: Backfill, backfill_copy: Path, instance: dg.DagsterInstance
) -> None:
    result = run_days(instance, DAYS[0], DAYS[-1])
    store = TableStore(str(backfill_copy))
    alerts = _by_day(result, "annotated_alerts")
    assert {day: meta["alerts"] for day, meta in alerts.items()} == {
        str(d): n for d, n in ALERTS_PER_DAY.items()}
    for day in DAYS:
        rows = store.read_partition("annotated_alerts", day)
        assert alerts[str(day)]["dagster/row_count"] == len(rows)
        assert alerts[str(day)]["total_impact"] == round(float(rows["impact"].clip(lower=0).sum()),
                                                         2)
    anomalies = _by_day(result, "cost_anomalies")
    raw = _by_day(result, "raw_daily_costs")
    baselines = _by_day(result, "cost_baselines")
    for day in DAYS:
        assert anomalies[str(day)]["dagster/row_count"] == len(
            store.read_partition("cost_anomalies", day))
        assert raw[str(day)]["total_cost"] == round(float(
            store.read_partition("raw_daily_costs", day)["cost"].sum()), 2)
        first = max(day - timedelta(days=90), date(2025, 1, 1))  # the first partition
        assert baselines[str(day)]["history_read"] == f"{first}..{day - timedelta(days=1)}"
        stored = store.read_partition("cost_baselines", day)
        assert baselines[str(day)]["series_with_autocorrelated_noise"] == int(
            (stored["autocorr"] > 0).sum())
        assert baselines[str(day)]["series_with_episodes_left_out"] == int(
            (stored["episode_days_left_out"] > 0).sum())
        assert baselines[str(day)]["series_with_monthly_costs"] == int(
            (stored["monthly_cost"] > 0).sum())
        assert baselines[str(day)]["monthly_cost_total"] == round(float(
            stored["monthly_cost"].sum()), 2)
    # Not the range's figures copied onto each day: the days differ.
    assert len({meta["total_cost"] for meta in raw.values()}) == len(DAYS)
    # Money is rounded to cents.
    assert all(round(m["total_cost"], 2) == m["total_cost"] for m in raw.values())


def test_the_run_queue_tags_every_run_that_writes_a_sentinel_table() -> None:
    """Runs of the asset pages (dagster's asset job) get the tag the queue limits on; runs that
    have it, or write nothing of Sentinel's, are left alone."""
    from sentinel_pipeline.defs.checks import RAW_FRESHNESS_CHECK
    from sentinel_pipeline.defs.run_queue import pipeline_tags

    tag = {"sentinel/pipeline": "daily"}
    one_asset = frozenset({dg.AssetKey("cost_baselines")})
    assert pipeline_tags(dg.DagsterRun("__ASSET_JOB", asset_selection=one_asset)) == tag
    assert pipeline_tags(dg.DagsterRun("__ASSET_JOB")) == tag  # every asset
    assert pipeline_tags(dg.DagsterRun("__ASSET_JOB", asset_selection=frozenset(
        {dg.AssetKey("elsewhere")}))) == {}
    # the freshness sensor's run evaluates a check and writes nothing
    assert pipeline_tags(dg.DagsterRun("__ASSET_JOB", asset_check_selection=frozenset(
        {RAW_FRESHNESS_CHECK}))) == {}
    assert pipeline_tags(dg.DagsterRun("sentinel_daily_job", tags=tag)) == {}
    assert pipeline_tags(dg.DagsterRun("sentinel_weekly_digest_job")) == {}


def test_anomalies_without_that_days_baselines_fail_naming_the_days(
    demo_backfill: Backfill, backfill_copy: Path, instance: dg.DagsterInstance
) -> None:
    """A UI backfill that selects cost_scores without cost_baselines, or cost_anomalies without
    cost_scores, on days whose inputs were never computed, fails rather than writing empty
    (quiet) days."""
    day = date(2025, 4, 2)  # after the demo backfill: raw written below, baselines never
    assert run_days(instance, date(2025, 4, 1), day, assets=["raw_daily_costs"]).success
    for asset, missing in (("cost_scores", "cost_baselines"), ("cost_anomalies", "cost_scores")):
        result = run_days(instance, date(2025, 4, 1), day, raise_on_error=False, assets=[asset])
        assert not result.success
        message = _failure(result)
        assert f"{asset} needs {missing} for 2025-04-01..2025-04-02, which was never " \
               "materialised" in message
        assert "sentinel backfill --start 2025-04-01 --end 2025-04-02" in message
        assert not (backfill_copy / asset / "date=2025-04-01").exists()


def test_baselines_over_a_never_loaded_raw_day_fail_naming_it(
    demo_backfill: Backfill, backfill_copy: Path, instance: dg.DagsterInstance
) -> None:
    """A raw day never materialised inside the history would count as a day without spend."""
    day = date(2025, 4, 3)  # raw of 04-01 and 04-02 never loaded; 03-31 and before are
    result = run_days(instance, day, day, raise_on_error=False)
    assert not result.success
    message = _failure(result)
    assert "never materialised for 2025-04-01..2025-04-02" in message
    assert "sentinel backfill --start 2025-04-01 --end 2025-04-02" in message
    assert not (backfill_copy / "cost_baselines" / f"date={day}").exists()


def _failure(result: dg.ExecuteInProcessResult) -> str:
    return "\n".join(failure_messages(result))
