"""The one Definitions object: assets, checks, jobs, schedules, sensors, and resources from the
environment."""

from typing import Any

import dagster as dg

from sentinel_pipeline import settings
from sentinel_pipeline.defs.assets.alerts import annotated_alerts
from sentinel_pipeline.defs.assets.anomalies import cost_anomalies
from sentinel_pipeline.defs.assets.costs import raw_daily_costs
from sentinel_pipeline.defs.assets.episodes import anomaly_episodes
from sentinel_pipeline.defs.assets.feedback import alert_feedback
from sentinel_pipeline.defs.assets.scores import cost_scores
from sentinel_pipeline.defs.checks import raw_freshness_checks
from sentinel_pipeline.defs.jobs import (
    sentinel_daily_job,
    sentinel_feedback_job,
    sentinel_weekly_digest_job,
)
from sentinel_pipeline.defs.resources import resources_from_environment
from sentinel_pipeline.defs.schedules import sentinel_daily_schedule, weekly_digest_schedule
from sentinel_pipeline.defs.sensors import (
    abandoned_cli_runs_sensor,
    alert_delivery_sensor,
    feedback_sensor,
    raw_freshness_sensor,
    restatement_sensor,
    run_failure_alert_sensor,
)
from sentinel_pipeline.defs.shards import SHARD_IO_MANAGER, ShardIOManager, baselines_asset

# Dagster's default executor, but with steps in the run's own process unless the run config asks
# for `execution: config: multiprocess: {...}`. The assets are (nearly) a chain, so step processes
# ran nothing in parallel and cost a Python start-up with a code load per step: ~1 s each on an
# idle 2-core machine, 10-20 s under load, for every run the daemon launches (the schedule, UI
# materialisations and backfills; in-process test runs never used them).
_default = dg.multi_or_in_process_executor


def default_executor(shards: int) -> dg.ExecutorDefinition:
    """multi_or_in_process, in process unless the run config says otherwise; with
    SENTINEL_SHARDS of 2 or more, in processes by default (at most ``shards`` at once), so
    cost_baselines' shard steps of the runs the daemon launches run side by side."""
    config: dict[str, Any] = ({"multiprocess": {"max_concurrent": shards}} if shards >= 2
                              else {"in_process": {}})
    return dg.ExecutorDefinition(
        name=_default.name,
        config_schema=dg.Field(_default.config_schema.as_field().config_type,
                               default_value=config),
        requirements=_default.get_requirements,
        executor_creation_fn=_default.executor_creation_fn,
        description="multi_or_in_process, " + ("multiprocess" if shards >= 2 else "in process")
        + " unless configured otherwise.",
    )


def _resources(shards: int) -> dict[str, Any]:
    """The environment's resources, and where shard steps leave their rows when sharded."""
    resources: dict[str, Any] = dict(resources_from_environment())
    if shards >= 2:
        resources[SHARD_IO_MANAGER] = ShardIOManager(storage=resources["storage"])
    return resources


def build_definitions() -> dg.Definitions:
    """The Definitions from the environment as it is now. ``defs`` below is built once, when
    the code location loads; a test that changes SENTINEL_SHARDS (the shape of cost_baselines'
    graph) builds its own, as a code server would on reload."""
    shards = settings.shards()  # the shape of the graph: read when the code location loads
    return dg.Definitions(
        # cost_baselines: one op, or split into SENTINEL_SHARDS parallel steps (defs/shards.py).
        assets=[raw_daily_costs, baselines_asset(shards), cost_anomalies, cost_scores,
                anomaly_episodes, annotated_alerts, alert_feedback],
        asset_checks=raw_freshness_checks,
        jobs=[sentinel_daily_job, sentinel_weekly_digest_job, sentinel_feedback_job],
        schedules=[sentinel_daily_schedule, weekly_digest_schedule],
        sensors=[restatement_sensor, alert_delivery_sensor, run_failure_alert_sensor,
                 raw_freshness_sensor, abandoned_cli_runs_sensor, feedback_sensor],
        resources=_resources(shards),
        executor=default_executor(shards),
    )


defs = build_definitions()
