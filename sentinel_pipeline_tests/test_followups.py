"""Issue 16, the life of an anomaly on Slack: each episode's news lands on its alert's own
message (the status edited in with chat.update, one thread reply when it is resolved or
accepted), exactly once across ticks, reruns, restarts and a crash mid-post, through the real
slack_sdk client against the local fake Slack and through the real sensor on an instance."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from sentinel_pipeline.definitions import defs
from sentinel_pipeline.defs.resources import AlertSinkResource, StorageResource
from sentinel_pipeline.delivery.deliver import deliver_day
from sentinel_pipeline.delivery.followups import follow_up_day
from sentinel_pipeline.delivery.ledger import (
    LEDGER_PATH,
    DeliveryLedger,
    alert_key,
    followup_key,
    message_key,
    write_state,
)
from sentinel_pipeline.delivery.routing import Router
from sentinel_pipeline.delivery.sinks import OutboxSink, SlackSink
from sentinel_pipeline.schema import EPISODE_COLUMNS, conform, episode_key
from sentinel_pipeline.storage import TableStore
from sentinel_pipeline_tests.fake_slack import FakeSlack, fake_slack
from sentinel_pipeline_tests.test_delivery_faults import DyingSink, Killed
from sentinel_pipeline_tests.test_slack_delivery import DAY, _alert, _write_day

TOKEN = "xoxb-test-secret-token-follow"
D = DAY.isoformat()
A, B = _alert(1), _alert(0)  # A: the larger alert (its message is posted first)
KEY_A, KEY_B = alert_key(A), alert_key(B)


def _episode(alert: dict[str, Any], day: date, status: str, days: int, impact: float,
             **extra: Any) -> dict[str, Any]:
    return {"usage_date": day, "service": alert["service"], "account_id": alert["account_id"],
            "region": alert["region"], "owner": "", "kind": alert["kind"],
            "episode_id": episode_key(alert["service"], alert["account_id"], alert["region"],
                                      "", DAY),
            "anomaly_start": DAY, "alert_day": DAY, "alert_key": alert_key(alert),
            "status": status, "days": days, "actual_cost": 180.0, "expected_cost": 100.0,
            "impact_to_date": impact, "resolved_on": day if status == "resolved" else None,
            "verdict": extra.pop("verdict", ""), "verdict_by": extra.pop("verdict_by", ""),
            "currency": "USD", **extra}


def _write_episodes(store: TableStore, day: date, rows: list[dict[str, Any]]) -> None:
    store.write_partition("anomaly_episodes", day, conform(pd.DataFrame(rows), EPISODE_COLUMNS))


def _text(message: dict[str, Any]) -> str:
    return json.dumps(message.get("blocks"), ensure_ascii=False) + message.get("text", "")


@pytest.fixture
def store(tmp_path: Path) -> TableStore:
    store = TableStore(str(tmp_path / "data"))
    _write_day(store, [B, A])
    return store


def _delivered(store: TableStore, slack: FakeSlack) -> tuple[SlackSink, dict[str, str]]:
    """Both alerts posted as messages of their own; their ts by alert key."""
    sink = SlackSink(TOKEN, slack.url, timeout=5)
    deliver_day(store, sink, DeliveryLedger(store), Router("#finops"), D, charts=False)
    ledger = DeliveryLedger(store)
    return sink, {k: ledger.alert_message(k).ts for k in (KEY_A, KEY_B)}  # type: ignore[union-attr]


def test_ongoing_edits_the_message_resolved_replies_once_in_its_thread(
    store: TableStore,
) -> None:
    day1, day2 = DAY + timedelta(days=1), DAY + timedelta(days=2)
    _write_episodes(store, day1, [_episode(A, day1, "ongoing", 2, 250.0),
                                  _episode(B, day1, "resolved", 1, 100.0)])
    with fake_slack() as slack:
        sink, ts = _delivered(store, slack)
        top = len(slack.top_level())
        first = follow_up_day(store, sink, DeliveryLedger(store), day1.isoformat())
        # No new top-level message for an ongoing episode: its own message is edited.
        assert len(slack.top_level()) == top == 2
        a = slack.message_at(ts[KEY_A])
        assert "Still running:* day 2, $250.00 above expected so far" in _text(a)
        assert "Service 001" in _text(a) and "React :white_check_mark:" in _text(a)
        # Resolved: one reply in B's own thread, and B's message says so too.
        [reply] = slack.replies()
        assert reply["thread_ts"] == ts[KEY_B] and reply["channel"] == "#finops"
        assert reply["text"] == "Resolved after 1 days, $100.00 above expected in total."
        key = followup_key("resolved", _episode(B, day1, "resolved", 1, 0)["episode_id"])
        assert reply["metadata"]["event_payload"]["key"] == key
        assert "Resolved* after 1 days" in _text(slack.message_at(ts[KEY_B]))
        assert len(first.replies) == 1 and len(first.updates) == 2
        assert {u["ts"] for u in slack.updates} == {ts[KEY_A], ts[KEY_B]}

        # A second tick (or a restart with a fresh ledger object): nothing posted or edited.
        again = follow_up_day(store, sink, DeliveryLedger(store), day1.isoformat())
        assert (again.replies, again.updates) == ([], [])
        assert len(slack.posts) == 3 and len(slack.updates) == 2

        # The next day: still running, the status moves on; a rerun of day 1 never turns it
        # back.
        _write_episodes(store, day2, [_episode(A, day2, "ongoing", 3, 330.0)])
        follow_up_day(store, sink, DeliveryLedger(store), day2.isoformat())
        assert "day 3, $330.00 above expected" in _text(slack.message_at(ts[KEY_A]))
        rerun = follow_up_day(store, sink, DeliveryLedger(store), day1.isoformat())
        assert rerun.updates == [] and "day 3" in _text(slack.message_at(ts[KEY_A]))
        assert len(slack.posts) == 3 and len(slack.updates) == 3
    assert TOKEN not in (Path(store.root) / LEDGER_PATH).read_text()


def test_accepted_replies_with_who_and_why_from_the_feedback_table(store: TableStore) -> None:
    day1 = DAY + timedelta(days=1)
    store.write_table("alert_feedback", pd.DataFrame([{
        "alert_key": KEY_A, "user_id": "U0ALICE", "verdict": "planned",
        "reason": "gp3 migration <!channel>", "source": "reply"}]))
    _write_episodes(store, day1, [_episode(A, day1, "accepted", 2, 180.0, verdict="planned",
                                           verdict_by="U0ALICE")])
    with fake_slack() as slack:
        sink, ts = _delivered(store, slack)
        follow_up_day(store, sink, DeliveryLedger(store), day1.isoformat())
        follow_up_day(store, sink, DeliveryLedger(store), day1.isoformat())
        [reply] = slack.replies()
    assert reply["thread_ts"] == ts[KEY_A]
    assert reply["text"] == ("Accepted as planned by <@U0ALICE>: gp3 migration "
                             "&lt;!channel&gt;.")
    assert "Accepted as planned by <@U0ALICE>" in _text(slack.message_at(ts[KEY_A]))


def test_a_reply_interrupted_by_a_crash_is_found_in_the_thread_not_posted_twice(
    store: TableStore,
) -> None:
    day1 = DAY + timedelta(days=1)
    _write_episodes(store, day1, [_episode(B, day1, "resolved", 1, 100.0)])
    with fake_slack() as slack:
        sink, ts = _delivered(store, slack)
        with pytest.raises(Killed):  # dies right after Slack kept the reply
            follow_up_day(store, DyingSink(sink), DeliveryLedger(store), day1.isoformat())
        assert len(slack.replies()) == 1
        key = followup_key("resolved", _episode(B, day1, "resolved", 1, 0)["episode_id"])
        assert list(json.loads((Path(store.root) / LEDGER_PATH).read_text())["pending"]) == [key]
        result = follow_up_day(store, sink, DeliveryLedger(store), day1.isoformat())
        assert len(slack.replies()) == 1 and "found in the thread" in result.replies[0]
        assert any(c["method"] == "conversations.replies" and c["ts"] == ts[KEY_B]
                   for c in slack.history_calls)
        ledger = DeliveryLedger(store)
        assert ledger.followup_sent(key) and ledger.data["pending"] == {}
        follow_up_day(store, sink, ledger, day1.isoformat())
        assert len(slack.replies()) == 1


def test_alerts_of_an_old_day_message_get_their_reply_in_its_thread_and_no_edit(
    tmp_path: Path,
) -> None:
    """Decided: an alert delivered in a day message (before issue 16) shares that message, so
    it is not edited; its resolved / accepted news goes in that message's thread, naming it."""
    store = TableStore(str(tmp_path / "data"))
    _write_day(store, [B, A])
    day1 = DAY + timedelta(days=1)
    _write_episodes(store, day1, [_episode(A, day1, "resolved", 2, 210.0),
                                  _episode(B, day1, "ongoing", 2, 90.0)])
    with fake_slack() as slack:
        cid = slack.channel_id("#finops")
        old_ts = "1700000000.000100"
        slack.messages.append({"type": "message", "channel": cid, "ts": old_ts,
                               "text": "Cost anomalies for 2025-03-01: 2 alerts"})
        data = {"alerts": {k: {"delivered_at": "2025-03-02T09:00:00+00:00",
                               "channel": "#finops", "destination": "slack",
                               "reference": old_ts, "post": message_key(D, "#finops")}
                           for k in (KEY_A, KEY_B)},
                "messages": {message_key(D, "#finops"): {
                    "posted_at": "2025-03-02T09:00:00+00:00", "ts": old_ts, "channel_id": cid,
                    "reference": old_ts, "destination": "slack"}},
                "digests": {}, "pending": {}}
        write_state(store, data, 3)
        sink = SlackSink(TOKEN, slack.url, timeout=5)
        follow_up_day(store, sink, DeliveryLedger(store), day1.isoformat())
        follow_up_day(store, sink, DeliveryLedger(store), day1.isoformat())
        [reply] = slack.replies()
        assert slack.updates == []
    assert reply["thread_ts"] == old_ts
    assert reply["text"] == ("*Service 001* · account 1001 · us-east-1: Resolved after 2 days, "
                             "$210.00 above expected in total.")


