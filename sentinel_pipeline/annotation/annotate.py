"""A day's alerts explained: cached answers, then one Claude request, the fallback for the rest.

Every row always gets the deterministic explanation first, so whatever happens with the model
(no key, timeout, rate limit, refusal, an answer that fails the checks) the row is complete and
the run goes on; Claude's text replaces it only for the ids whose answer passed validation.

Batching: one request per day at most. A day with more alerts than ``max_per_request`` sends the
ones with the largest $ impact and keeps the fallback for the rest: a day with that many alerts
is a systemic change (or a first backfill) and the top of the list is what people read, while the
number of requests and tokens per day stays bounded whatever the bill does.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import pandas as pd

from sentinel_pipeline.annotation import fallback
from sentinel_pipeline.annotation.cache import AnnotationCache, fingerprint
from sentinel_pipeline.annotation.claude import (
    ClaudeSettings,
    Explanation,
    Usage,
    request_explanations,
)
from sentinel_pipeline.annotation.prompt import (
    HISTORY_DAYS,
    MAX_REQUEST_CHARS,
    fit_request,
    names_cut,
    render_anomaly,
)
from sentinel_pipeline.errors import StorageError
from sentinel_pipeline.schema import SERIES_KEY, same_series
from sentinel_pipeline.storage import TableStore

_FIELDS = ("explanation", "likely_cause", "where_to_look", "action", "confidence", "annotator")


@dataclass
class AnnotationStats:
    """What annotating a run cost and how each alert was explained (for asset metadata)."""

    usage: Usage
    cache_hits: int = 0
    fallback_alerts: int = 0
    claude_alerts: int = 0
    names_cut: int = 0  # names longer than prompt.NAME_LIMIT, sent cut
    over_size_limit: int = 0  # alerts left out of a request by MAX_REQUEST_CHARS (fallback)
    failures: list[str] = field(default_factory=list)

    def metadata(self) -> dict[str, Any]:
        cost = self.usage.cost_usd
        return {
            "claude_model": self.usage.model,
            "claude_requests": self.usage.requests,
            "claude_input_tokens": self.usage.input_tokens,
            "claude_output_tokens": self.usage.output_tokens,
            "claude_cost_usd": round(cost, 6) if cost is not None else "unknown",
            "cache_hits": self.cache_hits,
            "fallback_alerts": self.fallback_alerts,
            "claude_names_cut": self.names_cut,
            "claude_alerts_over_request_limit": self.over_size_limit,
        }


def alert_history(
    store: TableStore, alerts_by_day: Mapping[date, pd.DataFrame], days: int = HISTORY_DAYS
) -> dict[date, pd.DataFrame]:
    """For each day with alerts, raw_daily_costs of its alert series over the ``days`` ending on it.

    Each raw partition is read once per run and cut to the series that alert somewhere in the
    run, so a year's backfill stays a few hundred small reads and little memory.
    """
    wanted = [frame[SERIES_KEY] for frame in alerts_by_day.values() if len(frame)]
    if not wanted:
        return {}
    keys = pd.concat(wanted).astype(str).drop_duplicates()
    needed = sorted({day - timedelta(days=i) for day, frame in alerts_by_day.items()
                     if len(frame) for i in range(days)})
    parts = []
    for day in needed:
        raw = store.read_partition("raw_daily_costs", day)
        if raw is None or not len(raw):
            continue
        raw = raw[[*SERIES_KEY, "usage_date", "cost"]].copy()
        raw[SERIES_KEY] = raw[SERIES_KEY].astype(str)
        parts.append(raw.merge(keys, on=SERIES_KEY, how="inner"))
    if not parts:
        return {}
    history = pd.concat(parts, ignore_index=True)
    history["usage_date"] = pd.to_datetime(history["usage_date"]).dt.date
    out = {}
    for day, frame in alerts_by_day.items():
        if len(frame):
            first = day - timedelta(days=days - 1)
            out[day] = history[(history["usage_date"] >= first) & (history["usage_date"] <= day)]
    return out


def daily_costs(history: pd.DataFrame | None, row: pd.Series, day: date,
                days: int = HISTORY_DAYS) -> list[float | None]:
    """The series' cost on each of the ``days`` ending on ``day``, oldest first (None: no row)."""
    if history is None or not len(history):
        return [None] * days
    per_day = history[same_series(history, row)].groupby("usage_date")["cost"].sum()
    first = day - timedelta(days=days - 1)
    values = [per_day.get(first + timedelta(days=i)) for i in range(days)]
    return [None if v is None or pd.isna(v) else round(float(v), 2) for v in values]


