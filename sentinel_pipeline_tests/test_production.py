"""The production instance (deploy/dagster.yaml) for real: PostgreSQL storage at 127.0.0.1:5432
and the data dir on S3 (a moto server), driven through the real job, schedule and sensor.

PostgreSQL is required, not optional: when it is unreachable these tests fail and say how to
start it, so CI can never pass without having exercised the production storage.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import boto3
import dagster as dg
import psycopg2
import pytest
import yaml
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

from sentinel_pipeline.definitions import defs
from sentinel_pipeline.defs.resources import AlertSinkResource, StorageResource
from sentinel_pipeline.storage import TableStore
from sentinel_pipeline_tests.conftest import run_days

DEPLOY_CONFIG = Path(__file__).resolve().parents[1] / "deploy" / "dagster.yaml"
PG = {"host": os.environ.get("SENTINEL_TEST_PG_HOST", "127.0.0.1"),
      "port": int(os.environ.get("SENTINEL_TEST_PG_PORT", "5432")),
      "user": os.environ.get("SENTINEL_TEST_PG_USER", "postgres"),
      "password": os.environ.get("SENTINEL_TEST_PG_PASSWORD", "")}
START_POSTGRES = (
    "PostgreSQL is not reachable at {host}:{port} ({error}). Start it with:\n"
    "  pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start\n"
    "(or `apt-get install -y postgresql` first on a fresh Debian machine; the tests need a "
    "superuser `postgres` with trust or SENTINEL_TEST_PG_PASSWORD auth on 127.0.0.1)."
)
# 10 days of history before the schedule's day: what the production storage is tested with is
# the runs, not the statistics, and the 20th's known spike alerts after 5 days of history already.
# Each day stores a dozen events in PostgreSQL.
BACKFILL = (date(2025, 1, 10), date(2025, 1, 19))
# 09:00 UTC on the 21st: the schedule's run is for the 20th, a day with a known demo spike.
SCHEDULE_TICK = datetime(2025, 1, 21, 9, 0, tzinfo=UTC)
# The README's event settings for production (Operations: "Dagster's event log in big
# backfills"): a range run's events written in batches, its planned partitions announced in one
# event per asset.
PRODUCTION_EVENT_SETTINGS = {"DAGSTER_EVENT_BATCH_SIZE": "1000",
                             "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true"}
ALL_AGES = 100_000  # the demo days are in 2025: let the sensor post days of any age


def _connect(dbname: str) -> Any:
    try:
        conn = psycopg2.connect(dbname=dbname, connect_timeout=5, **PG)
    except psycopg2.OperationalError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        pytest.fail(START_POSTGRES.format(error=first_line, **PG), pytrace=False)
    conn.autocommit = True
    return conn


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    """A fresh database for this test module, dropped afterwards (runs in parallel CI jobs
    never share one)."""
    name = f"sentinel_ci_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = _connect("postgres")
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def prod_instance(pg_database: str, s3_env: str, tmp_path: Path,
                  monkeypatch: pytest.MonkeyPatch) -> Iterator[dg.DagsterInstance]:
    """DAGSTER_HOME holding deploy/dagster.yaml unchanged, the DAGSTER_PG_* variables it reads,
    and SENTINEL_DATA_DIR on a fresh S3 bucket: the environment the README tells ops to set."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY_CONFIG, home / "dagster.yaml")
    for var, value in {"DAGSTER_HOME": str(home), "DAGSTER_PG_HOST": PG["host"],
                       "DAGSTER_PG_PORT": str(PG["port"]), "DAGSTER_PG_USER": PG["user"],
                       "DAGSTER_PG_PASSWORD": PG["password"], "DAGSTER_PG_DB": pg_database,
                       "SENTINEL_SOURCE": "demo", "SLACK_BOT_TOKEN": "",
                       **PRODUCTION_EVENT_SETTINGS}.items():
        monkeypatch.setenv(var, value)
    bucket = f"sentinel-prod-{uuid.uuid4().hex[:8]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    monkeypatch.setenv("SENTINEL_DATA_DIR", f"s3://{bucket}/sentinel")
    instance = dg.DagsterInstance.get()
    try:
        yield instance
    finally:
        instance.dispose()


def _runs_in_postgres(database: str) -> dict[str, str]:
    """run_id -> status, read straight from Dagster's runs table."""
    conn = _connect(database)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT run_id, status FROM runs")
            return dict(cur.fetchall())
    finally:
        conn.close()


