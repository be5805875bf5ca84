"""The ``demo`` cost source: deterministic synthetic AWS-like daily costs for any day.

Why it exists: ``make demo`` must show real alerts with no cloud account, tests and benchmarks
need data whose anomalies are known in advance, and any day must be (re)generated on its own,
exactly as a daily Dagster partition is materialised or backfilled.

Determinism. Every pseudo-random number is a pure function of (series index, day ordinal or
event number, stream id) through a splitmix64 mix in numpy ``uint64`` (never Python's ``hash()``,
which is salted per process). Floats are then built only with ``+ - * /`` (IEEE exact, the same
in SIMD and scalar loops) and lookups into small tables computed once with Python's ``math``, so
the rows of day D are bit-identical whether D is generated alone, inside any range, or with any
``series_count`` (series ``i`` never depends on how many series follow it).

Series (one per (service, account_id, region)); base = weekday $/day on 2026-01-01:

==  ===============================================  =======  =========  ========================
#   service                                          account  region     shape
==  ===============================================  =======  =========  ========================
0   Amazon Elastic Compute Cloud - Compute           prod     us-east-1  $1,850, weekend -30 %
1   Amazon Relational Database Service               prod     us-east-1  $620, quiet
2   Amazon Simple Storage Service                    prod     us-east-1  $410, +2.5 %/month
3   EC2 - Other                                      prod     us-east-1  $240 (EBS, NAT)
4   Amazon DynamoDB                                  prod     us-east-1  $180
5   AWS Lambda                                       prod     us-east-1  $95, noisy (25 %)
6   Amazon CloudWatch                                prod     us-east-1  $140
7   AWS Data Transfer                                prod     us-east-1  $260, 12 % noise
8   Amazon Elastic Container Service for Kubernetes  prod     us-east-1  $9.60 flat fee
9   Amazon Virtual Private Cloud                     prod     us-east-1  $58
10  AWS Key Management Service                       prod     us-east-1  $0.03 (tiny)
11  Amazon Route 53                                  prod     global     $4.50
12  AWS Support (Business)                           prod     global     ~$1,900 on the 1st only
13  Tax                                              prod     global     ~$1,450 on the 1st only
14  AWS Marketplace                                  prod     global     $600 on the 15th only
15  AWS Promotional Credit                           prod     global     -$65/day (credit)
16  Amazon Elastic Compute Cloud - Compute           data     us-west-2  $720, +3 %/month
17  Amazon Simple Storage Service                    data     us-west-2  $310, +3 %/month
18  Amazon Athena                                    data     us-west-2  $55, 20 % noise
19  Amazon SageMaker                                 data     us-west-2  only during new_spend
20  Amazon Elastic Compute Cloud - Compute           staging  eu-west-1  $260, weekend -55 %
21  Amazon Relational Database Service               staging  eu-west-1  $140
22  Amazon Elastic Container Service for Kubernetes  staging  eu-west-1  $4.80 flat fee
23  Amazon CloudWatch                                staging  eu-west-1  $22
==  ===============================================  =======  =========  ========================

Accounts: prod 402913857261, data 718265403918, staging 530774192846. Series 24 and beyond are
procedural: service (a list of regional AWS services not used above) cycles fastest, then the
three accounts, then twelve regions, then generated accounts ``9xxxxxxxxxxx``, so every index
has a distinct (service, account_id, region); base, trend, weekend dip and noise come from the
index's hash.

Credit choice: AWS applies promotional credits (Activate, migration credits) as eligible usage
accrues, so in daily billing data they show up as a small negative line every day that follows
the usage's weekly rhythm; series 15 models that as its own line, "AWS Promotional Credit".

Shapes: cost = level * weekday factor * noise, with level = base * (1 + g * tri(day)), ``tri`` a
triangle wave in days (period four years, zero and rising on 2026-01-01), i.e. growth of a few %
per month until 2028, then a slow decline, so values stay bounded for any date. Noise is
log-normal (mean 1). Days with no spend (a monthly line off its charge day, SageMaker outside a
new_spend episode) have no row.

Known anomalies (periodic in the day ordinal, each kind on its own series, so a series never gets
two within 30 days; sustained, level_shift and new_spend start on a weekday, as deploys do):

* spike: every 23 days, one day, +100-200 % of the weekday level (at least $100), rotating
  over series 0, 16, 7, 4;
* sustained (a forgotten fleet): every 41 days, +80-140 % (at least $100) constant for 5-10
  days, rotating over series 20, 3, 6;
* level_shift: every 67 days, +60-100 % (at least $100) for 14-28 days then back, rotating over
  series 1, 2, 17;
* new_spend: every 127 days SageMaker (series 19) appears at $240-480/day for 7-14 days, after at
  least 113 days with no rows.

Any 60-day window thus holds at least two spikes and one sustained event (with series_count
>= 21). Procedural series with a base of at least $25/day and noise of at most 10 % get one event
(spike, sustained or level_shift) every 120 days at a phase of their own. ``demo_known_anomalies``
lists exactly the events that ``generate_demo_costs`` injects.

Owners. With ``owners=True`` (the demo source does so when SENTINEL_OWNER_KEY is set) every
series gets a fixed owner, as a ``team`` tag would give it: the prod account's compute and
storage "platform", its databases, DynamoDB and Lambda "checkout", the data account "data", the
staging account "web"; CloudWatch, data transfer, KMS, Route 53, support, tax, marketplace and
the credit are untagged (""), as shared and account-level charges are in real bills. A
procedural series draws one of platform, checkout, data, web or untagged from its hash. The
series, their costs and the known anomalies are the same with or without owners; only the
``owner`` column differs ("" everywhere without).
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass
from functools import cache
from statistics import NormalDist
from typing import ClassVar, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa

from sentinel_pipeline.schema import RAW_COLUMNS, UP_KINDS, conform
from sentinel_pipeline.settings import DEMO_SERIES
from sentinel_pipeline.sources.base import (
    Check,
    CostSource,
    RootCauses,
    SourceOptions,
    SourceResult,
)

_SOURCE = "demo"
_KNOWN_COLUMNS: list[str] = [
    "start_date",
    "end_date",
    "service",
    "account_id",
    "region",
    "owner",
    "kind",
    "extra_cost_per_day",
]

# --------------------------------------------------------------------------------------------
# Stable hashing (splitmix64) and the tables that turn hashes into floats
# --------------------------------------------------------------------------------------------

_U64 = np.uint64
_GAMMA = 0x9E3779B97F4A7C15
_DAY_MULT = 0xD1B54A32D192ED03
_SEED = 0x5E47_1E1D_0C05_7A11

# stream ids: one per independent draw
_S_NOISE, _S_BASE, _S_TREND, _S_PHASE, _S_WEEKEND, _S_SIGMA = 1, 2, 3, 4, 5, 6
_S_EVENT_PHASE, _S_EVENT_KIND, _S_EVENT_SIZE, _S_EVENT_DURATION = 7, 8, 9, 10
_S_OWNER = 11

_NOISE_BITS = 12
_NOISE_LEVELS: tuple[float, ...] = (
    0.0, 0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.10, 0.12, 0.18, 0.20, 0.25,
)  # fmt: skip


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a bijective, well-scrambled uint64 -> uint64 map."""
    x = x ^ (x >> _U64(30))
    x = x * _U64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> _U64(27))
    x = x * _U64(0x94D049BB133111EB)
    return x ^ (x >> _U64(31))


