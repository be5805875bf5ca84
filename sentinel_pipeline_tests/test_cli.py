"""The `sentinel` command: runs land in the Dagster instance, outputs parse, bad options explain."""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import shutil
from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from sentinel_pipeline.cli import main
from sentinel_pipeline.schema import ANOMALY_COLUMNS
from sentinel_pipeline.storage import TableStore
from sentinel_pipeline_tests.conftest import Backfill

Capture = pytest.CaptureFixture[str]


def _run(args: list[str], capsys: Capture) -> tuple[int, str, str]:
    try:
        code = main(args)
    except SystemExit as exc:  # argparse's own errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def backfilled_env(demo_backfill: Backfill, sentinel_env: Path,
                   monkeypatch: pytest.MonkeyPatch) -> Backfill:
    """Read-only commands pointed at the session's backfilled tables."""
    monkeypatch.setenv("SENTINEL_DATA_DIR", str(demo_backfill.data_dir))
    return demo_backfill


def test_backfill_runs_on_the_dagster_instance_and_writes_each_day(
    sentinel_env: Path, capsys: Capture
) -> None:
    code, out, err = _run(["backfill", "--start", "2025-02-01", "--end", "2025-02-03",
                           "--method", "seed"], capsys)
    assert code == 0, err
    assert "materialised 2025-02-01..2025-02-03" in out
    for day in ("2025-02-01", "2025-02-02", "2025-02-03"):
        assert (sentinel_env / "cost_anomalies" / f"date={day}" / "data.parquet").exists()
    baselines = TableStore(str(sentinel_env)).read_partition("cost_baselines", date(2025, 2, 3))
    assert set(baselines["method"]) == {"seed"}
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs()
        assert len(runs) == 1 and runs[0].tags["sentinel/trigger"] == "cli"
        assert runs[0].tags["dagster/asset_partition_range_start"] == "2025-02-01"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--start", "2025-03-05", "--end", "2025-03-01"], "--start 2025-03-05 is after --end"),
        (["--start", "2024-06-01", "--end", "2024-06-03"], "SENTINEL_START_DATE"),
        (["--start", "2025-01-01", "--end", "2999-01-01"], "last complete day"),
        (["--start", "03/01/2025", "--end", "2025-03-02"], "--start '03/01/2025' is not a date"),
        # Python 3.11's date.fromisoformat takes these; a typo must not pick a day silently
        (["--start", "20250201", "--end", "2025-02-02"], "--start '20250201' is not a date: "
         "use YYYY-MM-DD"),
        (["--start", "2025-02-01", "--end", "2025-W06-1"], "--end '2025-W06-1' is not a date"),
        (["--start", "2025-02-01", "--end", "2025-02-02", "--lookback-days", "5"],
         "lookback_days=5"),
    ],
)
def test_backfill_rejects_bad_options_and_writes_nothing(
    sentinel_env: Path, capsys: Capture, args: list[str], needle: str
) -> None:
    code, out, err = _run(["backfill", *args], capsys)
    assert code != 0
    assert needle in err
    assert not list(sentinel_env.rglob("*.parquet"))
    assert not (sentinel_env.parent / "dagster").exists()  # DAGSTER_HOME: only a run makes it


