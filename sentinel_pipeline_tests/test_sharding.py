"""cost_baselines sharded by series across Dagster's executor (SENTINEL_SHARDS): the same rows
as unsharded, each series in the same shard every day, clear errors for bad settings."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from sentinel_pipeline import settings
from sentinel_pipeline.defs.resources import DetectionResource
from sentinel_pipeline.detection.shards import (
    in_shard,
    merge_shards,
    shard_count,
    shard_of_rows,
    shard_of_series,
)
from sentinel_pipeline.errors import ConfigError
from sentinel_pipeline.schema import SERIES_KEY

START, END = date(2025, 1, 1), date(2025, 1, 24)
DEMO = {"resources": {"source": {"config": {"demo_series": 200}}}}
MULTIPROCESS = {**DEMO, "execution": {"config": {"multiprocess": {"max_concurrent": 2}}}}
TABLES = ["raw_daily_costs", "cost_baselines", "cost_anomalies", "cost_scores",
          "anomaly_episodes", "annotated_alerts"]


def daily_job() -> dg.JobDefinition:
    """The daily job of Definitions built from the environment now (SENTINEL_SHARDS is the
    shape of the graph): reconstructable, so each step process of the multiprocess executor
    loads the same job."""
    from sentinel_pipeline.definitions import build_definitions

    return build_definitions().resolve_job_def("sentinel_daily_job")


def _range_tags() -> dict[str, str]:
    return {"dagster/asset_partition_range_start": START.isoformat(),
            "dagster/asset_partition_range_end": END.isoformat()}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes()
            for table in TABLES for p in sorted((root / table).rglob("*.parquet"))}


def _keys(n: int, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "service": [f"svc-{i}" for i in rng.integers(0, 30, n)],
        "account_id": [f"{i:012d}" for i in rng.integers(0, 50, n)],
        "region": [f"r-{i}" for i in rng.integers(0, 8, n)],
        "owner": [None if i == 0 else f"team-{i}" for i in rng.integers(0, 4, n)],
    }).drop_duplicates(ignore_index=True)


# ------------------------------------------------------------------------------ unit tests
def test_a_series_keeps_its_shard_whatever_the_day_the_order_or_the_encoding() -> None:
    keys = _keys(2000)
    shards = shard_of_series(keys, 3)
    assert set(shards) == {0, 1, 2}
    assert np.bincount(shards).min() > len(keys) / 3 * 0.8  # the whole key: balanced
    # Another day: the rows in another order, as dictionary-encoded Arrow in two chunks (as
    # the Parquet reader gives them), with a cost column.
    order = np.random.default_rng(5).permutation(len(keys))
    other = keys.iloc[order].reset_index(drop=True)
    half = len(other) // 2
    table = pa.concat_tables([
        pa.Table.from_pandas(part, preserve_index=False).cast(pa.schema(
            [(k, pa.string()) for k in SERIES_KEY]))
        for part in (other.iloc[:half], other.iloc[half:])])
    table = pa.table({k: pa.chunked_array([c.dictionary_encode() for c in table.column(k).chunks])
                      for k in SERIES_KEY} | {"cost": pa.array(np.ones(len(other)))})
    assert (shard_of_rows(table, 3) == shards[order]).all()
    # Stable across processes: fixed-key hashes, not Python's salted hash().
    assert shard_of_series(keys.head(3), 7).tolist() == shard_of_series(keys.head(3), 7).tolist()
    assert in_shard(table, 1, 3).num_rows == int((shards == 1).sum())
    assert in_shard(table, 0, 1).num_rows == len(keys)


def test_a_missing_owner_is_not_an_owner_named_by_an_empty_string() -> None:
    keys = pd.DataFrame({"service": ["s"] * 64, "account_id": [f"{i}" for i in range(64)],
                         "region": ["r"] * 64, "owner": [None] * 64})
    without = shard_of_series(keys.drop(columns="owner"), 5)
    assert (shard_of_series(keys, 5) == without).all()
    assert (shard_of_series(keys.assign(owner=""), 5) != without).any()


def test_shard_count_follows_the_series_up_to_the_most_shards() -> None:
    assert shard_count(10, 0, 4) == 4  # 0: always every shard
    assert shard_count(100_000, 250_000, 4) == 1  # below the threshold: one step
    assert shard_count(600_000, 250_000, 4) == 3
    assert shard_count(5_000_000, 250_000, 4) == 4
    with pytest.raises(ValueError):
        shard_count(10, -1, 4)


def test_merge_puts_the_rows_in_the_unsharded_order() -> None:
    keys = _keys(500)
    frame = keys.sort_values(SERIES_KEY, kind="stable").reset_index(drop=True).assign(
        expected_cost=np.arange(len(keys), dtype=float))
    shards = shard_of_series(frame, 3)
    parts = [frame[shards == i].reset_index(drop=True) for i in (2, 0, 1)]
    pd.testing.assert_frame_equal(merge_shards(parts), frame)
    assert merge_shards([frame.head(0), frame]) is frame


@pytest.mark.parametrize("raw", ["three", "-1", "65", "2.5"])
def test_a_bad_shard_setting_fails_naming_the_variable_and_the_fix(raw: str) -> None:
    with pytest.raises(ConfigError, match=r"SENTINEL_SHARDS='.*' is not a number of shards: "
                                          r"use a whole number from 0"):
        settings.shards({"SENTINEL_SHARDS": raw})
    assert settings.shards({}) == 0
    assert settings.shards({"SENTINEL_SHARDS": " 4 "}) == 4


def test_a_negative_shard_threshold_is_refused() -> None:
    with pytest.raises(Exception, match="shard_series"):
        DetectionResource(shard_series=-1)


def test_a_merge_never_takes_the_shard_of_another_run(tmp_path: Path) -> None:
    from sentinel_pipeline.defs.assets.baselines import BaselineShard
    from sentinel_pipeline.defs.resources import StorageResource
    from sentinel_pipeline.defs.shards import ShardIOManager

    manager = ShardIOManager(storage=StorageResource(data_dir=str(tmp_path)))
    part = BaselineShard({START: _keys(10)}, {START}, 2)

    def written(run_id: str) -> dg.OutputContext:
        return dg.build_output_context(step_key="cost_baselines.shard_1", name="result",
                                       run_id=run_id)

    manager.handle_output(written("run-a"), part)
    loaded = manager.load_input(dg.build_input_context(upstream_output=written("run-a")))
    pd.testing.assert_frame_equal(loaded.frames[START], part.frames[START])
    manager.handle_output(written("run-b"), part)  # another sharded run of the same step
    with pytest.raises(dg.Failure, match=r"shard_1 \(run run-a\).*\(run run-b overwrote it\)"):
        manager.load_input(dg.build_input_context(upstream_output=written("run-a")))


def test_the_sharded_asset_is_the_same_asset_in_the_ui() -> None:
    from sentinel_pipeline.defs.shards import baselines_asset

    plain, sharded = baselines_asset(0), baselines_asset(3)
    assert plain.key == sharded.key == dg.AssetKey("cost_baselines")
    for attribute in ("check_keys", "backfill_policy", "partitions_def", "group_names_by_key",
                      "descriptions_by_key"):
        assert getattr(plain, attribute) == getattr(sharded, attribute), attribute
    spec, sharded_spec = next(iter(plain.specs)), next(iter(sharded.specs))
    assert spec.deps == sharded_spec.deps and spec.kinds == sharded_spec.kinds
    assert sorted(n.name for n in sharded.node_def.nodes) == ["merge", "shard_0", "shard_1",
                                                              "shard_2"]


# ------------------------------------------------------------------------------ runs
def test_sharded_backfill_with_processes_writes_the_unsharded_bytes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """24 days x 200 demo series: one in-process run unsharded, one with cost_baselines in 3
    shards on the multiprocess executor (2 at a time), on a stored instance (step processes
    share no memory: the shards' frames go through the IO manager). Every table's files are
    byte for byte the same."""
    monkeypatch.setenv("SENTINEL_SOURCE", "demo")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "")
    runs: dict[str, Path] = {}
    metadata: dict[str, dict[str, Any]] = {}
    for name, shards, shard_series, run_config in (
            ("plain", "0", "0", DEMO), ("sharded", "3", "0", MULTIPROCESS),
            # 3 shard steps, but 200 series at 150 a shard use 2 (the third returns no rows);
            # in process, the graph's steps run one after the other.
            ("threshold", "3", "150", {**DEMO, "execution": {"config": {"in_process": {}}}})):
        data = tmp_path / name
        monkeypatch.setenv("SENTINEL_DATA_DIR", str(data))
        monkeypatch.setenv("SENTINEL_SHARDS", shards)
        monkeypatch.setenv("SENTINEL_SHARD_SERIES", shard_series)
        (tmp_path / f"{name}-instance").mkdir()
        with dg.instance_for_test(temp_dir=str(tmp_path / f"{name}-instance")) as instance:
            result = _run(instance, run_config)
            assert result.success
            steps = _steps(instance, result.run_id)
            metadata[name] = _baseline_metadata(instance)
        runs[name] = data
        if name == "sharded":
            assert {"cost_baselines.shard_0", "cost_baselines.shard_1",
                    "cost_baselines.shard_2", "cost_baselines.merge"} <= steps
            assert len(_pids(instance, result.run_id)) > 1  # steps in processes of their own
            assert _logged(instance, result.run_id, "the rows of 3 shard(s) used of 3")
            # The shards' rows crossed through the data dir, one file a shard step, not under
            # the instance's storage folder.
            assert sorted(p.name for p in (data / "_shards").iterdir()) == [
                f"cost_baselines.shard_{i}.pickle" for i in range(3)]
        if name == "threshold":
            assert _logged(instance, result.run_id, "the rows of 2 shard(s) used of 3")
    plain = _files(runs["plain"])
    assert len(plain) == len(TABLES) * ((END - START).days + 1)
    for name in ("sharded", "threshold"):
        other = _files(runs[name])
        assert plain.keys() == other.keys()
        assert [k for k in plain if plain[k] != other[k]] == [], name
        assert metadata[name] == metadata["plain"], name  # each day's, and the checks'
    assert len(metadata["plain"]) == (END - START).days + 1 + 2
    assert metadata["plain"]["coverage"] is not None
    assert metadata["plain"][str(END)]["series"] >= 150
    baselines = pd.read_parquet(runs["sharded"] / "cost_baselines" / f"date={END}")
    assert len(baselines) >= 150
    # A series is in the same shard on every day, read from the day files as the shards read
    # them (each file its own dictionary and row order).
    from sentinel_pipeline.storage import TableStore

    store = TableStore(str(runs["plain"]))
    shard_by_day = []
    for day in (START, START + (END - START) // 2, END):
        table = store.read_arrow("raw_daily_costs", day, [*SERIES_KEY, "cost"])
        assert table is not None
        keys = table.select(SERIES_KEY).to_pandas().astype("string")
        shard_by_day.append(dict(zip(keys.itertuples(index=False, name=None),
                                     shard_of_rows(table, 3), strict=True)))
    common = set.intersection(*(set(d) for d in shard_by_day))
    assert len(common) >= 150
    assert all(len({d[k] for d in shard_by_day}) == 1 for k in common)


def _run(instance: dg.DagsterInstance, run_config: dict[str, Any]) -> Any:
    if "execution" not in run_config:
        return daily_job().execute_in_process(instance=instance, run_config=run_config,
                                              tags=_range_tags())
    return dg.execute_job(dg.reconstructable(daily_job), instance=instance,
                          run_config=run_config, tags=_range_tags())


def _steps(instance: dg.DagsterInstance, run_id: str) -> set[str]:
    records = instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)
    return {r.step_key for r in records if r.step_key}


def _pids(instance: dg.DagsterInstance, run_id: str) -> set[int]:
    records = instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)
    return {r.dagster_event.pid for r in records if r.dagster_event and r.dagster_event.pid}


def _logged(instance: dg.DagsterInstance, run_id: str, text: str) -> bool:
    return any(text in r.user_message for r in instance.all_logs(run_id))


@pytest.mark.integration  # importing dagster_aws.ecs opens a socket
def test_shards_run_in_processes_by_default_and_the_executor_examples_are_valid() -> None:
    """SENTINEL_SHARDS >= 2 makes the Definitions' executor multiprocess by default (the
    daemon's runs get parallel shards without run config); the README's ECS executor block
    passes dagster-aws' config validation (not run: no cluster here)."""
    from dagster._config import validate_config
    from dagster_aws.ecs import ecs_executor

    from sentinel_pipeline.definitions import default_executor

    def default(shards: int) -> Any:
        return default_executor(shards).config_schema.as_field().default_value

    assert default(0) == default(1) == {"in_process": {}}
    assert default(4) == {"multiprocess": {"max_concurrent": 4}}
    ecs = {"max_concurrent": 4, "cpu": 2048, "memory": 8192,
           "run_task_kwargs": {"launchType": "FARGATE"}}
    schema = ecs_executor.config_schema.as_field().config_type
    assert validate_config(schema, ecs).success
    assert not validate_config(schema, {**ecs, "max_concurent": 4}).success


def _baseline_metadata(instance: dg.DagsterInstance) -> dict[str, Any]:
    """cost_baselines' metadata of each day, and its check results, as the UI shows them."""
    key = dg.AssetKey("cost_baselines")
    records = instance.fetch_materializations(key, limit=1000).records
    out: dict[str, Any] = {}
    for record in records:
        materialization = record.asset_materialization
        assert materialization is not None
        out[str(materialization.partition)] = {
            k: v.value for k, v in materialization.metadata.items()}
    for check in ("coverage", "history_complete"):
        evaluation = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [dg.AssetCheckKey(key, check)])[dg.AssetCheckKey(key, check)]
        event = evaluation.event.dagster_event if evaluation and evaluation.event else None
        data = event.asset_check_evaluation_data if event else None
        out[check] = (data.passed, {k: v.value for k, v in data.metadata.items()}) if data \
            else None
    return out
