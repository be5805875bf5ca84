"""Fault campaign: kill -9 a backfill at random moments, run two at once, and check recovery.

For each trial a `sentinel backfill` subprocess is killed with SIGKILL at a random moment after
it wrote its first file, then the same command is run again to completion; the tables must then
equal, byte for byte, a clean run of the same days, and no run may be left STARTED in the
instance (the next command marks the killed one failed). Two backfills of the same days on the
same data dir at once must also end with the clean bytes.

Delivery: the real alert sensor runs in a subprocess against a local Slack fake that keeps each
message and answers after a random delay, and is killed with SIGKILL at a random moment; after
every trial a fresh process delivers the rest. In the end every alert's message (one per alert,
issue 16) must be in the channel exactly once, every follow-up reply of its episode at most once
in its thread, every alert in the ledger once, and the Slack token and the Anthropic
key (both set, to fakes) must appear in no file of the data dir or the instance and in no output.
Prints one row per fault.

    python benchmarks/faults.py [--trials 5] [--days 40] [--seed 7]
"""

from __future__ import annotations

import argparse
import hashlib
import json
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
import pandas as pd

# The local fakes of Slack and Anthropic live with the tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

START = date(2025, 1, 1)


SLACK_TOKEN = "xoxb-fault-campaign-secret-0451"
ANTHROPIC_KEY = "sk-ant-fault-campaign-secret-0451"
SECRETS = (SLACK_TOKEN, ANTHROPIC_KEY)
_ENV: dict[str, str] = {}  # the fakes' URLs, set once they run

# One delivery process: the real sensor, ticked until nothing is new (its cursor lives only in
# this process, so a restarted one walks every materialisation again: the ledger must hold).
DELIVER = """
import dagster as dg
import pandas as pd
from sentinel_pipeline.cli import open_instance
from sentinel_pipeline.definitions import defs
from sentinel_pipeline.defs.resources import AlertSinkResource, StorageResource, _env

sensor = defs.resolve_sensor_def("alert_delivery_sensor")
resources = {"storage": StorageResource(data_dir=_env("SENTINEL_DATA_DIR")),
             "alert_sink": AlertSinkResource(slack_bot_token=_env("SLACK_BOT_TOKEN"),
                                             slack_api_url=_env("SENTINEL_SLACK_API_URL"),
                                             max_age_days=100_000, charts=False)}
cursor = None
with open_instance() as instance:
    while True:
        with dg.build_sensor_context(instance=instance, cursor=cursor,
                                     resources=resources) as context:
            result = sensor(context)
        if not isinstance(result, dg.SensorResult) or result.cursor == cursor:
            break
        cursor = result.cursor
print("delivered")
"""


def _env(home: Path, data: Path) -> dict[str, str]:
    return {**os.environ, "DAGSTER_HOME": str(home), "SENTINEL_DATA_DIR": str(data),
            "SENTINEL_SOURCE": "demo", "SLACK_BOT_TOKEN": SLACK_TOKEN,
            "ANTHROPIC_API_KEY": ANTHROPIC_KEY, **_ENV}


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


def _deliver(home: Path, data: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", DELIVER], env=_env(home, data),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _secrets_in(root: Path, outputs: list[bytes]) -> list[str]:
    """Where a secret appears: files under root, or a process's output."""
    found = [str(p) for p in root.rglob("*") if p.is_file()
             and any(secret.encode() in p.read_bytes() for secret in SECRETS)]
    return found + [f"output {i}" for i, out in enumerate(outputs)
                    if any(secret.encode() in out for secret in SECRETS)]


def _delivery_campaign(root: Path, end: date, trials: int,
                       rng: random.Random) -> list[tuple[str, bool, int]]:
    """Kill the delivery mid-tick ``trials`` times, then let it finish; check exactly once."""
    from sentinel_pipeline_tests.fake_slack import fake_slack

    home, data = root / "clean-home", root / "clean"
    outputs: list[bytes] = []
    with fake_slack() as slack:
        _ENV["SENTINEL_SLACK_API_URL"] = slack.url
        killed_after_post = 0
        for trial in range(trials):
            slack.post_answer_delay = 2.0
            proc = _deliver(home, data)
            if trial % 2 == 0:  # while Slack holds a post it kept: the worst moment
                slack.post_received.wait(timeout=120)
                time.sleep(rng.uniform(0.0, 1.5))
            else:  # any moment: before, between or after posts
                time.sleep(rng.uniform(0.0, 15.0))
            if proc.poll() is None:
                killed_after_post += slack.post_received.is_set()
                os.kill(proc.pid, signal.SIGKILL)
            outputs.append(proc.communicate()[0])
            slack.post_received.clear()
        slack.post_answer_delay = 0.0
        proc = _deliver(home, data)
        outputs.append(proc.communicate()[0])
        if proc.returncode:
            raise SystemExit(f"delivery failed: {outputs[-1].decode()[-2000:]}")
        keys = [m["metadata"]["event_payload"]["key"] for m in slack.top_level()
                if m.get("metadata")]
        replies = [m["metadata"]["event_payload"]["key"] for m in slack.replies()
                   if m.get("metadata")]
        ledger = json.loads((data / "_delivery" / "ledger.json").read_bytes())
    from sentinel_pipeline.delivery.deliver import MAX_ALERT_MESSAGES
    from sentinel_pipeline.delivery.ledger import alert_key

    alerts = pd.read_parquet(data / "annotated_alerts")  # the Hive table, every day at once
    per_day = alerts.groupby(pd.to_datetime(alerts["usage_date"]).dt.date).size()
    if per_day.max() > MAX_ALERT_MESSAGES:  # the overflow message would need its own check
        raise SystemExit(f"a day has more than {MAX_ALERT_MESSAGES} alerts: pick other days")
    expected = {alert_key(row) for row in alerts.to_dict("records")}
    pending = {k for k, e in ledger["pending"].items() if e["kind"] == "alert"}
    # Exactly once: no alert posted twice, and every alert either in the channel or still
    # pending (a post killed before Slack kept it waits out the bound on a post in flight,
    # ~6 min, before it is posted again: it may still arrive). Nothing lost, nothing twice.
    # Follow-up replies: none twice.
    once = (len(keys) == len(set(keys)) and not (pending & set(keys))
            and set(keys) | pending == expected and len(replies) == len(set(replies)))
    name = (f"{trials} kill -9 of the delivery sensor ({killed_after_post} while Slack held a "
            f"post), restart: {len(set(keys))}/{len(expected)} alert messages once, "
            f"{len(set(replies))} follow-up replies once, {len(pending)} pending")
    leaks = _secrets_in(root, outputs)
    return [(name, once, 0), (f"secrets in files or output: {', '.join(leaks) or 'none'}",
                              not leaks, 0)]


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
    from sentinel_pipeline_tests.fake_anthropic import fake_anthropic

    with tempfile.TemporaryDirectory() as tmp, fake_anthropic() as claude:
        _ENV["ANTHROPIC_BASE_URL"] = claude.url
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
        rows += _delivery_campaign(root, end, args.trials, rng)
    print(f"{'fault':<84} {'holds':<6} runs left STARTED")
    for name, same, running in rows:
        print(f"{name:<84} {'yes' if same else 'NO':<6} {running}")
    if not all(same and running == 0 for _, same, running in rows):
        raise SystemExit("a fault left the tables or the instance wrong")


if __name__ == "__main__":
    main()