def test_dry_run_follow_ups_go_to_the_outbox(store: TableStore) -> None:
    day1 = DAY + timedelta(days=1)
    _write_episodes(store, day1, [_episode(A, day1, "resolved", 2, 210.0)])
    sink = OutboxSink(store)
    deliver_day(store, sink, DeliveryLedger(store), Router("#c"), D, charts=False)
    follow_up_day(store, sink, DeliveryLedger(store), day1.isoformat())
    follow_up_day(store, sink, DeliveryLedger(store), day1.isoformat())
    outbox = Path(store.root) / "outbox"
    replies = [json.loads(p.read_text()) for p in outbox.glob(f"{day1}-*.json")]
    assert len(replies) == 1 and replies[0]["thread_ts"] == str(
        DeliveryLedger(store).alert_message(KEY_A).reference)  # type: ignore[union-attr]
    [update] = [json.loads(p.read_text()) for p in outbox.glob("*-update.json")]
    assert "Resolved* after 2 days" in json.dumps(update["blocks"])


# ---------------------------------------------------------------- the sensor on an instance
def _tick(instance: dg.DagsterInstance, data_dir: Path, cursor: str | None,
          sink: AlertSinkResource) -> dg.SensorExecutionData:
    sensor = defs.resolve_sensor_def("alert_delivery_sensor")
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor,
        resources={"storage": StorageResource(data_dir=str(data_dir)), "alert_sink": sink})
    return sensor.evaluate_tick(context)


