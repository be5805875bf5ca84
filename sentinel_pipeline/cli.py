"""The `sentinel` command: runs the same Dagster job on the same instance as the UI, and reads
the tables it wrote."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import traceback
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sentinel_pipeline import settings
from sentinel_pipeline.errors import ConfigError, SentinelError

DEMO_WARMUP_DAYS = 35
_debug = False  # --debug (set by main): tracebacks and Dagster's full run log
TABLE_LIMIT_CHARS = 60


# ------------------------------------------------------------------ environment
def _quiet_warnings() -> None:
    """Dagster's beta/preview warnings say nothing a Sentinel user can act on."""
    warnings.filterwarnings("ignore", category=Warning, module="dagster")
    warnings.filterwarnings("ignore", message=r".*(beta|preview).*", category=Warning)


def _prepare_dagster_home() -> None:
    """Give DAGSTER_HOME its documented default, so runs land in the instance the UI reads.
    Only commands that run the pipeline call it: reading commands and doctor create nothing
    (run from another folder, the relative default would leave a stray ./.sentinel/)."""
    home = Path(settings.read("DAGSTER_HOME")).resolve()
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"DAGSTER_HOME={home} cannot be created ({exc.strerror}): "
                          "point DAGSTER_HOME at a writable folder.") from exc
    os.environ["DAGSTER_HOME"] = str(home)
    instance_yaml = home / "dagster.yaml"
    if not instance_yaml.exists():
        # Defaults mean SQLite storage in DAGSTER_HOME. Telemetry off: this is the user's
        # machine, and Sentinel's runs should not phone home unless they choose so.
        # Written aside and renamed: two first-time commands never see a half-written file.
        aside = home / f".dagster.yaml.{os.getpid()}"
        aside.write_text("telemetry:\n  enabled: false\n")
        os.replace(aside, instance_yaml)


@contextmanager
def open_instance() -> Iterator[Any]:
    """The Dagster instance of DAGSTER_HOME. Its first opening creates the SQLite schema; two
    first-time commands at once would race there ("table run_tags already exists"), so the
    opening holds a lock file in DAGSTER_HOME."""
    import fcntl

    import dagster as dg

    lock_path = Path(os.environ["DAGSTER_HOME"]) / ".sentinel-instance.lock"
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            instance = dg.DagsterInstance.get()
            instance.get_runs(limit=1)  # storage (and its schema) is created lazily: now
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    with instance:
        yield instance


def _data_dir() -> str:
    from sentinel_pipeline.defs.resources import resolved, resources_from_environment

    return resolved(resources_from_environment()["storage"]).data_dir


def _store() -> Any:
    from sentinel_pipeline.storage import TableStore

    return TableStore(_data_dir())


_FIX_NO_DATA = ("run `sentinel demo` (demo data) or `sentinel backfill --start D --end D` "
                "first, or set SENTINEL_DATA_DIR to the folder or s3:// URL your runs write to")


def _read_table(table: str, start: date, end: date) -> pd.DataFrame:
    """The table's rows in [start, end] for a reading command. A data dir that does not exist
    or holds no such table is an error naming SENTINEL_DATA_DIR, not an empty answer (most
    often the command runs from another folder than the runs, with the relative default);
    nothing is created. A table without a day in the range says which days it has."""
    store = _store()
    days = store.partitions(table)
    if not days:
        where = f"SENTINEL_DATA_DIR={store.root}"
        if not store.is_s3:
            path = Path(store.root)
            if not path.is_absolute():
                where += f" ({path.resolve()}, relative to this folder)"
            if not path.exists():
                raise ConfigError(f"{where} does not exist: {_FIX_NO_DATA}.")
        raise ConfigError(f"{where} holds no {table} table: {_FIX_NO_DATA}.")
    rows = store.read_range(table, start, end)
    if not any(start <= day <= end for day in days):
        print(f"note: {table} has no day in {start}..{end}; it holds {days[0]}..{days[-1]} "
              f"({len(days)} day(s)).", file=sys.stderr)
    return rows


# ------------------------------------------------------------------------ dates
_DAY_FORMAT = re.compile(r"\d{4}-\d{2}-\d{2}")


