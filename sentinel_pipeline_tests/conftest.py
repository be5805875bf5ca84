"""Shared fixtures: a tmp data dir and Dagster instance, and a helper to run the daily job.

Tests come in two layers (README, "Testing"). A test is ``integration`` when it needs something
outside the Python process under test or runs Dagster for real:

- a server or another process: PostgreSQL, chromium and the Dagster webserver, the moto S3
  server, the local Slack / Anthropic / Cost Explorer fakes, a ``sentinel`` or ``dagster``
  subprocess;
- a Dagster instance: a job, asset, sensor or schedule executed on an instance (the ``instance``
  fixture, the shared demo backfill, ``materialize``, ``execute_in_process``, the CLI commands
  that run the pipeline).

Everything else (detection, sources and storage on tmp_path files, messages, checks, settings,
loading the Definitions) is a unit test: ``pytest -m "not integration"`` runs only those, with no
PostgreSQL, browser, fake server or Dagster run. The mark is added here from what a test uses
(its fixtures and the helpers it calls, see ``_needs_integration``), or written on the test when
that cannot be seen; ``_unit_tests_stay_in_process`` fails a test left unmarked that opens a
socket, starts a process, creates a stored Dagster instance or starts a run, so the mark stays
true as tests are added.
"""

from __future__ import annotations

import inspect
import os
import socket
import subprocess
import sys
import types
import warnings
from collections.abc import Callable, Iterator
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

# ------------------------------------------------------------------ test layers
# Names whose use (a call, an attribute, a global) makes a test integration, wherever they appear
# in the test, its fixtures or the helpers of sentinel_pipeline_tests they call.
INTEGRATION_NAMES = frozenset({
    # a Dagster instance running something
    "DagsterInstance", "instance_for_test", "materialize", "materialize_to_memory",
    "execute_in_process",
    # servers and processes
    "local_server", "ThreadedMotoServer", "subprocess", "Popen", "sync_playwright", "psycopg2",
})
_TEST_PACKAGE = "sentinel_pipeline_tests"


def _code_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):  # nested functions, lambdas, comprehensions
            names |= _code_names(const)
    return names


def _needs_integration(func: Callable[..., Any], seen: set[int]) -> bool:
    """True if ``func`` or a function of the test package it refers to uses INTEGRATION_NAMES."""
    func = inspect.unwrap(func)
    func = getattr(getattr(func, "hypothesis", None), "inner_test", func)
    code = getattr(func, "__code__", None)
    if code is None or id(code) in seen:
        return False
    seen.add(id(code))
    names = _code_names(code)
    if names & INTEGRATION_NAMES:
        return True
    namespace = getattr(func, "__globals__", {})
    for name in names:
        target = namespace.get(name)
        target = inspect.unwrap(target) if callable(target) else None
        if (isinstance(target, types.FunctionType)
                and target.__module__.startswith(_TEST_PACKAGE)
                and _needs_integration(target, seen)):
            return True
    return False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("integration") or not isinstance(item, pytest.Function):
            continue
        seen: set[int] = set()
        fixtures = [d.func for defs in item._fixtureinfo.name2fixturedefs.values() for d in defs
                    if d.func.__module__.startswith(_TEST_PACKAGE)
                    and d.argname != "_unit_tests_stay_in_process"]
        if any(_needs_integration(f, seen) for f in [item.function, *fixtures]):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(autouse=True, scope="session")
def _matplotlib_font_cache() -> None:
    """Build matplotlib's font cache before any test: on a machine that never ran matplotlib
    its first import runs ``fc-list``, which the unit-test guard below would take for the
    test starting a process (a fresh CI machine failed the Slack chart test that way)."""
    import matplotlib.font_manager  # noqa: F401  (imported for its side effect)


