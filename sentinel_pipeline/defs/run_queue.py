"""The run queue of a Sentinel instance: every run that writes Sentinel's tables carries the
``sentinel/pipeline`` tag, whoever launched it, so the queue's tag limit (deploy/dagster.yaml)
keeps two of them from writing the same days at once.

Runs of ``sentinel_daily_job`` (schedule, CLI, the job's page) have the tag from the job. A
Materialize or backfill of the assets from the UI's asset pages is a run of Dagster's implicit
asset job, created by the webserver or the backfill daemon with only the tags typed in the
dialog: on dagster 1.13 no job, asset or Definitions setting reaches those runs' tags (op_tags
stay on the steps; the daemon builds asset backfill runs from the backfill's tags alone). The
queue is the one place every run passes before it starts, so the tag is added there, from the
run's asset selection, before the run is queued.
"""

from __future__ import annotations

import dagster as dg
from dagster._core.run_coordinator.base import SubmitRunContext

from sentinel_pipeline.defs.partitions import ASSET_NAMES

PIPELINE_TAG = "sentinel/pipeline"
PIPELINE_ASSETS = frozenset(dg.AssetKey(name) for name in ASSET_NAMES)
IMPLICIT_ASSET_JOB = "__ASSET_JOB"  # dagster's name for the job behind the asset pages


def pipeline_tags(run: dg.DagsterRun) -> dict[str, str]:
    """The tag to add to a run that writes a Sentinel table and lacks it; else nothing. A run
    of only asset checks (the freshness sensor's) writes nothing and is left alone."""
    if PIPELINE_TAG in run.tags:
        return {}
    if run.asset_selection is None:
        writes = run.job_name == IMPLICIT_ASSET_JOB and not run.asset_check_selection
    else:
        writes = bool(run.asset_selection & PIPELINE_ASSETS)
    return {PIPELINE_TAG: "daily"} if writes else {}


class SentinelRunCoordinator(dg.QueuedRunCoordinator):
    """Dagster's QueuedRunCoordinator (same config) that tags Sentinel runs before queuing."""

    def submit_run(self, context: SubmitRunContext) -> dg.DagsterRun:
        tags = pipeline_tags(context.dagster_run)
        if tags:
            self._instance.add_run_tags(context.dagster_run.run_id, tags)
        return super().submit_run(context)
