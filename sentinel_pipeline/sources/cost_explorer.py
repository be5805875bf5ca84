"""AWS Cost Explorer (GetCostAndUsage) as a cost source, and its REGION / USAGE_TYPE drill-down.

One run makes one paginated DAILY query over its whole range, grouped by SERVICE and
LINKED_ACCOUNT (the API's two GroupBy slots), filtered to the configured record types, plus one
MONTHLY query grouped by RECORD_TYPE so the charges left out of detection (credits, refunds,
taxes...) stay visible in the asset metadata. Region does not fit in the two slots: every row
has ``region = "all"``, and the region and usage type behind an alert come from a drill-down
query per alerted series (``root_causes``).

Owners (SENTINEL_OWNER_KEY, ``fetch_owned_costs``). A series keyed by owner needs SERVICE,
LINKED_ACCOUNT and a TAG (or COST_CATEGORY) grouping: three keys, and GetCostAndUsage takes two.
So the owner is fetched per value of one dimension: the usual SERVICE x LINKED_ACCOUNT query
runs first and says which accounts and services had spend; then one query per account
(GroupBy SERVICE + the owner key, Filter LINKED_ACCOUNT = it), or one per service (GroupBy
LINKED_ACCOUNT + the owner key) when there are fewer services than accounts, whichever takes
fewer requests. Every filter and grouping used exists in the real API, and no account list has
to be configured. Cost Explorer names owner groups ``team$value``, untagged spend ``team$``
(cost categories ``name$value``): the prefix up to the first ``$`` is dropped, so untagged spend
has owner "".

Each request costs about $0.01, so requests are counted (throttled attempts included) and
reported. Retries are ours, not botocore's: capped exponential backoff with full jitter, so the
count is exact and the waiting is testable. ``End`` of a Cost Explorer time period is exclusive.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, ClassVar

import pandas as pd

from sentinel_pipeline import settings
from sentinel_pipeline.errors import ConfigError, SourceError
from sentinel_pipeline.schema import RAW_COLUMNS
from sentinel_pipeline.settings import OwnerKey
from sentinel_pipeline.sources.base import (
    Check,
    CostSource,
    RootCauses,
    SourceOptions,
    SourceResult,
)
from sentinel_pipeline.sources.root_causes import BASELINE_DAYS, to_json, top_contributors

log = logging.getLogger(__name__)

SOURCE_NAME = "cost_explorer"
CE_REGION = "us-east-1"  # Cost Explorer's one endpoint region (aws partition)
ALL_REGIONS = "all"  # region of every Cost Explorer row: REGION is not one of the GroupBy slots
REQUEST_COST_USD = 0.01  # AWS price of one Cost Explorer API request
METRICS: tuple[str, ...] = ("UnblendedCost", "AmortizedCost", "NetUnblendedCost",
                            "NetAmortizedCost", "BlendedCost")

_THROTTLING_CODES = {"LimitExceededException", "ThrottlingException", "Throttling",
                     "TooManyRequestsException", "RequestLimitExceeded"}
_CREDENTIAL_CODES = {"UnrecognizedClientException", "InvalidClientTokenId",
                     "InvalidSignatureException", "SignatureDoesNotMatch", "ExpiredTokenException",
                     "ExpiredToken", "MissingAuthenticationTokenException"}

Sleep = Callable[[float], None]


def parse_record_types(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"Usage, DiscountedUsage"`` -> ("Usage", "DiscountedUsage"); empty is a config error."""
    items = text.split(",") if isinstance(text, str) else list(text)
    types = tuple(dict.fromkeys(t.strip() for t in items if t.strip()))
    if not types:
        raise ConfigError(
            "SENTINEL_CE_RECORD_TYPES is empty: list the record types to detect on, e.g. "
            "Usage (the default) or Usage,DiscountedUsage,SavingsPlanCoveredUsage."
        )
    return types


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise ConfigError(
            f"SENTINEL_CE_METRIC={metric!r} is not a Cost Explorer cost metric: use one of "
            f"{', '.join(METRICS)} ({settings.default('SENTINEL_CE_METRIC')} is the default)."
        )
    return metric


