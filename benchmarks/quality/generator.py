"""Labeled synthetic daily cost series: normal-but-tricky behaviour ("traps") and known events.

Why: a detector is only as good as the cases it was measured on. Every series here gets one or
more traps (behaviour a FinOps engineer considers normal, so alerting on it is a false alert)
and about half get one labeled anomaly event (something worth an alert, except ``drop``). The
labels say exactly which series, which days and how many extra dollars, so the scorer can count
hits, misses and false alerts per pattern.

Traps (``TRAPS``):

* ``quiet``: plain series, 2-8 % multiplicative log-normal noise (every usage series has it);
* ``weekly``: weekends -20..-60 %;
* ``growth``: steady trend of +1..+6 % per month;
* ``noisy``: 15-35 % multiplicative log-normal noise instead of 2-8 %;
* ``monthly_only``: a fee billed only on the 1st of the month (no row on other days);
* ``monthly_extra``: a usage series with an extra charge (1-5x its daily base) on a fixed day
  of the month;
* ``weekly_charge``: a fixed weekday surcharge (0.3-1.5x the daily base);
* ``tiny``: cents per day, 40 % noise, a fifth of the days without spend, rare 10x blips;
* ``credits``: a series of negative costs (a credit line), 5 % noise;
* ``refunds``: a usage series where ~3 % of days carry a refund of 0.5-3x the daily base, so the
  day's total may be negative.

Events (``EVENT_KINDS``), each placed at least ``warmup_days`` after the first day:

* ``spike``: one day, +80..+400 % of the day's expected cost and at least ``min_event_impact``;
* ``level_shift``: a step of +40..+150 % lasting until the last day;
* ``sustained``: a forgotten fleet, a constant extra of 25..70 % of the base for 4-10 days;
* ``new_spend``: a brand-new series at $100-$2,000/day with no row before its start;
* ``small_series_spike``: +$100..$400 for one day on a series costing $2-$20/day in an account
  whose biggest series costs at least 20 times more;
* ``drop``: cost -50..-90 % for 3-10 days (labeled, but not worth an alert by default);
* ``ramp``: a leak that grows, +3..+10 % of the base more each day for 7-14 days (the shape of
  the public FinOps benchmark's gradual events), ending at >= ``min_event_impact`` a day;
* ``contextual``: a weekend day (or both) costing what a weekday costs, on a series whose
  weekends are 20-60 % cheaper;
* ``small_bill_overrun``: +$6..$15 a day for 5-10 days on a $15-$60/day series: no single day
  is worth ``min_event_impact``, the episode is.

Every alert-worthy event adds at least ``min_event_impact`` dollars on its first day (a ramp on
its last, a small-bill overrun over its days), so a miss is the detector's fault, not a label
nobody would act on. A ramp or an overrun counts as found when alerted before it ends.
``level_shift``, ``sustained``, ``new_spend``, ``ramp`` and ``small_bill_overrun`` start on a
weekday (deploys do), a ``contextual`` event on a Saturday, and no refund lands on an
alert-worthy event's first four days (a refund netted against a spike would make the label
unfair).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd

TRAPS: tuple[str, ...] = (
    "quiet", "weekly", "growth", "noisy", "monthly_only", "monthly_extra", "weekly_charge",
    "tiny", "credits", "refunds",
)
EVENT_KINDS: tuple[str, ...] = (
    "spike", "level_shift", "sustained", "new_spend", "small_series_spike", "drop", "ramp",
    "contextual", "small_bill_overrun",
)
# Found when alerted any day before they end, not within days of their start: their first days
# are small by design.
WHOLE_EPISODE_KINDS: frozenset[str] = frozenset({"ramp", "small_bill_overrun"})
NOT_ALERT_WORTHY: frozenset[str] = frozenset({"drop"})
# Series that are a behaviour of their own: they carry no event and no second trap.
STANDALONE_TRAPS: frozenset[str] = frozenset({"monthly_only", "tiny", "credits"})
# Traps that stack on an ordinary usage series as a second trap.
COMBINABLE_TRAPS: tuple[str, ...] = (
    "weekly", "growth", "monthly_extra", "weekly_charge", "refunds",
)
# Started by a deploy, so on a weekday (Monday to Friday).
DEPLOYED_KINDS: frozenset[str] = frozenset({"level_shift", "sustained", "new_spend", "ramp",
                                            "small_bill_overrun"})
# A brand-new series has no month of history, so its first monthly charge or refund would be
# news: new series only get these shapes.
NEW_SERIES_TRAPS: frozenset[str] = frozenset({"quiet", "weekly", "growth", "noisy"})

SERVICES: tuple[str, ...] = (
    "Amazon Elastic Compute Cloud - Compute", "EC2 - Other", "Amazon Relational Database Service",
    "Amazon Simple Storage Service", "Amazon DynamoDB", "AWS Lambda", "Amazon CloudWatch",
    "AWS Data Transfer", "Amazon Elastic Container Service for Kubernetes",
    "Amazon Virtual Private Cloud", "Amazon ElastiCache", "Amazon OpenSearch Service",
    "Amazon Redshift", "Amazon Athena", "AWS Glue", "Amazon Kinesis", "Amazon SageMaker",
    "Amazon Elastic File System", "Amazon CloudFront", "AWS Key Management Service",
    "Amazon Simple Queue Service", "Amazon Route 53", "AWS Backup", "Amazon EMR",
)
REGIONS: tuple[str, ...] = (
    "us-east-1", "us-east-2", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-1",
    "ap-northeast-1", "global",
)
SERIES_KEY: list[str] = ["service", "account_id", "region"]
HISTORY_COLUMNS: list[str] = ["usage_date", *SERIES_KEY, "cost", "currency"]
EVENT_COLUMNS: list[str] = [
    *SERIES_KEY, "kind", "start_date", "end_date", "pct", "extra_per_day", "extra_total",
    "traps",
]
SERIES_COLUMNS: list[str] = [
    *SERIES_KEY, "traps", "base", "event", "noise", "charge_weekday", "charge_day",
]


@dataclass(frozen=True)
class GeneratorConfig:
    """Which patterns to generate and how many: the defaults cover every trap and event."""

    traps: tuple[str, ...] = TRAPS
    events: tuple[str, ...] = EVENT_KINDS
    # Share of series that carry one labeled event.
    event_share: float = 0.5
    # Chance that a usage series (not quiet, not standalone) gets a second trap.
    extra_trap_share: float = 0.35
    # No event starts before this many days of history exist (baselines need them).
    warmup_days: int = 70
    # Smallest extra $ on an alert-worthy event's first day.
    min_event_impact: float = 50.0
    # First day; None: a day in 2024-2025 drawn from the seed, so seeds cover different
    # calendars (month lengths, where weekdays fall in a month, leap February).
    start: date | None = None
    series_per_account: int = 8

    def __post_init__(self) -> None:
        unknown = (set(self.traps) - set(TRAPS)) | (set(self.events) - set(EVENT_KINDS))
        if unknown:
            raise ValueError(f"unknown trap or event kind(s): {sorted(unknown)}")
        if not self.traps:
            raise ValueError("at least one trap is needed (use ('quiet',) for plain series)")
        if not 0 <= self.event_share <= 1 or not 0 <= self.extra_trap_share <= 1:
            raise ValueError("event_share and extra_trap_share are shares in [0, 1]")


@dataclass
class Dataset:
    """A generated benchmark: raw rows, labeled events and the traps of every series."""

    history: pd.DataFrame  # HISTORY_COLUMNS, one row per series and day with spend
    events: pd.DataFrame  # EVENT_COLUMNS, one row per labeled event
    # SERIES_COLUMNS, one row per series: traps joined by "+", noise = log-normal sigma,
    # the weekday / day of month of its recurring charge (for diagnosis)
    series: pd.DataFrame
    start: date
    days: int
    config: GeneratorConfig

    @property
    def eval_start(self) -> date:
        """First evaluated day: events start here at the earliest, after the warm-up."""
        return self.start + timedelta(days=self.config.warmup_days)

    @property
    def eval_days(self) -> int:
        return self.days - self.config.warmup_days


@dataclass
class _Spec:
    traps: list[str]
    event: str | None
    base: float
    account: int = 0
    params: dict[str, float] | None = None
    noise: float = 0.0
    charge_weekday: int = -1  # weekly_charge: 0 = Monday
    charge_day: int = 0  # monthly_extra: day of month


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _event_params(rng: np.random.Generator, kind: str, weekday: np.ndarray,
                  cfg: GeneratorConfig) -> dict[str, float]:
    """Start day (index) and size of one event; the base is then drawn so the size is material."""
    start = int(rng.integers(cfg.warmup_days, len(weekday) - 16))
    if kind in DEPLOYED_KINDS:
        while weekday[start] >= 5:
            start += 1
    if kind == "contextual":
        while weekday[start] != 5:  # a Saturday
            start += 1
    params: dict[str, float] = {"start": start}
    if kind == "spike":
        params["pct"] = rng.uniform(0.8, 4.0)
    elif kind == "level_shift":
        params["pct"] = rng.uniform(0.4, 1.5)
    elif kind == "sustained":
        params["frac"] = rng.uniform(0.25, 0.7)
        params["duration"] = int(rng.integers(4, 11))
    elif kind == "drop":
        params["pct"] = rng.uniform(0.5, 0.9)
        params["duration"] = int(rng.integers(3, 11))
    elif kind == "small_series_spike":
        params["extra"] = rng.uniform(100.0, 400.0)
    elif kind == "ramp":
        params["step"] = rng.uniform(0.03, 0.10)
        params["duration"] = int(rng.integers(7, 15))
        params["frac"] = params["step"] * params["duration"]  # the last day's share of base
    elif kind == "contextual":
        params["pct"] = rng.uniform(0.2, 0.6)  # how much cheaper its weekends are
        params["duration"] = int(rng.integers(1, 3))
    elif kind == "small_bill_overrun":
        params["extra"] = rng.uniform(6.0, 15.0)
        params["duration"] = int(rng.integers(5, 11))
    return params


def _base_for(rng: np.random.Generator, spec: _Spec, cfg: GeneratorConfig) -> float:
    """Log-uniform daily base; event series are drawn where their event is >= the $ floor."""
    if "tiny" in spec.traps:
        return _log_uniform(rng, 0.01, 0.5)
    if "credits" in spec.traps:
        return _log_uniform(rng, 1.0, 500.0)
    if spec.event == "new_spend":
        return _log_uniform(rng, 100.0, 2000.0)
    if spec.event == "small_series_spike":
        return _log_uniform(rng, 2.0, 20.0)
    if spec.event == "small_bill_overrun":
        return _log_uniform(rng, 15.0, 60.0)
    lo = 1.0
    if spec.params:
        share = spec.params.get("pct", spec.params.get("frac"))
        if share:
            lo = max(lo, cfg.min_event_impact / share)
    return _log_uniform(rng, min(lo, 4000.0), 5000.0)


def _plan(rng: np.random.Generator, n_series: int, weekday: np.ndarray,
          cfg: GeneratorConfig) -> list[_Spec]:
    """Traps, event and base of each series, balanced so each pattern gets its share."""
    n_events = round(n_series * cfg.event_share) if cfg.events else 0
    kinds = [cfg.events[i % len(cfg.events)] for i in range(n_events)]
    kinds = [kinds[i] for i in rng.permutation(n_events)]
    usage_traps = [t for t in cfg.traps if t not in STANDALONE_TRAPS] or ["quiet"]
    new_traps = [t for t in usage_traps if t in NEW_SERIES_TRAPS] or ["quiet"]
    cursor: dict[str, int] = {}

    def cycle(pool: list[str], key: str) -> str:
        cursor.setdefault(key, int(rng.integers(len(pool))))
        cursor[key] += 1
        return pool[cursor[key] % len(pool)]

    specs: list[_Spec] = []
    for i in range(n_series):
        event = kinds[i] if i < n_events else None
        if event is None:
            primary = cycle(list(cfg.traps), "none")
        elif event == "new_spend":
            primary = cycle(new_traps, event)
        else:
            primary = cycle(usage_traps, event)
        if event == "contextual":
            primary = "weekly"  # a weekend at weekday level needs a weekday pattern
        traps = [primary]
        if primary not in STANDALONE_TRAPS and primary != "quiet" \
                and rng.random() < cfg.extra_trap_share:
            extra = [t for t in COMBINABLE_TRAPS if t in cfg.traps and t != primary]
            if event == "new_spend":
                extra = [t for t in extra if t in NEW_SERIES_TRAPS]
            if extra:
                traps.append(extra[int(rng.integers(len(extra)))])
        traps.sort(key=TRAPS.index)
        spec = _Spec(traps=traps, event=event, base=0.0)
        if event is not None:
            spec.params = _event_params(rng, event, weekday, cfg)
        spec.base = _base_for(rng, spec, cfg)
        specs.append(spec)
    _assign_accounts(rng, specs, cfg)
    return specs


def _assign_accounts(rng: np.random.Generator, specs: list[_Spec], cfg: GeneratorConfig) -> None:
    """Random accounts; a small-series spike goes where it is dwarfed by its account's series."""
    n_accounts = max(2, math.ceil(len(specs) / cfg.series_per_account))
    small = [s for s in specs if s.event == "small_series_spike"]
    for spec in specs:
        spec.account = int(rng.integers(n_accounts))
    biggest = np.zeros(n_accounts)
    for spec in specs:
        if spec.event != "small_series_spike" and not STANDALONE_TRAPS & set(spec.traps):
            biggest[spec.account] = max(biggest[spec.account], spec.base)
    for spec in small:
        fits = np.flatnonzero(biggest >= 20 * spec.base)
        if len(fits):
            spec.account = int(fits[int(rng.integers(len(fits)))])
        else:
            spec.account = int(np.argmax(biggest))
            spec.base = max(biggest[spec.account] / 20, 0.05)