def _materialised(instance: dg.DagsterInstance, asset: str, day: date) -> None:
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key=asset, partition=day.isoformat()))


def test_the_sensor_follows_up_episodes_once_across_ticks_and_restarts(
    instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    store = TableStore(str(data_dir))
    _write_day(store, [B, A])
    day1 = DAY + timedelta(days=1)
    with fake_slack() as slack:
        sink = AlertSinkResource(slack_bot_token=TOKEN, slack_api_url=slack.url,
                                 channel="#finops", max_age_days=100_000, charts=False)
        _materialised(instance, "annotated_alerts", DAY)
        first = _tick(instance, data_dir, None, sink)
        assert len(slack.top_level()) == 2 and slack.replies() == []
        # The next day's run: episodes (and an empty alerts day).
        _write_episodes(store, day1, [_episode(A, day1, "ongoing", 2, 250.0),
                                      _episode(B, day1, "resolved", 1, 100.0)])
        _write_day(store, [], day1)
        _materialised(instance, "anomaly_episodes", day1)
        _materialised(instance, "annotated_alerts", day1)
        second = _tick(instance, data_dir, first.cursor, sink)
        assert int(second.cursor) > int(first.cursor)
        assert len(slack.top_level()) == 2 and len(slack.replies()) == 1
        assert len(slack.updates) == 2
        third = _tick(instance, data_dir, second.cursor, sink)  # two ticks
        assert third.skip_message
        _tick(instance, data_dir, None, sink)  # a restart: the cursor lost
        assert len(slack.posts) == 3 and len(slack.updates) == 2