def test_deploy_config_loads_every_key(pg_database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for var, value in {"DAGSTER_PG_HOST": PG["host"], "DAGSTER_PG_PORT": str(PG["port"]),
                       "DAGSTER_PG_USER": PG["user"], "DAGSTER_PG_PASSWORD": PG["password"],
                       "DAGSTER_PG_DB": pg_database}.items():
        monkeypatch.setenv(var, value)
    config = yaml.safe_load(DEPLOY_CONFIG.read_text())
    with dg.instance_for_test(overrides=config) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        queue = instance.run_coordinator.get_run_queue_config()
        assert {"key": "sentinel/pipeline", "limit": 1} in queue.tag_concurrency_limits
        assert instance.run_monitoring_enabled and not instance.telemetry_enabled
    # The same loader rejects a misspelt key, so the test above would catch one in the file.
    typo = {**config, "run_monitoring": {"enabld": True}}
    with pytest.raises(dg.DagsterInvalidConfigError):
        with dg.instance_for_test(overrides=typo):
            pass
    # Every run of the job carries the tag the queue limits on.
    assert defs.resolve_job_def("sentinel_daily_job").tags["sentinel/pipeline"] == "daily"


def test_job_schedule_and_sensor_on_postgres_and_s3(prod_instance: dg.DagsterInstance,
                                                    pg_database: str) -> None:
    assert isinstance(prod_instance.run_storage, PostgresRunStorage)
    data_dir = os.environ["SENTINEL_DATA_DIR"]

    backfill = run_days(prod_instance, *BACKFILL)
    assert backfill.success
    # With the production event settings, every asset of the range run is announced once and
    # each of its days is materialised (what the UI's partition bars read).
    planned = prod_instance.get_records_for_run(
        backfill.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED).records
    assets = defs.resolve_job_def("sentinel_daily_job").asset_layer.executable_asset_keys
    daily = {key for key in assets if defs.resolve_assets_def(key).partitions_def is not None}
    assert sorted(r.asset_key.to_user_string() for r in planned if r.asset_key) == sorted(
        key.to_user_string() for key in daily)
    days = {str(date.fromordinal(d)) for d in range(BACKFILL[0].toordinal(),
                                                    BACKFILL[1].toordinal() + 1)}
    for key in daily:
        assert prod_instance.get_materialized_partitions(key) == days, key

    # The schedule's tick at 09:00 UTC asks for yesterday; its run request is executed as is.
    schedule = defs.resolve_schedule_def("sentinel_daily_schedule")
    tick = schedule.evaluate_tick(dg.build_schedule_context(
        instance=prod_instance, scheduled_execution_time=SCHEDULE_TICK))
    assert tick.run_requests is not None and len(tick.run_requests) == 1
    request = tick.run_requests[0]
    assert request.partition_key == "2025-01-20"
    scheduled = defs.resolve_job_def("sentinel_daily_job").execute_in_process(
        instance=prod_instance, partition_key=request.partition_key,
        tags={**request.tags, "dagster/schedule_name": schedule.name})
    assert scheduled.success

    runs = _runs_in_postgres(pg_database)
    assert runs == {backfill.run_id: "SUCCESS", scheduled.run_id: "SUCCESS"}
    run = prod_instance.get_run_by_id(scheduled.run_id)
    assert run is not None and run.tags["sentinel/pipeline"] == "daily"
    assert run.tags["sentinel/trigger"] == "schedule"
    latest = prod_instance.fetch_materializations(dg.AssetKey("annotated_alerts"), limit=1).records
    assert latest[0].partition_key == "2025-01-20"
    store = TableStore(data_dir)
    assert store.partitions("raw_daily_costs")[-1] == date(2025, 1, 20)
    alerts = store.read_partition("annotated_alerts", date(2025, 1, 20))
    assert alerts is not None and len(alerts) > 0

    # The sensor tick reads the materialisations from PostgreSQL and writes the outbox to S3.
    sensor = defs.resolve_sensor_def("alert_delivery_sensor")
    resources = {"storage": StorageResource(data_dir=data_dir),
                 "alert_sink": AlertSinkResource(slack_bot_token="", max_age_days=ALL_AGES)}
    result = sensor.evaluate_tick(dg.build_sensor_context(instance=prod_instance,
                                                          resources=resources))
    assert result.cursor is not None
    outbox = store.list_dir("outbox")
    assert any(name.startswith("2025-01-20-") for name in outbox), outbox
    again = sensor.evaluate_tick(dg.build_sensor_context(
        instance=prod_instance, cursor=result.cursor, resources=resources))
    assert again.skip_message and store.list_dir("outbox") == outbox


def test_scale_out_examples_of_the_readme_are_valid_config() -> None:
    """The README's multiprocess run config and EcsRunLauncher block pass dagster's own config
    validation (they are not run here: no ECS cluster)."""
    from dagster._config import validate_config
    from dagster_aws.ecs import EcsRunLauncher

    job = defs.resolve_job_def("sentinel_daily_job")
    dg.validate_run_config(job, {"execution": {"config": {"multiprocess": {"max_concurrent": 4}}}})
    ecs = {"task_definition": "sentinel-run", "container_name": "run",
           "run_resources": {"cpu": "1024", "memory": "4096"}, "secrets_tag": "sentinel"}
    assert validate_config(EcsRunLauncher.config_type(), ecs).success
    assert not validate_config(EcsRunLauncher.config_type(), {**ecs, "task_defn": "x"}).success