def _render_batch(
    frame: pd.DataFrame, batch: list[int], history: pd.DataFrame | None, day: date,
    stats: AnnotationStats, log: logging.Logger,
) -> tuple[dict[str, int], list[dict]]:
    """The request's anomalies by id (-> row position), bounded in names and in total size."""
    items = {f"a{i}": pos for i, pos in enumerate(batch, start=1)}
    rendered = fit_request([
        render_anomaly(key, frame.iloc[pos], daily_costs(history, frame.iloc[pos], day))
        for key, pos in items.items()])
    if len(rendered) < len(items):
        stats.over_size_limit += len(items) - len(rendered)
        log.warning(f"annotated_alerts {day}: {len(items) - len(rendered)} alerts do not fit "
                    f"one request ({MAX_REQUEST_CHARS:,} characters) and keep the "
                    "deterministic explanation")
    stats.names_cut += sum(names_cut(item) for item in rendered)
    return {item["id"]: items[item["id"]] for item in rendered}, rendered


def _redact(text: str, secret: str) -> str:
    return text.replace(secret, "[redacted]") if secret else text


def annotate_day(
    anomalies: pd.DataFrame,
    day: date,
    settings: ClaudeSettings | None,
    stats: AnnotationStats,
    log: logging.Logger,
    history: pd.DataFrame | None = None,
    cache: AnnotationCache | None = None,
    max_per_request: int = 40,
) -> pd.DataFrame:
    """annotated_alerts rows of one day (settings None: no key, the fallback for every row)."""
    frame = fallback.explain(anomalies)
    if settings is None or not len(frame):
        stats.fallback_alerts += len(frame)
        return frame
    model = settings.model
    prints = [fingerprint(row, model) for _, row in frame.iterrows()]
    cached = cache.load(day) if cache is not None else {}
    written: dict[str, tuple[str, Explanation]] = {}
    missing: list[int] = []
    for pos, key in enumerate(prints):
        if key in cached:
            written[key] = cached[key]
            stats.cache_hits += 1
        else:
            missing.append(pos)

    impact = frame["impact"].abs().fillna(0.0)
    ranked = sorted(missing, key=lambda p: -float(impact.iloc[p]))
    batch, beyond = ranked[:max_per_request], ranked[max_per_request:]
    if beyond:
        log.info(f"annotated_alerts {day}: {len(beyond)} alerts beyond the "
                 f"{max_per_request} largest get the deterministic explanation")
    items, rendered = _render_batch(frame, batch, history, day, stats, log)
    if rendered:
        failed = False
        try:
            answers = request_explanations(settings, rendered, stats.usage)
        except Exception as exc:  # any failure of the model means the fallback, never a failed run
            message = _redact(f"{type(exc).__name__}: {exc}", settings.api_key)[:500]
            stats.failures.append(message)
            log.warning(f"annotated_alerts {day}: Claude annotation failed for {len(items)} "
                        f"alerts ({message}); they keep the deterministic explanation "
                        f"(annotator=fallback)")
            answers, failed = {}, True
        unusable = len(items) - len(answers)
        if unusable and not failed:
            log.warning(f"annotated_alerts {day}: {unusable} of {len(items)} alerts had no "
                        f"usable answer from {model}; they keep the deterministic explanation")
        for key, explanation in answers.items():
            written[prints[items[key]]] = (model, explanation)

    for pos, key in enumerate(prints):
        if key in written:
            annotator, explanation = written[key]
            for name, value in explanation.as_row(annotator).items():
                frame.at[pos, name] = value
    claude = frame["annotator"] != fallback.ANNOTATOR_NAME
    stats.claude_alerts += int(claude.sum())
    stats.fallback_alerts += int((~claude).sum())
    if cache is not None and written and set(written) != set(cached):
        try:
            cache.save(day, written)
        except StorageError as exc:
            log.warning(f"annotated_alerts {day}: cannot write the annotation cache ({exc})")
    return frame