def _keys(rng: np.random.Generator, specs: list[_Spec]) -> list[tuple[str, str, str]]:
    """Distinct (service, account_id, region) for each series."""
    n_accounts = max(s.account for s in specs) + 1
    ids: list[str] = []
    while len(ids) < n_accounts:
        candidate = str(int(rng.integers(10**11, 10**12)))
        if candidate not in ids:
            ids.append(candidate)
    used: set[tuple[str, str, str]] = set()
    keys = []
    for n, spec in enumerate(specs):
        for attempt in range(1000):
            service = SERVICES[int(rng.integers(len(SERVICES)))]
            region = REGIONS[int(rng.integers(len(REGIONS)))]
            if attempt > 100:  # crowded account: make the name unique
                service = f"{service} #{n}"
            key = (service, ids[spec.account], region)
            if key not in used:
                break
        used.add(key)
        keys.append(key)
    return keys


def _costs(rng: np.random.Generator, spec: _Spec, weekday: np.ndarray, dom: np.ndarray,
           cfg: GeneratorConfig) -> tuple[np.ndarray, dict[str, float] | None]:
    """One series' daily costs (NaN = no row) and its event's label, if it has one.

    Also records on ``spec`` its noise sigma and recurring-charge days, for diagnosis.
    """
    days = len(weekday)
    base = spec.base
    traps = spec.traps
    if "tiny" in traps:
        spec.noise = 0.4
        cost = base * np.exp(rng.normal(0.0, 0.4, days))
        cost[rng.random(days) < 0.02] *= 10
        cost[rng.random(days) < 0.2] = np.nan
        return cost, None
    if "credits" in traps:
        spec.noise = 0.05
        return -base * np.exp(rng.normal(0.0, 0.05, days)), None
    if "monthly_only" in traps:
        spec.noise = 0.01
        return np.where(dom == 1, base * np.exp(rng.normal(0.0, 0.01, days)), np.nan), None

    t = np.arange(days)
    shape = np.full(days, base)
    if "growth" in traps:
        shape = shape * (1 + rng.uniform(0.01, 0.06)) ** (t / 30)
    if "weekly" in traps:
        cut = (spec.params or {}).get("pct") if spec.event == "contextual" else None
        shape = shape * np.where(weekday >= 5, 1 - (cut or rng.uniform(0.2, 0.6)), 1.0)
    sigma = rng.uniform(0.15, 0.35) if "noisy" in traps else rng.uniform(0.02, 0.08)
    spec.noise = float(sigma)
    usage = shape * np.exp(rng.normal(0.0, sigma, days))
    before = usage.copy()

    label = None
    if spec.event is not None and spec.params is not None:
        label = _apply_event(spec, usage, shape, days, cfg)

    charges = np.zeros(days)
    if "weekly_charge" in traps:
        spec.charge_weekday = int(rng.integers(7))
        on = weekday == spec.charge_weekday
        charges[on] += rng.uniform(0.3, 1.5) * base * np.exp(rng.normal(0.0, 0.02, on.sum()))
    if "monthly_extra" in traps:
        spec.charge_day = int(rng.integers(1, 29))
        on = dom == spec.charge_day
        charges[on] += rng.uniform(1.0, 5.0) * base * np.exp(rng.normal(0.0, 0.02, on.sum()))
    if "refunds" in traps:
        on = rng.random(days) < 0.03
        if label is not None and spec.event not in NOT_ALERT_WORTHY:
            # A refund netted against the event's first days would hide it: not a fair label.
            on[int(label["start"]):int(label["start"]) + 4] = False
        charges[on] -= rng.uniform(0.5, 3.0, on.sum()) * base
    cost = usage + charges
    if label is not None:
        s, e = int(label["start"]), int(label["end"])
        if spec.event == "new_spend":
            cost[:s] = np.nan
            before[:] = 0.0
        label["extra_per_day"] = float(usage[s] - before[s])
        label["extra_total"] = float(np.sum(usage[s:e + 1] - before[s:e + 1]))
        # The designed size where there is one (noise makes the realised ratio wander).
        size = (spec.params or {}).get("pct", (spec.params or {}).get("frac"))
        if spec.event == "drop" and size is not None:
            size = -size
        label["pct"] = (np.nan if spec.event == "new_spend"
                        else float(size * 100) if size is not None and spec.event != "spike"
                        else float(label["extra_per_day"] / shape[s] * 100))
    return cost, label


