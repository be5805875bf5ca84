"""The Cost Explorer source through the real boto3 client against a local fake of the API:
pagination, exclusive End, throttling, Estimated days, record types, the REGION / USAGE_TYPE
drill-down, bad credentials and endpoints, and the whole daily job with the restatement sensor."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from sentinel_pipeline.defs.resources import CostSourceResource, StorageResource
from sentinel_pipeline.errors import ConfigError, SourceError
from sentinel_pipeline.sources import cost_explorer as ce_source
from sentinel_pipeline.sources.cost_explorer import CostExplorer, fetch_costs, root_causes
from sentinel_pipeline.storage import TableStore
from sentinel_pipeline_tests.conftest import run_days
from sentinel_pipeline_tests.fake_cost_explorer import FakeCostExplorer, Item, fake_cost_explorer

SECRET = "fake-secret-key-do-not-print"
D0 = date(2025, 6, 1)


def _clear_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No credentials anywhere botocore looks: env, shared files, instance metadata."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ACCESS_KEY_ID",
                 "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                 "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_COST_EXPLORER", "AWS_REGION",
                 "AWS_DEFAULT_REGION", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "aws").mkdir(exist_ok=True)
    for name, var in (("credentials", "AWS_SHARED_CREDENTIALS_FILE"),
                      ("config", "AWS_CONFIG_FILE")):
        (tmp_path / "aws" / name).write_text("")
        monkeypatch.setenv(var, str(tmp_path / "aws" / name))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeCostExplorer]:
    """The fake API with fake keys in the environment, reached through the SDK's own
    AWS_ENDPOINT_URL_COST_EXPLORER (the code never passes an endpoint)."""
    _clear_aws(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFAKEFAKEFAKE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    with fake_cost_explorer() as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL_COST_EXPLORER", server.url)
        yield server


def _ce(**kwargs: object) -> tuple[CostExplorer, list[float]]:
    waits: list[float] = []
    return CostExplorer(sleep=waits.append, jitter=lambda: 1.0, **kwargs), waits


def _grid(first: date, days: int, services: list[str], accounts: list[str],
          cost: float = 10.0) -> list[Item]:
    return [Item(first + timedelta(days=i), s, a, "us-east-1", "BoxUsage", cost + i)
            for i in range(days) for s in services for a in accounts]


def test_pagination_follows_every_page_and_counts_requests(fake: FakeCostExplorer) -> None:
    fake.items = _grid(D0, 10, ["AmazonEC2", "AmazonS3", "AWSLambda"], ["111", "222"])
    fake.page_size = 7  # 60 groups -> 9 pages, some days split across two pages
    ce, _ = _ce()
    rows_result = fetch_costs(D0, D0 + timedelta(days=9), ce=ce)
    rows = rows_result.rows

    daily = fake.bodies("DAILY")
    assert len(daily) == 9
    assert [b.get("NextPageToken") for b in daily] == [None] + [f"page-{7 * i}" for i in
                                                                 range(1, 9)]
    assert all(b["TimePeriod"] == daily[0]["TimePeriod"] for b in daily)
    assert daily[0]["GroupBy"] == [{"Type": "DIMENSION", "Key": "SERVICE"},
                                   {"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"}]
    assert len(rows) == 60 and rows["cost"].sum() == pytest.approx(6 * sum(10 + i
                                                                         for i in range(10)))
    assert set(rows["region"]) == {"all"} and set(rows["source"]) == {"cost_explorer"}
    assert not rows.duplicated(["usage_date", "service", "account_id"]).any()
    meta = rows_result.metadata
    assert meta["ce_requests"] == len(fake.requests) == 9 + 1  # + the record-type query
    assert meta["ce_request_cost_usd"] == pytest.approx(0.10)


def test_end_is_exclusive(fake: FakeCostExplorer) -> None:
    fake.items = _grid(D0 - timedelta(days=1), 3, ["AmazonEC2"], ["111"])
    rows = fetch_costs(D0, D0, ce=_ce()[0]).rows
    assert fake.bodies("DAILY")[0]["TimePeriod"] == {"Start": "2025-06-01", "End": "2025-06-02"}
    assert list(rows["usage_date"]) == [D0] and rows["cost"].tolist() == [11.0]


def test_a_90_day_backfill_is_one_query(fake: FakeCostExplorer) -> None:
    fake.items = _grid(D0, 90, ["AmazonEC2", "AmazonS3"], ["111", "222", "333"])
    fake.page_size = 5000
    rows = fetch_costs(D0, D0 + timedelta(days=89), ce=_ce()[0]).rows
    assert len(fake.bodies("DAILY")) == 1 and len(fake.requests) == 2
    assert rows["usage_date"].nunique() == 90
    assert fake.bodies("DAILY")[0]["TimePeriod"] == {"Start": "2025-06-01", "End": "2025-08-30"}


def test_throttling_is_retried_with_capped_backoff(fake: FakeCostExplorer) -> None:
    fake.items = _grid(D0, 2, ["AmazonEC2"], ["111"])
    fake.script = [(400, "LimitExceededException", "Rate exceeded"),
                   (429, "ThrottlingException", "Rate exceeded"),
                   (503, "ServiceUnavailableException", "busy"),
                   (400, "LimitExceededException", "Rate exceeded")]
    ce, waits = _ce(base_delay=1.0, max_delay=3.0)
    rows_result = fetch_costs(D0, D0 + timedelta(days=1), ce=ce)
    rows = rows_result.rows
    assert len(rows) == 2
    assert waits == [1.0, 2.0, 3.0, 3.0]  # doubling, capped at max_delay (jitter pinned to 1)
    meta = rows_result.metadata
    assert meta["ce_requests"] == len(fake.requests) == 6 and meta["ce_retried_requests"] == 4


def test_throttling_beyond_the_cap_fails_clearly(fake: FakeCostExplorer) -> None:
    fake.script = [(400, "LimitExceededException", "Rate exceeded")] * 10
    ce, waits = _ce(max_attempts=4)
    with pytest.raises(SourceError, match="throttled the request 4 times") as err:
        fetch_costs(D0, D0, ce=ce)
    assert "rerun later" in str(err.value)
    assert len(fake.requests) == ce.requests == 4 and len(waits) == 3


def test_server_errors_beyond_the_cap_name_the_endpoint(fake: FakeCostExplorer) -> None:
    fake.script = [(502, "BadGateway", "upstream")] * 10
    ce, _ = _ce(max_attempts=3)
    with pytest.raises(SourceError, match="failed 3 times in a row") as err:
        fetch_costs(D0, D0, ce=ce)
    assert fake.url.split("//")[1] in str(err.value) and len(fake.requests) == 3


def test_estimated_days_then_final(fake: FakeCostExplorer) -> None:
    fake.items = _grid(D0, 3, ["AmazonEC2"], ["111"])
    fake.estimated = {D0 + timedelta(days=2)}
    first_result = fetch_costs(D0, D0 + timedelta(days=2), ce=_ce()[0])
    first = first_result.rows
    assert first["estimated"].tolist() == [False, False, True]
    assert first_result.metadata["estimated_days"] == 1

    fake.estimated = set()
    fake.items[-1].cost = 99.0  # the final bill differs from the estimate
    final = fetch_costs(D0, D0 + timedelta(days=2), ce=_ce()[0]).rows
    assert final["estimated"].tolist() == [False, False, False]
    assert final["cost"].iloc[-1] == 99.0


def test_empty_days_and_a_service_appearing_mid_range(fake: FakeCostExplorer) -> None:
    fake.items = [i for i in _grid(D0, 6, ["AmazonEC2"], ["111"]) if i.day != D0 + timedelta(2)]
    fake.items += _grid(D0 + timedelta(days=4), 2, ["AmazonBedrock"], ["111"], cost=50.0)
    rows = fetch_costs(D0, D0 + timedelta(days=6), ce=_ce()[0]).rows
    by_day = rows.groupby("usage_date")["service"].apply(sorted).to_dict()
    assert D0 + timedelta(days=2) not in by_day and D0 + timedelta(days=6) not in by_day
    assert by_day[D0 + timedelta(days=4)] == ["AmazonBedrock", "AmazonEC2"]
    assert by_day[D0 + timedelta(days=3)] == ["AmazonEC2"]
    empty = fetch_costs(D0 + timedelta(days=20), D0 + timedelta(days=21), ce=_ce()[0]).rows
    assert len(empty) == 0 and list(empty.columns) == list(ce_source.RAW_COLUMNS)


def test_record_types_and_metric(fake: FakeCostExplorer) -> None:
    fake.items = _grid(D0, 2, ["AmazonEC2"], ["111"])
    fake.items += [Item(D0, "AmazonEC2", "111", "us-east-1", "Credit", -5.0, "Credit"),
                   Item(D0, "Tax", "111", "global", "Tax", 2.5, "Tax")]
    rows_result = fetch_costs(D0, D0 + timedelta(days=1), ce=_ce()[0])
    rows = rows_result.rows
    assert rows["cost"].tolist() == [10.0, 11.0]
    assert fake.bodies("DAILY")[0]["Filter"] == {"Dimensions": {
        "Key": "RECORD_TYPE", "Values": ["Usage"], "MatchOptions": ["EQUALS"]}}
    meta = rows_result.metadata
    assert meta["excluded_from_detection"] == {"Credit": -5.0, "Tax": 2.5}
    assert meta["charges_by_record_type"]["Usage"] == 21.0

    with_credits_result = fetch_costs(D0, D0 + timedelta(days=1), "AmortizedCost",
                                      ["Usage", "Credit"], ce=_ce()[0])
    with_credits = with_credits_result.rows
    assert with_credits["cost"].tolist() == pytest.approx([(10 - 5) * 0.9, 11 * 0.9])
    assert with_credits_result.metadata["excluded_from_detection"] == {"Tax": 2.25}

    before = len(fake.requests)
    with pytest.raises(ConfigError, match="SENTINEL_CE_METRIC"):
        fetch_costs(D0, D0, "BilledCost", ce=_ce()[0])
    with pytest.raises(ConfigError, match="SENTINEL_CE_RECORD_TYPES"):
        fetch_costs(D0, D0, record_types=" , ", ce=_ce()[0])
    assert len(fake.requests) == before


def _drill_items(day: date) -> list[Item]:
    items = []
    for i in range(20):
        d = day - timedelta(days=19 - i)
        items += [Item(d, "AmazonEC2", "111", "us-east-1", "BoxUsage:m5.large", 100.0),
                  Item(d, "AmazonEC2", "111", "eu-west-1", "DataTransfer-Out-Bytes", 10.0),
                  Item(d, "AmazonEC2", "222", "us-west-2", "BoxUsage:m5.large", 999.0)]
    items += [Item(day, "AmazonEC2", "111", "us-west-2", "BoxUsage:p4d.24xlarge", 700.0),
              Item(day, "AmazonEC2", "111", "eu-west-1", "DataTransfer-Out-Bytes", 40.0),
              Item(day, "AmazonEC2", "111", "us-west-2", "BoxUsage:p4d.24xlarge", -300.0,
                   "Credit")]
    return items


def test_drill_down_names_region_and_usage_type(fake: FakeCostExplorer) -> None:
    day = D0 + timedelta(days=30)
    fake.items = _drill_items(day)
    anomalies = pd.DataFrame({"usage_date": [day], "service": ["AmazonEC2"],
                              "account_id": ["111"], "region": ["all"]})
    ce, _ = _ce()
    causes = root_causes(anomalies, ce=ce)
    top = json.loads(causes.causes[0])
    assert top[0]["region"] == "us-west-2" and top[0]["usage_type"] == "BoxUsage:p4d.24xlarge"
    assert top[0]["increase"] == 700.0  # credits are not in the configured record types
    assert top[1]["usage_type"] == "DataTransfer-Out-Bytes" and top[1]["increase"] == 40.0
    assert len(top) == 2  # the steady usage type did not grow
    body = fake.requests[0]
    assert body["TimePeriod"] == {"Start": (day - timedelta(days=14)).isoformat(),
                                  "End": (day + timedelta(days=1)).isoformat()}
    assert [g["Key"] for g in body["GroupBy"]] == ["REGION", "USAGE_TYPE"]
    assert [f["Dimensions"]["Key"] for f in body["Filter"]["And"]] == [
        "SERVICE", "LINKED_ACCOUNT", "RECORD_TYPE"]
    assert causes.requests == len(fake.requests) == 1


def test_drill_down_failure_leaves_blanks_and_stops(fake: FakeCostExplorer) -> None:
    fake.script = [(400, "LimitExceededException", "Rate exceeded")] * 10
    anomalies = pd.DataFrame({"usage_date": [D0, D0], "service": ["AmazonEC2", "AmazonS3"],
                              "account_id": ["111", "111"], "region": ["all", "all"]})
    ce, _ = _ce(max_attempts=3)
    causes = root_causes(anomalies, ce=ce)
    assert causes.causes == ["", ""]
    assert causes.requests == len(fake.requests) == 3  # no second series after the failure


def test_wrong_region_in_the_environment_is_ignored(fake: FakeCostExplorer,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-southeast-2")
    fake.items = _grid(D0, 1, ["AmazonEC2"], ["111"])
    assert len(fetch_costs(D0, D0, ce=_ce()[0]).rows) == 1
    assert set(fake.regions_signed) == {"us-east-1"}


def test_invalid_credentials_are_a_clear_error(fake: FakeCostExplorer) -> None:
    fake.script = [(400, "UnrecognizedClientException", "The security token is invalid.")]
    with pytest.raises(SourceError, match="rejected the AWS credentials") as err:
        fetch_costs(D0, D0, ce=_ce()[0])
    assert SECRET not in str(err.value)


# ----------------------------------------------------------- through the daily job
YESTERDAY = datetime.now(UTC).date() - timedelta(days=1)
FIRST = YESTERDAY - timedelta(days=29)
SPIKE = YESTERDAY - timedelta(days=2)


@pytest.fixture
def pipeline_env(fake: FakeCostExplorer, sentinel_env: Path,
                 monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SENTINEL_SOURCE", "cost_explorer")
    monkeypatch.setenv("SENTINEL_CE_METRIC", "UnblendedCost")
    monkeypatch.setenv("SENTINEL_CE_RECORD_TYPES", "Usage")
    return sentinel_env


def _bill(first: date, last: date) -> list[Item]:
    """Three steady services over two accounts, with a GPU spike in us-west-2 on SPIKE."""
    rng = np.random.default_rng(7)
    items = []
    for i in range((last - first).days + 1):
        day = first + timedelta(days=i)
        for service, account, base in (("AmazonEC2", "111111111111", 400.0),
                                       ("AmazonS3", "111111111111", 120.0),
                                       ("AmazonRDS", "222222222222", 250.0)):
            cost = base * float(rng.normal(1.0, 0.01))
            items.append(Item(day, service, account, "us-east-1", "BoxUsage:m5.large", cost))
            items.append(Item(day, service, account, "eu-west-1", "DataTransfer-Out", cost / 10))
        items.append(Item(day, "AmazonEC2", "111111111111", "us-east-1", "Credit", -20.0,
                          "Credit"))
    items.append(Item(SPIKE, "AmazonEC2", "111111111111", "us-west-2", "BoxUsage:p4d.24xlarge",
                      900.0))
    return items


def _metadata(instance: dg.DagsterInstance, asset: str) -> dict[str, object]:
    event = instance.get_latest_materialization_event(dg.AssetKey(asset))
    assert event is not None and event.asset_materialization is not None
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def test_daily_job_on_cost_explorer_with_drill_down_and_restatement(
    fake: FakeCostExplorer, pipeline_env: Path, instance: dg.DagsterInstance
) -> None:
    fake.items = _bill(FIRST, YESTERDAY)
    fake.estimated = {YESTERDAY - timedelta(days=1), YESTERDAY}
    fake.page_size = 40
    assert run_days(instance, FIRST, YESTERDAY).success

    store = TableStore(str(pipeline_env))
    raw = store.read_range("raw_daily_costs", FIRST, YESTERDAY)
    assert len(raw) == 30 * 3 and set(raw["region"]) == {"all"}
    assert set(raw.loc[raw["estimated"], "usage_date"]) == fake.estimated
    raw_meta = _metadata(instance, "raw_daily_costs")
    pages = len(fake.bodies("DAILY")) - sum(
        1 for b in fake.bodies("DAILY") if b["GroupBy"][0]["Key"] == "REGION")
    assert pages == 3  # 30 days x 3 series = 90 groups, at 40 a page
    assert raw_meta["ce_requests"] == pages + 1 and raw_meta["estimated_days"] == 2
    assert raw_meta["excluded_from_detection"] == {"Credit": -20.0 * 30}

    anomalies = store.read_range("cost_anomalies", FIRST, YESTERDAY)
    alerts = anomalies[anomalies["alert"]]
    spike = alerts[(alerts["usage_date"] == SPIKE) & (alerts["service"] == "AmazonEC2")]
    assert len(spike) == 1
    top = json.loads(spike["root_causes"].iloc[0])[0]
    assert (top["region"], top["usage_type"]) == ("us-west-2", "BoxUsage:p4d.24xlarge")
    drills = [b for b in fake.bodies("DAILY") if b["GroupBy"][0]["Key"] == "REGION"]
    assert len(drills) == len(alerts) == _metadata(instance, "cost_anomalies")[
        "root_cause_requests"]

    # The estimated days become final (a little higher): the sensor asks for one rerun from the
    # first estimated day to yesterday, and the rerun replaces those days' rows.
    from sentinel_pipeline.definitions import defs

    fake.estimated = set()
    for item in fake.items:
        if item.day >= YESTERDAY - timedelta(days=1):
            item.cost *= 1.02
    sensor = defs.resolve_sensor_def("restatement_sensor")
    resources = {"storage": StorageResource(data_dir=str(pipeline_env)),
                 "source": CostSourceResource(source="cost_explorer", restate_days=14)}
    tick = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, resources=resources,
                                                      definitions=defs))
    assert tick.run_requests is not None and len(tick.run_requests) == 1
    request = tick.run_requests[0]
    assert request.tags["dagster/asset_partition_range_start"] == (
        YESTERDAY - timedelta(days=1)).isoformat()
    assert request.tags["dagster/asset_partition_range_end"] == YESTERDAY.isoformat()
    job = defs.resolve_job_def("sentinel_daily_job")
    assert job.execute_in_process(instance=instance, tags=request.tags).success

    again = store.read_range("raw_daily_costs", FIRST, YESTERDAY)
    assert len(again) == len(raw) and not again["estimated"].any()
    restated = again[again["usage_date"] == YESTERDAY]["cost"].sum()
    assert restated == pytest.approx(raw[raw["usage_date"] == YESTERDAY]["cost"].sum() * 1.02)
    after = store.read_range("cost_anomalies", FIRST, YESTERDAY)
    assert not after.duplicated(["usage_date", "service", "account_id", "region"]).any()
    assert len(after[after["usage_date"] == SPIKE]) == len(anomalies[
        anomalies["usage_date"] == SPIKE])
    nothing_left = sensor.evaluate_tick(dg.build_sensor_context(instance=instance,
                                                                resources=resources))
    assert not nothing_left.run_requests


@pytest.mark.parametrize(
    ("setup", "needle"),
    [("no_credentials", "No AWS credentials found"),
     ("access_denied", "denied access"),
     ("wrong_endpoint", "Cannot reach Cost Explorer")],
)
def test_bad_access_fails_the_run_clearly_and_writes_nothing(
    fake: FakeCostExplorer, pipeline_env: Path, instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    setup: str, needle: str,
) -> None:
    from sentinel_pipeline.cli import failure_messages

    fake.items = _bill(YESTERDAY, YESTERDAY)
    if setup == "no_credentials":
        _clear_aws(monkeypatch, tmp_path)
        monkeypatch.setenv("AWS_ENDPOINT_URL_COST_EXPLORER", fake.url)  # never real AWS
    elif setup == "access_denied":
        fake.script = [(400, "AccessDeniedException", "User: arn:aws:iam::111111111111:user/"
                        "sentinel is not authorized to perform: ce:GetCostAndUsage")]
    else:
        monkeypatch.setenv("AWS_ENDPOINT_URL_COST_EXPLORER", "http://127.0.0.1:9")
    result = run_days(instance, YESTERDAY, YESTERDAY, raise_on_error=False)
    assert not result.success
    message = "\n".join(failure_messages(result))
    assert needle in message
    assert not (pipeline_env / "raw_daily_costs").exists()
    out = capsys.readouterr()
    assert SECRET not in message + out.out + out.err


def test_doctor_checks_cost_explorer_access_with_one_request(
    fake: FakeCostExplorer, pipeline_env: Path
) -> None:
    from sentinel_pipeline.doctor import run_checks

    ok = [line for passed, line in run_checks() if "Cost Explorer" in line]
    assert ok and "answered" in ok[0] and len(fake.requests) == 1
    fake.script = [(400, "AccessDeniedException", "not authorized")]
    failed = [(passed, line) for passed, line in run_checks() if "Cost Explorer" in line]
    assert failed[0][0] is False and "ce:GetCostAndUsage" in failed[0][1]