@pytest.fixture(autouse=True)
def _unit_tests_stay_in_process(request: pytest.FixtureRequest,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A unit test (not marked integration) may not reach outside the process or run Dagster."""
    if request.node.get_closest_marker("integration"):
        return

    def refuse(what: str) -> Callable[..., Any]:
        def refused(*_args: object, **_kwargs: object) -> Any:
            # pytest.fail raises a BaseException: no `except Exception` in the code under test
            # can swallow it.
            pytest.fail(f"{request.node.nodeid} {what} but is not marked integration: mark it "
                        "@pytest.mark.integration (see conftest.py for what that means)")
        return refused

    monkeypatch.setattr(socket.socket, "connect", refuse("opened a network connection"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("opened a network connection"))
    monkeypatch.setattr(socket.socket, "bind", refuse("started a server"))
    monkeypatch.setattr(subprocess.Popen, "__init__", refuse("started a process"))
    # Resolving a resource's config builds an in-memory (ephemeral) instance: allowed. A stored
    # instance, or a run on any instance, is not.
    create_instance = dg.DagsterInstance.__init__

    def ephemeral_only(self: dg.DagsterInstance, *args: Any, **kwargs: Any) -> None:
        kind = kwargs.get("instance_type", args[0] if args else None)
        if getattr(kind, "name", None) != "EPHEMERAL":
            refuse("created a stored Dagster instance")()
        create_instance(self, *args, **kwargs)

    monkeypatch.setattr(dg.DagsterInstance, "__init__", ephemeral_only)
    for method in ("create_run", "create_run_for_job"):
        monkeypatch.setattr(dg.DagsterInstance, method, refuse("ran a Dagster job"))
    if "psycopg2" in sys.modules:
        monkeypatch.setattr(sys.modules["psycopg2"], "connect", refuse("connected to PostgreSQL"))


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
    """A Dagster instance of the test's own: ephemeral, i.e. Dagster's SQL run storage and event
    log in an in-memory SQLite database. The same storage code as SQLite files in DAGSTER_HOME,
    without a file sync per event (a run of a few days stores hundreds). The stored instances
    are tested where they matter: the CLI on DAGSTER_HOME (test_cli, test_faults), PostgreSQL
    (test_production), the UI's webserver (test_ui_browser)."""
    (tmp_path / "instance").mkdir()
    test_instance = dg.DagsterInstance.ephemeral(tempdir=str(tmp_path / "instance"))
    try:
        yield test_instance
    finally:
        test_instance.dispose()


def run_days(
    instance: dg.DagsterInstance,
    start: date,
    end: date,
    run_config: dict[str, Any] | None = None,
    raise_on_error: bool = True,
    assets: list[str] | None = None,
) -> dg.ExecuteInProcessResult:
    """Run the real daily job of the Definitions for a day or a range, in one run (only
    ``assets`` of it when given: the others' files must be there already)."""
    from sentinel_pipeline.definitions import defs

    job = defs.resolve_job_def("sentinel_daily_job")
    selection = [dg.AssetKey(a) for a in assets] if assets else None
    if start == end:
        return job.execute_in_process(instance=instance, partition_key=start.isoformat(),
                                      run_config=run_config, raise_on_error=raise_on_error,
                                      asset_selection=selection)
    tags = {"dagster/asset_partition_range_start": start.isoformat(),
            "dagster/asset_partition_range_end": end.isoformat()}
    return job.execute_in_process(instance=instance, tags=tags, run_config=run_config,
                                  raise_on_error=raise_on_error, asset_selection=selection)


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
    """90 days of demo data through the four assets, in one run, on a real Dagster instance.

    The instance is ephemeral, as the ``instance`` fixture's: a 90-day run stores ~800 events,
    and on disk each is a commit and a file sync, about a quarter of the run's time.
    """
    root = tmp_path_factory.mktemp("backfill")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SENTINEL_DATA_DIR", str(root / "data"))
        mp.setenv("SENTINEL_SOURCE", "demo")
        mp.setenv("SLACK_BOT_TOKEN", "")
        (root / "instance").mkdir()
        test_instance = dg.DagsterInstance.ephemeral(tempdir=str(root / "instance"))
        try:
            result = run_days(test_instance, BACKFILL_START, BACKFILL_END)
            yield Backfill(test_instance, root / "data", result)
        finally:
            test_instance.dispose()


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