def _apply_event(spec: _Spec, usage: np.ndarray, shape: np.ndarray, days: int,
                 cfg: GeneratorConfig) -> dict[str, float]:
    """Add the event to the usage in place; return its start and end day indexes."""
    p = spec.params or {}
    s = int(p["start"])
    kind = spec.event
    end = s
    if kind == "spike":
        usage[s] += max(p["pct"] * shape[s], cfg.min_event_impact)
    elif kind == "small_series_spike":
        usage[s] += p["extra"]
    elif kind == "level_shift":
        usage[s:] *= 1 + p["pct"]
        end = days - 1
    elif kind == "sustained":
        end = s + int(p["duration"]) - 1
        usage[s:end + 1] += max(p["frac"] * spec.base, cfg.min_event_impact)
    elif kind == "drop":
        end = s + int(p["duration"]) - 1
        usage[s:end + 1] *= 1 - p["pct"]
    elif kind == "ramp":
        end = s + int(p["duration"]) - 1
        steps = np.arange(1, end - s + 2)
        usage[s:end + 1] += steps * max(p["step"] * spec.base,
                                        cfg.min_event_impact / p["duration"])
    elif kind == "contextual":
        end = s + int(p["duration"]) - 1
        usage[s:end + 1] *= 1 / (1 - p["pct"])  # back at its weekday level
    elif kind == "small_bill_overrun":
        end = s + int(p["duration"]) - 1
        usage[s:end + 1] += max(p["extra"], cfg.min_event_impact / p["duration"])
    return {"start": s, "end": end}


