"""Sentinel: daily cloud cost anomaly detection as Dagster assets."""
