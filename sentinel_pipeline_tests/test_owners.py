"""Owners (issue 16 item 1): series keyed by a tag or cost category as well (SENTINEL_OWNER_KEY),
read from FOCUS Tags, CUR 2.0 resource_tags / cost_category maps and Cost Explorer TAG /
COST_CATEGORY groupings; alerts name the owner, routes send each owner to its channel, untagged
spend goes to the default channel."""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sentinel_pipeline import settings
from sentinel_pipeline.cli import main
from sentinel_pipeline.defs.checks import series_label
from sentinel_pipeline.defs.resources import (
    CostSourceResource,
    resolved,
    resources_from_environment,
)
from sentinel_pipeline.delivery.message import alert_text
from sentinel_pipeline.delivery.routing import Router, parse_routes
from sentinel_pipeline.errors import ConfigError
from sentinel_pipeline.schema import RAW_COLUMNS, conform
from sentinel_pipeline.settings import OwnerKey, parse_owner_key
from sentinel_pipeline.sources import cur
from sentinel_pipeline.sources import root_causes as rc
from sentinel_pipeline.sources.base import SourceOptions
from sentinel_pipeline.sources.cost_explorer import (
    CostExplorer,
    fetch_costs,
    owner_of,
    root_causes,
)
from sentinel_pipeline.sources.demo import DemoSource, demo_known_anomalies, generate_demo_costs
from sentinel_pipeline.sources.focus import read_cost_files
from sentinel_pipeline.storage import TableStore
from sentinel_pipeline_tests import cur_fakes
from sentinel_pipeline_tests.fake_cost_explorer import FakeCostExplorer, fake_cost_explorer
from sentinel_pipeline_tests.fake_cost_explorer import Item as CeItem
from sentinel_pipeline_tests.test_cost_explorer import _clear_aws

SAMPLE = Path(__file__).parent / "data" / "focus-1.0"
TEAM = OwnerKey("tag", "team")
D = date(2025, 1, 6)


# ------------------------------------------------------------------------------ the setting


def test_owner_key_syntax() -> None:
    assert parse_owner_key("") is None and parse_owner_key("  ") is None
    assert parse_owner_key("tag:team") == TEAM
    assert parse_owner_key(" Cost_Category : Cost Center ") == OwnerKey("cost_category",
                                                                         "Cost Center")
    assert parse_owner_key("cost-category:cc") == OwnerKey("cost_category", "cc")
    assert TEAM.tag_names == ("team", "user_team", "user:team")
    for bad in ("team", "tag:", "label:team", ":team"):
        with pytest.raises(ConfigError, match=r"SENTINEL_OWNER_KEY=.*tag:<key>.*cost_category:"):
            parse_owner_key(bad)
    assert "SENTINEL_OWNER_KEY" in settings.VARIABLES
    assert settings.default("SENTINEL_OWNER_KEY") == ""