def _parse_day(value: str, option: str) -> date:
    """YYYY-MM-DD only: Python 3.11's date.fromisoformat also takes 20251120 and 2025-W47-4,
    which a typo could turn into a day nobody meant."""
    try:
        if not _DAY_FORMAT.fullmatch(value):
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError as exc:
        raise ConfigError(f"{option} {value!r} is not a date: use YYYY-MM-DD, "
                          "e.g. 2025-03-01.") from exc


def _yesterday() -> date:
    return datetime.now(UTC).date() - timedelta(days=1)


def _day_range(args: argparse.Namespace, default_days: int = 30) -> tuple[date, date]:
    """--start/--end as dates, defaulting to the last `default_days` complete days."""
    end = _parse_day(args.end, "--end") if args.end else _yesterday()
    start = (_parse_day(args.start, "--start") if args.start
             else end - timedelta(days=default_days - 1))
    if start > end:
        raise ConfigError(f"--start {start} is after --end {end}: swap them.")
    return start, end


def _check_partition_range(start: date, end: date) -> None:
    first = settings.start_date()
    last = _yesterday()
    if start < first:
        raise ConfigError(
            f"--start {start} is before the first partition {first}: use a later --start, or "
            f"set SENTINEL_START_DATE={start} to keep history from that day."
        )
    if end > last:
        raise ConfigError(
            f"--end {end} is after the last complete day {last} (UTC): a day's partition exists "
            "once the day is over; use an earlier --end."
        )


# ---------------------------------------------------------------------- running
def run_pipeline(start: date, end: date, detection: dict[str, Any] | None = None) -> None:
    """Materialise the four assets for the days, inclusive, in one run on the instance."""

    from sentinel_pipeline.definitions import defs
    from sentinel_pipeline.defs.sensors import fail_abandoned_cli_runs
    from sentinel_pipeline.process import identity_tags

    _check_partition_range(start, end)
    if detection:
        from sentinel_pipeline.defs.resources import DetectionResource

        DetectionResource(**detection).config()  # refuse bad knobs before anything is written
    _store().check_writable()
    job = defs.resolve_job_def("sentinel_daily_job")
    tags = {"sentinel/trigger": "cli", **identity_tags()}
    partition_key = None
    if start == end:
        partition_key = start.isoformat()
    else:
        tags |= {"dagster/asset_partition_range_start": start.isoformat(),
                 "dagster/asset_partition_range_end": end.isoformat()}
    if _debug:  # Dagster's own console log: every event, failures with their stack traces
        run_config: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": "DEBUG"}}}}
    else:
        job = job.with_logger_defs({"progress": _progress_logger()})
        run_config = {"loggers": {"progress": {"config": {"log_level": "INFO"}}}}
    if detection:
        run_config["resources"] = {"detection": {"config": detection}}
    _prepare_dagster_home()
    with open_instance() as instance:
        for run_id in fail_abandoned_cli_runs(instance):
            print(f"Run {run_id} was left running by a sentinel command that is gone: marked "
                  "failed (rerun its days if needed).", file=sys.stderr)
        result = job.execute_in_process(
            instance=instance, partition_key=partition_key, tags=tags, run_config=run_config,
            raise_on_error=False,
        )
    if not result.success:
        raise SentinelError(f"run {result.run_id} failed: {failure_line(result)}")
    print(f"Run {result.run_id} materialised {start}..{end} "
          f"({(end - start).days + 1} day(s)); open `make dev` to see it in the UI.")


def failure_messages(result: Any) -> list[str]:
    """The error message of each failed step of an in-process run, with its causes (a step
    that used up its retries says only "Exceeded max_retries"; the cause says why)."""
    messages = []
    for event in result.all_events:
        error = event.step_failure_data.error if event.is_step_failure else None
        parts = []
        while error is not None:
            parts.append(error.message.strip())
            error = error.cause
        if parts:
            messages.append("\n  caused by: ".join(parts))
    return messages


