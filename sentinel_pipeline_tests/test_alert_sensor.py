"""The alert sensor on a real instance: each alert delivered once, across ticks, reruns and
restarts, to the outbox in dry run and to Slack (a local fake) through the real slack_sdk:
success, 429 then success, 500 forever, timeouts, malformed JSON, refusals, routing, a rerun
that finds a new anomaly (a message of its own). One message per alert (issue 16); the
episodes' follow-ups (thread replies, edits) are tested in test_followups.py."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from sentinel_pipeline.definitions import defs
from sentinel_pipeline.defs.resources import AlertSinkResource, StorageResource
from sentinel_pipeline.delivery.ledger import LEDGER_PATH
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




def _sink(slack_url: str = "", **kwargs: object) -> AlertSinkResource:
    """Slack through the fake when a URL is given, else dry run; charts off (tested apart)."""
    base: dict[str, object] = {"max_age_days": ALL_AGES, "charts": False}
    if slack_url:
        base.update(slack_bot_token=TOKEN, slack_api_url=slack_url)
    base.update(kwargs)
    return AlertSinkResource(**base)  # type: ignore[arg-type]


def _ledger(data_dir: Path) -> dict[str, dict[str, object]]:
    return json.loads((data_dir / LEDGER_PATH).read_text())


def _delivered(data_dir: Path) -> int:
    path = data_dir / LEDGER_PATH
    return len(json.loads(path.read_text())["alerts"]) if path.exists() else 0


def test_outbox_gets_each_alert_once_across_ticks_rerun_and_restart(
    demo_backfill: Backfill, data_dir: Path
) -> None:
    sink = _sink()
    n_days, n_alerts = _days_with_alerts(data_dir, demo_backfill)
    assert n_alerts > 0

    first = _tick(demo_backfill.instance, data_dir, None, sink)
    assert first.cursor is not None
    files = _outbox(data_dir)
    # One file per alert; the episodes' follow-ups (replies, status edits) are files too.
    messages = [f for f in files if "thread_ts" not in json.loads(f.read_text())
                and "update_of" not in json.loads(f.read_text())]
    assert len(messages) == n_alerts
    assert _delivered(data_dir) == n_alerts
    assert _ledger(data_dir)["messages"] == {}
    assert all(e["kind"] == "alert" for e in _ledger(data_dir)["alerts"].values())
    message = json.loads(messages[0].read_text())
    assert message["channel"] == "#cost-alerts" and message["blocks"][0]["type"] == "header"

    second = _tick(demo_backfill.instance, data_dir, first.cursor, sink)
    assert second.skip_message and _outbox(data_dir) == files

    # Rerun a day with alerts: a new materialisation, the same alerts, nothing posted again.
    alerts = TableStore(str(data_dir)).read_range("annotated_alerts", demo_backfill.start,
                                                  demo_backfill.end)
    day = pd.to_datetime(alerts["usage_date"]).dt.date.iloc[-1]
    assert run_days(demo_backfill.instance, day, day).success
    third = _tick(demo_backfill.instance, data_dir, first.cursor, sink)
    assert int(third.cursor) > int(first.cursor)
    assert _outbox(data_dir) == files

    # A restarted sensor (cursor lost) walks everything again and still posts nothing twice.
    restarted = _tick(demo_backfill.instance, data_dir, None, sink)
    assert restarted.cursor is not None
    assert _outbox(data_dir) == files
    assert _delivered(data_dir) == n_alerts


def test_alerts_older_than_the_age_limit_are_not_posted(
    demo_backfill: Backfill, data_dir: Path
) -> None:
    result = _tick(demo_backfill.instance, data_dir, None, _sink(max_age_days=7))
    assert result.cursor is not None
    assert _outbox(data_dir) == []


def test_slack_receives_one_message_per_alert_through_slack_sdk(
    demo_backfill: Backfill, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, n_alerts = _days_with_alerts(data_dir, demo_backfill)
    with fake_slack() as slack:
        sink = _sink(slack.url, channel="#finops", dagster_url="http://dagster.local:3000")
        first = _tick(demo_backfill.instance, data_dir, None, sink)
        assert len(slack.top_level()) == n_alerts
        posts = len(slack.posts)  # with the episodes' follow-up replies
        assert {p["channel"] for p in slack.posts} == {"#finops"}
        assert all(h == f"Bearer {TOKEN}" for h in slack.auth_headers)
        context = slack.posts[0]["blocks"][-1]["elements"][0]["text"]
        assert ("http://dagster.local:3000/assets/annotated_alerts?view=partitions&partition="
                in context)
        assert "React :white_check_mark: expected" in context
        second = _tick(demo_backfill.instance, data_dir, first.cursor, sink)  # two ticks
        assert second.skip_message and len(slack.posts) == posts
        updates = len(slack.updates)
        restarted = _tick(demo_backfill.instance, data_dir, None, sink)  # cursor lost
        assert len(slack.posts) == posts and restarted.cursor == first.cursor
        assert len(slack.updates) == updates  # the status edits are not made again
    assert _outbox(data_dir) == []
    captured = capsys.readouterr()
    assert TOKEN not in captured.out + captured.err


def test_slack_rate_limit_is_retried_after_the_delay(
    demo_backfill: Backfill, data_dir: Path
) -> None:
    _, n_alerts = _days_with_alerts(data_dir, demo_backfill)
    with fake_slack() as slack:
        slack.script.append((429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "1"}))
        _tick(demo_backfill.instance, data_dir, None, _sink(slack.url))
        assert len(slack.top_level()) == n_alerts and _delivered(data_dir) == n_alerts
        assert slack.calls == len(slack.posts) + len(slack.updates) + 1
        assert slack.call_times[1] - slack.call_times[0] >= 1.0  # Retry-After honoured


def test_slack_down_for_a_while_then_each_alert_delivered_once(
    demo_backfill: Backfill, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, n_alerts = _days_with_alerts(data_dir, demo_backfill)
    with fake_slack() as slack:
        sink = _sink(slack.url)
        slack.script.extend([(500, {"ok": False, "error": "internal_error"}, {})] * 1000)
        failed = _tick(demo_backfill.instance, data_dir, None, sink)
        again = _tick(demo_backfill.instance, data_dir, failed.cursor, sink)
        assert failed.skip_message and again.skip_message
        assert slack.posts == [] and _delivered(data_dir) == 0
        assert slack.calls == 2  # one attempt per tick: no hammering while Slack is down
        slack.script.clear()
        healed = _tick(demo_backfill.instance, data_dir, again.cursor, sink)
        assert len(slack.top_level()) == n_alerts and _delivered(data_dir) == n_alerts
        posts = len(slack.posts)
        _tick(demo_backfill.instance, data_dir, healed.cursor, sink)
        _tick(demo_backfill.instance, data_dir, None, sink)
        assert len(slack.posts) == posts
    log = capsys.readouterr().err
    assert "internal_error" in log and "retried on the next tick" in log and TOKEN not in log


def test_slack_timeout_leaves_alerts_for_the_next_tick(
    demo_backfill: Backfill, data_dir: Path
) -> None:
    _, n_alerts = _days_with_alerts(data_dir, demo_backfill)
    with fake_slack() as slack:
        sink = _sink(slack.url, timeout_seconds=0.3)
        slack.delay_seconds = 1.0
        failed = _tick(demo_backfill.instance, data_dir, None, sink)
        assert failed.skip_message and _delivered(data_dir) == 0
        slack.delay_seconds = 0.0
        _tick(demo_backfill.instance, data_dir, failed.cursor, sink)
        assert len(slack.top_level()) == n_alerts and _delivered(data_dir) == n_alerts


def test_malformed_slack_answer_is_an_error_and_retried(
    demo_backfill: Backfill, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, n_alerts = _days_with_alerts(data_dir, demo_backfill)
    with fake_slack() as slack:
        slack.script.append((200, b"<html>upstream proxy error", {}))
        sink = _sink(slack.url)
        failed = _tick(demo_backfill.instance, data_dir, None, sink)
        assert failed.skip_message and _delivered(data_dir) == 0
        _tick(demo_backfill.instance, data_dir, failed.cursor, sink)
        assert len(slack.top_level()) == n_alerts and _delivered(data_dir) == n_alerts
    assert "non-JSON" in capsys.readouterr().err


def test_no_materialisations_means_a_skip(instance: dg.DagsterInstance, tmp_path: Path) -> None:
    result = _tick(instance, tmp_path, None, _sink())
    assert result.skip_message and "No new" in result.skip_message


@pytest.mark.parametrize(
    ("status", "error", "needle"),
    [(200, "invalid_auth", "SLACK_BOT_TOKEN is not valid"),
     (200, "channel_not_found", "channel #cost-alerts does not exist"),
     (500, "internal_error", "retried on the next tick")],
)
def test_slack_refusals_are_logged_clearly_without_the_token(
    demo_backfill: Backfill, data_dir: Path, capsys: pytest.CaptureFixture[str],
    status: int, error: str, needle: str,
) -> None:
    with fake_slack() as slack:
        slack.script.extend([(status, {"ok": False, "error": error}, {})] * 200)
        result = _tick(demo_backfill.instance, data_dir, None, _sink(slack.url))
        assert slack.posts == [] and result.skip_message
    assert _delivered(data_dir) == 0  # nothing recorded as delivered (a 5xx stays pending)
    log = capsys.readouterr().err  # the sensor's log, as the daemon shows it
    assert needle in log
    assert TOKEN not in log


def test_routing_sends_each_account_to_its_channel(
    demo_backfill: Backfill, data_dir: Path, tmp_path: Path
) -> None:
    alerts = TableStore(str(data_dir)).read_range("annotated_alerts", demo_backfill.start,
                                                  demo_backfill.end)
    account = str(alerts["account_id"].value_counts().index[0])
    routes = tmp_path / "routes.yaml"
    routes.write_text(f"routes:\n  - match: {{account_id: '{account}'}}\n    channel: '#team-a'\n")
    with fake_slack() as slack:
        _tick(demo_backfill.instance, data_dir, None,
              _sink(slack.url, channel="#finops", routes_file=str(routes)))
        channels = {p["channel"] for p in slack.posts}
        assert channels == {"#finops", "#team-a"} or (
            channels == {"#team-a"} and (alerts["account_id"].astype(str) == account).all())
    ledger = _ledger(data_dir)["alerts"]
    assert len(ledger) == len(alerts)
    for key, entry in ledger.items():
        assert entry["channel"] == ("#team-a" if key.split("|")[2] == account else "#finops")


def test_bad_routes_file_fails_the_tick_with_the_fix(
    demo_backfill: Backfill, data_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(Exception, match="SENTINEL_SLACK_ROUTES file .*missing.yaml: file not"):
        _tick(demo_backfill.instance, data_dir, None,
              _sink(routes_file=str(tmp_path / "missing.yaml")))
    assert _outbox(data_dir) == []


def test_rerun_with_a_new_anomaly_posts_only_it_as_its_own_message(
    demo_backfill: Backfill, data_dir: Path
) -> None:
    store = TableStore(str(data_dir))
    alerts = store.read_range("annotated_alerts", demo_backfill.start, demo_backfill.end)
    day = pd.to_datetime(alerts["usage_date"]).dt.date.iloc[-1]
    with fake_slack() as slack:
        first = _tick(demo_backfill.instance, data_dir, None, _sink(slack.url))
        sink = _sink(slack.url, charts=True)
        n_top = len(slack.top_level())

        # The rerun of `day` (new materialisation) finds one more anomaly: a new series.
        rows = store.read_partition("annotated_alerts", day)
        extra = rows.iloc[[0]].copy()
        extra["service"], extra["impact"] = "Amazon Bedrock", 321.0
        store.write_partition("annotated_alerts", day, pd.concat([rows, extra]))
        demo_backfill.instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key="annotated_alerts", partition=day.isoformat()))

        rerun = _tick(demo_backfill.instance, data_dir, first.cursor, sink)
        assert int(rerun.cursor) > int(first.cursor)
        assert len(slack.top_level()) == n_top + 1
        new = slack.top_level()[-1]
        assert "Amazon Bedrock" in json.dumps(new) and "1 alert" not in new["text"]
        ts = _ledger(data_dir)["alerts"][new["metadata"]["event_payload"]["key"]]["ts"]
        assert slack.files[-1]["thread_ts"] == ts  # its chart in its own thread
        _tick(demo_backfill.instance, data_dir, None, sink)  # restarted: nothing new
        assert len(slack.top_level()) == n_top + 1


def test_damaged_ledger_fails_the_tick_with_the_fix_and_posts_nothing(
    demo_backfill: Backfill, data_dir: Path
) -> None:
    from sentinel_pipeline.delivery.ledger import main

    sink = _sink()
    _tick(demo_backfill.instance, data_dir, None, sink)
    files = _outbox(data_dir)
    (data_dir / LEDGER_PATH).write_text("{}")  # what used to repost every alert
    with pytest.raises(Exception, match=r"ledger\.json is damaged \(it holds an empty object"):
        _tick(demo_backfill.instance, data_dir, None, sink)  # a restart: cursor lost
    assert _outbox(data_dir) == files
    assert main(["--data-dir", str(data_dir), "restore"]) == 0
    restarted = _tick(demo_backfill.instance, data_dir, None, sink)
    assert restarted.cursor is not None and _outbox(data_dir) == files
