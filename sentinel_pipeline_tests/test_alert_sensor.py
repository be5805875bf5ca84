"""The alert sensor on a real instance: each alert delivered once, across ticks, reruns and
restarts, to the outbox in dry run and to Slack (a local fake) through the real slack_sdk."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from sentinel_pipeline.definitions import defs
from sentinel_pipeline.delivery.ledger import LEDGER_PATH
from sentinel_pipeline.resources import AlertSinkResource, StorageResource
from sentinel_pipeline.storage import TableStore
from sentinel_pipeline_tests.conftest import Backfill, run_days
from sentinel_pipeline_tests.fake_slack import fake_slack

TOKEN = "xoxb-test-secret-token-123"
ALL_AGES = 100_000  # the backfill is in 2025: let the sensor post days of any age


@pytest.fixture
def data_dir(backfill_copy: Path) -> Path:
    """Each test has its own copy of the tables, ledger and outbox."""
    return backfill_copy


def _tick(instance: dg.DagsterInstance, data_dir: Path, cursor: str | None,
          sink: AlertSinkResource) -> dg.SensorExecutionData:
    sensor = defs.resolve_sensor_def("alert_delivery_sensor")
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor,
        resources={"storage": StorageResource(data_dir=str(data_dir)), "alert_sink": sink},
    )
    return sensor.evaluate_tick(context)


def _days_with_alerts(data_dir: Path, backfill: Backfill) -> int:
    alerts = TableStore(str(data_dir)).read_range("annotated_alerts", backfill.start, backfill.end)
    return alerts["usage_date"].nunique(), len(alerts)


def _outbox(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "outbox").glob("*.json"))


def test_outbox_gets_each_alert_once_across_ticks_rerun_and_restart(
    demo_backfill: Backfill, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = AlertSinkResource(slack_bot_token="", max_age_days=ALL_AGES)
    n_days, n_alerts = _days_with_alerts(data_dir, demo_backfill)
    assert n_alerts > 0

    first = _tick(demo_backfill.instance, data_dir, None, sink)
    assert first.cursor is not None
    files = _outbox(data_dir)
    assert len(files) == n_days
    ledger = json.loads((data_dir / LEDGER_PATH).read_text())
    assert len(ledger) == n_alerts
    message = json.loads(files[0].read_text())
    assert message["channel"] == "#cost-alerts" and message["blocks"][0]["type"] == "header"

    second = _tick(demo_backfill.instance, data_dir, first.cursor, sink)
    assert second.skip_message and _outbox(data_dir) == files

    # Rerun a day with alerts: a new materialisation, the same alerts, nothing posted again.
    alerts = TableStore(str(data_dir)).read_range("annotated_alerts", demo_backfill.start,
                                                  demo_backfill.end)
    day = pd.to_datetime(alerts["usage_date"]).dt.date.iloc[-1]
    assert run_days(demo_backfill.instance, day, day).success
    third = _tick(demo_backfill.instance, data_dir, second.cursor or first.cursor, sink)
    assert int(third.cursor) > int(first.cursor)
    assert _outbox(data_dir) == files

    # A restarted sensor (cursor lost) walks everything again and still posts nothing twice.
    restarted = _tick(demo_backfill.instance, data_dir, None, sink)
    assert restarted.cursor is not None
    assert _outbox(data_dir) == files
    assert len(json.loads((data_dir / LEDGER_PATH).read_text())) == n_alerts


def test_alerts_older_than_the_age_limit_are_not_posted(
    demo_backfill: Backfill, data_dir: Path
) -> None:
    result = _tick(demo_backfill.instance, data_dir, None,
                   AlertSinkResource(slack_bot_token="", max_age_days=7))
    assert result.cursor is not None
    assert _outbox(data_dir) == []


def test_slack_receives_one_message_per_day_through_slack_sdk(
    demo_backfill: Backfill, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    n_days, _ = _days_with_alerts(data_dir, demo_backfill)
    with fake_slack() as slack:
        sink = AlertSinkResource(slack_bot_token=TOKEN, slack_api_url=slack.url,
                                 channel="#finops", max_age_days=ALL_AGES,
                                 dagster_url="http://dagster.local:3000")
        first = _tick(demo_backfill.instance, data_dir, None, sink)
        assert len(slack.posts) == n_days
        assert {p["channel"] for p in slack.posts} == {"#finops"}
        assert all(h == f"Bearer {TOKEN}" for h in slack.auth_headers)
        context = slack.posts[0]["blocks"][-1]["elements"][0]["text"]
        assert "http://dagster.local:3000/assets/annotated_alerts?partition=" in context
        again = _tick(demo_backfill.instance, data_dir, None, sink)
        assert len(slack.posts) == n_days and again.cursor == first.cursor
    assert _outbox(data_dir) == []
    captured = capsys.readouterr()
    assert TOKEN not in captured.out + captured.err


def test_slack_rate_limit_is_retried_after_the_delay(
    demo_backfill: Backfill, data_dir: Path
) -> None:
    n_days, _ = _days_with_alerts(data_dir, demo_backfill)
    with fake_slack() as slack:
        slack.script.append((429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "1"}))
        sink = AlertSinkResource(slack_bot_token=TOKEN, slack_api_url=slack.url,
                                 max_age_days=ALL_AGES)
        _tick(demo_backfill.instance, data_dir, None, sink)
        assert len(slack.posts) == n_days
        assert slack.calls == n_days + 1


def test_slack_errors_leave_alerts_undelivered_until_the_next_tick(
    demo_backfill: Backfill, data_dir: Path
) -> None:
    n_days, n_alerts = _days_with_alerts(data_dir, demo_backfill)
    with fake_slack() as slack:
        slack.script.append((200, {"ok": False, "error": "channel_not_found"}, {}))
        sink = AlertSinkResource(slack_bot_token=TOKEN, slack_api_url=slack.url,
                                 max_age_days=ALL_AGES)
        failed = _tick(demo_backfill.instance, data_dir, None, sink)
        assert not (data_dir / LEDGER_PATH).exists()
        assert slack.posts == []

        # The cursor stopped before the day that failed, so the next tick posts everything.
        healed = _tick(demo_backfill.instance, data_dir, failed.cursor, sink)
        assert len(slack.posts) == n_days
        assert len(json.loads((data_dir / LEDGER_PATH).read_text())) == n_alerts
        assert healed.cursor is not None


def test_no_materialisations_means_a_skip(instance: dg.DagsterInstance, tmp_path: Path) -> None:
    result = _tick(instance, tmp_path, None, AlertSinkResource(slack_bot_token=""))
    assert result.skip_message and "No new" in result.skip_message


def test_message_escapes_billing_text_and_stays_within_slack_limits() -> None:
    from sentinel_pipeline.delivery.message import MAX_SECTION_CHARS, build_message

    rows = []
    for i in range(120):
        rows.append({
            "usage_date": date(2025, 3, 1), "service": f"<!channel> svc {i} & <http://x|y>",
            "account_id": "1", "region": "r", "actual_cost": 100.0 + i, "expected_cost": 10.0,
            "impact": 90.0 + i, "pct_change": 900.0, "score": 9.0, "kind": "spike",
            "explanation": "x" * 5000, "where_to_look": "<@U123>", "action": "review",
        })
    message = build_message("2025-03-01", pd.DataFrame(rows))
    assert len(message["blocks"]) <= 50
    text = json.dumps(message)
    assert "<!channel>" not in text and "<@U123>" not in text and "<http://x" not in text
    assert "&lt;!channel&gt;" in text
    sections = [b for b in message["blocks"] if b["type"] == "section"]
    assert all(len(b["text"]["text"]) <= MAX_SECTION_CHARS for b in sections)
    assert "svc 119" in sections[0]["text"]["text"]  # largest impact first
    assert "110 more alert(s)" in message["blocks"][-1]["elements"][0]["text"]


@pytest.mark.parametrize(
    ("status", "error", "needle"),
    [(200, "invalid_auth", "SLACK_BOT_TOKEN is not valid"),
     (500, "internal_error", "retried on the next tick")],
)
def test_slack_refusals_are_logged_clearly_without_the_token(
    demo_backfill: Backfill, data_dir: Path, capsys: pytest.CaptureFixture[str],
    status: int, error: str, needle: str,
) -> None:
    with fake_slack() as slack:
        slack.script.extend([(status, {"ok": False, "error": error}, {})] * 50)
        sink = AlertSinkResource(slack_bot_token=TOKEN, slack_api_url=slack.url,
                                 max_age_days=ALL_AGES)
        _tick(demo_backfill.instance, data_dir, None, sink)
        assert slack.posts == []
    assert not (data_dir / LEDGER_PATH).exists()
    log = capsys.readouterr().err  # the sensor's log, as the daemon shows it
    assert needle in log
    assert TOKEN not in log
