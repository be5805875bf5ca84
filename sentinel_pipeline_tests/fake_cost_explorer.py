"""A local stand-in for the Cost Explorer JSON 1.1 API (GetCostAndUsage only), so the real boto3
client is exercised over HTTP: filters (dimensions, Tags and CostCategories, ABSENT included),
grouping (dimensions, TAG and COST_CATEGORY as "key$value"), DAILY/MONTHLY periods with an
exclusive End, pagination, Estimated days, scripted errors (throttling, access denied) and
signing checks."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any

from sentinel_pipeline_tests.local_http import local_server

TARGET = "AWSInsightsIndexService.GetCostAndUsage"
DIMENSIONS = {"SERVICE": "service", "LINKED_ACCOUNT": "account", "REGION": "region",
              "USAGE_TYPE": "usage_type", "RECORD_TYPE": "record_type"}
GROUP_TYPES = ("DIMENSION", "TAG", "COST_CATEGORY")
# Other metrics are the unblended cost times a factor, so a test can tell which one was asked.
METRIC_FACTORS = {"UnblendedCost": 1.0, "AmortizedCost": 0.9, "NetUnblendedCost": 0.8,
                  "NetAmortizedCost": 0.7, "BlendedCost": 1.1}


@dataclass
class Item:
    """One (day, service, account, region, usage type, record type) cost, as billing has it."""

    day: date
    service: str
    account: str
    region: str
    usage_type: str
    cost: float
    record_type: str = "Usage"
    tags: dict[str, str] = field(default_factory=dict)  # cost allocation tags: team -> a
    categories: dict[str, str] = field(default_factory=dict)  # cost categories: name -> value

    def group_key(self, group: dict[str, str]) -> str:
        """This item's key in one GroupBy: a dimension's value, or "key$value" for a TAG or
        COST_CATEGORY as Cost Explorer writes them ("key$" when the item has none)."""
        kind, key = group.get("Type", "DIMENSION"), group["Key"]
        if kind == "TAG":
            return f"{key}${self.tags.get(key, '')}"
        if kind == "COST_CATEGORY":
            return f"{key}${self.categories.get(key, '')}"
        return str(getattr(self, DIMENSIONS[key]))


@dataclass
class FakeCostExplorer:
    url: str = ""
    items: list[Item] = field(default_factory=list)
    estimated: set[date] = field(default_factory=set)
    page_size: int = 1000  # groups (or empty periods) per page
    script: list[tuple[int, str, str]] = field(default_factory=list)  # status, __type, message
    requests: list[dict[str, Any]] = field(default_factory=list)  # every body received
    regions_signed: list[str] = field(default_factory=list)

    # ------------------------------------------------------------- answering
    def answer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        try:
            start = date.fromisoformat(body["TimePeriod"]["Start"])
            end = date.fromisoformat(body["TimePeriod"]["End"])
        except (KeyError, ValueError):
            return 400, _error("ValidationException", "TimePeriod Start/End must be YYYY-MM-DD")
        if start >= end:
            return 400, _error("ValidationException",
                               "Start date (and hour) should be before end date (and hour)")
        metrics = body.get("Metrics") or []
        if len(metrics) != 1 or metrics[0] not in METRIC_FACTORS:
            return 400, _error("ValidationException", f"Invalid metrics {metrics}")
        metric = metrics[0]
        group_by = body.get("GroupBy", [])
        groups = [g["Key"] for g in group_by]
        if len(groups) > 2 or any(g.get("Type", "DIMENSION") not in GROUP_TYPES
                                  or (g.get("Type", "DIMENSION") == "DIMENSION"
                                      and g["Key"] not in DIMENSIONS) for g in group_by):
            return 400, _error("ValidationException", f"Invalid GroupBy {groups}")
        granularity = body.get("Granularity")
        if granularity not in ("DAILY", "MONTHLY"):
            return 400, _error("ValidationException", f"Invalid granularity {granularity}")
        entries: list[tuple[tuple[date, date], tuple[str, ...] | None, float]] = []
        for first, last in _periods(start, end, granularity):
            sums: dict[tuple[str, ...], float] = {}
            for item in self.items:
                if first <= item.day < last and _matches(item, body.get("Filter")):
                    key = tuple(item.group_key(g) for g in group_by)
                    sums[key] = sums.get(key, 0.0) + item.cost * METRIC_FACTORS[metric]
            if not sums:
                entries.append(((first, last), None, 0.0))
            entries.extend(((first, last), key, sums[key]) for key in sorted(sums))
        offset = 0
        if body.get("NextPageToken"):
            match = re.fullmatch(r"page-(\d+)", body["NextPageToken"])
            if not match:
                return 400, _error("InvalidNextTokenException", "The token is invalid")
            offset = int(match.group(1))
        page = entries[offset:offset + self.page_size]
        results: list[dict[str, Any]] = []
        for (first, last), key, amount in page:
            if not results or results[-1]["TimePeriod"]["Start"] != first.isoformat():
                days = [first + timedelta(days=i) for i in range((last - first).days)]
                results.append({
                    "TimePeriod": {"Start": first.isoformat(), "End": last.isoformat()},
                    "Total": {}, "Groups": [],
                    "Estimated": any(d in self.estimated for d in days),
                })
            if key is not None:
                results[-1]["Groups"].append({
                    "Keys": list(key),
                    "Metrics": {metric: {"Amount": f"{amount:.10f}", "Unit": "USD"}},
                })
        payload: dict[str, Any] = {
            "GroupDefinitions": [{"Type": g.get("Type", "DIMENSION"), "Key": g["Key"]}
                                 for g in group_by],
            "ResultsByTime": results, "DimensionValueAttributes": [],
        }
        if offset + self.page_size < len(entries):
            payload["NextPageToken"] = f"page-{offset + self.page_size}"
        return 200, payload

    def bodies(self, granularity: str | None = None) -> list[dict[str, Any]]:
        return [b for b in self.requests if granularity in (None, b.get("Granularity"))]


def _error(code: str, message: str) -> dict[str, Any]:
    return {"__type": code, "message": message}


def _periods(start: date, end: date, granularity: str) -> Iterator[tuple[date, date]]:
    day = start
    while day < end:
        if granularity == "DAILY":
            nxt = day + timedelta(days=1)
        else:
            nxt = (day.replace(day=1) + timedelta(days=32)).replace(day=1)
        nxt = min(nxt, end)
        yield day, nxt
        day = nxt


def _matches(item: Item, expression: dict[str, Any] | None) -> bool:
    if not expression:
        return True
    if "And" in expression:
        return all(_matches(item, e) for e in expression["And"])
    if "Or" in expression:
        return any(_matches(item, e) for e in expression["Or"])
    if "Not" in expression:
        return not _matches(item, expression["Not"])
    if "Tags" in expression or "CostCategories" in expression:
        tags = expression.get("Tags") or expression["CostCategories"]
        values = item.tags if "Tags" in expression else item.categories
        if "ABSENT" in tags.get("MatchOptions", []):
            return tags["Key"] not in values
        return values.get(tags["Key"]) in tags["Values"]
    dims = expression["Dimensions"]
    return getattr(item, DIMENSIONS[dims["Key"]]) in dims["Values"]


@contextmanager
def fake_cost_explorer() -> Iterator[FakeCostExplorer]:
    state = FakeCostExplorer()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return

        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            scope = re.search(r"Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/",
                              self.headers.get("Authorization", ""))
            with lock:
                body = json.loads(raw or b"{}")
                state.requests.append(body)
                region = scope.group(1) if scope else ""
                state.regions_signed.append(region)
                if self.headers.get("X-Amz-Target") != TARGET:
                    status, payload = 400, _error("UnknownOperationException", "Unknown")
                elif not scope:
                    status, payload = 400, _error("MissingAuthenticationTokenException",
                                                  "Request is missing Authentication Token")
                elif region != "us-east-1" or scope.group(2) != "ce":
                    status, payload = 400, _error(
                        "InvalidSignatureException",
                        f"Credential should be scoped to a valid region, not '{region}'.")
                elif state.script:
                    status, code, message = state.script.pop(0)
                    payload = _error(code, message)
                else:
                    status, payload = state.answer(body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("x-amzn-RequestId", "fake-request-id")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    with local_server(Handler) as url:
        state.url = url
        yield state
