"""Dagster wiring only: partitions, assets, checks, jobs, schedules, sensors and resources."""