def failure_line(result: Any) -> str:
    """Why an in-process run failed, in one line: each failed step and the root of its error
    (a step that used up its retries says only "Exceeded max_retries"; the cause says why).
    Our errors and dg.Failure carry the fix in their message; anything else is a bug, whose
    traceback --debug shows."""
    parts = []
    for event in result.all_events:
        if not event.is_step_failure or event.step_failure_data.error is None:
            continue
        error = event.step_failure_data.error
        while error.cause is not None:
            error = error.cause
        text = " ".join(error.message.split())
        kind, _, message = text.partition(": ")
        if kind.startswith("sentinel_pipeline.") or kind.endswith(".Failure"):
            text = message
        else:
            text += " (unexpected: rerun with --debug for the traceback)"
        parts.append(f"{event.step_key}: {text}")
    return "; ".join(parts) or "no step failed; see the run in the Dagster UI (make dev)"


class _ProgressHandler(logging.Handler):
    """A run's progress as one short line per message its steps log (context.log.info and
    up), on stderr. Errors are left out: the command ends with one line saying why the run
    failed, and --debug shows Dagster's full log with the tracebacks instead."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:
            return
        meta = getattr(record, "dagster_meta", None) or {}
        message = str(meta.get("orig_message") or record.getMessage())
        step = meta.get("step_key")
        if step and not message.startswith(str(step)):
            message = f"{step}: {message}"
        if record.levelno >= logging.WARNING:
            message = f"warning: {message}"
        stamp = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        print(f"{stamp} {message}", file=sys.stderr)


def _progress_logger() -> Any:
    import dagster as dg

    @dg.logger(dg.Field({"log_level": dg.Field(str, is_required=False, default_value="INFO")}),
               description="Sentinel CLI progress: one line per step message, no tracebacks")
    def progress(context: dg.InitLoggerContext) -> logging.Logger:
        log = logging.Logger("sentinel", level=context.logger_config["log_level"])
        log.addHandler(_ProgressHandler())
        return log

    return progress


def _detection_options(args: argparse.Namespace) -> dict[str, Any]:
    names = ["method", "min_impact", "min_pct_change", "score_threshold", "lookback_days"]
    options = {n: getattr(args, n) for n in names if getattr(args, n) is not None}
    if args.alert_on_drops:
        options["alert_on_drops"] = True
    return options


# ----------------------------------------------------------------------- output
# Decimals of each number column, the same in every format: money to the cent, percentages to
# a tenth, robust scores to a hundredth. Unlisted float columns get 2 in tables, none elsewhere.
_DECIMALS: dict[str, int] = {
    **dict.fromkeys(("cost", "actual_cost", "expected_cost", "lower", "upper", "impact",
                     "total_cost"), 2),
    "pct_change": 1, "share_pct": 1, "score": 2,
}
# Columns stored as JSON text: an array in JSON output ("" -> []), the text in CSV.
_JSON_TEXT_COLUMNS = frozenset({"root_causes"})


def _fmt(value: Any, column: str = "") -> str:
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "" if pd.isna(value) else f"{value:,.{_DECIMALS.get(column, 2)}f}"
    if value is None or value is pd.NA:
        return ""
    text = str(value)
    return text if len(text) <= TABLE_LIMIT_CHARS else text[: TABLE_LIMIT_CHARS - 1] + "…"


def format_table(df: pd.DataFrame, columns: list[str]) -> str:
    """A plain aligned text table, numbers right-aligned."""
    cells = [[_fmt(v, c) for v, c in zip(row, columns, strict=True)]
             for row in df[columns].itertuples(index=False)]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    right = [pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])
             for c in columns]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if r else v.ljust(w)
                         for v, w, r in zip(values, widths, right, strict=True)).rstrip()

    lines = [line(columns), "  ".join("-" * w for w in widths)]
    lines += [line(r) for r in cells]
    return "\n".join(lines)


def _rounded(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    out = df[columns].copy()
    for column in columns:
        if column in _DECIMALS and pd.api.types.is_float_dtype(out[column]):
            out[column] = out[column].round(_DECIMALS[column])
    return out


def _json_value(column: str, value: Any) -> Any:
    """One cell as JSON: days as YYYY-MM-DD, missing as null, JSON text as what it holds."""
    if column in _JSON_TEXT_COLUMNS:
        return json.loads(value) if isinstance(value, str) and value.strip() else []
    if value is None or (not isinstance(value, str | list | dict) and pd.isna(value)):
        return None
    if isinstance(value, datetime):  # also pd.Timestamp; the date columns hold whole days
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value.item() if isinstance(value, np.generic) else value


def _emit(df: pd.DataFrame, columns: list[str], fmt: str) -> None:
    if fmt == "csv":
        sys.stdout.write(_rounded(df, columns).to_csv(index=False))
    elif fmt == "json":
        rounded = _rounded(df, columns)
        records = [{c: _json_value(c, v) for c, v in zip(columns, row, strict=True)}
                   for row in rounded.itertuples(index=False)]
        print(json.dumps(records, indent=2))
    else:
        print(format_table(df, columns) if len(df) else "(no rows)")


# --------------------------------------------------------------------- commands
def cmd_demo(args: argparse.Namespace) -> int:
    from sentinel_pipeline.defs.resources import resolved, resources_from_environment

    source = resolved(resources_from_environment()["source"]).source
    if source != "demo":
        raise ConfigError(
            f"sentinel demo writes demo data into SENTINEL_DATA_DIR ({_data_dir()}), but "
            f"SENTINEL_SOURCE={source}: unset SENTINEL_SOURCE, or set SENTINEL_DATA_DIR to "
            "another folder for the demo."
        )
    if args.days < 1:
        raise ConfigError(f"--days {args.days} must be at least 1.")
    end = _yesterday()
    start = end - timedelta(days=args.days - 1)
    # As a real first backfill would, give the baselines history to learn from before the
    # days shown (a month: weekday shapes, monthly charges), within the partition range.
    first = settings.start_date()
    warm_start = max(start - timedelta(days=DEMO_WARMUP_DAYS), first)
    print(f"Sentinel demo: {args.days} days of synthetic costs, {start}..{end} "
          f"(and {(start - warm_start).days} days of history before), into {_data_dir()}")
    run_pipeline(warm_start, end)
    # `make dev` starts the daily partitions on the first day written here (unless
    # SENTINEL_START_DATE is set), so the UI shows the demo's days, not every day since the
    # default start date as missing. Kept in DAGSTER_HOME, beside the runs it describes; written
    # aside and renamed, so the Makefile never reads half a date.
    record = Path(os.environ["DAGSTER_HOME"]) / "sentinel-demo-start"
    aside = record.with_name(f".{record.name}.{os.getpid()}")
    aside.write_text(f"{warm_start.isoformat()}\n")
    os.replace(aside, record)
    alerts = _store().read_range("annotated_alerts", start, end)
    if len(alerts) == 0:
        print("No alerts found.")
        return 0
    alerts = alerts.sort_values(["usage_date", "impact"], ascending=[True, False])
    print(f"\n{len(alerts)} alert(s):\n")
    print(format_table(alerts, ["usage_date", "service", "account_id", "region",
                                *_owner_column(alerts), "actual_cost", "expected_cost",
                                "impact", "kind"]))
    print("\nExplanations:")
    for _, row in alerts.iterrows():
        print(f"- {row['usage_date']} {row['service']} ({row['kind']}): {row['explanation']}")
        print(f"  where to look: {row['where_to_look']}; action: {row['action']}")
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    start = _parse_day(args.start, "--start")
    end = _parse_day(args.end, "--end")
    if start > end:
        raise ConfigError(f"--start {start} is after --end {end}: swap them.")
    run_pipeline(start, end, _detection_options(args))
    return 0


def cmd_anomalies(args: argparse.Namespace) -> int:
    from sentinel_pipeline.schema import ANOMALY_COLUMNS, conform

    start, end = _day_range(args)
    rows = _read_table("cost_anomalies", start, end)
    rows = conform(rows, ANOMALY_COLUMNS)
    if args.min_score is not None:
        rows = rows[rows["score"].abs() >= args.min_score]
    if args.alerts_only:
        rows = rows[rows["alert"].fillna(False).astype(bool)]
    rows = rows.sort_values(["usage_date", "impact"], ascending=[True, False])
    columns = ANOMALY_COLUMNS if args.format != "table" else [
        "usage_date", "service", "account_id", "region", *_owner_column(rows), "actual_cost",
        "expected_cost", "impact", "pct_change", "score", "kind", "alert"]
    _emit(rows, columns, args.format)
    return 0


def cmd_costs(args: argparse.Namespace) -> int:
    from sentinel_pipeline.schema import RAW_COLUMNS, conform

    start, end = _day_range(args)
    rows = conform(_read_table("raw_daily_costs", start, end), RAW_COLUMNS)
    rows = _filtered(rows, [("--service", "service", args.service),
                            ("--region", "region", args.region),
                            ("--account", "account_id", args.account),
                            ("--owner", "owner", args.owner)], f"{start}..{end}")
    if args.untagged:
        rows = rows[rows["owner"].fillna("") == ""]
    rows = rows.sort_values(["usage_date", "service", "account_id", "region", "owner"])
    columns = ["usage_date", "service", "account_id", "region", "owner", "cost", "currency"]
    if args.format == "table":
        columns = [c for c in columns if c != "owner" or _owner_column(rows)]
    _emit(rows, columns, args.format)
    return 0


def _owner_column(rows: pd.DataFrame) -> list[str]:
    """["owner"] when a table shows owned series (SENTINEL_OWNER_KEY set), else nothing: a
    column of blanks would only widen the table. CSV and JSON always have the column."""
    if "owner" not in rows.columns or not (rows["owner"].fillna("") != "").any():
        return []
    return ["owner"]


def _filtered(rows: pd.DataFrame, filters: list[tuple[str, str, str | None]],
              window: str) -> pd.DataFrame:
    """Rows whose column contains each given text, ignoring case: names are long and spelled
    differently per source (--service cloudwatch finds AmazonCloudWatch and Amazon
    CloudWatch). A filter that matches nothing says so on stderr, with the largest values
    there are, rather than leaving an empty answer to guess at."""
    given = [(option, column, text.strip()) for option, column, text in filters
             if text and text.strip()]
    keep = pd.Series(True, index=rows.index)
    for option, column, text in given:
        match = rows[column].astype(str).str.contains(text, case=False, regex=False)
        if len(rows) and not match.any():
            largest = (rows.groupby(column)["cost"].sum().sort_values(ascending=False)
                       .index[:5])
            print(f"note: {option} {text!r} matches no {column} in {window}; the largest "
                  f"there: {', '.join(map(str, largest))}", file=sys.stderr)
        keep &= match
    if len(given) > 1 and keep.sum() == 0 and len(rows):
        named = " ".join(f"{option} {text!r}" for option, _, text in given)
        print(f"note: {named} match no row together in {window}", file=sys.stderr)
    return rows[keep]


def cmd_summary(args: argparse.Namespace) -> int:
    from sentinel_pipeline.schema import RAW_COLUMNS, conform

    start, end = _day_range(args)
    rows = conform(_read_table("raw_daily_costs", start, end), RAW_COLUMNS)
    summary = (rows.groupby(["service", "currency"], as_index=False)
               .agg(total_cost=("cost", "sum"), days=("usage_date", "nunique"))
               .sort_values("total_cost", ascending=False))
    total = summary["total_cost"].sum()
    summary["share_pct"] = summary["total_cost"] / total * 100 if total else 0.0
    if args.format == "table":  # csv and json stay parseable: the data only
        print(f"Cost per service, {start}..{end}: total {total:,.2f}")
    _emit(summary, ["service", "total_cost", "share_pct", "days", "currency"], args.format)
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from sentinel_pipeline.doctor import run_checks

    ok = True
    for passed, line in run_checks():
        print(f"[{'ok' if passed else 'FAIL'}] {line}")
        ok &= passed
    return 0 if ok else 1


# ----------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    from sentinel_pipeline.settings import METHODS

    parser = argparse.ArgumentParser(prog="sentinel", description="Cloud cost anomaly detection "
                                     "on Dagster: every command runs on the Dagster instance.")
    parser.add_argument("--debug", action="store_true",
                        help="on an error, print its traceback; runs print Dagster's full log")
    # Also accepted after the command (sentinel backfill ... --debug); SUPPRESS keeps a
    # --debug given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="as `sentinel --debug`: tracebacks and Dagster's full run log")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", parents=[common], help="materialise the last N days of demo "
                          "data (plus 35 days of history before them), print their alerts")
    demo.add_argument("--days", type=int, default=60,
                      help="days to show, ending yesterday (default 60)")
    demo.set_defaults(func=cmd_demo)

    backfill = sub.add_parser("backfill", parents=[common],
                              help="materialise all assets for days, in one run")
    backfill.add_argument("--start", required=True, help="first day, YYYY-MM-DD")
    backfill.add_argument("--end", required=True, help="last day (inclusive), YYYY-MM-DD")
    backfill.add_argument("--method", choices=METHODS, help="detection method (default robust)")
    backfill.add_argument("--min-impact", type=float, help="smallest $ change to alert on")
    backfill.add_argument("--min-pct-change", type=float, help="smallest %% change to alert on")
    backfill.add_argument("--score-threshold", type=float,
                          help="calibrated score: about P(Z > s) false alarms a series-day")
    backfill.add_argument("--lookback-days", type=int, help="history days for the baseline")
    backfill.add_argument("--alert-on-drops", action="store_true", help="alert on cost drops")
    backfill.set_defaults(func=cmd_backfill)

    def ranged(p: argparse.ArgumentParser) -> None:
        p.add_argument("--start", help="first day, YYYY-MM-DD (default: 30 days before --end)")
        p.add_argument("--end", help="last day, YYYY-MM-DD (default: yesterday)")
        p.add_argument("--format", choices=("table", "csv", "json"), default="table",
                       help="table (default), or csv / json: the data only, numbers rounded")

    anomalies = sub.add_parser("anomalies", parents=[common], help="list anomalies found")
    ranged(anomalies)
    anomalies.add_argument("--min-score", type=float, help="only |score| at least this")
    anomalies.add_argument("--alerts-only", action="store_true",
                           help="only rows that raised an alert (what annotated_alerts explains "
                           "and Slack receives), not the later days of an episode or drops")
    anomalies.set_defaults(func=cmd_anomalies)

    costs = sub.add_parser("costs", parents=[common], help="daily costs, filtered")
    ranged(costs)
    for flag, what, example in (("--service", "services", "cloudwatch"),
                                ("--region", "regions", "eu-"),
                                ("--account", "account ids", "4029"),
                                ("--owner", "owners (SENTINEL_OWNER_KEY values)", "team-a")):
        costs.add_argument(flag, help=f"only {what} containing this text, ignoring case "
                           f"(e.g. {flag} {example})")
    costs.add_argument("--untagged", action="store_true",
                       help="only spend without an owner (SENTINEL_OWNER_KEY absent)")
    costs.set_defaults(func=cmd_costs)

    summary = sub.add_parser("summary", parents=[common], help="cost per service")
    ranged(summary)
    summary.set_defaults(func=cmd_summary)

    doctor = sub.add_parser("doctor", parents=[common],
                            help="check configuration, credentials and storage")
    doctor.set_defaults(func=cmd_doctor)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. An error is one line on stderr saying what to fix; its traceback only
    with --debug."""
    global _debug
    args = build_parser().parse_args(argv)
    _debug = bool(getattr(args, "debug", False))
    prefix = f"sentinel {args.command}: error:"
    try:
        _quiet_warnings()
        return int(args.func(args))
    except SentinelError as exc:
        if _debug:
            traceback.print_exc()
        print(f"{prefix} {' '.join(str(exc).split())}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1
    except KeyboardInterrupt:
        note = (": rerun the days (the run is not complete)"
                if args.command in ("demo", "backfill") else "")
        print(f"{prefix} interrupted{note}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `sentinel costs | head` stopped reading: nothing to say
        try:  # and no second error when Python flushes stdout at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 1
    except Exception as exc:  # a bug, not a user error: still one line, the rest with --debug
        if _debug:
            raise
        print(f"{prefix} unexpected {type(exc).__name__}: {' '.join(str(exc).split())} "
              "(rerun with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
