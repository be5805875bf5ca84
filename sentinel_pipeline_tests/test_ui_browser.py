"""The Dagster UI in a real browser: the webserver of the project's workspace on a tmp instance
after a demo backfill, opened in Debian's headless chromium driven by Playwright.

No browser is downloaded: `make test` installs Debian's `chromium` package (make browser) and
Playwright drives that executable. Screenshots land in test-artifacts/ui/ for CI to keep.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from sentinel_pipeline_tests.conftest import run_days

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts" / "ui"
CHROMIUM = os.environ.get("SENTINEL_CHROMIUM", "/usr/bin/chromium")
INSTALL_CHROMIUM = (
    "Debian's chromium is needed for the UI test and was not found at {path}. Install it with\n"
    "  make browser\n"
    "(that is: sudo apt-get install -y --no-install-recommends chromium), or point "
    "SENTINEL_CHROMIUM at a chromium executable. Playwright's own browser download is not used."
)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
BACKFILL = (date(2025, 1, 1), date(2025, 2, 9))  # 40 days, with a known spike on 2025-01-20
ASSETS = ["raw_daily_costs", "cost_baselines", "cost_anomalies", "cost_scores",
          "anomaly_episodes", "annotated_alerts"]
TIMEOUT_MS = 20_000
UI_ENV: dict[str, str] = {}  # the webserver's DAGSTER_HOME and data dir, for tests that add runs


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(url: str, proc: subprocess.Popen[bytes], log: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"dagster-webserver exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"dagster-webserver did not answer {url} in {seconds:.0f}s:\n"
                f"{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def webserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A demo backfill into a tmp DAGSTER_HOME and the real webserver on it; yields its URL."""
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        pytest.fail(INSTALL_CHROMIUM.format(path=CHROMIUM), pytrace=False)
    root = tmp_path_factory.mktemp("ui")
    home = root / "dagster_home"
    home.mkdir()
    # nux off: the "Join the community" dialog would cover the pages.
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\nnux:\n  enabled: false\n")
    env = {**os.environ, "DAGSTER_HOME": str(home), "SENTINEL_DATA_DIR": str(root / "data"),
           "SENTINEL_SOURCE": "demo", "SLACK_BOT_TOKEN": "", "ANTHROPIC_API_KEY": ""}
    UI_ENV.update({"DAGSTER_HOME": str(home), "SENTINEL_DATA_DIR": str(root / "data")})
    port = _free_port()
    log = root / "webserver.log"
    webserver_bin = Path(sys.executable).with_name("dagster-webserver")
    with pytest.MonkeyPatch.context() as mp:
        for name in ("DAGSTER_HOME", "SENTINEL_DATA_DIR", "SENTINEL_SOURCE", "SLACK_BOT_TOKEN",
                     "ANTHROPIC_API_KEY"):
            mp.setenv(name, env[name])
        # The instance's storage exists before the webserver opens it; the webserver then loads
        # the code location (seconds) while the backfill runs, on the other core.
        instance = dg.DagsterInstance.get()
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [str(webserver_bin), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            with instance:
                assert run_days(instance, *BACKFILL).success
            url = f"http://127.0.0.1:{port}"
            _wait_for(f"{url}/server_info", proc, log, seconds=90)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def page(webserver: str) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page(viewport={"width": 1400, "height": 1000})
            tab.set_default_timeout(TIMEOUT_MS)
            yield tab
        finally:
            browser.close()


def _open(page, url: str, *texts: str, shot: str) -> None:  # noqa: ANN001  (playwright Page)
    """Go to a page, wait until each text is visible, and keep a screenshot (also on failure)."""
    page.goto(url, wait_until="domcontentloaded")
    try:
        for text in texts:
            page.get_by_text(text, exact=True).first.wait_for()
    finally:
        page.screenshot(path=str(ARTIFACTS / f"{shot}.png"), full_page=True)


def test_catalog_lists_the_daily_assets(webserver: str, page) -> None:  # noqa: ANN001
    _open(page, f"{webserver}/assets", *ASSETS, shot="assets")


def test_asset_partitions_are_shown(webserver: str, page) -> None:  # noqa: ANN001
    days = (BACKFILL[1] - BACKFILL[0]).days + 1
    _open(page, f"{webserver}/assets/cost_anomalies?view=partitions",
          f"Materialized ({days})", shot="cost_anomalies_partitions")


def test_schedule_and_sensor_are_shown(webserver: str, page) -> None:  # noqa: ANN001
    _open(page, f"{webserver}/automation", "sentinel_daily_schedule", "alert_delivery_sensor",
          shot="automation")


def test_materialisation_metadata_shows_the_anomaly_table(webserver: str, page) -> None:  # noqa: ANN001
    # Each day's materialisation has its own metadata: open the day of the known spike (the
    # last day of the backfill may have no anomaly, and then no table to show).
    _open(page, f"{webserver}/assets/cost_anomalies?view=partitions&partition=2025-01-20",
          "top_anomalies", "total_impact", shot="cost_anomalies_events")
    # The UI shows Markdown under 1,000 characters inline and longer ones behind a link.
    link = page.get_by_text("[Show Markdown]")
    if link.count():
        link.first.click()
        where = page.get_by_role("dialog")
    else:
        where = page.locator("body")
    try:
        table = where.get_by_role("table").filter(
            has=page.get_by_role("columnheader", name="actual_cost", exact=True)).first
        for header in ("service", "actual_cost", "expected_cost", "impact", "kind"):
            table.get_by_role("columnheader", name=header, exact=True).wait_for()
        assert table.get_by_role("row").count() > 1  # header and at least one anomaly
    finally:
        page.screenshot(path=str(ARTIFACTS / "top_anomalies.png"), full_page=True)


def test_feedback_from_slack_is_shown(webserver: str, page) -> None:  # noqa: ANN001
    """A reaction on an alert's Slack message (the real slack_sdk and the fake Slack) becomes a
    row of alert_feedback, materialised on the instance the webserver shows, and the asset's
    page lists who said what."""
    from sentinel_pipeline.definitions import build_definitions
    from sentinel_pipeline.delivery.deliver import deliver_day
    from sentinel_pipeline.delivery.ledger import DeliveryLedger, alert_key
    from sentinel_pipeline.delivery.routing import Router
    from sentinel_pipeline.delivery.sinks import SlackSink
    from sentinel_pipeline.storage import TableStore
    from sentinel_pipeline_tests.fake_slack import fake_slack

    token = "xoxb-ui-feedback-secret"
    day = date(2025, 1, 20)  # the known spike
    store = TableStore(UI_ENV["SENTINEL_DATA_DIR"])
    alerts = store.read_partition("annotated_alerts", day)
    assert alerts is not None and len(alerts)
    with fake_slack() as slack, pytest.MonkeyPatch.context() as mp:
        for name, value in UI_ENV.items():
            mp.setenv(name, value)
        mp.setenv("SLACK_BOT_TOKEN", token)
        mp.setenv("SENTINEL_SLACK_API_URL", slack.url)
        mp.setenv("SENTINEL_FEEDBACK_DAYS", "3650")  # the backfill's days are long past
        deliver_day(store, SlackSink(token, slack.url, timeout=5), DeliveryLedger(store),
                    Router("#cost-alerts"), day.isoformat(), charts=False)
        posted = DeliveryLedger(store).alert_message(alert_key(alerts.iloc[0]))
        assert posted is not None
        slack.person("U0ALICE", "alice")
        slack.react(slack.message_at(posted.ts), "spiral_calendar_pad", "U0ALICE")
        with dg.DagsterInstance.get() as instance:
            job = build_definitions().resolve_job_def("sentinel_feedback_job")
            assert job.execute_in_process(instance=instance).success
    assert store.read_table("alert_feedback")["verdict"].tolist() == ["planned"]
    _open(page, f"{webserver}/assets/alert_feedback?view=events", "latest_feedback",
          "verdict_planned", shot="alert_feedback")
    try:
        table = page.get_by_role("table").filter(
            has=page.get_by_role("columnheader", name="verdict", exact=True)).first
        table.get_by_role("cell", name="planned", exact=True).first.wait_for()
        table.get_by_role("cell", name="alice", exact=True).first.wait_for()
        assert token not in page.content()
    finally:
        page.screenshot(path=str(ARTIFACTS / "alert_feedback_table.png"), full_page=True)
