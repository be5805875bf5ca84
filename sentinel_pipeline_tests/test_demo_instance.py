"""`make demo` then `make dev`: the UI's partitions start on the first day the demo wrote.

`sentinel demo` fills 60 days and 35 days of history before them; with the partitions starting
on the default 2025-01-01 the UI showed some 600 days as missing and offered to materialise them
all. The demo records its first day in DAGSTER_HOME/sentinel-demo-start and `make dev` starts
the partitions there unless SENTINEL_START_DATE is set. `make dev` is run here with a stand-in
`dagster` that reports what it was given (and, when asked, what the definitions and the instance
then show) instead of starting the UI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sentinel_pipeline import cli
from sentinel_pipeline.errors import SentinelError

REPO = Path(__file__).resolve().parents[1]
RECORD = "sentinel-demo-start"

# The stand-in for .venv/bin/dagster: prints its arguments and environment as JSON; with
# CHECK_PARTITIONS set it also loads the definitions as `dagster dev` would and compares the
# daily partitions with what the instance holds.
FAKE_DAGSTER = """#!{python}
import json, os, sys
out = {{"args": sys.argv[1:],
        **{{k: os.environ.get(k) for k in ("SENTINEL_START_DATE", "DAGSTER_HOME")}}}}
if os.environ.get("CHECK_PARTITIONS"):
    import warnings
    warnings.simplefilter("ignore")
    import dagster as dg
    from sentinel_pipeline.definitions import defs
    keys = defs.resolve_job_def("sentinel_daily_job").partitions_def.get_partition_keys()
    with dg.DagsterInstance.get() as instance:
        done = instance.get_materialized_partitions(dg.AssetKey("annotated_alerts"))
    out |= {{"first": keys[0], "last": keys[-1], "missing": sorted(set(keys) - done)}}