def _series_key(series: np.ndarray, stream: int) -> np.ndarray:
    """Hash half for a series (or a series' event number) and a stream."""
    s = np.asarray(series, dtype=np.int64).astype(np.uint64)
    return _mix(s * _U64(_GAMMA) + _U64((_SEED + stream * 0x632BE59BD9B4E019) % 2**64))


def _day_key(day: np.ndarray, stream: int) -> np.ndarray:
    """Hash half for a day ordinal (or an event number) and a stream."""
    d = np.asarray(day, dtype=np.int64).astype(np.uint64)
    return _mix(d * _U64(_DAY_MULT) + _U64(stream))


def _hash(series: np.ndarray, day: np.ndarray, stream: int) -> np.ndarray:
    """Stable hash of (series, day, stream), broadcasting like numpy."""
    return _mix(_series_key(series, stream) ^ _day_key(day, stream))


def _uniform(h: np.ndarray) -> np.ndarray:
    """Uniform float64 in [0, 1) from the top 53 bits of a hash (exact arithmetic)."""
    return (h >> _U64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


def _uniform_of(series: np.ndarray, key: np.ndarray, stream: int) -> np.ndarray:
    """Uniform [0, 1) draw keyed by (series, day or event number, stream)."""
    return _uniform(_hash(series, key, stream))


@cache
def _noise_table() -> np.ndarray:
    """Log-normal (mean 1) noise factors, one row per level in _NOISE_LEVELS.

    Built with Python's math (libm), never with numpy's SIMD transcendental loops, so a value
    depends only on its inputs, not on array length or alignment.
    """
    n = 1 << _NOISE_BITS
    normal = NormalDist()
    z = [normal.inv_cdf((q + 0.5) / n) for q in range(n)]
    rows = [[math.exp(s * zq - 0.5 * s * s) for zq in z] for s in _NOISE_LEVELS]
    table = np.array(rows, dtype=np.float64)
    table.setflags(write=False)
    return table


def _noise_factor(series: np.ndarray, day: np.ndarray, level: np.ndarray) -> np.ndarray:
    """Multiplicative noise of ``series`` on ``day`` (broadcasting; level = row of the table)."""
    q = (_hash(series, day, _S_NOISE) >> _U64(64 - _NOISE_BITS)).astype(np.int64)
    return _noise_table()[level, q]


def _noise_index(sigma: float) -> int:
    """Row of the noise table for a log-noise level (only levels in the table exist)."""
    return _NOISE_LEVELS.index(sigma)


# --------------------------------------------------------------------------------------------
# Calendar helpers on day ordinals (datetime.date.toordinal)
# --------------------------------------------------------------------------------------------

_ORD_1970 = datetime.date(1970, 1, 1).toordinal()
_TREND_EPOCH = datetime.date(2026, 1, 1).toordinal()
_MAX_ORDINAL = datetime.date.max.toordinal()
_TREND_HALF_SWING = 730  # days from the middle of the triangle wave to its peak


def _weekday(ords: np.ndarray) -> np.ndarray:
    """0 = Monday ... 6 = Sunday, as datetime.date.weekday (ordinal 1 was a Monday)."""
    return (ords - 1) % 7


def _day_of_month(ords: np.ndarray) -> np.ndarray:
    days = (ords - _ORD_1970).astype("datetime64[D]")
    return (days - days.astype("datetime64[M]")).astype(np.int64) + 1


def _triangle(t: np.ndarray) -> np.ndarray:
    """Triangle wave with slope +-1/day: 0 at t=0 rising to +A at t=A, down to -A at t=3A."""
    a = _TREND_HALF_SWING
    u = (t + a) % (4 * a)
    return np.where(u < 2 * a, u - a, 3 * a - u)


def _from_ordinals(ords: np.ndarray) -> np.ndarray:
    """Day ordinals as numpy datetime64[D] (what pandas turns into dates fastest)."""
    return (np.asarray(ords, dtype=np.int64) - _ORD_1970).astype("datetime64[D]")


# --------------------------------------------------------------------------------------------
# Series catalogue
# --------------------------------------------------------------------------------------------

_PROD, _DATA, _STAGING = 0, 1, 2
_HAND_ACCOUNTS: tuple[str, ...] = ("402913857261", "718265403918", "530774192846")

_DAILY, _NEVER = 0, -1  # charge_day: 0 every day, 1..28 that day of the month, -1 never

_EC2 = "Amazon Elastic Compute Cloud - Compute"
_S3 = "Amazon Simple Storage Service"
_RDS = "Amazon Relational Database Service"
_EKS = "Amazon Elastic Container Service for Kubernetes"
_CLOUDWATCH = "Amazon CloudWatch"
_SAGEMAKER = "Amazon SageMaker"


@dataclass(frozen=True)
class _Hand:
    """A hand-picked series: base is the weekday $/day on 2026-01-01, growth in % per month."""

    service: str
    account: int
    region: str
    base: float
    growth: float = 0.0
    weekend: float = 1.0
    sigma: float = 0.02
    charge_day: int = _DAILY


_HAND_SERIES: tuple[_Hand, ...] = (
    _Hand(_EC2, _PROD, "us-east-1", 1850.0, 2.0, 0.70, 0.04),
    _Hand(_RDS, _PROD, "us-east-1", 620.0, 1.0, 1.0, 0.02),
    _Hand(_S3, _PROD, "us-east-1", 410.0, 2.5, 1.0, 0.015),
    _Hand("EC2 - Other", _PROD, "us-east-1", 240.0, 1.5, 0.90, 0.05),
    _Hand("Amazon DynamoDB", _PROD, "us-east-1", 180.0, 1.0, 0.85, 0.06),
    _Hand("AWS Lambda", _PROD, "us-east-1", 95.0, 2.0, 0.80, 0.25),
    _Hand(_CLOUDWATCH, _PROD, "us-east-1", 140.0, 1.0, 1.0, 0.05),
    _Hand("AWS Data Transfer", _PROD, "us-east-1", 260.0, 1.5, 0.75, 0.12),
    _Hand(_EKS, _PROD, "us-east-1", 9.60, 0.0, 1.0, 0.0),
    _Hand("Amazon Virtual Private Cloud", _PROD, "us-east-1", 58.0, 0.5, 1.0, 0.03),
    _Hand("AWS Key Management Service", _PROD, "us-east-1", 0.03, 0.0, 1.0, 0.05),
    _Hand("Amazon Route 53", _PROD, "global", 4.50, 0.5, 1.0, 0.08),
    _Hand("AWS Support (Business)", _PROD, "global", 1900.0, 1.5, 1.0, 0.02, charge_day=1),
    _Hand("Tax", _PROD, "global", 1450.0, 1.5, 1.0, 0.03, charge_day=1),
    _Hand("AWS Marketplace", _PROD, "global", 600.0, 0.0, 1.0, 0.0, charge_day=15),
    _Hand("AWS Promotional Credit", _PROD, "global", -65.0, 0.0, 0.80, 0.03),
    _Hand(_EC2, _DATA, "us-west-2", 720.0, 3.0, 0.95, 0.10),
    _Hand(_S3, _DATA, "us-west-2", 310.0, 3.0, 1.0, 0.02),
    _Hand("Amazon Athena", _DATA, "us-west-2", 55.0, 2.0, 0.60, 0.20),
    _Hand(_SAGEMAKER, _DATA, "us-west-2", 0.0, 0.0, 1.0, 0.05, charge_day=_NEVER),
    _Hand(_EC2, _STAGING, "eu-west-1", 260.0, 1.0, 0.45, 0.05),
    _Hand(_RDS, _STAGING, "eu-west-1", 140.0, 0.5, 1.0, 0.02),
    _Hand(_EKS, _STAGING, "eu-west-1", 4.80, 0.0, 1.0, 0.0),
    _Hand(_CLOUDWATCH, _STAGING, "eu-west-1", 22.0, 0.5, 1.0, 0.06),
)
_N_HAND = len(_HAND_SERIES)
# The owner of each hand-picked series, in _HAND_SERIES order ("" = untagged).
_HAND_OWNERS: tuple[str, ...] = (
    "platform", "checkout", "platform", "platform", "checkout", "checkout", "", "",
    "platform", "platform", "", "", "", "", "", "",
    "data", "data", "data", "data",
    "web", "web", "web", "",
)  # fmt: skip
_PROC_OWNERS: tuple[str, ...] = ("platform", "checkout", "data", "web", "")
assert len(_HAND_OWNERS) == _N_HAND

# Regional services for procedural series; none of them is a hand-picked service, so a
# procedural (service, account, region) can never equal a hand-picked one.
_PROC_SERVICES: tuple[str, ...] = (
    "Amazon Simple Queue Service",
    "Amazon Simple Notification Service",
    "Amazon ElastiCache",
    "Amazon Elastic Load Balancing",
    "Amazon EC2 Container Registry (ECR)",
    "AWS Secrets Manager",
    "Amazon OpenSearch Service",
    "Amazon Redshift",
    "AWS Glue",
    "Amazon Kinesis",
    "Amazon Elastic File System",
    "Amazon Elastic Container Service",
    "AWS Step Functions",
    "Amazon API Gateway",
    "AWS Backup",
    "AWS Config",
    "AWS CloudTrail",
    "Amazon GuardDuty",
    "AWS Security Hub",
    "AWS WAF",
    "Amazon Cognito",
    "Amazon Simple Email Service",
    "Amazon EMR",
    "Amazon Managed Streaming for Apache Kafka",
    "Amazon MQ",
    "AWS Systems Manager",
    "Amazon Kinesis Firehose",
    "Amazon DocumentDB (with MongoDB compatibility)",
    "Amazon Neptune",
    "Amazon FSx",
    "AWS Database Migration Service",
    "Amazon Bedrock",
)
_PROC_REGIONS: tuple[str, ...] = (
    "us-east-1",
    "eu-west-1",
    "us-west-2",
    "us-east-2",
    "eu-central-1",
    "ap-southeast-1",
    "ap-northeast-1",
    "ap-southeast-2",
    "eu-west-2",
    "ca-central-1",
    "ap-south-1",
    "sa-east-1",
)
_PROC_BASES = np.array([0.5 * (1800.0 ** (k / 63)) for k in range(64)])  # $0.50 .. $900, log
_PROC_GROWTH = np.array([-0.5, 0.0, 0.0, 0.5, 1.0, 1.0, 1.5, 2.0, 2.5, 3.0]) / 100.0 / 30.0
_PROC_WEEKEND = np.array([1.0, 1.0, 1.0, 0.95, 0.90, 0.85, 0.70, 0.55])
_PROC_SIGMA = np.array(
    [_noise_index(s) for s in (0.01, 0.02, 0.03, 0.05, 0.05, 0.08, 0.10, 0.12, 0.18, 0.25)]
)

_SERVICES: tuple[str, ...] = tuple(dict.fromkeys([h.service for h in _HAND_SERIES])) + (
    _PROC_SERVICES
)
_REGIONS: tuple[str, ...] = tuple(
    dict.fromkeys([h.region for h in _HAND_SERIES] + list(_PROC_REGIONS))
)
_SERVICE_ARR = np.array(_SERVICES, dtype=object)
_REGION_ARR = np.array(_REGIONS, dtype=object)
_SERVICE_RANK = np.argsort(np.argsort(np.array(_SERVICES)))
_REGION_RANK = np.argsort(np.argsort(np.array(_REGIONS)))
_HAND_ACCOUNT_RANK = np.argsort(np.argsort(np.array(_HAND_ACCOUNTS)))
_PROC_SERVICE_IDS = np.array([_SERVICES.index(s) for s in _PROC_SERVICES])
_PROC_REGION_IDS = np.array([_REGIONS.index(r) for r in _PROC_REGIONS])

_HAND_SERVICE_IDS = np.array([_SERVICES.index(h.service) for h in _HAND_SERIES])
_HAND_ACCOUNT_IDS = np.array([h.account for h in _HAND_SERIES], dtype=np.int64)
_HAND_REGION_IDS = np.array([_REGIONS.index(h.region) for h in _HAND_SERIES])
_HAND_BASE = np.array([h.base for h in _HAND_SERIES])
_HAND_GROWTH = np.array([h.growth / 100.0 / 30.0 for h in _HAND_SERIES])
_HAND_WEEKEND = np.array([h.weekend for h in _HAND_SERIES])
_HAND_SIGMA = np.array([_noise_index(h.sigma) for h in _HAND_SERIES])
_HAND_CHARGE = np.array([h.charge_day for h in _HAND_SERIES], dtype=np.int64)


class _Params(NamedTuple):
    """Vectorised parameters of a set of series (all arrays share the series' shape)."""

    series_id: np.ndarray  # the series' index in the demo's list
    service: np.ndarray  # index into _SERVICES
    account: np.ndarray  # account number: 0..2 hand accounts, >= 3 generated
    region: np.ndarray  # index into _REGIONS
    base: np.ndarray
    growth: np.ndarray  # per day
    phase: np.ndarray  # days added to the trend clock
    weekend: np.ndarray
    sigma: np.ndarray  # row of the noise table
    charge_day: np.ndarray


def _series_params(index: np.ndarray) -> _Params:
    """Parameters of the series with these indices (hand-picked table or procedural hash)."""
    idx = np.asarray(index, dtype=np.int64)
    hand = idx < _N_HAND
    h = np.where(hand, idx, 0)
    j = np.maximum(idx - _N_HAND, 0)
    n_svc, n_reg = len(_PROC_SERVICES), len(_PROC_REGIONS)
    q = j // n_svc
    p_account = q % 3 + 3 * (q // (3 * n_reg))
    p_region = (q // 3) % n_reg

    def u(stream: int) -> np.ndarray:
        return _uniform(_series_key(idx, stream))

    def pick(table: np.ndarray, stream: int) -> np.ndarray:
        return table[(u(stream) * len(table)).astype(np.int64)]

    return _Params(
        series_id=idx,
        service=np.where(hand, _HAND_SERVICE_IDS[h], _PROC_SERVICE_IDS[j % n_svc]),
        account=np.where(hand, _HAND_ACCOUNT_IDS[h], p_account),
        region=np.where(hand, _HAND_REGION_IDS[h], _PROC_REGION_IDS[p_region]),
        base=np.where(hand, _HAND_BASE[h], pick(_PROC_BASES, _S_BASE)),
        growth=np.where(hand, _HAND_GROWTH[h], pick(_PROC_GROWTH, _S_TREND)),
        phase=np.where(hand, 0, (u(_S_PHASE) * 4 * _TREND_HALF_SWING).astype(np.int64)),
        weekend=np.where(hand, _HAND_WEEKEND[h], pick(_PROC_WEEKEND, _S_WEEKEND)),
        sigma=np.where(hand, _HAND_SIGMA[h], pick(_PROC_SIGMA, _S_SIGMA)),
        charge_day=np.where(hand, _HAND_CHARGE[h], _DAILY),
    )


def _owners(series_id: np.ndarray, owners: bool) -> np.ndarray:
    """The owner of each series (see the module docstring); "" everywhere without owners."""
    idx = np.asarray(series_id, dtype=np.int64)
    if not owners:
        return np.full(len(idx), "", dtype=object)
    hand = idx < _N_HAND
    drawn = (_uniform(_series_key(idx, _S_OWNER)) * len(_PROC_OWNERS)).astype(np.int64)
    return np.where(hand, np.array(_HAND_OWNERS, dtype=object)[np.where(hand, idx, 0)],
                    np.array(_PROC_OWNERS, dtype=object)[drawn])


def _level(base: np.ndarray, growth: np.ndarray, phase: np.ndarray, ords: np.ndarray) -> np.ndarray:
    """Weekday $/day before noise: base * (1 + growth * triangle(day)); broadcasting."""
    t = ords - _TREND_EPOCH + phase
    return base * (1.0 + growth * _triangle(t).astype(np.float64))


def _account_ids(numbers: np.ndarray) -> np.ndarray:
    """12-digit account ids: the three hand accounts, then distinct generated 9xxxxxxxxxxx."""
    numbers = np.asarray(numbers, dtype=np.int64)
    uniq, inverse = np.unique(numbers, return_inverse=True)
    generated = 900_000_000_000 + (uniq * 61_803_398_87 + 12_345_678_901) % 100_000_000_000
    names = np.array(
        [
            _HAND_ACCOUNTS[n] if n < 3 else str(g)
            for n, g in zip(uniq.tolist(), generated.tolist(), strict=True)
        ],
        dtype=object,
    )
    return names[inverse.reshape(numbers.shape)]


def _account_sort_key(numbers: np.ndarray) -> np.ndarray:
    """Sorts like the account id strings: hand ids first (none starts with 9), then by number."""
    numbers = np.asarray(numbers, dtype=np.int64)
    generated = 900_000_000_000 + (numbers * 61_803_398_87 + 12_345_678_901) % 100_000_000_000
    return np.where(numbers < 3, _HAND_ACCOUNT_RANK[np.minimum(numbers, 2)], generated)


# --------------------------------------------------------------------------------------------
# Known anomaly schedule
# --------------------------------------------------------------------------------------------

_SPIKE, _SUSTAINED, _LEVEL_SHIFT, _NEW_SPEND = 0, 1, 2, 3
_KINDS: tuple[str, ...] = UP_KINDS  # indexed by the codes above
_MAX_DURATION = 28
_MIN_EXTRA = 100.0


@dataclass(frozen=True)
class _Schedule:
    """Hand-series events of one kind: nominal start on day ordinal phase + k * period."""

    kind: int
    period: int
    phase: int
    targets: tuple[int, ...]
    min_duration: int
    max_duration: int
    low: float  # size: fraction of the weekday level (new_spend: $/day)
    high: float


_SCHEDULES: tuple[_Schedule, ...] = (
    _Schedule(_SPIKE, 23, 5, (0, 16, 7, 4), 1, 1, 1.0, 2.0),
    _Schedule(_SUSTAINED, 41, 17, (20, 3, 6), 5, 10, 0.8, 1.4),
    _Schedule(_LEVEL_SHIFT, 67, 31, (1, 2, 17), 14, 28, 0.6, 1.0),
    _Schedule(_NEW_SPEND, 127, 60, (19,), 7, 14, 240.0, 480.0),
)
_PROC_PERIOD = 120
_PROC_MIN_BASE = 25.0
_PROC_MAX_SIGMA = _noise_index(0.10)
# procedural kinds: spike 50 %, sustained 25 %, level_shift 25 %
_PROC_KIND_SPEC: dict[int, tuple[int, int, float, float]] = {
    _SPIKE: (1, 1, 1.0, 2.0),
    _SUSTAINED: (5, 10, 0.8, 1.4),
    _LEVEL_SHIFT: (14, 28, 0.6, 1.0),
}


class _Events(NamedTuple):
    """Anomaly events; amount is $/day added (new_spend: level, times that day's noise)."""

    series: np.ndarray
    start: np.ndarray
    duration: np.ndarray
    kind: np.ndarray
    amount: np.ndarray


def _weekday_shift(nominal: np.ndarray, kind: np.ndarray) -> np.ndarray:
    """Days to move a non-spike start from Saturday/Sunday to Monday."""
    wd = _weekday(nominal)
    shift = np.where(wd == 5, 2, np.where(wd == 6, 1, 0))
    return np.where(kind == _SPIKE, 0, shift)


def _sized(
    series: np.ndarray, start: np.ndarray, kind: np.ndarray, key: np.ndarray,
    low: np.ndarray, high: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """$/day added: a fraction of the weekday level on the start day, at least $100, in cents."""
    p = _series_params(series)
    frac = low + (high - low) * _uniform_of(series, key, _S_EVENT_SIZE)
    level = _level(p.base, p.growth, p.phase, start)
    sized = np.round(np.maximum(_MIN_EXTRA, frac * level), 2)
    return np.where(kind == _NEW_SPEND, np.round(frac, 2), sized)


def _durations(series: np.ndarray, key: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Event length in days, uniform in [lo, hi], keyed by (series, event number)."""
    u = _uniform_of(series, key, _S_EVENT_DURATION)
    return lo + (u * (hi - lo + 1)).astype(np.int64)


def _hand_events(lo: int, hi: int, series_count: int) -> _Events:
    """Events of the hand schedules whose start lies in [lo, hi] (day ordinals)."""
    parts: list[_Events] = []
    for s in _SCHEDULES:
        k = np.arange((lo - 2 - s.phase) // s.period, (hi - s.phase) // s.period + 1)
        targets = np.array(s.targets, dtype=np.int64)[k % len(s.targets)]
        kind = np.full(k.shape, s.kind, dtype=np.int64)
        start = s.phase + k * s.period
        start = start + _weekday_shift(start, kind)
        keep = (start >= lo) & (start <= hi) & (targets < series_count)
        k, targets, kind, start = k[keep], targets[keep], kind[keep], start[keep]
        lo_d = np.full(k.shape, s.min_duration, dtype=np.int64)
        hi_d = np.full(k.shape, s.max_duration, dtype=np.int64)
        low = np.full(k.shape, s.low)
        high = np.full(k.shape, s.high)
        parts.append(
            _Events(
                series=targets,
                start=start,
                duration=_durations(targets, k, lo_d, hi_d),
                kind=kind,
                amount=_sized(targets, start, kind, k, low, high),
            )
        )
    return _concat_events(parts)


def _proc_events(lo: int, hi: int, series_count: int) -> _Events:
    """Events of procedural series (one every 120 days each) whose start lies in [lo, hi]."""
    if series_count <= _N_HAND:
        return _empty_events()
    idx = np.arange(_N_HAND, series_count, dtype=np.int64)
    p = _series_params(idx)
    eligible = (p.base >= _PROC_MIN_BASE) & (p.sigma <= _PROC_MAX_SIGMA)
    idx = idx[eligible]
    phase = (_uniform(_series_key(idx, _S_EVENT_PHASE)) * _PROC_PERIOD).astype(np.int64)
    k0 = (lo - 2 - phase) // _PROC_PERIOD
    k1 = (hi - phase) // _PROC_PERIOD
    width = int((k1 - k0).max(initial=-1)) + 1
    if width <= 0:
        return _empty_events()
    k = k0[:, None] + np.arange(width)[None, :]
    valid = k <= k1[:, None]
    series = np.broadcast_to(idx[:, None], k.shape)[valid]
    phase = np.broadcast_to(phase[:, None], k.shape)[valid]
    k = k[valid]
    u = _uniform_of(series, k, _S_EVENT_KIND)
    kind = np.where(u < 0.5, _SPIKE, np.where(u < 0.75, _SUSTAINED, _LEVEL_SHIFT))
    start = phase + k * _PROC_PERIOD
    start = start + _weekday_shift(start, kind)
    keep = (start >= lo) & (start <= hi)
    series, kind, start, k = series[keep], kind[keep], start[keep], k[keep]
    spec = np.array([_PROC_KIND_SPEC[c] for c in sorted(_PROC_KIND_SPEC)])
    lo_d = spec[kind, 0].astype(np.int64)
    hi_d = spec[kind, 1].astype(np.int64)
    return _Events(
        series=series,
        start=start,
        duration=_durations(series, k, lo_d, hi_d),
        kind=kind,
        amount=_sized(series, start, kind, k, spec[kind, 2], spec[kind, 3]),
    )


def _empty_events() -> _Events:
    """No events (typed arrays, so concatenation keeps int64/float64)."""
    i = np.zeros(0, dtype=np.int64)
    return _Events(i, i, i, i, np.zeros(0))


def _concat_events(parts: list[_Events]) -> _Events:
    """Join event sets field by field."""
    if not parts:
        return _empty_events()
    return _Events(*(np.concatenate([getattr(p, f) for p in parts]) for f in _Events._fields))


def _events_starting(lo: int, hi: int, series_count: int) -> _Events:
    """All injected events whose start day ordinal lies in [lo, hi]."""
    return _concat_events([_hand_events(lo, hi, series_count), _proc_events(lo, hi, series_count)])


def _event_extra(events: _Events, rows: np.ndarray, ords: np.ndarray) -> np.ndarray:
    """$ added by event ``rows`` on day ``ords`` (new_spend follows the series' own noise)."""
    amount = events.amount[rows]
    series = events.series[rows]
    new = events.kind[rows] == _NEW_SPEND
    if not new.any():
        return amount
    sigma = _series_params(series[new]).sigma
    out = amount.copy()
    out[new] = amount[new] * _noise_factor(series[new], ords[new], sigma)
    return out


# --------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------

_CHUNK_CELLS = 1 << 20  # cells (series x days) computed at once: bounds the memory


def _validate(start: datetime.date, end: datetime.date, series_count: int) -> None:
    """Reject arguments that would silently return nothing or nonsense."""
    if not isinstance(start, datetime.date) or not isinstance(end, datetime.date):
        raise ValueError(
            f"demo source: start and end must be datetime.date, got {start!r} and {end!r}"
        )
    if start > end:
        raise ValueError(
            f"demo source: start {start.isoformat()} is after end {end.isoformat()}; "
            "pass start <= end (both days are included)"
        )
    if isinstance(series_count, bool) or not isinstance(series_count, int | np.integer):
        raise ValueError(f"demo source: series_count must be an integer, got {series_count!r}")
    if series_count < 1:
        raise ValueError(f"demo source: series_count must be at least 1, got {series_count}")


def _chunk_cells(
    p: _Params, pos_of: np.ndarray, ords: np.ndarray, events: _Events | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Costs of one block of days for all series (in sorted order): (day, position, cost)."""
    days = ords[:, None]
    level = _level(p.base[None, :], p.growth[None, :], p.phase[None, :], days)
    week = np.ones((7, len(p.series_id)))
    week[5:, :] = p.weekend
    charge = p.charge_day[None, :]
    # monthly lines carry no weekday factor: their level is the whole charge
    weekday_factor = np.where(charge > 0, 1.0, week[_weekday(ords)])
    noise = _noise_factor(p.series_id[None, :], days, p.sigma[None, :])
    active = (charge == _DAILY) | (charge == _day_of_month(ords)[:, None])
    cost = np.where(active, level * weekday_factor * noise, 0.0)

    if events is not None and len(events.series):
        lo, hi = int(ords[0]), int(ords[-1])
        first = np.maximum(events.start, lo)
        last = np.minimum(events.start + events.duration - 1, hi)
        live = np.nonzero(last >= first)[0]
        n = last[live] - first[live] + 1
        if len(live):
            rows = np.repeat(live, n)
            offset = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
            day = first[rows] + offset
            extra = _event_extra(events, rows, day)
            np.add.at(cost, (day - lo, pos_of[events.series[rows]]), extra)

    d, pos = np.nonzero(cost)
    return ords[d], pos, cost[d, pos]


def _string_column(names: np.ndarray, codes: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """A pandas "string" column from a small vocabulary, built in Arrow (fast for millions)."""
    dictionary = pa.DictionaryArray.from_arrays(
        pa.array(codes.astype(np.int32)), pa.array(list(names), type=pa.string())
    )
    return pd.arrays.ArrowStringArray(dictionary.cast(pa.large_string()))


def _constant_string_column(value: str, n: int) -> pd.api.extensions.ExtensionArray:
    """A pandas "string" column holding ``value`` n times, built straight from Arrow buffers."""
    data = value.encode()
    offsets = np.arange(n + 1, dtype=np.int64) * len(data)
    array = pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data * n))
    return pd.arrays.ArrowStringArray(array)


def _generate(
    start: datetime.date, end: datetime.date, series_count: int, *, inject: bool = True,
    owners: bool = False,
) -> pd.DataFrame:
    """generate_demo_costs; with inject=False, the same data without the known anomalies."""
    _validate(start, end, series_count)
    series_count = int(series_count)
    p = _series_params(np.arange(series_count, dtype=np.int64))
    order = np.lexsort(
        (_REGION_RANK[p.region], _account_sort_key(p.account), _SERVICE_RANK[p.service])
    )
    p = _Params(*(a[order] for a in p))
    pos_of = np.empty(series_count, dtype=np.int64)
    pos_of[order] = np.arange(series_count)

    lo, hi = start.toordinal(), end.toordinal()
    events = _events_starting(lo - _MAX_DURATION + 1, hi, series_count) if inject else None
    all_ords = np.arange(lo, hi + 1, dtype=np.int64)
    step = max(1, _CHUNK_CELLS // series_count)
    parts = [
        _chunk_cells(p, pos_of, all_ords[i : i + step], events)
        for i in range(0, len(all_ords), step)
    ]
    ords = np.concatenate([x[0] for x in parts])
    pos = np.concatenate([x[1] for x in parts])
    cost = np.concatenate([x[2] for x in parts])
    del parts  # the output is large; free the blocks before building the frame

    svc_names, svc_codes = np.unique(p.service, return_inverse=True)
    reg_names, reg_codes = np.unique(p.region, return_inverse=True)
    acc_numbers, acc_codes = np.unique(p.account, return_inverse=True)
    own_names, own_codes = np.unique(_owners(p.series_id, owners).astype(str),
                                     return_inverse=True)
    n = len(cost)
    frame = pd.DataFrame(
        {
            "usage_date": _from_ordinals(ords),
            "service": _string_column(_SERVICE_ARR[svc_names], svc_codes[pos]),
            "account_id": _string_column(_account_ids(acc_numbers), acc_codes[pos]),
            "region": _string_column(_REGION_ARR[reg_names], reg_codes[pos]),
            "owner": _string_column(own_names, own_codes.reshape(-1)[pos]),
            "cost": cost,
            "currency": _constant_string_column("USD", n),
            "estimated": np.zeros(n, dtype=bool),
            "source": _constant_string_column(_SOURCE, n),
        }
    )
    del ords, pos, cost
    return conform(frame, RAW_COLUMNS)


def generate_demo_costs(
    start: datetime.date, end: datetime.date, series_count: int = DEMO_SERIES,
    owners: bool = False,
) -> pd.DataFrame:
    """Synthetic daily costs for ``start``..``end`` (inclusive), raw_daily_costs columns.

    One row per (series, day) with non-zero spend, sorted by usage_date, service, account_id,
    region; the rows of a day never depend on the range or on series_count beyond that series.
    ``owners``: fill the owner column (module docstring), else "".
    """
    return _generate(start, end, series_count, inject=True, owners=owners)


def demo_known_anomalies(
    start: datetime.date, end: datetime.date, series_count: int = DEMO_SERIES,
    owners: bool = False,
) -> pd.DataFrame:
    """The anomaly events injected by generate_demo_costs whose first day lies in [start, end].

    extra_cost_per_day is exactly what the event adds on start_date (the ground truth that
    detection tests and benchmarks score against).
    """
    _validate(start, end, series_count)
    ev = _events_starting(start.toordinal(), end.toordinal(), int(series_count))
    rows = np.arange(len(ev.series))
    last = ev.start + ev.duration - 1
    extra = _event_extra(ev, rows, ev.start)
    p = _series_params(ev.series)
    frame = pd.DataFrame(
        {
            "start_date": pd.to_datetime(_from_ordinals(ev.start)).date,
            "end_date": pd.to_datetime(_from_ordinals(np.minimum(last, _MAX_ORDINAL))).date,
            "service": pd.array(_SERVICE_ARR[p.service].astype(str), dtype="string"),
            "account_id": pd.array(_account_ids(p.account).astype(str), dtype="string"),
            "region": pd.array(_REGION_ARR[p.region].astype(str), dtype="string"),
            "owner": pd.array(_owners(ev.series, owners).astype(str), dtype="string"),
            "kind": pd.array(np.array(_KINDS)[ev.kind].astype(str), dtype="string"),
            "extra_cost_per_day": extra.astype(np.float64),
        },
        columns=_KNOWN_COLUMNS,
    )
    return frame.sort_values(
        ["start_date", "service", "account_id", "region"], kind="stable"
    ).reset_index(drop=True)


def demo_normal_costs(
    start: datetime.date, end: datetime.date, series_count: int = DEMO_SERIES,
    owners: bool = False,
) -> pd.DataFrame:
    """generate_demo_costs without the known anomalies: what each series would have cost."""
    return _generate(start, end, series_count, inject=False, owners=owners)


@dataclass(frozen=True)
class DemoSource(CostSource):
    """Synthetic costs with known anomalies: `make demo` with no cloud account."""

    name: ClassVar[str] = _SOURCE
    series: int = DEMO_SERIES
    owners: bool = False  # SENTINEL_OWNER_KEY is set: series have demo owners

    @classmethod
    def from_options(cls, options: SourceOptions) -> DemoSource:
        return cls(series=options.demo_series, owners=options.owner is not None)

    def fetch(self, start: datetime.date, end: datetime.date) -> SourceResult:
        rows = generate_demo_costs(start, end, self.series, owners=self.owners)
        metadata: dict[str, object] = {}
        if self.owners:
            metadata["untagged_cost"] = round(float(rows.loc[rows["owner"] == "", "cost"].sum()),
                                              2)
        return SourceResult(rows, metadata)

    def root_causes(self, alerts: pd.DataFrame) -> RootCauses:
        from sentinel_pipeline.sources.demo_detail import demo_root_causes  # it imports us

        return RootCauses(demo_root_causes(alerts, self.series, self.owners))

    def check(self, today: datetime.date) -> Check:
        owned = ", with demo owners" if self.owners else ""
        return True, (f"source: demo ({self.series} synthetic series{owned}, no cloud account "
                      "needed)")
