"""The sensors: new alerts to Slack exactly once (and their episodes' follow-ups), feedback
read back from Slack, failed runs to Slack, estimated days re-fetched, and the freshness check
of raw_daily_costs evaluated.

The two that talk to people post through the ``alert_sink`` resource: Slack when
SLACK_BOT_TOKEN is set, otherwise the outbox folder under the data dir (dry run).
"""

import json
import socket
import time
import warnings
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta

import dagster as dg

from sentinel_pipeline.defs.checks import raw_freshness_checks
from sentinel_pipeline.defs.jobs import sentinel_daily_job, sentinel_feedback_job
from sentinel_pipeline.defs.resources import (
    AlertSinkResource,
    CostSourceResource,
    StorageResource,
)
from sentinel_pipeline.delivery.deliver import deliver_day
from sentinel_pipeline.delivery.failure import build_failure_message
from sentinel_pipeline.delivery.feedback import slack_state
from sentinel_pipeline.delivery.followups import follow_up_day
from sentinel_pipeline.delivery.ledger import DeliveryLedger
from sentinel_pipeline.delivery.sinks import DeliveryError, OutboxSink, post_metadata
from sentinel_pipeline.process import HOST_TAG, PID_TAG, is_gone
from sentinel_pipeline.schema import FEEDBACK_TABLE
from sentinel_pipeline.settings import failure_sensor_interval, start_date
from sentinel_pipeline.storage import TableStore

ALERTS_KEY = dg.AssetKey("annotated_alerts")
EPISODES_KEY = dg.AssetKey("anomaly_episodes")
BATCH = 500


def _new_records(instance: dg.DagsterInstance, after: int) -> list[dg.EventLogRecord]:
    """New materialisations of annotated_alerts and anomaly_episodes in storage-id order, up to
    where both lists are complete (so the cursor never skips one)."""
    lists = [instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, after_storage_id=after), limit=BATCH,
        ascending=True).records for key in (ALERTS_KEY, EPISODES_KEY)]
    cut = min((r[-1].storage_id for r in lists if len(r) == BATCH), default=None)
    merged = sorted((r for records in lists for r in records), key=lambda r: r.storage_id)
    return [r for r in merged if cut is None or r.storage_id <= cut]


@dg.sensor(
    name="alert_delivery_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Walks new annotated_alerts and anomaly_episodes materialisations (cursor = last event "
        "storage id), posts each day's undelivered alerts, one message per alert, and follows "
        "up each episode on its alert's message (status edited in; one reply when it is "
        "resolved or accepted); the delivery ledger in the data dir makes reruns and cursor "
        "resets safe, and a post interrupted by a crash is looked up in the channel (by its "
        "message metadata) before it is posted again."
    ),
)
def alert_delivery_sensor(
    context: dg.SensorEvaluationContext, storage: StorageResource, alert_sink: AlertSinkResource
) -> dg.SensorResult | dg.SkipReason:
    after = int(context.cursor) if context.cursor else 0
    records = _new_records(context.instance, after)
    if not records:
        return dg.SkipReason("No new annotated_alerts materialisations.")
    router = alert_sink.router()
    store = storage.store()
    ledger = DeliveryLedger(store)  # a damaged ledger fails the tick: LedgerError says the fix
    for note in ledger.notes:
        context.log.warning(note)
    sink = alert_sink.sink(store)
    oldest = (datetime.now(UTC).date() - timedelta(days=alert_sink.max_age_days)).isoformat()
    # The cursor advances only over records delivered without error, so a day that failed is
    # walked again next tick; days after it are still tried (the ledger skips what went out).
    hint = alert_sink.hint()
    # Alerts first, then the day's follow-ups (an episode's alert must be out before its news),
    # once a day: a day whose alerts are in this batch is followed up with them, not also at its
    # anomaly_episodes record.
    alert_days = {r.partition_key for r in records if r.asset_key == ALERTS_KEY}
    cursor, blocked, done, too_old = after, False, set(), []
    for record in records:
        day = record.partition_key
        alerts = record.asset_key == ALERTS_KEY
        if day and day not in done and (alerts or day not in alert_days):
            done.add(day)
            if day < oldest:
                too_old.append(day)
            else:
                try:
                    if alerts:
                        result = deliver_day(store, sink, ledger, router, day,
                                             alert_sink.dagster_url, charts=alert_sink.charts,
                                             warn=context.log.warning, feedback_hint=hint)
                        for post in result.posts:
                            context.log.info(f"{day}: sent to {sink.destination} {post}")
                    news = follow_up_day(store, sink, ledger, day, alert_sink.dagster_url,
                                         feedback_hint=hint)
                    for line in news.replies + news.updates:
                        context.log.info(f"{day}: follow-up to {sink.destination} {line}")
                except DeliveryError as exc:
                    context.log.error(f"{day}: {exc}")
                    blocked = True
                    if not exc.channel_only:
                        break  # Slack unreachable or the token refused: stop until next tick
                    continue
        if not blocked:
            cursor = record.storage_id
    if too_old:  # one line, not one per day of a year's backfill
        context.log.info(f"{len(too_old)} day(s) {min(too_old)}..{max(too_old)} are older than "
                         f"{alert_sink.max_age_days} days: their alerts stay in the tables, "
                         "not posted")
    if cursor == after:
        return dg.SkipReason("Delivery failed; the alerts are retried on the next tick.")
    return dg.SensorResult(cursor=str(cursor))


