"""Fault campaign: kill -9 a backfill at random moments, run two at once, and check recovery.

For each trial a `sentinel backfill` subprocess is killed with SIGKILL at a random moment after
it wrote its first file, then the same command is run again to completion; the tables must then
equal, byte for byte, a clean run of the same days, and no run may be left STARTED in the
instance (the next command marks the killed one failed). Two backfills of the same days on the
same data dir at once must also end with the clean bytes. Prints one row per fault.

    python benchmarks/faults.py [--trials 5] [--days 40] [--seed 7]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import dagster as dg

START = date(2025, 1, 1)


def _env(home: Path, data: Path) -> dict[str, str]:
    return {**os.environ, "DAGSTER_HOME": str(home), "SENTINEL_DATA_DIR": str(data),
            "SENTINEL_SOURCE": "demo", "SLACK_BOT_TOKEN": "", "ANTHROPIC_API_KEY": ""}


def _backfill(home: Path, data: Path, end: date) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "sentinel_pipeline.cli", "backfill", "--start",
         START.isoformat(), "--end", end.isoformat()],
        env=_env(home, data), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _finish(proc: subprocess.Popen[bytes]) -> None:
    _, err = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"backfill failed ({proc.returncode}): {err.decode()[-2000:]}")


def _tables(data: Path) -> dict[str, str]:
    """Every table file under the data dir (not the outbox or ledger) by its sha256."""
    return {str(p.relative_to(data)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(data.rglob("*.parquet")) if not p.name.startswith(".")}


def _left_running(home: Path) -> int:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return len(instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--days", type=int, default=40)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    end = START + timedelta(days=args.days - 1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        started = time.monotonic()
        _finish(_backfill(root / "clean-home", root / "clean", end))
        clean_seconds = time.monotonic() - started
        clean = _tables(root / "clean")
        print(f"clean run: {args.days} days, {len(clean)} files, {clean_seconds:.1f} s "
              f"(load: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
        rows = []
        for trial in range(args.trials):
            home, data = root / f"kill{trial}-home", root / f"kill{trial}"
            proc = _backfill(home, data, end)
            while proc.poll() is None and not (data.exists() and _tables(data)):
                time.sleep(0.05)  # the run is writing once its first file is there
            delay = rng.uniform(0.0, 3.0)  # then a random moment of the writing
            time.sleep(delay)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            partial = len(_tables(data)) if data.exists() else 0
            _finish(_backfill(home, data, end))
            rows.append((f"kill -9 {delay:.1f} s into writing ({partial} files), rerun",
                         _tables(data) == clean, _left_running(home)))
        home, data = root / "concurrent-home", root / "concurrent"
        _finish(_backfill(home, data, START))  # the instance exists: runs race on the tables only
        procs = [_backfill(home, data, end) for _ in range(2)]
        for proc in procs:
            _finish(proc)
        rows.append(("two backfills of the same days at once", _tables(data) == clean,
                     _left_running(home)))
    print(f"{'fault':<52} {'tables == clean run':<20} runs left STARTED")
    for name, same, running in rows:
        print(f"{name:<52} {'yes' if same else 'NO':<20} {running}")
    if not all(same and running == 0 for _, same, running in rows):
        raise SystemExit("a fault left the tables or the instance wrong")


if __name__ == "__main__":
    main()