@dataclass
class CostExplorer:
    """A boto3 ``ce`` client with counted requests and our own capped, jittered retries.

    The endpoint comes from the SDK's own configuration (``AWS_ENDPOINT_URL_COST_EXPLORER`` or
    ``AWS_ENDPOINT_URL``), the credentials from its usual chain (``AWS_PROFILE``, keys, role).
    """

    max_attempts: int = 6
    base_delay: float = 1.0
    max_delay: float = 20.0
    sleep: Sleep = time.sleep
    jitter: Callable[[], float] = random.random
    client: Any = None
    requests: int = 0
    retried: int = 0  # answered requests that were throttled or failed with 5xx
    waited_seconds: float = 0.0
    _endpoint: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        if self.client is None:
            import boto3
            from botocore.config import Config
            from botocore.exceptions import BotoCoreError

            config = Config(
                retries={"total_max_attempts": 1, "mode": "standard"},  # retries are ours
                connect_timeout=10,
                read_timeout=60,
            )
            try:
                # A fresh session reads the credentials and endpoint settings now, not those a
                # process-wide default session cached at its first use.
                session = boto3.session.Session()
                self.client = session.client("ce", region_name=CE_REGION, config=config)
            except BotoCoreError as exc:  # e.g. AWS_PROFILE names a profile that does not exist
                raise SourceError(
                    f"Cannot set up the Cost Explorer client ({type(exc).__name__}: {exc}): fix "
                    "AWS_PROFILE / AWS_CONFIG_FILE or the AWS_ENDPOINT_URL* settings."
                ) from exc
            except ValueError as exc:
                # botocore's "Invalid endpoint: <url>": the URL may hold credentials, so it
                # is not repeated.
                raise SourceError(
                    "AWS_ENDPOINT_URL_COST_EXPLORER / AWS_ENDPOINT_URL is not a valid URL: fix "
                    "it (e.g. https://ce.us-east-1.amazonaws.com) or unset it."
                ) from exc
        self._endpoint = str(self.client.meta.endpoint_url).split("@")[-1]

    @property
    def cost_usd(self) -> float:
        return round(self.requests * REQUEST_COST_USD, 2)

    def get_cost_and_usage(self, params: dict[str, Any]) -> dict[str, Any]:
        """One GetCostAndUsage page, retried on throttling, 5xx and connection errors."""
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectTimeoutError,
            EndpointConnectionError,
            NoCredentialsError,
            PartialCredentialsError,
            ReadTimeoutError,
        )

        last, kind = "", ""
        for attempt in range(1, self.max_attempts + 1):
            try:
                self.requests += 1
                return self.client.get_cost_and_usage(**params)
            except ClientError as exc:
                error = exc.response.get("Error", {})
                code = str(error.get("Code", ""))
                status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
                if code in _THROTTLING_CODES or status == 429:
                    self.retried += 1
                    last, kind = code or str(status), "throttled"
                elif status >= 500:
                    self.retried += 1
                    last, kind = f"HTTP {status} {code}".strip(), "server"
                else:
                    raise self._client_error(code, status, str(error.get("Message", ""))) from exc
            except (NoCredentialsError, PartialCredentialsError) as exc:
                self.requests -= 1  # nothing was sent
                raise SourceError(
                    "No AWS credentials found for Cost Explorer: set AWS_PROFILE (a profile of "
                    "the management/payer account or a role in it), or AWS_ACCESS_KEY_ID and "
                    "AWS_SECRET_ACCESS_KEY, or run where an IAM role with ce:GetCostAndUsage is "
                    "attached."
                ) from exc
            except (ConnectTimeoutError, ReadTimeoutError) as exc:
                self.requests -= 1  # not counted as answered (a read timeout may be billed)
                last, kind = type(exc).__name__, "timeout"
            except EndpointConnectionError as exc:
                self.requests -= 1
                # Refused or unresolvable: a wrong endpoint or no network; waiting won't help.
                raise SourceError(
                    f"Cannot reach Cost Explorer at {self._endpoint}: check the network, and "
                    "AWS_ENDPOINT_URL_COST_EXPLORER / AWS_ENDPOINT_URL if you set one (unset "
                    "them to use AWS's endpoint)."
                ) from exc
            except BotoCoreError as exc:
                self.requests -= 1
                raise SourceError(
                    f"Cost Explorer request could not be made: {type(exc).__name__}: {exc}"
                ) from exc
            if attempt < self.max_attempts:
                delay = self.jitter() * min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
                self.waited_seconds += delay
                self.sleep(delay)
        if kind == "timeout":
            raise SourceError(
                f"Cost Explorer at {self._endpoint} timed out {self.max_attempts} times "
                f"({last}): check the network or proxy, then rerun."
            )
        if kind == "server":
            raise SourceError(
                f"Cost Explorer at {self._endpoint} failed {self.max_attempts} times in a row "
                f"({last}): if AWS_ENDPOINT_URL_COST_EXPLORER / AWS_ENDPOINT_URL is set, check "
                "that it points to Cost Explorer; otherwise AWS is having trouble, rerun later."
            )
        raise SourceError(
            f"Cost Explorer throttled the request {self.max_attempts} times in a row ({last}); "
            f"gave up after {self.requests} request(s). Cost Explorer allows only a few "
            "requests per second per account: rerun later, and do not run other Cost Explorer "
            "tools at the same time."
        )

    def _client_error(self, code: str, status: int, message: str) -> SourceError:
        if code == "AccessDeniedException" or status == 403:
            return SourceError(
                f"Cost Explorer denied access ({code or status}: {message}). The credentials "
                "need the ce:GetCostAndUsage permission (see the IAM policy in the README), and "
                "Cost Explorer must be enabled once in the Billing console of the account."
            )
        if code in _CREDENTIAL_CODES:
            return SourceError(
                f"Cost Explorer rejected the AWS credentials ({code}): they are invalid or "
                "expired, or not signed for us-east-1. Refresh them (e.g. `aws sso login`) or "
                "fix AWS_PROFILE / AWS_ACCESS_KEY_ID."
            )
        if code == "DataUnavailableException":
            return SourceError(
                "Cost Explorer has no data for this account yet (DataUnavailableException): "
                "it needs up to 24 hours after Cost Explorer is enabled."
            )
        if code == "BillExpirationException":
            return SourceError(
                f"Cost Explorer no longer keeps these days ({message}): it keeps 13 months "
                "(38 with multi-year data enabled); set SENTINEL_START_DATE or --start later."
            )
        if status in (301, 302, 307, 308, 400, 404, 405) and not code.endswith("Exception"):
            return SourceError(
                f"{self._endpoint} did not answer as Cost Explorer (HTTP {status}): fix or "
                "unset AWS_ENDPOINT_URL_COST_EXPLORER / AWS_ENDPOINT_URL."
            )
        return SourceError(f"Cost Explorer refused the request ({code or status}: {message}).")

    def pages(self, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Every ResultsByTime entry of a query, following NextPageToken to the end."""
        token: str | None = None
        seen: set[str] = set()
        while True:
            page = self.get_cost_and_usage({**params, **({"NextPageToken": token} if token
                                                           else {})})
            yield from page.get("ResultsByTime", [])
            token = page.get("NextPageToken") or None
            if not token:
                return
            if token in seen:  # never loop (and pay) forever on a repeated token
                raise SourceError("Cost Explorer returned the same NextPageToken twice; "
                                  "rerun, and report it if it persists.")
            seen.add(token)


def _period(start: date, end: date) -> dict[str, str]:
    """The inclusive days start..end as Cost Explorer's period, whose End is exclusive."""
    return {"Start": start.isoformat(), "End": (end + timedelta(days=1)).isoformat()}


def _dimension(key: str, values: Sequence[str]) -> dict[str, Any]:
    return {"Dimensions": {"Key": key, "Values": list(values), "MatchOptions": ["EQUALS"]}}


def _group_by(*keys: str) -> list[dict[str, str]]:
    return [{"Type": "DIMENSION", "Key": k} for k in keys]


def _owner_group(owner: OwnerKey) -> dict[str, str]:
    """The GroupBy of the owner key: a cost allocation tag (its key as activated in Billing,
    e.g. team) or a cost category (its name)."""
    return {"Type": "TAG" if owner.kind == "tag" else "COST_CATEGORY", "Key": owner.name}


def _owner_filter(owner: OwnerKey, value: str) -> dict[str, Any]:
    """The Filter of one owner; "" (untagged) is the key's ABSENT match."""
    field_name = "Tags" if owner.kind == "tag" else "CostCategories"
    if value:
        return {field_name: {"Key": owner.name, "Values": [value], "MatchOptions": ["EQUALS"]}}
    return {field_name: {"Key": owner.name, "MatchOptions": ["ABSENT"]}}


def owner_of(key: str) -> str:
    """An owner group key as Cost Explorer returns it ('team$a', 'team$' untagged) as the
    owner ('a', '')."""
    return key.split("$", 1)[1] if "$" in key else key


def _amount(group: dict[str, Any], metric: str) -> tuple[float, str]:
    value = group.get("Metrics", {}).get(metric, {})
    try:
        return float(value.get("Amount", "nan")), str(value.get("Unit") or "USD")
    except (TypeError, ValueError) as exc:
        raise SourceError(
            f"Cost Explorer returned a non-numeric {metric} amount {value.get('Amount')!r}."
        ) from exc


def daily_cost_query(start: date, end: date, metric: str,
                     record_types: Sequence[str]) -> dict[str, Any]:
    return {
        "TimePeriod": _period(start, end),
        "Granularity": "DAILY",
        "Metrics": [metric],
        "GroupBy": _group_by("SERVICE", "LINKED_ACCOUNT"),
        "Filter": _dimension("RECORD_TYPE", record_types),
    }


def _records(ce: CostExplorer, params: dict[str, Any], start: date, end: date, metric: str,
             read: Callable[[list[str]], tuple[str, str, str]],
             estimated_days: set[date]) -> list[dict[str, Any]]:
    """The non-zero groups of every page of a DAILY query as raw rows; ``read`` turns a
    group's Keys into (service, account_id, owner)."""
    records: list[dict[str, Any]] = []
    for result in ce.pages(params):
        day = date.fromisoformat(result["TimePeriod"]["Start"])
        if day < start or day > end:
            continue  # defensive: never write outside the run's days
        estimated = bool(result.get("Estimated", False))
        if estimated:
            estimated_days.add(day)
        for group in result.get("Groups", []):
            service, account, owner = read(list(group.get("Keys", [])))
            cost, unit = _amount(group, metric)
            if cost == 0.0:
                continue  # days without spend have no row, as in the other sources
            records.append({"usage_date": day, "service": service, "account_id": account,
                            "region": ALL_REGIONS, "owner": owner, "cost": cost,
                            "currency": unit, "estimated": estimated, "source": SOURCE_NAME})
    return records


def _two_keys(names: str) -> Callable[[list[str]], tuple[str, str]]:
    """A reader of a group's two Keys that names them when Cost Explorer returns others."""
    def check(keys: list[str]) -> tuple[str, str]:
        if len(keys) != 2:
            raise SourceError(f"Cost Explorer returned a group without {names} keys: {keys!r}.")
        return str(keys[0]), str(keys[1])
    return check


def fetch_costs(
    start: date,
    end: date,
    metric: str = settings.default("SENTINEL_CE_METRIC"),
    record_types: str | Sequence[str] = settings.default("SENTINEL_CE_RECORD_TYPES"),
    ce: CostExplorer | None = None,
    owner: OwnerKey | None = None,
) -> SourceResult:
    """raw_daily_costs rows for the days start..end inclusive, in as few requests as possible
    (with an owner key, see the module docstring: one more query per account or service).

    The metadata holds what the asset reports: requests made and their cost, the days still
    Estimated, and every record type's total (those left out of detection included).
    """
    check_metric(metric)
    types = parse_record_types(record_types)
    ce = ce or CostExplorer()
    estimated_days: set[date] = set()
    pair = _two_keys("SERVICE and LINKED_ACCOUNT")
    records = _records(ce, daily_cost_query(start, end, metric, types), start, end, metric,
                       lambda keys: (*pair(keys), ""), estimated_days)
    owned: dict[str, Any] = {}
    if owner is not None:
        records, owned = _owned_records(ce, records, start, end, metric, types, owner,
                                        estimated_days)
    rows = pd.DataFrame.from_records(records, columns=RAW_COLUMNS)
    if len(rows):
        # A day split across pages repeats its period; sum anything that came twice.
        rows = (rows.groupby(["usage_date", "service", "account_id", "region", "owner",
                              "currency", "source"], as_index=False, sort=True)
                .agg(cost=("cost", "sum"), estimated=("estimated", "max")))[RAW_COLUMNS]
    charges = record_type_totals(start, end, metric, ce)
    metadata = {
        **owned,
        "ce_metric": metric,
        "ce_record_types": ", ".join(types),
        "ce_requests": ce.requests,
        "ce_request_cost_usd": ce.cost_usd,
        "ce_retried_requests": ce.retried,
        "estimated_days": len(estimated_days),
        "charges_by_record_type": {k: round(v, 2) for k, v in sorted(charges.items())},
        "excluded_from_detection": {k: round(v, 2) for k, v in sorted(charges.items())
                                    if k not in types},
    }
    log.info("Cost Explorer: %d row(s) for %s..%s in %d request(s)", len(rows), start, end,
             ce.requests)
    return SourceResult(rows, metadata, ce.requests)


def _owned_records(
    ce: CostExplorer, totals: list[dict[str, Any]], start: date, end: date, metric: str,
    types: Sequence[str], owner: OwnerKey, estimated_days: set[date],
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The rows split by owner: one query per account or per service seen in ``totals`` (the
    fewer), grouped by the other dimension and the owner key; and the metadata about it."""
    accounts = sorted({r["account_id"] for r in totals})
    services = sorted({r["service"] for r in totals})
    by_account = len(accounts) <= len(services)
    pivot, values, other = (("LINKED_ACCOUNT", accounts, "SERVICE") if by_account
                            else ("SERVICE", services, "LINKED_ACCOUNT"))
    pair = _two_keys(f"{other} and {owner.name}")
    records: list[dict[str, Any]] = []
    for value in values:
        params = {
            "TimePeriod": _period(start, end),
            "Granularity": "DAILY",
            "Metrics": [metric],
            "GroupBy": [*_group_by(other), _owner_group(owner)],
            "Filter": {"And": [_dimension("RECORD_TYPE", types), _dimension(pivot, [value])]},
        }

        def read(keys: list[str], value: str = value) -> tuple[str, str, str]:
            first, owned = pair(keys)
            service, account = (first, value) if by_account else (value, first)
            return service, account, owner_of(owned)

        records.extend(_records(ce, params, start, end, metric, read, estimated_days))
    untagged = sum(r["cost"] for r in records if r["owner"] == "")
    return records, {"owner_key": str(owner), "owner_queries_by": pivot.lower(),
                     "owner_queries": len(values), "untagged_cost": round(untagged, 2)}


def record_type_totals(start: date, end: date, metric: str, ce: CostExplorer) -> dict[str, float]:
    """Total cost per RECORD_TYPE over the days, in one MONTHLY query (a page per ~month)."""
    params = {"TimePeriod": _period(start, end), "Granularity": "MONTHLY", "Metrics": [metric],
              "GroupBy": _group_by("RECORD_TYPE")}
    totals: dict[str, float] = {}
    for result in ce.pages(params):
        for group in result.get("Groups", []):
            cost, _ = _amount(group, metric)
            key = str((group.get("Keys") or ["(none)"])[0])
            totals[key] = totals.get(key, 0.0) + cost
    return totals


# ------------------------------------------------------------------------- drill-down
def drill_down(
    service: str,
    account_id: str,
    day: date,
    metric: str,
    record_types: Sequence[str],
    ce: CostExplorer,
    baseline_days: int = BASELINE_DAYS,
    owner: tuple[OwnerKey, str] | None = None,
) -> pd.DataFrame:
    """Daily cost of one series by REGION and USAGE_TYPE, from ``baseline_days`` before ``day``
    to ``day`` (columns usage_date, region, usage_type, cost); with ``owner`` (the key and
    the series' owner, "" untagged) only that owner's spend."""
    owned = [_owner_filter(*owner)] if owner is not None else []
    params = {
        "TimePeriod": _period(day - timedelta(days=baseline_days), day),
        "Granularity": "DAILY",
        "Metrics": [metric],
        "GroupBy": _group_by("REGION", "USAGE_TYPE"),
        "Filter": {"And": [_dimension("SERVICE", [service]),
                           _dimension("LINKED_ACCOUNT", [account_id]),
                           _dimension("RECORD_TYPE", record_types), *owned]},
    }
    records = []
    for result in ce.pages(params):
        usage_date = date.fromisoformat(result["TimePeriod"]["Start"])
        for group in result.get("Groups", []):
            keys = list(group.get("Keys", [])) + ["", ""]
            cost, _ = _amount(group, metric)
            records.append({"usage_date": usage_date, "region": keys[0] or "global",
                            "usage_type": keys[1], "cost": cost})
    return pd.DataFrame.from_records(records,
                                     columns=["usage_date", "region", "usage_type", "cost"])


def root_causes(
    anomalies: pd.DataFrame,
    metric: str = settings.default("SENTINEL_CE_METRIC"),
    record_types: str | Sequence[str] = settings.default("SENTINEL_CE_RECORD_TYPES"),
    ce: CostExplorer | None = None,
    owner: OwnerKey | None = None,
) -> RootCauses:
    """For each anomaly row, its top REGION / USAGE_TYPE contributors as JSON ('' if unknown).

    A drill-down that fails (throttled beyond the cap, access denied...) must not fail the run
    that found the anomaly: it is logged, that row and the rows after it get ''.
    """
    out = RootCauses.none(len(anomalies))
    if not len(anomalies):
        return out
    check_metric(metric)
    types = parse_record_types(record_types)
    try:
        ce = ce or CostExplorer()
    except Exception as exc:  # a client that cannot even be built: no drill-downs this run
        log.warning("Cost Explorer drill-down unavailable: %s", exc)
        return out
    for i, (_, row) in enumerate(anomalies.iterrows()):
        day = pd.Timestamp(row["usage_date"]).date()
        try:
            series_owner = (owner, str(row.get("owner") or "")) if owner is not None else None
            detail = drill_down(str(row["service"]), str(row["account_id"]), day, metric, types,
                                ce, owner=series_owner)
        except SourceError as exc:
            log.warning("Cost Explorer drill-down stopped at %s / %s on %s: %s",
                        row["service"], row["account_id"], day, exc)
            break
        out.causes[i] = to_json(top_contributors(detail, day))
    out.requests = ce.requests
    return out


def check_access(metric: str, record_types: str, today: date) -> tuple[bool, str]:
    """For `sentinel doctor`: settings valid and one real request (about $0.01) succeeds."""
    try:
        check_metric(metric)
        types = parse_record_types(record_types)
        ce = CostExplorer(max_attempts=2)
        day = today - timedelta(days=1)
        ce.get_cost_and_usage({"TimePeriod": _period(day, day), "Granularity": "DAILY",
                               "Metrics": [metric]})
    except (ConfigError, SourceError) as exc:
        return False, str(exc)
    return True, (f"source: Cost Explorer answered ({metric}, record types {', '.join(types)}; "
                  "this check made 1 request, about $0.01)")


@dataclass(frozen=True)
class CostExplorerSource(CostSource):
    """AWS Cost Explorer: daily costs by service and account, drilled down by region and
    usage type for alerts."""

    name: ClassVar[str] = SOURCE_NAME
    metric: str
    record_types: str
    owner: OwnerKey | None = None

    @classmethod
    def from_options(cls, options: SourceOptions) -> CostExplorerSource:
        return cls(metric=options.ce_metric, record_types=options.ce_record_types,
                   owner=options.owner)

    def fetch(self, start: date, end: date) -> SourceResult:
        return fetch_costs(start, end, self.metric, self.record_types, owner=self.owner)

    def root_causes(self, alerts: pd.DataFrame) -> RootCauses:
        return root_causes(alerts, self.metric, self.record_types, owner=self.owner)

    def check(self, today: date) -> Check:
        return check_access(self.metric, self.record_types, today)
