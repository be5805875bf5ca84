"""Benchmark: how much of a single-run backfill is Dagster's event handling (issue 14, item 2).

Runs the daily job over DAYS days x SERIES demo series, as `sentinel backfill` does, on a
fresh instance, and times every call of ``instance.handle_new_event`` (storing each event in the
event log and what follows it); the rest of the run is our assets. Each configuration runs in
its own process, alternating, so the machine's load hits them alike:

- ``sqlite``: the default instance (``dagster dev``, tests, DAGSTER_HOME without a dagster.yaml);
- ``postgres``: PostgreSQL event and run storage, as deploy/dagster.yaml sets up production;
- ``postgres+batch``: the same with DAGSTER_EVENT_BATCH_SIZE set, Dagster's opt-in batching of
  event writes: the materialisations of one ranged output share a batch id and dagster-postgres
  writes them at once, but the per-day planned events interleave with them and break the
  batches up (21 % of a year's backfill through PgBouncer on 2026-11-30). SQLite's storage has
  no batch write.
- ``postgres+async``: the database set to ``synchronous_commit = off``: a commit returns
  before its WAL record is flushed to disk (a crash of the PostgreSQL server can lose the last
  few hundred milliseconds of events, never corrupt them); ``postgres+async+batch`` both.
- ``+subset`` (with either storage): DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS=true, so
  a ranged run announces each asset's planned partitions in one event instead of one per day:
  half the events, and with ``+batch`` the materialisations' batches stay whole
  (``postgres+bouncer+batch+subset``: 7 % of a year's backfill, the production setting).
  Dagster's caveat: if such a run fails, its partitions are not marked failed (they stay
  "missing" in the UI; the run-failure alert still fires).
- ``postgres+bouncer``: through PgBouncer (transaction pooling) at 127.0.0.1:6432
  (SENTINEL_BENCH_PGBOUNCER_PORT). dagster-postgres opens a new connection for every statement
  group (SQLAlchemy NullPool), and PostgreSQL forks a backend process for each: 4 ms of the
  ~12 ms an event cost here. A pooler keeps the backends open. Combine with ``+batch``.

Usage: python benchmarks/backfill_events.py [--days 365] [--series 1000] [--repeat 1]
       [--configs sqlite,postgres,postgres+batch+subset] [--batch 1000]
PostgreSQL at 127.0.0.1:5432 (user postgres, trust auth), as in the tests; a database is
created and dropped for each postgres run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from datetime import date, timedelta
from typing import Any

PG = {"hostname": "127.0.0.1", "port": 5432, "username": "postgres", "password": ""}
BOUNCER_PORT = int(os.environ.get("SENTINEL_BENCH_PGBOUNCER_PORT", "6432"))


def _pg(sql: str) -> None:
    import psycopg2  # noqa: PLC0415

    conn = psycopg2.connect(host=PG["hostname"], port=PG["port"], user=PG["username"],
                            dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql)
    conn.close()


def _one(config: str, days: int, series: int, batch: int) -> dict[str, Any]:
    """One backfill in this process; the timings as a dict."""
    warnings.filterwarnings("ignore")
    root = tempfile.mkdtemp(prefix="sentinel-events-")
    os.environ["SENTINEL_DATA_DIR"] = os.path.join(root, "data")
    os.environ["SENTINEL_SOURCE"] = "demo"
    os.environ["SENTINEL_START_DATE"] = "2024-01-01"
    if "+subset" in config:
        os.environ["DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"] = "true"
    if "+batch" in config:
        os.environ["DAGSTER_EVENT_BATCH_SIZE"] = str(batch)
    import dagster as dg  # noqa: PLC0415

    from sentinel_pipeline.definitions import defs  # noqa: PLC0415

    overrides: dict[str, Any] = {}
    database = ""
    if config.startswith("postgres"):
        database = f"sentinel_events_{uuid.uuid4().hex[:8]}"
        _pg(f"CREATE DATABASE {database}")
        if "+async" in config:
            _pg(f"ALTER DATABASE {database} SET synchronous_commit = off")
        port = BOUNCER_PORT if "+bouncer" in config else PG["port"]
        overrides = {"storage": {"postgres": {"postgres_db": {
            **PG, "port": port, "db_name": database, "scheme": "postgresql+psycopg2"}}}}
    end = date(2025, 12, 31)
    start = end - timedelta(days=days - 1)
    job = defs.resolve_job_def("sentinel_daily_job")
    run_config = {
        "loggers": {"console": {"config": {"log_level": "WARNING"}}},
        "resources": {"source": {"config": {"demo_series": series}}},
    }
    tags = {"dagster/asset_partition_range_start": start.isoformat(),
            "dagster/asset_partition_range_end": end.isoformat()}
    os.makedirs(os.path.join(root, "instance"))
    try:
        with dg.instance_for_test(temp_dir=os.path.join(root, "instance"),
                                  overrides=overrides) as instance:
            spent = [0.0, 0]
            handle = instance.handle_new_event

            def timed(*args: Any, **kwargs: Any) -> Any:
                t0 = time.perf_counter()
                try:
                    return handle(*args, **kwargs)
                finally:
                    spent[0] += time.perf_counter() - t0
                    spent[1] += 1

            instance.handle_new_event = timed  # type: ignore[method-assign]
            cpu0, t0 = time.process_time(), time.perf_counter()
            result = job.execute_in_process(instance=instance, tags=tags, run_config=run_config)
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            assert result.success
            materialized = len(result.get_asset_materialization_events())
    finally:
        if database:
            _pg(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
    return {"config": config, "wall": wall, "cpu": cpu, "events_s": spent[0],
            "events": spent[1], "materializations": materialized}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--configs", default="sqlite,postgres,postgres+batch+subset")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(_one(args.one, args.days, args.series, args.batch)))
        return
    load = os.getloadavg()[0]
    print(f"backfill of {args.days} days x {args.series} series, load {load:.1f} at start")
    results: dict[str, list[dict[str, Any]]] = {}
    for _ in range(args.repeat):
        for config in args.configs.split(","):
            out = subprocess.run(
                [sys.executable, __file__, "--one", config, "--days", str(args.days),
                 "--series", str(args.series), "--batch", str(args.batch)],
                check=True, capture_output=True, text=True)
            row = json.loads(out.stdout.strip().splitlines()[-1])
            results.setdefault(config, []).append(row)
            print(f"  {config:15s} wall {row['wall']:6.1f} s  cpu {row['cpu']:6.1f} s  "
                  f"event handling {row['events_s']:5.1f} s ({row['events_s'] / row['wall']:.0%}"
                  f" of wall) over {row['events']} events, "
                  f"{1000 * row['events_s'] / max(row['events'], 1):.1f} ms each")
    base = results.get("sqlite")
    if base:
        for config, rows in results.items():
            ratio = sum(r["wall"] for r in rows) / sum(b["wall"] for b in base)
            print(f"  {config}: wall {ratio:.2f}x the sqlite run")
    print(f"load {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