@pytest.mark.integration  # the run is made and fails on the Dagster instance
def test_a_failed_run_ends_with_one_error_line_and_no_traceback(
    sentinel_env: Path, tmp_path: Path, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENTINEL_SOURCE", "focus")
    monkeypatch.setenv("SENTINEL_SOURCE_PATH", str(tmp_path / "exports"))
    args = ["backfill", "--start", "2025-02-01", "--end", "2025-02-02"]
    code, out, err = _run(args, capsys)
    assert code == 1 and out == ""
    lines = err.splitlines()
    # the step's progress, then why the run failed and the fix; no stack trace, no repeats
    assert "raw_daily_costs: Fetching focus costs for 2025-02-01..2025-02-02" in lines[0]
    assert len(lines) == 2, err
    assert re.fullmatch(r"sentinel backfill: error: run [0-9a-f-]{36} failed: raw_daily_costs: "
                        r"cost source path '.*/exports' does not exist; set "
                        r"SENTINEL_SOURCE_PATH to the folder .*", lines[1])
    code, out, err = _run([*args, "--debug"], capsys)  # Dagster's full log and tracebacks
    assert code == 1 and "Stack Trace:" in err and "STEP_FAILURE" in err
    assert err.splitlines()[-1].startswith("sentinel backfill: error: run ")


def test_errors_are_one_line_and_their_traceback_is_for_debug(
    sentinel_env: Path, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = _run(["summary", "--start", "2025-13-01"], capsys)
    assert code == 2 and out == ""
    assert err == "sentinel summary: error: --start '2025-13-01' is not a date: use " \
                  "YYYY-MM-DD, e.g. 2025-03-01.\n"
    for debug in (["--debug", "summary"], ["summary", "--debug"]):
        code, _, err = _run([*debug, "--start", "2025-13-01"], capsys)
        assert code == 2 and err.startswith("Traceback") and "ConfigError" in err
        assert err.splitlines()[-1].startswith("sentinel summary: error: --start '2025-13-01'")

    from sentinel_pipeline import cli

    def broken(args: argparse.Namespace) -> int:
        raise KeyError("cost")

    monkeypatch.setattr(cli, "cmd_summary", broken)  # a bug, not a user error
    code, _, err = _run(["summary"], capsys)
    assert code == 1 and err == "sentinel summary: error: unexpected KeyError: 'cost' " \
                                "(rerun with --debug for the traceback)\n"
    with pytest.raises(KeyError):
        main(["summary", "--debug"])


def test_unknown_method_is_refused_by_name(sentinel_env: Path, capsys: Capture) -> None:
    code, _, err = _run(["backfill", "--start", "2025-02-01", "--end", "2025-02-02",
                         "--method", "magic"], capsys)
    assert code == 2
    assert "--method" in err and "magic" in err and "robust" in err
    assert not sentinel_env.exists() or not list(sentinel_env.rglob("*.parquet"))


def test_unwritable_data_dir_is_reported(sentinel_env: Path, tmp_path: Path, capsys: Capture,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("SENTINEL_DATA_DIR", str(blocker / "data"))
    code, _, err = _run(["backfill", "--start", "2025-02-01", "--end", "2025-02-01"], capsys)
    assert code == 1
    assert "Cannot write" in err and "SENTINEL_DATA_DIR" in err


@pytest.mark.parametrize("command", ["anomalies", "costs", "summary"])
def test_reading_commands_refuse_a_missing_data_dir_and_create_nothing(
    sentinel_env: Path, tmp_path: Path, capsys: Capture, monkeypatch: pytest.MonkeyPatch,
    command: str,
) -> None:
    # The documented defaults are relative: run from a folder without them, nothing is there.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("SENTINEL_DATA_DIR", "./.sentinel/data")
    monkeypatch.delenv("DAGSTER_HOME")
    code, out, err = _run([command, "--start", "2025-03-01", "--end", "2025-03-07"], capsys)
    assert code == 2 and out == ""
    assert f"SENTINEL_DATA_DIR=.sentinel/data ({elsewhere}/.sentinel/data, relative to this " \
           "folder) does not exist" in err
    assert "sentinel demo" in err and "sentinel backfill" in err and len(err.splitlines()) == 1
    assert list(elsewhere.iterdir()) == []
    # An absolute data dir holding other things but not the table: the same, naming the table.
    (sentinel_env / "_delivery").mkdir(parents=True)
    monkeypatch.setenv("SENTINEL_DATA_DIR", str(sentinel_env))
    code, _, err = _run([command, "--start", "2025-03-01", "--end", "2025-03-07"], capsys)
    assert code == 2 and f"SENTINEL_DATA_DIR={sentinel_env} holds no " in err
    assert list(elsewhere.iterdir()) == [] and not (tmp_path / "dagster").exists()


def test_reading_commands_say_which_days_a_table_holds(backfilled_env: Backfill,
                                                       capsys: Capture) -> None:
    code, out, err = _run(["costs", "--start", "2026-01-01", "--end", "2026-01-31"], capsys)
    assert code == 0 and out.strip() == "(no rows)"
    assert "raw_daily_costs has no day in 2026-01-01..2026-01-31; it holds " \
           "2025-01-01..2025-03-31 (90 day(s))" in err


def test_anomalies_csv_has_a_header_and_one_row_per_anomaly(
    backfilled_env: Backfill, capsys: Capture
) -> None:
    expected = TableStore(str(backfilled_env.data_dir)).read_range(
        "cost_anomalies", date(2025, 3, 1), date(2025, 3, 31))
    code, out, _ = _run(["anomalies", "--start", "2025-03-01", "--end", "2025-03-31",
                         "--format", "csv"], capsys)
    assert code == 0
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ANOMALY_COLUMNS
    assert len(rows) - 1 == len(expected) > 0
    parsed = pd.read_csv(io.StringIO(out))
    assert parsed["usage_date"].between("2025-03-01", "2025-03-31").all()
    # each rounded to the cent: they agree within three half-cents
    difference = parsed["impact"] - (parsed["actual_cost"] - parsed["expected_cost"])
    assert difference.abs().max() <= 0.015 + 1e-9


def test_anomalies_json_and_min_score(backfilled_env: Backfill, capsys: Capture) -> None:
    code, out, _ = _run(["anomalies", "--start", "2025-02-01", "--end", "2025-03-31",
                         "--format", "json"], capsys)
    assert code == 0
    records = json.loads(out)
    assert records and set(ANOMALY_COLUMNS) <= set(records[0])
    threshold = sorted(abs(r["score"]) for r in records)[len(records) // 2]
    code, out, _ = _run(["anomalies", "--start", "2025-02-01", "--end", "2025-03-31",
                         "--format", "json", "--min-score", str(threshold)], capsys)
    strong = json.loads(out)
    assert 0 < len(strong) < len(records)
    assert all(abs(r["score"]) >= threshold for r in strong)


def test_numbers_are_rounded_and_json_is_typed(backfilled_env: Backfill,
                                                capsys: Capture) -> None:
    """Money to the cent, percentages to a tenth, scores to a hundredth, in every format; JSON
    dates are days and root_causes an array."""
    window = ["--start", "2025-03-01", "--end", "2025-03-31"]
    code, out, _ = _run(["anomalies", *window, "--format", "json"], capsys)
    records = json.loads(out)
    assert code == 0 and records
    decimals = {"actual_cost": 2, "expected_cost": 2, "lower": 2, "upper": 2, "impact": 2,
                "pct_change": 1, "score": 2}
    for record in records:
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", record["usage_date"])
        assert record["anomaly_start"] is None or re.fullmatch(r"\d{4}-\d{2}-\d{2}",
                                                               record["anomaly_start"])
        assert all(record[c] is None or round(record[c], n) == record[c]  # None: NaN
                   for c, n in decimals.items())
        assert isinstance(record["root_causes"], list) and isinstance(record["alert"], bool)
    assert any(r["root_causes"] and "increase" in r["root_causes"][0] for r in records)
    code, out, _ = _run(["anomalies", *window, "--format", "csv"], capsys)
    text = pd.read_csv(io.StringIO(out), dtype=str, keep_default_na=False)
    for column, n in decimals.items():
        assert text[column].str.fullmatch(rf"(-?\d+(\.\d{{1,{n}}})?)?").all(), column
    code, out, _ = _run(["anomalies", *window], capsys)
    # ... actual_cost expected_cost impact pct_change score kind alert (service has spaces)
    *_, actual, expected, impact, pct, score, _, _ = out.splitlines()[2].split()
    assert all(re.fullmatch(r"-?[\d,]+\.\d\d", v) for v in (actual, expected, impact))
    assert re.fullmatch(r"-?[\d,]+\.\d", pct) and re.fullmatch(r"-?\d+\.\d\d", score)
    code, out, _ = _run(["summary", *window, "--format", "json"], capsys)
    summary = json.loads(out)  # the data only: the title line is for tables
    assert all(round(r["total_cost"], 2) == r["total_cost"]
               and round(r["share_pct"], 1) == r["share_pct"] for r in summary)
    code, out, _ = _run(["costs", *window, "--format", "json"], capsys)
    costs = json.loads(out)
    assert costs and all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", r["usage_date"])
                         and round(r["cost"], 2) == r["cost"] for r in costs)


def test_anomalies_table_format(backfilled_env: Backfill, capsys: Capture) -> None:
    code, out, _ = _run(["anomalies", "--start", "2025-03-01", "--end", "2025-03-31"], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["usage_date", "service", "account_id"]
    assert set(lines[1].replace(" ", "")) == {"-"}


def test_anomalies_show_which_rows_alert_and_alerts_only(backfilled_env: Backfill,
                                                          capsys: Capture) -> None:
    store = TableStore(str(backfilled_env.data_dir))
    window = ["--start", "2025-03-01", "--end", "2025-03-31"]
    stored = store.read_range("cost_anomalies", date(2025, 3, 1), date(2025, 3, 31))
    alerts = store.read_range("annotated_alerts", date(2025, 3, 1), date(2025, 3, 31))
    assert 0 < len(alerts) == stored["alert"].sum() < len(stored)
    code, out, _ = _run(["anomalies", *window], capsys)
    assert code == 0
    header, _, *rows = out.splitlines()
    assert header.split()[-1] == "alert" and len(rows) == len(stored)
    assert sum(row.split()[-1] == "yes" for row in rows) == len(alerts)
    code, out, _ = _run(["anomalies", *window, "--alerts-only", "--format", "csv"], capsys)
    listed = pd.read_csv(io.StringIO(out), dtype=str)
    assert code == 0 and set(listed["alert"]) == {"True"}
    assert sorted(zip(listed["usage_date"], listed["service"], strict=True)) == sorted(
        (str(d), s) for d, s in zip(alerts["usage_date"], alerts["service"], strict=True))


def test_costs_filters_and_summary_totals(backfilled_env: Backfill, capsys: Capture) -> None:
    service = "Amazon Simple Storage Service"
    code, out, _ = _run(["costs", "--service", service, "--start", "2025-03-01", "--end",
                         "2025-03-07", "--format", "csv"], capsys)
    assert code == 0
    costs = pd.read_csv(io.StringIO(out))
    assert len(costs) >= 7 and set(costs["service"]) == {service}
    raw = TableStore(str(backfilled_env.data_dir)).read_range(
        "raw_daily_costs", date(2025, 3, 1), date(2025, 3, 7))
    code, out, _ = _run(["summary", "--start", "2025-03-01", "--end", "2025-03-07",
                         "--format", "csv"], capsys)
    assert code == 0
    summary = pd.read_csv(io.StringIO(out))  # the data only: no title line in csv
    assert summary["total_cost"].sum() == pytest.approx(raw["cost"].sum(), abs=0.005 * len(summary))
    assert summary["total_cost"].is_monotonic_decreasing


def test_cost_filters_match_part_of_a_name_ignoring_case_and_say_when_nothing_matched(
    backfilled_env: Backfill, capsys: Capture
) -> None:
    window = ["--start", "2025-03-01", "--end", "2025-03-07", "--format", "csv"]
    code, out, _ = _run(["costs", *window, "--service", "Amazon CloudWatch"], capsys)
    exact = pd.read_csv(io.StringIO(out), dtype=str)
    code, out, err = _run(["costs", *window, "--service", "cloudwatch", "--region", "EU-"],
                          capsys)
    assert code == 0 and err == ""
    found = pd.read_csv(io.StringIO(out), dtype=str)
    assert len(found) and set(found["service"]) == {"Amazon CloudWatch"}
    assert found["region"].str.startswith("eu-").all()
    assert len(found) < len(exact) and set(found["account_id"]) <= set(exact["account_id"])
    code, out, err = _run(["costs", *window[:4], "--service", "cloudwach"], capsys)
    assert code == 0 and out.strip() == "(no rows)"
    assert "--service 'cloudwach' matches no service in 2025-03-01..2025-03-07" in err
    assert "Amazon Elastic Compute Cloud - Compute" in err  # the largest service there
    code, out, err = _run(["costs", *window[:4], "--service", "lambda", "--region", "eu-"],
                          capsys)
    assert "--service 'lambda' --region 'eu-' match no row together" in err


def test_every_option_has_help() -> None:
    from sentinel_pipeline.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(commands.choices) >= {"demo", "backfill", "anomalies", "costs", "summary",
                                     "doctor"}
    for name, command in commands.choices.items():
        for action in command._actions:
            assert action.help, f"sentinel {name} {'/'.join(action.option_strings)}"


@pytest.mark.integration  # with a token, doctor asks Slack (the local fake) for its scopes
def test_doctor_passes_on_defaults_and_never_prints_secrets(
    sentinel_env: Path, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sentinel_pipeline_tests.fake_slack import fake_slack

    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-very-secret")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-very-secret")
    with fake_slack() as slack:
        monkeypatch.setenv("SENTINEL_SLACK_API_URL", slack.url)
        code, out, err = _run(["doctor"], capsys)
    assert code == 0, out
    assert "SLACK_BOT_TOKEN set" in out
    assert slack.auth_headers == ["Bearer xoxb-very-secret"]  # one call, to the fake only
    assert "very-secret" not in out + err


def test_doctor_names_the_event_settings_on_a_postgres_instance(
    sentinel_env: Path, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With deploy/dagster.yaml (PostgreSQL) in DAGSTER_HOME, doctor says whether Dagster's
    two event settings for big backfills are set, and how to set them; on SQLite it says
    nothing of them. Advice, not a failure. (It does not connect to PostgreSQL.)"""
    home = sentinel_env.parent / "prod_home"
    home.mkdir()
    shutil.copy(Path(__file__).resolve().parents[1] / "deploy" / "dagster.yaml",
                home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    for name in ("DAGSTER_EVENT_BATCH_SIZE", "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"):
        monkeypatch.delenv(name, raising=False)
    code, out, _ = _run(["doctor"], capsys)
    assert code == 0, out
    line = next(x for x in out.splitlines() if "Dagster events" in x)
    assert "DAGSTER_EVENT_BATCH_SIZE=1000 and " \
        "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS=true" in line
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "1000")
    monkeypatch.setenv("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "true")
    code, out, _ = _run(["doctor"], capsys)
    assert code == 0 and "Dagster events: written in batches" in out
    monkeypatch.setenv("DAGSTER_HOME", str(sentinel_env.parent / "dagster"))
    code, out, _ = _run(["doctor"], capsys)
    assert "Dagster events" not in out


def test_doctor_fails_on_a_broken_source(sentinel_env: Path, capsys: Capture,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTINEL_SOURCE", "focus")
    monkeypatch.setenv("SENTINEL_SOURCE_PATH", "/nonexistent/exports")
    code, out, _ = _run(["doctor"], capsys)
    assert code == 1
    failed = [line for line in out.splitlines() if line.startswith("[FAIL]")]
    assert len(failed) == 1 and "'/nonexistent/exports' does not exist" in failed[0]
    assert "set SENTINEL_SOURCE_PATH to" in failed[0]  # the fix


def _focus_files(folder: Path, files: dict[str, str]) -> str:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return str(folder)


FOCUS_HEADER = "ChargePeriodStart,ServiceName,SubAccountId,BilledCost\n"


@pytest.mark.parametrize(
    ("files", "bad", "problem"),
    [
        ({"a.csv": "name,age\nbob,3\n", "b.csv": "x\n1\n"}, "a.csv",
         "missing required column(s) ChargePeriodStart, ServiceName, SubAccountId, BilledCost"),
        ({"2025/01.csv": FOCUS_HEADER + "2025-01-01T00:00:00Z,EC2,1,3\n",
          "2025/02.csv": FOCUS_HEADER + "yesterday,EC2,1,3\n"}, "2025/02.csv",
         "column ChargePeriodStart has the value 'yesterday' at data row 1 (line 2) that is not "
         "a date"),
        ({"a.csv": FOCUS_HEADER + "2025-01-01T00:00:00Z,EC2,1,$3.00\n"}, "a.csv",
         "column BilledCost has the value '$3.00' at data row 1 (line 2) that is not a number"),
        ({"a.parquet": "not parquet at all"}, "a.parquet", "cannot be read as Parquet"),
    ],
)
def test_doctor_reads_a_sample_of_the_focus_files(
    sentinel_env: Path, tmp_path: Path, capsys: Capture, monkeypatch: pytest.MonkeyPatch,
    files: dict[str, str], bad: str, problem: str,
) -> None:
    monkeypatch.setenv("SENTINEL_SOURCE", "focus")
    monkeypatch.setenv("SENTINEL_SOURCE_PATH", _focus_files(tmp_path / "exports", files))
    code, out, _ = _run(["doctor"], capsys)
    failed = [line for line in out.splitlines() if line.startswith("[FAIL]")]
    assert code == 1 and len(failed) == 1, out
    assert f"{tmp_path / 'exports' / bad}" in failed[0] and problem in failed[0]
    good = {"a.csv": FOCUS_HEADER + "2025-01-01T00:00:00Z,EC2,1,3\n" * 4}
    monkeypatch.setenv("SENTINEL_SOURCE_PATH", _focus_files(tmp_path / "good", good))
    code, out, _ = _run(["doctor"], capsys)
    assert code == 0 and "sampled 1: columns and first 4 row(s) parse" in out


def test_doctor_reads_the_schema_of_a_cur_data_file(
    sentinel_env: Path, tmp_path: Path, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from sentinel_pipeline_tests import cur_fakes as fake

    export = tmp_path / "cur" / fake.EXPORT
    monkeypatch.setenv("SENTINEL_SOURCE", "cur")
    monkeypatch.setenv("SENTINEL_SOURCE_PATH", str(export))
    january, february = tmp_path / "cur" / fake.data_key("2025-01"), \
        tmp_path / "cur" / fake.data_key("2025-02")
    january.parent.mkdir(parents=True)
    january.write_bytes(fake.parquet_bytes([fake.Item(date(2025, 1, 3), 5.0)]))
    code, out, _ = _run(["doctor"], capsys)
    assert code == 0 and f"the columns of {january} are as needed" in out
    february.parent.mkdir(parents=True)  # the latest period: some other Parquet file
    pq.write_table(pa.table({"day": ["2025-02-01"], "amount": [3.0]}), february)
    code, out, _ = _run(["doctor"], capsys)
    failed = [line for line in out.splitlines() if line.startswith("[FAIL]")]
    assert code == 1 and len(failed) == 1, out
    assert f"{february}: missing CUR 2.0 column(s) line_item_usage_start_date" in failed[0]


def test_doctor_reports_a_damaged_delivery_ledger(sentinel_env: Path, capsys: Capture) -> None:
    code, out, _ = _run(["doctor"], capsys)
    assert code == 0 and "[ok] delivery ledger: 0 alert(s) delivered, 0 post(s) pending" in out
    ledger = sentinel_env / "_delivery" / "ledger.json"
    ledger.parent.mkdir(parents=True, exist_ok=True)
    ledger.write_text("[1, 2]")
    code, out, _ = _run(["doctor"], capsys)
    failed = [line for line in out.splitlines() if line.startswith("[FAIL]")]
    assert code == 1 and len(failed) == 1 and str(ledger) in failed[0]
    assert "restore" in failed[0]  # the fix


def test_demo_refuses_to_overwrite_a_real_source(sentinel_env: Path, capsys: Capture,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTINEL_SOURCE", "focus")
    code, _, err = _run(["demo", "--days", "3"], capsys)
    assert code == 2 and "SENTINEL_SOURCE=focus" in err


@pytest.mark.integration  # `sentinel demo` runs the pipeline on the Dagster instance
def test_demo_prints_alerts_with_explanations(sentinel_env: Path, capsys: Capture,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import timedelta

    from sentinel_pipeline import cli
    from sentinel_pipeline.sources.demo import demo_known_anomalies

    # A fixed "yesterday" whose last 20 days hold four known anomalies of four kinds, so 20 days
    # (plus the 35 days of history the demo adds) prove what 60 would, in half the run.
    end = date(2025, 3, 24)
    monkeypatch.setattr(cli, "_yesterday", lambda: end)
    code, out, err = _run(["demo", "--days", "20"], capsys)
    assert code == 0, err
    assert "2025-03-05..2025-03-24 (and 35 days of history before)" in out
    assert "alert(s):" in out and "Explanations:" in out
    assert "where to look:" in out
    known = demo_known_anomalies(end - timedelta(days=19), end - timedelta(days=3))
    assert len(known) >= 4 and known["kind"].nunique() >= 2
    lines = out.splitlines()
    found = [k for k in known.itertuples()
             if any(line.startswith(str(k.start_date + timedelta(days=d))) and k.service in line
                    for line in lines for d in range(3))]
    assert len(found) >= 3 and len(found) >= len(known) - 1, (len(found), len(known))