# ------------------------------------------------------------------ feedback
# People react to an alert's message or reply in its thread; Sentinel has no public endpoint
# for Slack's Events API, so it looks. Every 5 minutes the sensor takes a cheap fingerprint of
# the alert messages of the window (one reactions.get each: reactions, reply count, latest
# reply) and requests a run of alert_feedback only when it changed since the last request, so
# a quiet channel makes no runs. The run re-reads everything (thread replies, users.info) and
# rewrites the table. A failed run is requested again at the next change, or after an hour.
FEEDBACK_RETRY_SECONDS = 3600


@dg.sensor(
    name="feedback_sensor",
    job=sentinel_feedback_job,
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every 5 minutes, when Slack is configured: if reactions or thread replies on "
    "the alert messages of the last SENTINEL_FEEDBACK_DAYS days changed, runs alert_feedback "
    "to read them into the table (no public endpoint needed).",
)
def feedback_sensor(
    context: dg.SensorEvaluationContext, storage: StorageResource, alert_sink: AlertSinkResource
) -> dg.SensorResult | dg.SkipReason:
    reader = alert_sink.feedback_reader()
    if reader is None:
        return dg.SkipReason("Slack is not configured (dry run): the outbox has no feedback.")
    store = storage.store()
    state = slack_state(reader, DeliveryLedger(store), datetime.now(UTC).date(),
                        alert_sink.feedback_days)
    last = json.loads(context.cursor) if context.cursor else {}
    now = time.time()
    if state == last.get("state") and now - float(last.get("at", 0)) < FEEDBACK_RETRY_SECONDS:
        return dg.SkipReason("No new reactions or replies on alert messages.")
    if state == last.get("state") and _feedback_written_since(context.instance, last):
        return dg.SensorResult(skip_reason="No new reactions or replies on alert messages.",
                               cursor=json.dumps({**last, "at": now}))
    count = int(last.get("count", 0)) + 1
    context.log.info(f"Feedback on alert messages changed ({state}): reading it into "
                     "alert_feedback.")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=f"feedback-{count}-{state}",
                                    tags={"sentinel/trigger": "feedback"})],
        cursor=json.dumps({"state": state, "at": now, "count": count}))


def _feedback_written_since(instance: dg.DagsterInstance, last: dict[str, float]) -> bool:
    """alert_feedback was materialised after the last request (that run did its job)."""
    record = instance.get_latest_materialization_event(dg.AssetKey(FEEDBACK_TABLE))
    return record is not None and record.timestamp >= float(last.get("at", 0))


# ------------------------------------------------------------------ failed runs
# Dagster's run-failure sensors watch only runs launched from their own code location unless
# told otherwise: a run's code location comes from its remote origin, which runs launched from
# the UI, a schedule or a sensor have, and in-process runs (`sentinel backfill`/`demo`, which
# call execute_in_process on the instance) have not. So the default sensor skipped every CLI
# run, and a CLI run killed and marked failed later. This one watches every failed run of the
# instance and keeps those of Sentinel's jobs, whatever launched them; the tag written on a run
# once its failure is posted keeps it from being posted twice (a cursor reset, or a second
# Sentinel code location on the same instance).
FAILURE_ALERT_TAG = "sentinel/failure_alert"


def is_sentinel_run(run: dg.DagsterRun, repository: dg.RepositoryDefinition | None) -> bool:
    """A run of one of this repository's jobs (the implicit asset job included: a UI
    "Materialize") over its own assets and checks only. Without a repository (a sensor
    evaluated outside a code location), every run counts."""
    if repository is None:
        return True
    if not repository.has_job(run.job_name):
        return False
    ours = repository.asset_graph.get_all_asset_keys()
    return (set(run.asset_selection or ()) <= ours
            and {check.asset_key for check in run.asset_check_selection or ()} <= ours)