print(json.dumps(out))
"""


def _yesterday() -> str:
    return (datetime.now(UTC).date() - timedelta(days=1)).isoformat()


def _make_dev(tmp_path: Path, home: Path, *make_args: str,
              **env: str) -> dict[str, Any]:
    """`make dev` with the stand-in dagster; returns what it reported (and make's output)."""
    fake = tmp_path / "bin"
    if not fake.exists():
        fake.mkdir()
        (fake / "dagster").write_text(FAKE_DAGSTER.format(python=sys.executable))
        (fake / "dagster").chmod(0o755)
        (fake / "python").touch()  # the venv's python, an order-only prerequisite
        (tmp_path / "stamp").touch()  # "installed": newer than pyproject.toml and setup.py
    base = {k: v for k, v in os.environ.items()
            if k not in ("SENTINEL_START_DATE", "SENTINEL_SOURCE", "DAGSTER_HOME", "PORT",
                         "MAKEFLAGS", "MAKELEVEL")}
    done = subprocess.run(
        ["make", "-s", "--no-print-directory", "dev", f"BIN={fake}",
         f"RUNTIME_STAMP={tmp_path / 'stamp'}", f"DAGSTER_HOME={home}",
         f"SENTINEL_DATA_DIR={tmp_path / 'data'}", *make_args],
        cwd=REPO, env={**base, **env}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    return {**json.loads(lines[-1]), "said": "\n".join(lines[:-1])}


def test_demo_records_the_first_day_it_wrote_and_only_once_it_ran(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pipeline run stubbed: what is recorded, not the run, is under test here (the test
    below runs the real demo)."""
    home = tmp_path / "home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("SENTINEL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SENTINEL_SOURCE", "demo")
    monkeypatch.setenv("SENTINEL_START_DATE", "2025-01-01")
    ran = []

    def fake_run(start: Any, end: Any, detection: Any = None) -> None:
        home.mkdir(parents=True, exist_ok=True)  # what run_pipeline's _prepare_dagster_home does
        ran.append((start, end))

    monkeypatch.setattr(cli, "run_pipeline", fake_run)
    assert cli.main(["demo", "--days", "10"]) == 0
    first, last = ran[-1]
    assert last.isoformat() == _yesterday()
    assert (last - first).days == 10 - 1 + cli.DEMO_WARMUP_DAYS
    assert (home / RECORD).read_text() == f"{first.isoformat()}\n"
    assert [p.name for p in home.iterdir()] == [RECORD]  # nothing left aside

    # A start date the user set clips the history: the record says where the data begins.
    clipped = last - timedelta(days=20)
    monkeypatch.setenv("SENTINEL_START_DATE", clipped.isoformat())
    assert cli.main(["demo", "--days", "10"]) == 0
    assert ran[-1][0] == clipped and (home / RECORD).read_text() == f"{clipped}\n"

    # A demo whose run failed wrote nothing new: the record keeps the last demo that did.
    def failed_run(*_: Any, **__: Any) -> None:
        raise SentinelError("Run abc failed")

    monkeypatch.setattr(cli, "run_pipeline", failed_run)
    monkeypatch.setenv("SENTINEL_START_DATE", "2025-01-01")
    assert cli.main(["demo", "--days", "10"]) == 1
    assert (home / RECORD).read_text() == f"{clipped}\n"


def test_make_dev_starts_the_partitions_on_the_demos_first_day_with_nothing_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real demo on a tmp DAGSTER_HOME, then `make dev`: the definitions it loads start on
    the recorded day, and every partition up to yesterday is materialised (no missing days, no
    600-day "Materialize all"). SENTINEL_START_DATE clips the demo's history to 6 days to keep
    the run short; `make dev` then runs without it, as a user's would."""
    home = tmp_path / "home"
    first = (datetime.now(UTC).date() - timedelta(days=6)).isoformat()
    for name, value in {"DAGSTER_HOME": str(home), "SENTINEL_DATA_DIR": str(tmp_path / "data"),
                        "SENTINEL_SOURCE": "demo", "SENTINEL_START_DATE": first,
                        "SLACK_BOT_TOKEN": "", "ANTHROPIC_API_KEY": ""}.items():
        monkeypatch.setenv(name, value)
    assert cli.main(["demo", "--days", "1"]) == 0
    assert (home / RECORD).read_text() == f"{first}\n"

    shown = _make_dev(tmp_path, home, CHECK_PARTITIONS="1")
    assert shown["args"] == ["dev", "-w", "workspace.yaml", "-p", "3000"]
    assert shown["SENTINEL_START_DATE"] == first and shown["DAGSTER_HOME"] == str(home)
    assert f"Daily partitions start on {first}, the first day of the demo" in shown["said"]
    assert (shown["first"], shown["last"], shown["missing"]) == (first, _yesterday(), [])


def test_a_start_date_the_user_sets_wins_and_port_is_chosen(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / RECORD).write_text("2026-08-27\n")
    assert _make_dev(tmp_path, home)["SENTINEL_START_DATE"] == "2026-08-27"
    from_env = _make_dev(tmp_path, home, SENTINEL_START_DATE="2026-01-01")
    assert from_env["SENTINEL_START_DATE"] == "2026-01-01" and not from_env["said"]
    on_line = _make_dev(tmp_path, home, "SENTINEL_START_DATE=2026-02-02", "PORT=3001")
    assert on_line["SENTINEL_START_DATE"] == "2026-02-02"
    assert on_line["args"] == ["dev", "-w", "workspace.yaml", "-p", "3001"]
    # Another source: the demo's days say nothing about its data, the default applies.
    other = _make_dev(tmp_path, home, SENTINEL_SOURCE="focus")
    assert other["SENTINEL_START_DATE"] == "" and not other["said"]
    # No demo yet: the default start date (SENTINEL_START_DATE blank reads as unset).
    (home / RECORD).unlink()
    assert _make_dev(tmp_path, home)["SENTINEL_START_DATE"] == ""
