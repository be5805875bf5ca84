"""Freshness: yesterday's raw_daily_costs partition must exist by 10:00 UTC.

The 09:00 schedule normally lands it within minutes; at 10:00 a missing partition means the
schedule did not run, the run failed, or the source had no data yet, and the check turns red in
the UI (and in any alerting on asset checks). A sensor evaluates the check, because nothing else
runs it when nothing else runs.

Why the time-partition check and not `dg.FreshnessPolicy`: dagster 1.13 marks
`build_time_partition_freshness_checks` as superseded by FreshnessPolicy, but a policy judges
*when the asset last materialised*, so a backfill of old days at 09:30 would pass it even with
yesterday missing. The check asks exactly our question: is partition D-1 there.
"""

import warnings

import dagster as dg

RAW_FRESHNESS_DEADLINE_CRON = "0 10 * * *"

RAW_FRESHNESS_CHECK = dg.AssetCheckKey(dg.AssetKey("raw_daily_costs"), "freshness_check")

with warnings.catch_warnings():
    # SupersessionWarning at import: see the module docstring for why we keep this check.
    warnings.simplefilter("ignore", dg.SupersessionWarning)
    raw_freshness_checks = dg.build_time_partition_freshness_checks(
        assets=["raw_daily_costs"],
        deadline_cron=RAW_FRESHNESS_DEADLINE_CRON,
        timezone="UTC",
        severity=dg.AssetCheckSeverity.ERROR,
    )
    # Runs the check every 5 minutes once it is due (a run of the implicit asset job with only
    # this check selected); the daily job leaves it out, see jobs.py.
    raw_freshness_sensor = dg.build_sensor_for_freshness_checks(
        freshness_checks=raw_freshness_checks,
        name="raw_costs_freshness_sensor",
        minimum_interval_seconds=300,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