def _run_partition(tags: Mapping[str, str]) -> str | None:
    partition = tags.get("dagster/partition")
    if not partition and tags.get("dagster/asset_partition_range_start"):
        partition = (f"{tags['dagster/asset_partition_range_start']} to "
                     f"{tags.get('dagster/asset_partition_range_end', '?')}")
    return partition


@dg.run_failure_sensor(
    name="run_failure_alert_sensor",
    minimum_interval_seconds=failure_sensor_interval(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    # Not only this code location's runs: the CLI's in-process runs have no code location.
    # is_sentinel_run keeps Sentinel's own jobs.
    monitor_all_code_locations=True,
    description="Posts a short message (job, run, failed step and error, link) to SLACK_CHANNEL "
    "when a Sentinel run fails, whether the UI, a schedule, a sensor or the sentinel command "
    "launched it, or writes it to the outbox in dry run; once per run (the run is tagged "
    f"{FAILURE_ALERT_TAG}).",
)
def run_failure_alert_sensor(
    context: dg.RunFailureSensorContext, storage: StorageResource, alert_sink: AlertSinkResource
) -> dg.SkipReason | None:
    run = context.dagster_run
    if not is_sentinel_run(run, context.repository_def):
        return dg.SkipReason(f"Run {run.run_id} ({run.job_name}) is not a Sentinel run.")
    current = context.instance.get_run_by_id(run.run_id) or run
    if current.tags.get(FAILURE_ALERT_TAG):
        return dg.SkipReason(f"Run {run.run_id} failure was already reported: "
                             f"{current.tags[FAILURE_ALERT_TAG]}")
    steps = []
    for event in context.get_step_failure_events():
        error = getattr(event.event_specific_data, "error", None)
        steps.append((event.step_key or "?", error.message if error else event.message or ""))
    message = build_failure_message(run.job_name, run.run_id, steps,
                                    context.failure_event.message or "",
                                    alert_sink.dagster_url, _run_partition(run.tags))
    store = storage.store()
    sink = alert_sink.sink(store)
    name = f"run-failure-{run.run_id}"
    metadata = post_metadata(f"run-failure|{run.run_id}", kind="run_failure")
    try:
        posted = sink.post(alert_sink.channel, name, message, metadata=metadata)
    except DeliveryError as exc:
        # Dagster moves this sensor's cursor past the run even when it raises, so keep the
        # message in the outbox before failing the tick (which shows the error in the UI).
        kept = OutboxSink(store).post(alert_sink.channel, name, message, metadata=metadata)
        context.instance.add_run_tags(run.run_id, {
            FAILURE_ALERT_TAG: f"not sent to {sink.destination}, kept in {kept.reference}"})
        raise DeliveryError(
            f"Run {run.run_id} failure alert not sent: {exc} (kept in {kept.reference})"
        ) from exc
    context.instance.add_run_tags(run.run_id, {
        FAILURE_ALERT_TAG: f"{sink.destination} {alert_sink.channel} {posted.reference}"})
    context.log.info(f"Run {run.run_id} failure sent to {sink.destination} -> {posted.reference}")
    return None


# ------------------------------------------------------------------ restatement
# The restatement sensor: re-fetch recent days whose costs were still estimated when loaded.
#
# Cost Explorer marks recent days ``Estimated`` (and CUR rewrites an open billing period), so a
# day loaded the morning after can change later. Once a UTC day, this sensor reads the last
# ``SENTINEL_RESTATE_DAYS`` partitions of raw_daily_costs and, if any row is ``estimated``,
# requests one run of the daily job from the earliest such day to the last day already loaded
# (never a day the 09:00 schedule has not loaded yet: the data of a day that just ended is far
# from complete). A rerun replaces each day's files whole, so anomalies are updated, not
# duplicated, and the delivery ledger keeps an alert already posted from being posted again. It
# only reads the table, so it works the same for every source.
RAW_TABLE = "raw_daily_costs"


def loaded_days(store: TableStore, first: date, last: date) -> dict[date, bool]:
    """The days from first to last that raw_daily_costs holds, each with whether any of its
    rows is still estimated."""
    out = {}
    for i in range((last - first).days + 1):
        day = first + timedelta(days=i)
        rows = store.read_partition(RAW_TABLE, day)
        if rows is not None:
            out[day] = "estimated" in rows.columns and bool(rows["estimated"].any())
    return out


def restatement_request(days: list[date], today: date, end: date | None = None) -> dg.RunRequest:
    """One run of the daily job over [earliest estimated day, end] (end: yesterday unless
    given; later days depend on the restated ones through their baselines)."""
    start, end = min(days), end or today - timedelta(days=1)
    tags = {"sentinel/trigger": "restatement",
            "sentinel/estimated_days": ",".join(d.isoformat() for d in days)}
    run_key = f"restatement-{today.isoformat()}"
    if start == end:
        return dg.RunRequest(run_key=run_key, partition_key=start.isoformat(), tags=tags)
    tags |= {"dagster/asset_partition_range_start": start.isoformat(),
             "dagster/asset_partition_range_end": end.isoformat()}
    return dg.RunRequest(run_key=run_key, tags=tags)


@dg.sensor(
    name="restatement_sensor",
    job=sentinel_daily_job,
    minimum_interval_seconds=3600,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Once a UTC day: if raw_daily_costs of the last SENTINEL_RESTATE_DAYS days holds rows "
        "still marked estimated, reruns the daily job from the earliest such day to the last "
        "loaded day (one run), so final costs replace the estimates and anomalies are "
        "recomputed."
    ),
)
def restatement_sensor(
    context: dg.SensorEvaluationContext, storage: StorageResource, source: CostSourceResource
) -> dg.SensorResult | dg.SkipReason:
    today = datetime.now(UTC).date()
    if context.cursor == today.isoformat():
        return dg.SkipReason(f"Already checked for estimated days on {today}.")
    yesterday = today - timedelta(days=1)
    first = max(yesterday - timedelta(days=max(source.restate_days, 1) - 1),
                start_date())
    if first > yesterday:
        return dg.SkipReason("No complete day to check yet.")
    loaded = loaded_days(storage.store(), first, yesterday)
    days = [day for day, estimated in loaded.items() if estimated]
    if not days:
        return dg.SensorResult(
            skip_reason=f"No estimated costs in raw_daily_costs {first}..{yesterday}.",
            cursor=today.isoformat())
    last_loaded = max(loaded)
    context.log.info(f"{len(days)} day(s) still estimated ({days[0]}..{days[-1]}): "
                     f"rerunning {days[0]}..{last_loaded}")
    return dg.SensorResult(run_requests=[restatement_request(days, today, last_loaded)],
                           cursor=today.isoformat())


