"""Issue 16, feedback from Slack without a public endpoint: reactions and thread replies on an
alert's own message become alert_feedback rows (one per alert and user), read through the real
slack_sdk client from the local fake Slack; bots, unknown or deleted users, users not allowed
and messages that are not alerts change nothing; removing a reaction removes the row; seen_at
survives reruns and restarts; the asset and the sensor on a real Dagster instance."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from sentinel_pipeline.definitions import defs
from sentinel_pipeline.defs.resources import AlertSinkResource, StorageResource
from sentinel_pipeline.delivery.deliver import deliver_day
from sentinel_pipeline.delivery.feedback import (
    FEEDBACK_TABLE,
    collect_feedback,
    parse_reactions,
    reply_verdict,
)
from sentinel_pipeline.delivery.ledger import DeliveryLedger, alert_key
from sentinel_pipeline.delivery.routing import Router
from sentinel_pipeline.delivery.sinks import OutboxSink, SlackSink
from sentinel_pipeline.schema import FEEDBACK_COLUMNS, episode_key
from sentinel_pipeline.storage import TableStore
from sentinel_pipeline_tests.fake_slack import FakeSlack, fake_slack
from sentinel_pipeline_tests.test_slack_delivery import DAY, _alert, _write_day

TOKEN = "xoxb-test-secret-token-feedback"
A, B = _alert(1), _alert(0)
KEY_A, KEY_B = alert_key(A), alert_key(B)
TODAY = DAY  # the alerts are of "today": inside the window
T1 = datetime(2025, 3, 2, 9, 0, tzinfo=UTC)
T2 = datetime(2025, 3, 2, 9, 5, tzinfo=UTC)


def _people(slack: FakeSlack) -> None:
    slack.person("U0ALICE", "alice")
    slack.person("U0BOB", "bob")
    slack.person("U0BOT", "costbot", is_bot=True)
    slack.person("U0GONE", "gone", deleted=True)
    slack.person("U0GUEST", "partner", team_id="T0OTHER")  # Slack Connect: another workspace


@pytest.fixture
def store(tmp_path: Path) -> TableStore:
    store = TableStore(str(tmp_path / "data"))
    _write_day(store, [B, A])
    return store


def _deliver(store: TableStore, slack: FakeSlack) -> tuple[SlackSink, dict[str, dict[str, Any]]]:
    sink = SlackSink(TOKEN, slack.url, timeout=5)
    deliver_day(store, sink, DeliveryLedger(store), Router("#finops"), DAY.isoformat(),
                charts=False)
    ledger = DeliveryLedger(store)
    messages = {k: slack.message_at(ledger.alert_message(k).ts)  # type: ignore[union-attr]
                for k in (KEY_A, KEY_B)}
    return sink, messages


def _collect(store: TableStore, sink: SlackSink | None, now: datetime = T1,
             **kwargs: Any) -> pd.DataFrame:
    collected = collect_feedback(store, sink, DeliveryLedger(store), TODAY, now=lambda: now,
                                 **kwargs)
    store.write_table(FEEDBACK_TABLE, collected.frame)
    return collected.frame


def _rows(frame: pd.DataFrame) -> set[tuple[Any, ...]]:
    return {(r.alert_key, r.user_id, r.verdict, r.reason, r.source)
            for r in frame.itertuples()}


def test_reply_verdicts_and_reaction_settings() -> None:
    assert reply_verdict("expected: nightly backfill moved") == ("expected",
                                                                 "nightly backfill moved")
    assert reply_verdict("Planned - gp3 migration") == ("planned", "gp3 migration")
    assert reply_verdict("not an anomaly") == ("not_anomaly", "")
    assert reply_verdict("Not_anomaly: test load &amp; more") == ("not_anomaly",
                                                                  "test load & more")
    for text in ("expectedly high", "the expected thing", "is this expected?", ""):
        assert reply_verdict(text) is None, text
    reactions = parse_reactions("planned=date, :spiral_calendar_pad:")
    assert reactions["planned"] == ("date", "spiral_calendar_pad")
    assert reactions["expected"] == ("white_check_mark", "heavy_check_mark")
    with pytest.raises(ValueError, match="not <verdict>=<name>"):
        parse_reactions("fine=thumbsup")


def test_reactions_and_replies_become_rows_and_others_change_nothing(
    store: TableStore,
) -> None:
    with fake_slack() as slack:
        _people(slack)
        sink, msg = _deliver(store, slack)
        slack.react(msg[KEY_A], "white_check_mark", "U0ALICE")
        slack.react(msg[KEY_A], "thumbsup", "U0BOB")  # not a verdict
        slack.reply(msg[KEY_A], "U0BOB", "planned: gp3 migration, see CHG-42")
        slack.reply(msg[KEY_A], "U0BOB", "thanks all")  # not a verdict
        slack.react(msg[KEY_B], "x", "U0BOT")  # a bot
        slack.reply(msg[KEY_B], "U0BOT", "expected: said a bot", bot=True)
        slack.react(msg[KEY_B], "x", "U0NOBODY")  # users.info: user_not_found
        slack.react(msg[KEY_B], "calendar", "U0GONE")  # deleted
        slack.reply(msg[KEY_B], "U0GUEST", "expected: we did it")  # another workspace
        # A message that is no alert of the ledger: never read.
        stray = {"channel": msg[KEY_A]["channel"], "ts": "1700000000.000001"}
        slack.messages.append({"type": "message", **stray, "text": "hello"})
        slack.react(stray, "white_check_mark", "U0ALICE")
        frame = _collect(store, sink)
        reads = [c for c in slack.read_calls if c["method"] == "reactions.get"]
    assert list(frame.columns) == FEEDBACK_COLUMNS
    assert _rows(frame) == {
        (KEY_A, "U0ALICE", "expected", "", "reaction"),
        (KEY_A, "U0BOB", "planned", "gp3 migration, see CHG-42", "reply"),
    }
    alice = frame[frame["user_id"] == "U0ALICE"].iloc[0]
    assert alice["user_name"] == "alice" and alice["channel"] == "#finops"
    assert alice["message_ts"] == msg[KEY_A]["ts"] and alice["seen_at"] == T1.isoformat()
    assert alice["episode_id"] == episode_key(A["service"], A["account_id"], A["region"], "",
                                              DAY)
    assert alice["anomaly_start"] == "2025-03-01" and alice["service"] == "Service 001"
    assert {c["timestamp"] for c in reads} == {msg[KEY_A]["ts"], msg[KEY_B]["ts"]}
    assert TOKEN not in frame.to_json()


def test_removing_a_reaction_removes_the_row_and_seen_at_survives_reruns(
    store: TableStore,
) -> None:
    with fake_slack() as slack:
        _people(slack)
        sink, msg = _deliver(store, slack)
        slack.react(msg[KEY_A], "white_check_mark", "U0ALICE")
        slack.react(msg[KEY_B], "x", "U0BOB")
        first = _collect(store, sink, now=T1)
        assert len(first) == 2
        # A rerun of the day's pipeline rewrites annotated_alerts: same alerts, same keys.
        _write_day(store, [B, A])
        slack.react(msg[KEY_A], "spiral_calendar_pad", "U0BOB")
        second = _collect(store, sink, now=T2)  # a restart: everything read back anew
        seen = {(r.alert_key, r.user_id): r.seen_at for r in second.itertuples()}
        assert seen == {(KEY_A, "U0ALICE"): T1.isoformat(), (KEY_B, "U0BOB"): T1.isoformat(),
                        (KEY_A, "U0BOB"): T2.isoformat()}
        slack.unreact(msg[KEY_A], "white_check_mark", "U0ALICE")
        third = _collect(store, sink, now=T2)
        assert _rows(third) == {(KEY_B, "U0BOB", "not_anomaly", "", "reaction"),
                                (KEY_A, "U0BOB", "planned", "", "reaction")}
        # Changing one's mind in a reply: the latest reply wins over the reaction.
        slack.reply(msg[KEY_B], "U0BOB", "expected: the load test was planned late")
        slack.reply(msg[KEY_B], "U0BOB", "not an anomaly: it was a test")
        fourth = _collect(store, sink, now=T2)
    row = fourth[(fourth["alert_key"] == KEY_B)].iloc[0]
    assert (row["verdict"], row["reason"], row["source"]) == ("not_anomaly", "it was a test",
                                                             "reply")
    stored = TableStore(store.root).read_table(FEEDBACK_TABLE)
    assert stored is not None and _rows(stored) == _rows(fourth)


def test_allowed_users_unknown_alerts_and_dry_run(store: TableStore) -> None:
    with fake_slack() as slack:
        _people(slack)
        sink, msg = _deliver(store, slack)
        slack.react(msg[KEY_A], "white_check_mark", "U0ALICE")
        slack.react(msg[KEY_A], "x", "U0BOB")
        only_bob = _collect(store, sink, allowed_users=["U0BOB"])
        assert _rows(only_bob) == {(KEY_A, "U0BOB", "not_anomaly", "", "reaction")}
        # The alert is gone from annotated_alerts (a rerun found it was no anomaly): its
        # message's feedback is about an unknown alert now and changes nothing.
        _write_day(store, [B])
        slack.react(msg[KEY_A], "calendar", "U0ALICE")
        after = _collect(store, sink)
        assert _rows(after) == _rows(only_bob)
        calls = len(slack.read_calls)
        # Dry run: no token, no Slack to read; the table stays as it is.
        dry = _collect(store, None)
        assert _rows(dry) == _rows(only_bob) and len(slack.read_calls) == calls
    outbox_store = TableStore(str(Path(store.root).parent / "dry"))
    _write_day(outbox_store, [A])
    deliver_day(outbox_store, OutboxSink(outbox_store), DeliveryLedger(outbox_store),
                Router("#c"), DAY.isoformat(), charts=False)
    assert len(collect_feedback(outbox_store, None, DeliveryLedger(outbox_store), TODAY).frame) \
        == 0


def test_slack_refusing_one_message_keeps_its_rows(store: TableStore) -> None:
    with fake_slack() as slack:
        _people(slack)
        sink, msg = _deliver(store, slack)
        slack.react(msg[KEY_A], "white_check_mark", "U0ALICE")
        slack.react(msg[KEY_B], "x", "U0BOB")
        before = _collect(store, sink)
        slack.method_script["reactions.get"] = [(200, {"ok": False,
                                                       "error": "message_not_found"}, {})]
        slack.unreact(msg[KEY_A], "white_check_mark", "U0ALICE")
        slack.unreact(msg[KEY_B], "x", "U0BOB")
        collected = collect_feedback(store, sink, DeliveryLedger(store), TODAY)
    assert len(collected.errors) == 1 and TOKEN not in collected.errors[0]
    # The message Slack did not show keeps its rows; the other one was read: its row is gone.
    assert len(collected.frame) == 1 and len(before) == 2


# ------------------------------------------------------------ the asset and the sensor
def _resources(data_dir: Path, slack_url: str = "") -> dict[str, Any]:
    sink = (AlertSinkResource(slack_bot_token=TOKEN, slack_api_url=slack_url, channel="#finops",
                              feedback_days=100_000)
            if slack_url else AlertSinkResource())
    return {"storage": StorageResource(data_dir=str(data_dir)), "alert_sink": sink}


def _tick(instance: dg.DagsterInstance, resources: dict[str, Any],
          cursor: str | None) -> dg.SensorExecutionData:
    sensor = defs.resolve_sensor_def("feedback_sensor")
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
    return sensor.evaluate_tick(context)


def _run(instance: dg.DagsterInstance, resources: dict[str, Any]) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def("sentinel_feedback_job")
    return job.execute_in_process(instance=instance, resources=resources)


def test_sensor_requests_a_run_only_when_feedback_changed_and_the_asset_writes_it(
    instance: dg.DagsterInstance, store: TableStore, capsys: pytest.CaptureFixture[str],
) -> None:
    sensor = defs.resolve_sensor_def("feedback_sensor")
    assert sensor.minimum_interval_seconds == 300
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert defs.resolve_assets_def("alert_feedback").group_names_by_key[
        dg.AssetKey("alert_feedback")] == "sentinel"
    data_dir = Path(store.root)
    dry = _tick(instance, _resources(data_dir), None)
    assert dry.skip_message and "dry run" in dry.skip_message
    with fake_slack() as slack:
        _people(slack)
        _, msg = _deliver(store, slack)
        resources = _resources(data_dir, slack.url)
        first = _tick(instance, resources, None)
        [request] = first.run_requests or []
        quiet = _tick(instance, resources, first.cursor)
        assert quiet.skip_message and not quiet.run_requests
        slack.react(msg[KEY_A], "white_check_mark", "U0ALICE")
        slack.reply(msg[KEY_A], "U0BOB", "planned: gp3 migration")
        changed = _tick(instance, resources, quiet.cursor or first.cursor)
        [again] = changed.run_requests or []
        assert again.run_key != request.run_key
        result = _run(instance, resources)
        assert result.success
        written = TableStore(str(data_dir)).read_table(FEEDBACK_TABLE)
        assert written is not None and len(written) == 2
        # Seen long ago (an earlier day's run): a rerun (a relaunch, a new process) reads the
        # table back and keeps those first-seen times.
        TableStore(str(data_dir)).write_table(
            FEEDBACK_TABLE, written.assign(seen_at="2025-03-01T10:00:00+00:00"))
        assert _run(instance, resources).success
        rerun = TableStore(str(data_dir)).read_table(FEEDBACK_TABLE)
        assert rerun is not None
        assert list(rerun["seen_at"]) == ["2025-03-01T10:00:00+00:00"] * 2
        # Back to an earlier state (the reaction removed): a new run key, not a skipped one.
        slack.unreact(msg[KEY_A], "white_check_mark", "U0ALICE")
        back = _tick(instance, resources, changed.cursor)
        [third] = back.run_requests or []
        assert third.run_key not in (request.run_key, again.run_key)
    table = TableStore(str(data_dir)).read_table(FEEDBACK_TABLE)
    assert table is not None and _rows(table) == {
        (KEY_A, "U0ALICE", "expected", "", "reaction"),
        (KEY_A, "U0BOB", "planned", "gp3 migration", "reply")}
    materialization = result.asset_materializations_for_node("alert_feedback")[0]
    meta = materialization.metadata
    assert meta["dagster/row_count"].value == 2
    assert meta["verdict_expected"].value == 1 and meta["verdict_planned"].value == 1
    assert meta["verdict_not_anomaly"].value == 0
    assert "gp3 migration" in meta["latest_feedback"].value  # type: ignore[operator]
    shown = json.dumps({k: str(v.value) for k, v in meta.items()})
    captured = capsys.readouterr()
    assert TOKEN not in shown + captured.out + captured.err
