"""The jobs: the daily job over the four assets, the feedback job, the weekly digest job."""

from datetime import UTC, date, datetime

import dagster as dg
from pydantic import Field

from sentinel_pipeline.defs.checks import RAW_FRESHNESS_CHECK
from sentinel_pipeline.defs.partitions import ASSET_NAMES
from sentinel_pipeline.defs.resources import AlertSinkResource, StorageResource
from sentinel_pipeline.defs.run_queue import PIPELINE_TAG
from sentinel_pipeline.delivery.deliver import post_once
from sentinel_pipeline.delivery.digest import (
    build_digest,
    load_digest_inputs,
    previous_week,
    week_label,
)
from sentinel_pipeline.delivery.ledger import DeliveryLedger, digest_key
from sentinel_pipeline.errors import ConfigError
from sentinel_pipeline.schema import FEEDBACK_TABLE

DIGEST_OP = "post_weekly_digest"

sentinel_daily_job = dg.define_asset_job(
    name="sentinel_daily_job",
    # The freshness check asks whether yesterday arrived: its sensor runs it, not this job.
    selection=(dg.AssetSelection.assets(*ASSET_NAMES)
               - dg.AssetSelection.checks(RAW_FRESHNESS_CHECK)),
    tags={PIPELINE_TAG: "daily"},
    description="Fetch, baseline, detect and annotate one day (or a range in a single run).",
)


# Feedback from Slack (issue 16): the feedback sensor requests it when people reacted or
# replied on an alert message; unpartitioned, apart from the daily job.
sentinel_feedback_job = dg.define_asset_job(
    name="sentinel_feedback_job",
    # No sentinel/pipeline tag: it writes no daily table, so it need not wait for a backfill.
    selection=dg.AssetSelection.assets(FEEDBACK_TABLE),
    description="Read reactions and thread replies on recent alert messages into "
    "alert_feedback.",
)


# ------------------------------------------------------------------ weekly digest
# A small op job rather than a sensor: each digest is a run in the UI (visible, rerunnable, and
# watched by the run-failure sensor), retried by a RetryPolicy when Slack is down, and kept out
# of the asset graph so it never touches sentinel_daily_job or its partitions. The ledger key
# ``digest|YYYY-Www`` makes it post once per week however often the run is retried or relaunched.
class DigestConfig(dg.Config):
    week_start: str = Field(
        default="",
        description="Monday (YYYY-MM-DD) of the week to summarise; empty: the last full week.",
    )


def _week_start(text: str) -> date:
    if not text:
        return previous_week(datetime.now(UTC).date())
    try:
        day = date.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(f"week_start {text!r} is not a date: use YYYY-MM-DD (a Monday).") from exc
    if day.weekday() != 0:
        raise ConfigError(f"week_start {text} is a {day:%A}: give the Monday the week starts on.")
    return day


@dg.op(
    name=DIGEST_OP,
    retry_policy=dg.RetryPolicy(max_retries=3, delay=120, backoff=dg.Backoff.EXPONENTIAL),
    description="Posts last week's digest (spend vs the week before, open anomalies, top "
    "movers, open anomalies by owner, median time to detect and to resolve, precision from "
    "feedback, cost avoided) to SLACK_CHANNEL once, or to the outbox in dry run.",
)
def post_weekly_digest(
    context: dg.OpExecutionContext,
    config: DigestConfig,
    storage: StorageResource,
    alert_sink: AlertSinkResource,
) -> dg.Output[str]:
    start = _week_start(config.week_start)
    week = week_label(start)
    store = storage.store()
    ledger = DeliveryLedger(store)
    if ledger.digest_sent(week):
        context.log.info(f"Digest {week} was already sent; nothing to do.")
        return dg.Output("", metadata={"week": week, "sent": False})
    message = build_digest(load_digest_inputs(store, start), alert_sink.dagster_url)
    sink = alert_sink.sink(store)
    # Pending before the post, metadata on it: a retry after a crash adopts, never reposts.
    posted, adopted = post_once(store, sink, ledger, digest_key(week), "digest",
                                alert_sink.channel, f"digest-{week}", message)
    context.log.info(f"Digest {week} {'found already posted in' if adopted else 'sent to'} "
                     f"{sink.destination} -> {posted.reference}")
    return dg.Output(posted.reference, metadata={"week": week, "sent": True})


@dg.job(name="sentinel_weekly_digest_job", tags={"sentinel/pipeline": "digest"},
        description="Posts the weekly cost digest (one op; separate from the daily assets).")
def sentinel_weekly_digest_job() -> None:
    post_weekly_digest()
