"""Slack delivery pieces on real parts: the message builder, routing files, deliver_day through
the real slack_sdk client against a local fake Slack, charts, the weekly digest job and the
run-failure sensor on a real Dagster instance."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from sentinel_pipeline.definitions import defs
from sentinel_pipeline.defs.resources import AlertSinkResource, StorageResource
from sentinel_pipeline.delivery.deliver import (
    FEEDBACK_HINT,
    MAX_ALERT_MESSAGES,
    deliver_day,
    partition_link,
)
from sentinel_pipeline.delivery.ledger import (
    LEDGER_PATH,
    DeliveryLedger,
    alert_key,
    message_key,
    write_state,
)
from sentinel_pipeline.delivery.message import (
    MAX_BLOCKS,
    MAX_HEADER_CHARS,
    MAX_SECTION_CHARS,
    build_day_message,
    build_message,
)
from sentinel_pipeline.delivery.routing import Router, load_router
from sentinel_pipeline.delivery.sinks import OutboxSink, SlackSink
from sentinel_pipeline.errors import ConfigError
from sentinel_pipeline.schema import ALERT_COLUMNS
from sentinel_pipeline.sources.root_causes import to_json
from sentinel_pipeline.storage import TableStore
from sentinel_pipeline_tests.conftest import Backfill, run_days
from sentinel_pipeline_tests.fake_slack import fake_slack

TOKEN = "xoxb-test-secret-token-456"
DAY = date(2025, 3, 1)
INJECTIONS = ["<!channel>", "<!here>", "<@U123>", "<https://evil.example|click>", "@here",
              "<!subteam^S1|@team>"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _alert(i: int, **overrides: object) -> dict[str, object]:
    row: dict[str, object] = {c: None for c in ALERT_COLUMNS}
    row.update({
        "usage_date": DAY, "service": f"Service {i:03d}", "account_id": f"{1000 + i % 3}",
        "region": "us-east-1", "actual_cost": 200.0 + i, "expected_cost": 100.0,
        "lower": 80.0, "upper": 120.0, "impact": 100.0 + i, "pct_change": 100.0 + i,
        "score": 9.0, "kind": "spike", "method": "robust", "currency": "USD",
        "anomaly_start": DAY, "alert": True, "root_causes": "",
        "explanation": f"Spend on service {i} doubled.", "likely_cause": "more usage",
        "where_to_look": "Cost Explorer, by usage type", "action": "review",
        "confidence": float("nan"), "annotator": "fallback",
    })
    row.update(overrides)
    return row


def _write_day(store: TableStore, rows: list[dict[str, object]], day: date = DAY) -> None:
    store.write_partition("annotated_alerts", day, pd.DataFrame(rows, columns=ALERT_COLUMNS))


def _write_costs(store: TableStore, services: list[str], day: date = DAY) -> None:
    """30 days of normal spend and the spike on ``day`` for each service (account 1000)."""
    for offset in range(30):
        current = day - timedelta(days=29 - offset)
        costs = [300.0 if current == day else 100.0 + offset % 7 for _ in services]
        store.write_partition("raw_daily_costs", current, pd.DataFrame({
            "usage_date": current, "service": services, "account_id": "1000",
            "region": "us-east-1", "cost": costs, "currency": "USD", "estimated": False,
            "source": "test"}))
        store.write_partition("cost_baselines", current, pd.DataFrame({
            "usage_date": current, "service": services, "account_id": "1000",
            "region": "us-east-1", "expected_cost": 103.0}))


def _all_text(message: dict[str, object]) -> str:
    return json.dumps(message, ensure_ascii=False)


# ------------------------------------------------------------------------------ message
def test_one_alert_message_with_long_names_stays_within_slack_limits_and_asks_feedback(
) -> None:
    row = pd.Series(_alert(7, service="S" * 4000, explanation="x" * 10_000,
                           account_id="9" * 500, where_to_look="w" * 5000))
    message = build_message(DAY.isoformat(), row, "http://dagster:3000/x",
                            feedback_hint=FEEDBACK_HINT, status="*Still running:* day 3")
    blocks = message["blocks"]
    assert [b["type"] for b in blocks] == ["header", "section", "section", "context"]
    assert blocks[0]["text"]["text"] == "Cost anomaly on 2025-03-01, $107.00 above expected"
    assert all(len(b["text"]["text"]) <= MAX_SECTION_CHARS for b in blocks[1:3])
    assert blocks[2]["text"]["text"] == "*Still running:* day 3"
    footer = blocks[-1]["elements"][0]["text"]
    assert ("React :white_check_mark: expected · :spiral_calendar_pad: planned · :x: not an "
            "anomaly, or reply `expected: &lt;reason&gt;`") in footer
    assert "<http://dagster:3000/x|" in footer
    assert len(message["text"]) < 200 and message["text"].startswith("Cost anomaly on 2025")


def test_day_message_for_120_alerts_with_long_names_stays_within_slack_limits() -> None:
    """The overflow of a busy day (and the day messages of earlier releases) list alerts."""
    rows = [_alert(i, service="S" * 4000 + f" {i}", explanation="x" * 10_000,
                   account_id="9" * 500, where_to_look="w" * 5000) for i in range(120)]
    message = build_day_message(DAY.isoformat(), pd.DataFrame(rows), "http://dagster:3000/x")
    blocks = message["blocks"]
    assert len(blocks) <= MAX_BLOCKS
    assert len(blocks[0]["text"]["text"]) <= MAX_HEADER_CHARS
    sections = [b for b in blocks if b["type"] == "section"]
    assert sections and all(len(b["text"]["text"]) <= MAX_SECTION_CHARS for b in sections)
    assert "120 alerts" in blocks[0]["text"]["text"]
    assert "$19,140.00" in blocks[0]["text"]["text"]  # sum of impacts 100..219
    footer = blocks[-1]["elements"][0]["text"]
    assert "110 more alert(s)" in footer and "<http://dagster:3000/x|" in footer


def test_message_escapes_mentions_and_links_from_billing_data() -> None:
    evil = " ".join(INJECTIONS) + " & co"
    rows = [_alert(0, service=evil, account_id="<@U999>", region="<!everyone>",
                   explanation=f"see {evil}", where_to_look=evil, action="<!channel>",
                   kind="<https://x|y>")]
    message = build_message(DAY.isoformat(), pd.Series(rows[0]), feedback_hint=FEEDBACK_HINT)
    text = _all_text(message)
    for attack in INJECTIONS + ["<@U999>", "<!everyone>", "<https://x|y>"]:
        if attack.startswith("<"):
            assert attack not in text
    assert "<" not in message["blocks"][1]["text"]["text"]
    assert "<" not in message["text"] and "<" not in message["blocks"][0]["text"]["text"]
    assert "<" not in message["blocks"][-1]["elements"][0]["text"]  # the hint too
    assert "&lt;!channel&gt;" in text and "&amp; co" in text
    assert "@here" not in text and "@\u200bhere" in text


def test_message_shows_root_causes_action_and_confidence_when_present() -> None:
    causes = to_json([{"region": "us-east-1", "usage_type": "BoxUsage:m5.large",
                       "actual": 900.0, "baseline": 88.0, "increase": 812.4, "share": 0.74}])
    rows = [_alert(0, root_causes=causes, action="stop", confidence=0.82),
            _alert(1)]
    day = build_day_message(DAY.isoformat(), pd.DataFrame(rows))
    assert "*Service 001*" in day["blocks"][1]["text"]["text"]  # largest impact first
    first, second = (build_message(DAY.isoformat(), pd.Series(row))["blocks"][1]["text"]["text"]
                     for row in (rows[1], rows[0]))
    assert "Where the money went" not in first and "confidence" not in first
    assert ("*Where the money went* (growth over each line's 14-day average): us-east-1 "
            "BoxUsage:m5.large +$812.40 (74 % of the growth)") in second
    assert "action: *stop*" in second and "confidence 82%" in second
    assert "Actual $200.00 vs expected $100.00 (+100 %), impact $100.00" in second


def test_partition_link_is_the_dagster_ui_partition_page() -> None:
    assert partition_link("http://dagster.local:3000/", "2025-03-01") == (
        "http://dagster.local:3000/assets/annotated_alerts?view=partitions&partition=2025-03-01")
    assert partition_link("", "2025-03-01") is None


# ------------------------------------------------------------------------------ routing
def test_routing_file_first_match_wins_and_default_channel(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(
        "routes:\n"
        "  - match: {account_id: 1001}\n    channel: '#team-a'\n"
        "  - match: {service: Service 002}\n    channel: '#ml'\n"
    )
    router = load_router(str(path), "#cost-alerts")
    assert router.channel_for(_alert(1)) == "#team-a"  # account 1001
    assert router.channel_for(_alert(4)) == "#team-a"  # account 1001 matches first
    assert router.channel_for(_alert(2)) == "#ml"
    assert router.channel_for(_alert(3)) == "#cost-alerts"
    assert load_router("", "#x").channel_for(_alert(1)) == "#x"


@pytest.mark.parametrize(
    ("content", "needle"),
    [(None, "file not found"),
     ("routes: [match: {service: x}\n", "not valid YAML"),
     ("routes:\n  - match: {service: x}\n    channel: '#a'\n    chanel: '#b'\n",
      "unknown key(s) ['chanel']"),
     ("routes:\n  - match: {team: x}\n    channel: '#a'\n", "unknown field(s) ['team']"),
     ("routes:\n  - match: {service: x}\n", "needs a 'channel'"),
     ("rules: []\n", "unknown top-level key(s) ['rules']")],
)
def test_bad_routing_files_name_the_file_and_the_fix(
    tmp_path: Path, content: str | None, needle: str
) -> None:
    path = tmp_path / "routes.yaml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError) as info:
        load_router(str(path), "#cost-alerts")
    assert needle in str(info.value) and str(path) in str(info.value)
    assert "SENTINEL_SLACK_ROUTES" in str(info.value)


# ---------------------------------------------------------------- deliver_day on fake Slack
def test_120_alerts_in_one_day_one_message_each_up_to_the_cap_with_charts(
    tmp_path: Path,
) -> None:
    store = TableStore(str(tmp_path / "data"))
    _write_day(store, [_alert(i) for i in range(120)])
    _write_costs(store, ["Service 119"])
    routes = tmp_path / "routes.yaml"
    routes.write_text("routes:\n  - match: {account_id: '1001'}\n    channel: '#team-a'\n")
    router = load_router(str(routes), "#finops")
    with fake_slack() as slack:
        sink = SlackSink(TOKEN, slack.url, timeout=5)
        result = deliver_day(store, sink, DeliveryLedger(store), router, DAY.isoformat())
        assert result.sent == 120
        cap = MAX_ALERT_MESSAGES
        per_channel = {c: [p for p in slack.posts if p["channel"] == c]
                       for c in ("#finops", "#team-a")}
        # The largest `cap` alerts of each channel alone, the rest listed in one message.
        for channel, posts in per_channel.items():
            assert len(posts) == cap + 1, channel
            keys = [p["metadata"]["event_payload"]["key"] for p in posts]
            assert keys[-1] == message_key(DAY.isoformat(), channel)
            assert keys[0] == alert_key(_alert(119 if channel == "#finops" else 118))
        overflow = per_channel["#team-a"][-1]["blocks"][0]["text"]["text"]
        assert "20 alerts" in overflow  # 40 alerts for account 1001 (i % 3 == 1), 20 alone
        for post in slack.posts:
            assert len(post["blocks"]) <= MAX_BLOCKS and not post.get("thread_ts")
            assert all(len(b["text"]["text"]) <= MAX_SECTION_CHARS
                       for b in post["blocks"] if b["type"] == "section")
        # One chart per message, in that message's own thread, uploaded to the channel ID.
        assert len(slack.files) == len(slack.posts) == 2 * (cap + 1)
        ids = {slack.channel_ids["#finops"], slack.channel_ids["#team-a"]}
        assert {f["channel_id"] for f in slack.files} == ids
        assert sorted(f["thread_ts"] for f in slack.files) == sorted(
            m["ts"] for m in slack.messages)
        assert all(data.startswith(PNG_MAGIC) for data in slack.uploads.values())
        ledger = DeliveryLedger(store)
        own = ledger.alert_message(alert_key(_alert(119)))
        assert own is not None and own.ts == slack.messages[0]["ts"]
        assert own.channel_id == slack.channel_ids["#finops"]
        again = deliver_day(store, sink, DeliveryLedger(store), router, DAY.isoformat())
        assert again.sent == 0 and again.already_sent == 120
        assert len(slack.posts) == 2 * (cap + 1)


def test_the_cap_counts_the_messages_a_rerun_finds_already_posted(tmp_path: Path) -> None:
    store = TableStore(str(tmp_path / "data"))
    _write_day(store, [_alert(i) for i in range(2)])
    sink, router = OutboxSink(store), Router("#c")
    first = deliver_day(store, sink, DeliveryLedger(store), router, DAY.isoformat(),
                        charts=False, max_messages=2)
    assert first.sent == 2 and DeliveryLedger(store).alert_message_count(DAY.isoformat(),
                                                                         "#c") == 2
    _write_day(store, [_alert(i) for i in range(4)])  # a rerun finds two more
    again = deliver_day(store, sink, DeliveryLedger(store), router, DAY.isoformat(),
                        charts=False, max_messages=2)
    assert (again.sent, again.already_sent) == (2, 2)
    ledger = DeliveryLedger(store)
    assert ledger.message(DAY.isoformat(), "#c") is not None  # one message listing both
    assert [ledger.alert_message(alert_key(_alert(i))) is None for i in range(4)] == [
        False, False, True, True]


def test_chart_title_escapes_billing_names_as_the_message_does(tmp_path: Path) -> None:
    """The upload's title carries the service, account and region: it is escaped like the
    message, so a name cannot mention the channel or a user, nor add a link."""
    evil = "Billing <!channel> <@U123> & co"
    store = TableStore(str(tmp_path / "data"))
    _write_day(store, [_alert(0, service=evil, account_id="1000", region="<!here>")])
    _write_costs(store, [evil])
    with fake_slack() as slack:
        result = deliver_day(store, SlackSink(TOKEN, slack.url, timeout=5),
                             DeliveryLedger(store), Router("#finops"), DAY.isoformat())
        assert result.sent == 1 and len(slack.files) == 1
        (title,) = [f["title"] for f in slack.files[0]["files"]]
    assert title == ("Billing &lt;!channel&gt; &lt;@U123&gt; &amp; co (1000, &lt;!here&gt;), "
                     "2025-03-01")
    assert "<" not in title and ">" not in title


def test_a_failed_second_channel_keeps_the_first_delivered(tmp_path: Path) -> None:
    from sentinel_pipeline.delivery.sinks import DeliveryError

    store = TableStore(str(tmp_path / "data"))
    _write_day(store, [_alert(i) for i in range(6)])
    routes = tmp_path / "routes.yaml"
    routes.write_text("routes:\n  - match: {account_id: '1001'}\n    channel: '#zz-missing'\n")
    router = load_router(str(routes), "#finops")
    with fake_slack() as slack:
        sink = SlackSink(TOKEN, slack.url, timeout=5)
        slack.refuse_channels["#zz-missing"] = "channel_not_found"
        with pytest.raises(DeliveryError) as info:
            deliver_day(store, sink, DeliveryLedger(store), router, DAY.isoformat(),
                        charts=False)
        assert info.value.channel_only and "#zz-missing does not exist" in str(info.value)
        ledger = DeliveryLedger(store)
        assert len(ledger.alerts) == 4 and len(slack.posts) == 4
        assert all(ledger.alert_message(k) for k in ledger.alerts)
        assert ledger.data["pending"] == {}  # refused: certainly not posted
        # Next time only the missing channel's alerts are tried again.
        slack.refuse_channels.clear()
        retry = deliver_day(store, sink, ledger, router, DAY.isoformat(), charts=False)
        assert retry.sent == 2 and retry.already_sent == 4
        assert [p["channel"] for p in slack.posts[4:]] == ["#zz-missing"] * 2


def test_chart_failure_does_not_block_the_alert(tmp_path: Path) -> None:
    store = TableStore(str(tmp_path / "data"))
    _write_day(store, [_alert(0)])
    warnings: list[str] = []
    with fake_slack() as slack:
        slack.method_script["files.getUploadURLExternal"] = [
            (200, {"ok": False, "error": "missing_scope"}, {})]
        result = deliver_day(store, SlackSink(TOKEN, slack.url, timeout=5), DeliveryLedger(store),
                             Router("#finops"), DAY.isoformat(), warn=warnings.append)
        assert result.sent == 1 and len(slack.posts) == 1 and slack.files == []
    assert len(warnings) == 1 and "chart" in warnings[0] and "files:write" in warnings[0]
    assert TOKEN not in warnings[0]


def test_dry_run_writes_message_and_chart_next_to_each_other(tmp_path: Path) -> None:
    store = TableStore(str(tmp_path / "data"))
    _write_day(store, [_alert(i) for i in range(3)])
    _write_costs(store, ["Service 002"])
    deliver_day(store, OutboxSink(store), DeliveryLedger(store), Router("#cost-alerts"),
                DAY.isoformat())
    outbox = tmp_path / "data" / "outbox"
    messages = sorted(outbox.glob("2025-03-01-cost-alerts-*.json"))
    charts = sorted(outbox.glob("2025-03-01-cost-alerts-*-chart.png"))
    assert len(messages) == 3 and len(charts) == 3
    assert all(chart.read_bytes().startswith(PNG_MAGIC) for chart in charts)
    payloads = [json.loads(m.read_text()) for m in messages]
    assert {p["channel"] for p in payloads} == {"#cost-alerts"}
    assert {p["metadata"]["event_payload"]["key"] for p in payloads} == {
        alert_key(_alert(i)) for i in range(3)}
    ledger = DeliveryLedger(store)
    for i in range(3):  # each alert's chart sits next to its own message
        own = ledger.alert_message(alert_key(_alert(i)))
        assert own is not None and Path(own.reference) in messages


def test_version_1_ledger_is_still_honoured(tmp_path: Path) -> None:
    store = TableStore(str(tmp_path / "data"))
    store.write_json(LEDGER_PATH, {"2025-03-01 00:00:00|Service 000|1000|us-east-1": {
        "delivered_at": "2025-03-02T00:00:00+00:00", "destination": "slack", "reference": "1.1"}})
    _write_day(store, [_alert(0), _alert(1)])
    result = deliver_day(store, OutboxSink(store), DeliveryLedger(store), Router("#c"),
                         DAY.isoformat(), charts=False)
    assert (result.sent, result.already_sent) == (1, 1)
    assert json.loads((tmp_path / "data" / LEDGER_PATH).read_text())["version"] == 3


def test_alerts_of_an_old_day_message_are_not_posted_again_and_new_ones_stand_alone(
    tmp_path: Path,
) -> None:
    """A version 3 ledger of the release before issue 16: the day's message carried two
    alerts. A rerun finds a third: it gets a message of its own (no thread reply), the two are
    not posted again, and follow-ups find the day message for them."""
    store = TableStore(str(tmp_path / "data"))
    day = DAY.isoformat()
    keys = [alert_key(_alert(i)) for i in range(2)]
    data = {"alerts": {k: {"delivered_at": "2025-03-02T09:00:00+00:00", "channel": "#c",
                           "destination": "slack", "reference": "1700000000.000100",
                           "post": message_key(day, "#c")} for k in keys},
            "messages": {message_key(day, "#c"): {
                "posted_at": "2025-03-02T09:00:00+00:00", "ts": "1700000000.000100",
                "channel_id": "C0001", "reference": "1700000000.000100",
                "destination": "slack"}},
            "digests": {}, "pending": {}}
    write_state(store, data, 5)  # no followups section: the file as that release wrote it
    raw = json.loads((tmp_path / "data" / LEDGER_PATH).read_text())
    assert "followups" not in raw
    _write_day(store, [_alert(i) for i in range(3)])
    with fake_slack() as slack:
        result = deliver_day(store, SlackSink(TOKEN, slack.url, timeout=5),
                             DeliveryLedger(store), Router("#c"), day, charts=False)
        assert (result.sent, result.already_sent) == (1, 2)
        [post] = slack.posts
        assert not post.get("thread_ts")
        assert post["metadata"]["event_payload"]["key"] == alert_key(_alert(2))
    ledger = DeliveryLedger(store)
    assert ledger.alert_message(keys[0]) is None  # shared: not its own message
    where = ledger.thread_of(keys[0])
    assert where is not None and where[0].ts == "1700000000.000100" and where[1] is False
    assert ledger.thread_of(alert_key(_alert(2)))[1] is True  # type: ignore[index]


# ---------------------------------------------------------------------------- weekly digest
def _digest_run(instance: dg.DagsterInstance, data_dir: Path, sink: AlertSinkResource,
                week_start: str) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def("sentinel_weekly_digest_job")
    return job.execute_in_process(
        instance=instance,
        run_config={"ops": {"post_weekly_digest": {"config": {"week_start": week_start}}}},
        resources={"storage": StorageResource(data_dir=str(data_dir)), "alert_sink": sink},
    )


def test_weekly_digest_content_and_sent_once(
    demo_backfill: Backfill, backfill_copy: Path
) -> None:
    store = TableStore(str(backfill_copy))
    week = date(2025, 3, 24)
    costs = store.read_range("raw_daily_costs", week - timedelta(days=7), week + timedelta(6))
    days = pd.to_datetime(costs["usage_date"]).dt.date
    total = costs.loc[days >= week, "cost"].sum()
    before = costs.loc[days < week, "cost"].sum()
    alerts = store.read_range("annotated_alerts", week, week + timedelta(days=6))
    with fake_slack() as slack:
        sink = AlertSinkResource(slack_bot_token=TOKEN, slack_api_url=slack.url,
                                 channel="#finops", dagster_url="http://dagster:3000")
        first = _digest_run(demo_backfill.instance, backfill_copy, sink, week.isoformat())
        second = _digest_run(demo_backfill.instance, backfill_copy, sink, week.isoformat())
        assert first.success and second.success
        assert len(slack.posts) == 1 and slack.posts[0]["channel"] == "#finops"
    text = _all_text(slack.posts[0])
    assert "Weekly cost digest 2025-W13 (Mar 24 to Mar 30)" in text
    assert f"${total:,.2f} vs ${before:,.2f} the week before" in text
    assert f"*Alerts this week:* {len(alerts)}" in text
    assert "Top movers" in text and "still open" in text
    ledger = json.loads((backfill_copy / LEDGER_PATH).read_text())
    assert list(ledger["digests"]) == ["digest|2025-W13"]


def test_weekly_digest_schedule_targets_last_week_and_dry_run_writes_outbox(
    demo_backfill: Backfill, backfill_copy: Path
) -> None:
    schedule = defs.resolve_schedule_def("weekly_digest_schedule")
    assert schedule.cron_schedule == "30 9 * * 1"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    context = dg.build_schedule_context(
        instance=demo_backfill.instance,
        scheduled_execution_time=datetime(2025, 3, 31, 9, 30, tzinfo=UTC))
    request = schedule.evaluate_tick(context).run_requests[0]
    assert request.run_key == "digest-2025-W13"
    week_start = request.run_config["ops"]["post_weekly_digest"]["config"]["week_start"]
    assert week_start == "2025-03-24"
    result = _digest_run(demo_backfill.instance, backfill_copy,
                         AlertSinkResource(slack_bot_token=""), week_start)
    assert result.success
    assert len(list((backfill_copy / "outbox").glob("digest-2025-W13-cost-alerts-*.json"))) == 1


# ------------------------------------------------------------------------ run-failure alert
def test_failed_run_posts_a_short_message_with_the_step_error_and_run_link(
    sentinel_env: Path, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sensor = defs.resolve_sensor_def("run_failure_alert_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    with fake_slack() as slack:
        resources = {
            "storage": StorageResource(data_dir=str(sentinel_env)),
            "alert_sink": AlertSinkResource(slack_bot_token=TOKEN, slack_api_url=slack.url,
                                            channel="#ops", dagster_url="http://dagster:3000"),
        }

        def tick(cursor: str | None) -> dg.SensorExecutionData:
            context = dg.build_sensor_context(instance=instance, cursor=cursor,
                                              resources=resources,
                                              repository_def=defs.get_repository_def())
            return sensor.evaluate_tick(context)

        start = tick(None)  # a run-status sensor starts from "now"
        monkeypatch.setenv("SENTINEL_SOURCE", "focus")
        monkeypatch.setenv("SENTINEL_SOURCE_PATH", str(sentinel_env / "no-such-exports"))
        failed = run_days(instance, DAY, DAY, raise_on_error=False)
        assert not failed.success
        after = tick(start.cursor)
        assert len(slack.posts) == 1
        again = tick(after.cursor)
        assert len(slack.posts) == 1 and again.cursor
    post = slack.posts[0]
    text = _all_text(post)
    assert post["channel"] == "#ops"
    assert "Sentinel run failed: sentinel_daily_job (2025-03-01)" in text
    assert failed.run_id in text and f"http://dagster:3000/runs/{failed.run_id}" in text
    assert "Step raw_daily_costs failed:" in text and "no-such-exports" in text
    assert TOKEN not in text + capsys.readouterr().err


def test_doctor_checks_the_routes_file(
    sentinel_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sentinel_pipeline.doctor import run_checks

    routes = tmp_path / "routes.yaml"
    routes.write_text("routes:\n  - match: {service: x}\n    channel: '#a'\n")
    monkeypatch.setenv("SENTINEL_SLACK_ROUTES", str(routes))
    assert (True, f"Slack routes: 1 route(s) in {routes}") in run_checks()
    routes.write_text("routes:\n  - match: {service: x}\n")
    failed = [line for ok, line in run_checks() if not ok]
    assert any("needs a 'channel'" in line and str(routes) in line for line in failed)


def test_doctor_names_the_slack_scopes_the_token_lacks(
    sentinel_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One auth.test call; Slack lists the token's scopes in the x-oauth-scopes header."""
    from sentinel_pipeline.delivery.sinks import NEEDED_SCOPES
    from sentinel_pipeline.doctor import run_checks

    token = "xoxb-doctor-secret-0001"
    answer = {"ok": True, "team_id": "T0SENTINEL", "user_id": "U0SENTINEL"}
    with fake_slack() as slack:
        monkeypatch.setenv("SLACK_BOT_TOKEN", token)
        monkeypatch.setenv("SENTINEL_SLACK_API_URL", slack.url)
        slack.method_script["auth.test"] = [
            (200, answer, {"x-oauth-scopes": ",".join(NEEDED_SCOPES) + ",channels:read"}),
            (200, answer, {"x-oauth-scopes": "chat:write,files:write,channels:history"}),
            (200, {"ok": False, "error": "invalid_auth"}, {}),
            (200, answer, {}),
        ]
        complete = run_checks()
        lacking = run_checks()
        refused = run_checks()
        unknown = run_checks()
    assert (True, "Slack: token accepted, with every scope Sentinel uses") in complete
    failed = [line for ok, line in lacking if not ok]
    assert len(failed) == 1
    assert "lacks the scope(s) groups:history, reactions:read, users:read" in failed[0]
    assert any(not ok and "invalid_auth" in line for ok, line in refused)
    assert any(ok and "scopes cannot be read" in line for ok, line in unknown)
    assert token not in repr([complete, lacking, refused, unknown])