def generate_dataset(n_series: int, days: int, seed: int,
                     config: GeneratorConfig | None = None) -> Dataset:
    """History, events and series traps, all a pure function of the arguments."""
    cfg = config or GeneratorConfig()
    if n_series < 1:
        raise ValueError("n_series must be >= 1")
    if days < cfg.warmup_days + 12:
        raise ValueError(f"days={days} is too short: need warmup_days + 12 = "
                         f"{cfg.warmup_days + 12} so every event fits after the warm-up")
    rng = np.random.default_rng(seed)
    start = cfg.start or date(2024, 1, 1) + timedelta(days=int(rng.integers(0, 731)))
    dates = np.array([start + timedelta(days=i) for i in range(days)], dtype=object)
    weekday = np.array([d.weekday() for d in dates])
    dom = np.array([d.day for d in dates])
    specs = _plan(rng, n_series, weekday, cfg)
    keys = _keys(rng, specs)

    parts: list[tuple[int, np.ndarray, np.ndarray]] = []
    events = []
    for n, spec in enumerate(specs):
        cost, label = _costs(rng, spec, weekday, dom, cfg)
        keep = np.flatnonzero(np.isfinite(cost) & (cost != 0))
        parts.append((n, keep, cost[keep]))
        if label is not None:
            events.append({
                **dict(zip(SERIES_KEY, keys[n], strict=True)),
                "kind": spec.event,
                "start_date": dates[int(label["start"])],
                "end_date": dates[int(label["end"])],
                "pct": label["pct"],
                "extra_per_day": label["extra_per_day"],
                "extra_total": label["extra_total"],
                "traps": "+".join(spec.traps),
            })
    series_of_row = np.concatenate([np.full(len(k), n) for n, k, _ in parts])
    day_of_row = np.concatenate([k for _, k, _ in parts])
    key_array = np.array(keys, dtype=object)
    history = pd.DataFrame({
        "usage_date": dates[day_of_row],
        "service": key_array[series_of_row, 0].astype(str),
        "account_id": key_array[series_of_row, 1].astype(str),
        "region": key_array[series_of_row, 2].astype(str),
        "cost": np.concatenate([c for _, _, c in parts]).astype(float),
        "currency": "USD",
    })
    history = history.sort_values(["usage_date", *SERIES_KEY], kind="stable")
    series = pd.DataFrame({
        "service": [k[0] for k in keys],
        "account_id": [k[1] for k in keys],
        "region": [k[2] for k in keys],
        "traps": ["+".join(s.traps) for s in specs],
        "base": [s.base for s in specs],
        "event": [s.event or "" for s in specs],
        "noise": [s.noise for s in specs],
        "charge_weekday": [s.charge_weekday for s in specs],
        "charge_day": [s.charge_day for s in specs],
    })
    events_frame = pd.DataFrame(events, columns=EVENT_COLUMNS)
    return Dataset(history.reset_index(drop=True), events_frame, series, start, days, cfg)


def generate(n_series: int, days: int, seed: int,
             config: GeneratorConfig | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(history rows, labeled events) of ``n_series`` series over ``days`` days from ``seed``."""
    data = generate_dataset(n_series, days, seed, config)
    return data.history, data.events