def test_a_bad_owner_key_fails_the_source_before_reading(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    with pytest.raises(ConfigError, match="SENTINEL_OWNER_KEY='team'"):
        CostSourceResource(source="demo", owner_key="team").cost_source()
    for name in settings.VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SENTINEL_OWNER_KEY", "tag:team")
    source = resolved(resources_from_environment()["source"])
    assert source.owner_key == "tag:team"
    assert isinstance(demo := source.cost_source(), DemoSource) and demo.owners


# ------------------------------------------------------------------------------ FOCUS


def _hand_owner_totals(key: str) -> dict[str, float]:
    """BilledCost of the counted rows of the sample per business unit, with the csv module."""
    totals: dict[str, float] = {}
    with gzip.open(SAMPLE / "focus_sample.csv.gz", "rt", newline="") as handle:
        for row in csv.DictReader(handle):
            category = row["ChargeCategory"].strip().lower()
            if category not in ("usage", "purchase", "tax", "", "null"):
                continue
            if row["ChargeClass"].strip().lower() == "correction":
                continue
            tags = json.loads(row["Tags"]) if row["Tags"] not in ("", "NULL") else {}
            owner = str(tags.get(key, "")).strip()
            cost = float(row["BilledCost"]) if row["BilledCost"] not in ("", "NULL") else 0.0
            totals[owner] = totals.get(owner, 0.0) + cost
    return totals


def test_focus_sample_tags_become_owners() -> None:
    first, last = date(2023, 1, 1), date(2025, 12, 31)
    plain = read_cost_files(str(SAMPLE), first, last).rows
    owned = read_cost_files(str(SAMPLE), first, last, owner=OwnerKey("tag", "business_unit"))
    rows = owned.rows
    assert set(plain["owner"]) == {""}
    assert len(rows) > len(plain)  # series split by business unit
    by_owner = rows.groupby("owner")["cost"].sum()
    hand = _hand_owner_totals("business_unit")
    assert set(by_owner.index) == set(hand)
    assert "PeoriaData" in by_owner.index and by_owner["PeoriaData"] > 0
    for owner, total in hand.items():
        assert by_owner[owner] == pytest.approx(total, abs=1e-9), owner
    assert rows["cost"].sum() == pytest.approx(plain["cost"].sum(), abs=1e-9)
    assert owned.metadata["owner_key"] == "tag:business_unit"
    assert owned.metadata["untagged_cost"] == pytest.approx(hand[""], abs=1e-9)


def _focus_table(tags: pa.Array) -> pa.Table:
    n = len(tags)
    return pa.table({
        "ChargePeriodStart": pa.array([f"2025-01-06T0{i}:00:00Z" for i in range(n)]),
        "ServiceName": pa.array(["Amazon EC2"] * n),
        "SubAccountId": pa.array(["111"] * n),
        "RegionId": pa.array(["us-east-1"] * n),
        "BilledCost": pa.array([1.0, 2.0, 4.0, 8.0][:n]),
        "ChargeCategory": pa.array(["Usage"] * n),
        "Tags": tags,
    })


@pytest.mark.parametrize("kind", ["map", "struct", "json"])
def test_focus_parquet_tags_as_map_struct_or_json(tmp_path: Path, kind: str) -> None:
    """AWS FOCUS writes user tags as user:team; the raw key and the user: one both match."""
    values: list[dict[str, str] | None] = [{"user:team": "a"}, {"team": "b"}, {"other": "x"},
                                           None]
    if kind == "map":
        tags = pa.array([None if v is None else list(v.items()) for v in values],
                        pa.map_(pa.string(), pa.string()))
    elif kind == "struct":
        tags = pa.array([{"team": "b" if v and "team" in v else None,
                          "user:team": v.get("user:team") if v else None} for v in values],
                        pa.struct([("team", pa.string()), ("user:team", pa.string())]))
    else:
        tags = pa.array([None if v is None else json.dumps(v) for v in values])
    pq.write_table(_focus_table(tags), tmp_path / "export.parquet")
    rows = read_cost_files(str(tmp_path), D, D, owner=TEAM).rows
    assert dict(zip(rows["owner"], rows["cost"], strict=True)) == {"": 12.0, "a": 1.0, "b": 2.0}


# ------------------------------------------------------------------------------ CUR 2.0


def _cur_export(root: Path) -> str:
    items = [
        cur_fakes.Item(D, 10.0, tags={"user_team": "a"}, categories={"cost-center": "cc1"},
                       resource="i-a"),
        cur_fakes.Item(D, 5.0, tags={"user_team": "b"}, resource="i-b"),
        cur_fakes.Item(D, 2.5, tags={"aws_createdBy": "x"}, resource="i-x"),
        cur_fakes.Item(D, 1.0, tags={"team": "raw"}, resource="i-raw"),
        cur_fakes.Item(D, 3.0, tags={"user_team": "  "}, resource="i-blank"),
        cur_fakes.Item(D, 4.0, service="AmazonS3", resource="bucket"),
        cur_fakes.Item(D, 0.5, tags={"user_team": "a"}, item_type="Credit"),
    ]
    path = root / cur_fakes.data_key("2025-01")
    path.parent.mkdir(parents=True)
    path.write_bytes(cur_fakes.parquet_bytes(items))
    return str(root / cur_fakes.EXPORT)


@pytest.mark.parametrize(("key", "expected"), [
    (TEAM, {("AmazonEC2", ""): 5.5, ("AmazonEC2", "a"): 10.0, ("AmazonEC2", "b"): 5.0,
            ("AmazonEC2", "raw"): 1.0, ("AmazonS3", ""): 4.0}),
    (OwnerKey("cost_category", "cost-center"),
     {("AmazonEC2", ""): 11.5, ("AmazonEC2", "cc1"): 10.0, ("AmazonS3", ""): 4.0}),
    (None, {("AmazonEC2", ""): 21.5, ("AmazonS3", ""): 4.0}),
])
def test_cur_maps_become_owners_on_both_paths(tmp_path: Path, key: OwnerKey | None,
                                              expected: dict[tuple[str, str], float]) -> None:
    path = _cur_export(tmp_path)
    export = cur._Export.open(path)
    files, _ = export.files_for(D, D)
    lookup = cur.owner_lookup(key)
    keep = ("usage",)
    duck = cur._duckdb_sums(export, files, "unblended", keep, D, D, D, lookup)
    assert duck is not None  # the SQL path summed it (no fallback)
    arrow, _, _ = cur._arrow_sums(export, files, "unblended", keep, D, D, lookup)
    for frame in (duck[0], arrow):
        got = {(s, o): c for s, o, c in zip(frame["service"], frame["owner"], frame["cost"],
                                            strict=True)}
        assert got == expected
    result = cur.read_cur(path, D, D, line_item_types="Usage", today=D, owner=key)
    assert len(result.rows) == len(expected)
    if key is not None:
        assert result.metadata["cur_owner_key"] == str(key)
        assert result.metadata["cur_untagged_cost"] == sum(
            c for (_, o), c in expected.items() if o == "")


def test_cur_root_causes_stay_within_the_owner(tmp_path: Path) -> None:
    path = _cur_export(tmp_path)
    alerts = pd.DataFrame({"usage_date": [D, D], "service": ["AmazonEC2"] * 2,
                           "account_id": ["111122223333"] * 2, "region": ["us-east-1"] * 2,
                           "owner": ["a", ""]})
    causes = [rc.from_json(c) for c in cur.cur_root_causes(path, alerts, owner=TEAM)]
    assert {c["resource_id"] for c in causes[0]} == {"i-a"}
    assert {c["resource_id"] for c in causes[1]} == {"i-x", "i-blank"}


# ------------------------------------------------------------------------------ Cost Explorer


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeCostExplorer]:
    _clear_aws(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFAKEFAKEFAKE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake-secret")
    with fake_cost_explorer() as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL_COST_EXPLORER", server.url)
        yield server


def _ce_items() -> list[CeItem]:
    return [
        CeItem(D, "AmazonEC2", "111", "us-east-1", "BoxUsage", 10.0, tags={"team": "a"},
               categories={"Cost Center": "cc1"}),
        CeItem(D, "AmazonEC2", "111", "us-west-2", "BoxUsage", 5.0, tags={"team": "b"}),
        CeItem(D, "AmazonEC2", "222", "us-east-1", "BoxUsage", 3.0),
        CeItem(D, "AmazonS3", "111", "us-east-1", "Storage", 2.0, tags={"team": "a"}),
        CeItem(D, "AmazonS3", "333", "us-east-1", "Storage", 1.0),
        CeItem(D, "AmazonS3", "111", "us-east-1", "Storage", 7.0, record_type="Credit",
               tags={"team": "a"}),
    ]


def _ce() -> CostExplorer:
    return CostExplorer(sleep=lambda _: None, jitter=lambda: 0.0)


def test_cost_explorer_owner_prefixes_are_stripped() -> None:
    assert (owner_of("team$a"), owner_of("team$"), owner_of("Cost Center$cc$1")) == (
        "a", "", "cc$1")


def test_cost_explorer_groups_by_tag_per_service(fake: FakeCostExplorer) -> None:
    """Two services, three accounts: one owner query per service (the fewer), grouped by
    LINKED_ACCOUNT and the TAG; untagged spend comes back as owner ''."""
    fake.items = _ce_items()
    result = fetch_costs(D, D, ce=_ce(), owner=TEAM)
    got = {(r.service, r.account_id, r.owner): r.cost for r in result.rows.itertuples()}
    assert got == {("AmazonEC2", "111", "a"): 10.0, ("AmazonEC2", "111", "b"): 5.0,
                   ("AmazonEC2", "222", ""): 3.0, ("AmazonS3", "111", "a"): 2.0,
                   ("AmazonS3", "333", ""): 1.0}
    owner_bodies = [b for b in fake.bodies("DAILY")
                    if any(g.get("Type") == "TAG" for g in b["GroupBy"])]
    assert len(owner_bodies) == 2
    for body in owner_bodies:
        assert body["GroupBy"] == [{"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"},
                                   {"Type": "TAG", "Key": "team"}]
        assert len(body["GroupBy"]) <= 2
    assert result.metadata["owner_queries_by"] == "service"
    assert result.metadata["untagged_cost"] == 4.0
    assert result.requests == 4  # series query, two owner queries, the record type totals


def test_cost_explorer_groups_by_cost_category_per_account(fake: FakeCostExplorer) -> None:
    fake.items = [i for i in _ce_items() if i.account == "111"]  # 1 account, 2 services
    result = fetch_costs(D, D, ce=_ce(), owner=OwnerKey("cost_category", "Cost Center"))
    got = {(r.service, r.account_id, r.owner): r.cost for r in result.rows.itertuples()}
    assert got == {("AmazonEC2", "111", "cc1"): 10.0, ("AmazonEC2", "111", ""): 5.0,
                   ("AmazonS3", "111", ""): 2.0}
    assert result.metadata["owner_queries_by"] == "linked_account"
    (body,) = [b for b in fake.bodies("DAILY")
               if any(g.get("Type") == "COST_CATEGORY" for g in b["GroupBy"])]
    assert body["GroupBy"][0] == {"Type": "DIMENSION", "Key": "SERVICE"}


def test_cost_explorer_without_owner_key_is_one_query(fake: FakeCostExplorer) -> None:
    fake.items = _ce_items()
    result = fetch_costs(D, D, ce=_ce())
    assert set(result.rows["owner"]) == {""} and len(result.rows) == 4
    assert result.requests == 2


def test_cost_explorer_drill_down_filters_the_owner(fake: FakeCostExplorer) -> None:
    fake.items = _ce_items()
    alerts = pd.DataFrame({"usage_date": [D, D], "service": ["AmazonEC2"] * 2,
                           "account_id": ["111", "222"], "region": ["all"] * 2,
                           "owner": ["b", ""]})
    causes = root_causes(alerts, ce=_ce(), owner=TEAM).causes
    assert [c["region"] for c in rc.from_json(causes[0])] == ["us-west-2"]
    assert [c["actual"] for c in rc.from_json(causes[1])] == [3.0]
    filters = [json.dumps(b["Filter"]) for b in fake.bodies("DAILY")]
    assert any('"ABSENT"' in f for f in filters)


# ------------------------------------------------------------------------------ demo


def test_demo_owners_are_deterministic_with_untagged_spend() -> None:
    first, last = date(2025, 3, 1), date(2025, 3, 31)
    plain = generate_demo_costs(first, last, 60)
    owned = generate_demo_costs(first, last, 60, owners=True)
    assert set(plain["owner"]) == {""}
    assert owned.drop(columns="owner").equals(plain.drop(columns="owner"))  # same spend
    assert owned.equals(generate_demo_costs(first, last, 60, owners=True))
    owners = set(owned["owner"])
    assert {"platform", "checkout", "data", "web", ""} == owners
    untagged = owned.loc[owned["owner"] == "", "cost"].sum()
    assert 0 < untagged < owned["cost"].sum()
    ec2 = owned[(owned["service"] == "Amazon Elastic Compute Cloud - Compute")
                & (owned["account_id"] == "402913857261")]
    assert set(ec2["owner"]) == {"platform"}
    # A day alone has the owners it has inside the range.
    day = owned[owned["usage_date"] == date(2025, 3, 10)].reset_index(drop=True)
    alone = generate_demo_costs(date(2025, 3, 10), date(2025, 3, 10), 60, owners=True)
    assert day.equals(alone.reset_index(drop=True))
    known = demo_known_anomalies(first, last, 60, owners=True)
    series = owned.drop_duplicates(["service", "account_id", "region"]).set_index(
        ["service", "account_id", "region"])["owner"]
    for ev in known.itertuples():
        assert series[(ev.service, ev.account_id, ev.region)] == ev.owner


def test_demo_source_has_owners_only_with_an_owner_key() -> None:
    day = date(2025, 3, 10)
    assert not DemoSource.from_options(SourceOptions()).owners
    source = DemoSource.from_options(SourceOptions(owner_key="tag:team"))
    result = source.fetch(day, day)
    assert "platform" in set(result.rows["owner"])
    assert result.metadata["untagged_cost"] > 0
    alerts = result.rows[result.rows["owner"] == "platform"].head(1)
    assert source.root_causes(alerts).causes == source.root_causes(alerts).causes


# ------------------------------------------------------------------------------ delivery


def test_routes_send_owners_to_their_channel_and_untagged_to_the_default() -> None:
    routes = parse_routes({"routes": [
        {"match": {"owner": "team-a"}, "channel": "#team-a"},
        {"match": {"owner": "team-b", "service": "AmazonS3"}, "channel": "#team-b-s3"},
    ]}, "routes.yaml")
    router = Router("#cost-alerts", routes)
    alerts = pd.DataFrame({"service": ["AmazonEC2", "AmazonEC2", "AmazonS3", "AmazonEC2"],
                           "account_id": ["1", "1", "1", "1"], "region": ["x"] * 4,
                           "owner": ["team-a", "", "team-b", "team-b"]})
    assert router.channels(alerts).tolist() == ["#team-a", "#cost-alerts", "#team-b-s3",
                                                "#cost-alerts"]
    # An alert written before owners existed (no owner field, or NaN) is untagged too.
    assert router.channel_for({"service": "AmazonEC2", "owner": np.nan}) == "#cost-alerts"
    untagged = Router("#cost-alerts", parse_routes(
        {"routes": [{"match": {"owner": ""}, "channel": "#untagged"}]}, "r.yaml"))
    assert untagged.channels(alerts).tolist() == ["#cost-alerts", "#untagged", "#cost-alerts",
                                                  "#cost-alerts"]
    with pytest.raises(ConfigError, match='owner: ""'):
        parse_routes({"routes": [{"match": {"owner": None}, "channel": "#x"}]}, "r.yaml")


def test_alert_text_names_the_owner() -> None:
    row = pd.Series({"service": "AmazonEC2", "account_id": "111", "region": "us-east-1",
                     "owner": "team-a", "kind": "spike", "actual_cost": 300.0,
                     "expected_cost": 100.0, "impact": 200.0, "pct_change": 200.0,
                     "currency": "USD"})
    assert "Owner: *team-a*" in alert_text(row).splitlines()[0]
    untagged = row.copy()
    untagged["owner"] = ""
    assert "Owner" not in alert_text(untagged)  # no owner key: as before owners existed
    assert "Owner: _untagged_ (tag:team)" in alert_text(untagged, owner_key="tag:team")


def test_series_labels_leave_an_empty_owner_out() -> None:
    assert series_label(("EC2", "111", "us-east-1", "")) == "EC2 / 111 / us-east-1"
    assert series_label(("EC2", "111", "us-east-1", "team-a")) == "EC2 / 111 / us-east-1 / team-a"


def test_cli_costs_show_and_filter_owners(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    store = TableStore(str(tmp_path / "data"))
    rows = conform(pd.DataFrame({
        "usage_date": [D] * 3, "service": ["AmazonEC2"] * 3, "account_id": ["111"] * 3,
        "region": ["us-east-1"] * 3, "owner": ["team-a", "team-b", ""], "cost": [1.0, 2.0, 4.0],
        "currency": ["USD"] * 3, "estimated": [False] * 3, "source": ["cur"] * 3}), RAW_COLUMNS)
    store.write_partition("raw_daily_costs", D, rows)
    monkeypatch.setenv("SENTINEL_DATA_DIR", str(tmp_path / "data"))
    window = ["--start", D.isoformat(), "--end", (D + timedelta(days=1)).isoformat()]
    assert main(["costs", *window]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split()[:5] == ["usage_date", "service", "account_id",
                                                 "region", "owner"]
    assert main(["costs", *window, "--owner", "TEAM-B", "--format", "json"]) == 0
    assert [r["owner"] for r in json.loads(capsys.readouterr().out)] == ["team-b"]
    assert main(["costs", *window, "--untagged", "--format", "csv"]) == 0
    out = pd.read_csv(io.StringIO(capsys.readouterr().out), dtype=str, keep_default_na=False)
    assert out["owner"].tolist() == [""] and [float(c) for c in out["cost"]] == [4.0]


@pytest.mark.integration  # `sentinel demo` runs the pipeline on the Dagster instance
def test_demo_alerts_name_their_owner_and_go_to_the_owners_channel(
        sentinel_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """End to end: with an owner tag, the alerts the pipeline writes say whose they are (or
    that the spend is untagged), and the routes file sends each owner's alerts to its channel."""
    from sentinel_pipeline import cli
    from sentinel_pipeline.delivery.deliver import deliver_day
    from sentinel_pipeline.delivery.ledger import DeliveryLedger
    from sentinel_pipeline.delivery.routing import load_router
    from sentinel_pipeline.delivery.sinks import OutboxSink

    routes = tmp_path / "routes.yaml"
    routes.write_text('routes:\n  - {match: {owner: "platform"}, channel: "#platform"}\n')
    monkeypatch.setenv("SENTINEL_OWNER_KEY", "tag:team")
    end = date(2025, 3, 24)  # the window test_cli's demo test uses: four known anomalies
    monkeypatch.setattr(cli, "_yesterday", lambda: end)
    assert main(["demo", "--days", "20"]) == 0, capsys.readouterr().err
    store = TableStore(str(sentinel_env))
    alerts = store.read_range("annotated_alerts", end - timedelta(days=19), end)
    assert len(alerts) >= 3
    assert set(alerts["owner_key"]) == {"tag:team"}
    assert {"platform", ""} <= set(alerts["owner"])  # routed, and untagged (CloudWatch)
    ledger, sink = DeliveryLedger(store), OutboxSink(store)
    router = load_router(str(routes), "#cost-alerts")
    for day in sorted({str(d)[:10] for d in alerts["usage_date"]}):
        deliver_day(store, sink, ledger, router, day, charts=False)
    posted = [json.loads(p.read_text()) for p in (sentinel_env / "outbox").glob("*.json")]
    assert len(posted) == len(alerts)
    for message in posted:
        text = message["blocks"][1]["text"]["text"]
        owner = next(a for a in alerts.itertuples() if a.service in text
                     and str(a.usage_date)[:10] in message["blocks"][0]["text"]["text"]).owner
        if owner:
            assert f"Owner: *{owner}*" in text
        else:
            assert "Owner: _untagged_ (tag:team)" in text
        assert message["channel"] == ("#platform" if owner == "platform" else "#cost-alerts")