# ------------------------------------------------------------------ freshness
with warnings.catch_warnings():
    # SupersessionWarning at import: checks.py says why we keep the time-partition check.
    warnings.simplefilter("ignore", dg.SupersessionWarning)
    # Runs the check every 5 minutes once it is due (a run of the implicit asset job with only
    # this check selected); the daily job leaves it out, see jobs.py.
    raw_freshness_sensor = dg.build_sensor_for_freshness_checks(
        freshness_checks=raw_freshness_checks,
        name="raw_costs_freshness_sensor",
        minimum_interval_seconds=300,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )


# ------------------------------------------------------------------ abandoned CLI runs
def fail_abandoned_cli_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed the runs a `sentinel` command started whose process is gone (killed with
    SIGKILL, machine crash): without this they stay STARTED forever. Returns their ids."""
    runs = instance.get_runs(dg.RunsFilter(
        statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING,
                  dg.DagsterRunStatus.NOT_STARTED],
        tags={HOST_TAG: socket.gethostname()}))
    failed = []
    for run in runs:
        if is_gone(dict(run.tags)):
            instance.report_run_failed(run, message=(
                f"The sentinel command that ran this (pid {run.tags.get(PID_TAG)} on "
                f"{run.tags.get(HOST_TAG)}) is gone without finishing (killed?): marked failed. "
                "Rerun its days; every partition it wrote is replaced whole."))
            failed.append(run.run_id)
    return failed


@dg.sensor(
    name="abandoned_cli_runs_sensor",
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks failed the runs of a `sentinel` command whose process is gone (e.g. "
    "killed with kill -9), so they do not stay STARTED and hold the pipeline's run slot.",
)
def abandoned_cli_runs_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    failed = fail_abandoned_cli_runs(context.instance)
    for run_id in failed:
        context.log.warning(f"Run {run_id}: its sentinel command is gone; marked failed.")
    return dg.SkipReason(f"{len(failed)} abandoned CLI run(s) marked failed." if failed
                         else "No abandoned CLI runs.")
