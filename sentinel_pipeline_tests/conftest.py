"""Shared fixtures: a tmp data dir and Dagster instance, and a helper to run the daily job."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from sentinel_pipeline.settings import VARIABLES

# Safety net: no test may reach a real cloud or API. Any client a test did not point at its own
# local server (moto, the fakes) is sent to a closed local port instead of AWS, Anthropic or Slack.
_NOWHERE = "http://127.0.0.1:9"
for _name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_COST_EXPLORER",
              "AWS_ENDPOINT_URL_STS", "ANTHROPIC_BASE_URL", "SENTINEL_SLACK_API_URL"):
    os.environ.setdefault(_name, _NOWHERE + ("/api/" if _name.startswith("SENTINEL") else ""))
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")

# Every documented variable exists before the definitions load, so each resource field is an
# EnvVar (read when a run starts) and a test's monkeypatch.setenv reaches the runs it makes;
# monkeypatch then restores these values rather than deleting them. Production may leave any
# unset (test_settings.py covers that path).
for _variable in VARIABLES.values():
    if _variable.name != "DAGSTER_HOME":
        os.environ.setdefault(_variable.name, _variable.default)

warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)


@pytest.fixture
def sentinel_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Environment of a fresh install: demo source, data dir and DAGSTER_HOME under tmp_path."""
    data_dir = tmp_path / "data"
    monkeypatch.setenv("SENTINEL_DATA_DIR", str(data_dir))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    monkeypatch.setenv("SENTINEL_SOURCE", "demo")
    monkeypatch.setenv("SENTINEL_SOURCE_PATH", "")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "")
    monkeypatch.setenv("SENTINEL_DAGSTER_URL", "")
    return data_dir


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    (tmp_path / "instance").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "instance")) as test_instance:
        yield test_instance


def run_days(
    instance: dg.DagsterInstance,
    start: date,
    end: date,
    run_config: dict[str, Any] | None = None,
    raise_on_error: bool = True,
) -> dg.ExecuteInProcessResult:
    """Run the real daily job of the Definitions for a day or a range, in one run."""
    from sentinel_pipeline.definitions import defs

    job = defs.resolve_job_def("sentinel_daily_job")
    if start == end:
        return job.execute_in_process(instance=instance, partition_key=start.isoformat(),
                                      run_config=run_config, raise_on_error=raise_on_error)
    tags = {"dagster/asset_partition_range_start": start.isoformat(),
            "dagster/asset_partition_range_end": end.isoformat()}
    return job.execute_in_process(instance=instance, tags=tags, run_config=run_config,
                                  raise_on_error=raise_on_error)


BACKFILL_START = date(2025, 1, 1)
BACKFILL_END = date(2025, 3, 31)


class Backfill:
    """A demo backfill run once per test session, shared read-only by the tests."""

    def __init__(self, instance: dg.DagsterInstance, data_dir: Path,
                 result: dg.ExecuteInProcessResult) -> None:
        self.instance = instance
        self.data_dir = data_dir
        self.result = result
        self.start = BACKFILL_START
        self.end = BACKFILL_END


@pytest.fixture(scope="session")
def demo_backfill(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backfill]:
    """90 days of demo data through the four assets, in one run, on a real test instance."""
    root = tmp_path_factory.mktemp("backfill")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SENTINEL_DATA_DIR", str(root / "data"))
        mp.setenv("SENTINEL_SOURCE", "demo")
        mp.setenv("SLACK_BOT_TOKEN", "")
        (root / "instance").mkdir()
        with dg.instance_for_test(temp_dir=str(root / "instance")) as test_instance:
            result = run_days(test_instance, BACKFILL_START, BACKFILL_END)
            yield Backfill(test_instance, root / "data", result)


@pytest.fixture
def backfill_copy(demo_backfill: Backfill, tmp_path: Path,
                  monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the backfilled tables (its own ledger, outbox and reruns), set as the
    data dir of the runs the test makes."""
    import shutil

    target = tmp_path / "data"
    shutil.copytree(demo_backfill.data_dir, target)
    monkeypatch.setenv("SENTINEL_DATA_DIR", str(target))
    monkeypatch.setenv("SENTINEL_SOURCE", "demo")
    return target


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on a random local port: real boto3/pyarrow clients, no real AWS."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Fake credentials and the endpoint, as the AWS SDKs read them from the environment."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    return s3_endpoint
