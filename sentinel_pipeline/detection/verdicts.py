"""Days Sentinel itself flagged, left out of the history the next days' baselines learn from.

Why: robust.py's own rule only leaves out runs of days far above its first estimate, and that
estimate is lifted by the very episodes it looks for: on the public benchmark's second year, a
third of whose days are injected ramps and spikes, a ramp's moderate days and the days an alert
traced back to stayed in, and the level and noise came out ~10 % and ~25 % high. The detector's
own verdicts mark whole episodes, from their ``anomaly_start`` to their last flagged day.

- Only the rises of an episode nobody called normal: robust's spike, sustained and
  level_shift rows (a new series has no normal to put back; drops are not rises; the seed
  rule's flags are another detector's), none of an episode with feedback (expected / planned
  adopts its level, not_anomaly says it was normal).
- Only an episode that is over: robust.py leaves its days out once the cost came back below
  halfway from the episode's level to the level before it (_episodes_over). A level shift
  never comes back: it is the new normal, and left out the baseline would never adopt it.
- And the days that stood out without an alert: a day that scored robust.UNUSUAL_SCORE or
  more above expected at the end of a run of elevated days, and that run, judged against that
  day's own baseline (which the run had not yet lifted, unlike the first estimate robust.py's
  own rule judges by). robust.score carries them in ``cost_scores.unusual_days``, a bit mask of
  the last 63 days per series, from one day's scores to the next; the day before's is read.
- Verdicts come from ``cost_anomalies`` as stored for the days before a run, and, inside a run
  of several days, from scoring each day as soon as its baseline is known (``DayScorer``):
  the same rows the cost_scores step writes, so a range and the same days run one at a time
  learn from the same history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from sentinel_pipeline.detection import robust
from sentinel_pipeline.detection.config import DetectionConfig
from sentinel_pipeline.detection.feedback import answered_episodes, raised_bars
from sentinel_pipeline.detection.frames import CostMatrix, baseline_order, series_codes, usage_days
from sentinel_pipeline.schema import SERIES_KEY, with_owner

LEFT_OUT_KINDS: tuple[str, ...] = ("spike", "sustained", "level_shift")


@dataclass
class Earlier:
    """What cost_scores stored before a run: the anomalies of the lookback before its first
    day, and the scores and anomalies of the day just before it (the state the walk of
    robust.score carries on from, as the cost_scores step does)."""

    anomalies: pd.DataFrame | None = None
    previous: pd.DataFrame | None = None
    drift: pd.DataFrame | None = None


class FlaggedDays:
    """Which (series, day) of a matrix belong to an episode Sentinel flagged."""

    def __init__(self, matrix: CostMatrix, feedback: pd.DataFrame | None) -> None:
        self.matrix = matrix
        self.mask: np.ndarray | None = None  # made on the first flag: most runs have none
        self.unusual: np.ndarray | None = None  # the days the last day's masks mark
        self.answered = _answered(feedback)

    def remember(self, scores: pd.DataFrame | None,
                 series_rows: np.ndarray | None = None) -> None:
        """The days that stood out without an episode, as one day's ``scores`` carry them
        (unusual_days, robust._Unusual): they replace those of the day before, whose marks the
        masks carry on. ``series_rows``: as in ``add``."""
        self.unusual = None
        if scores is None or len(scores) == 0 or "unusual_days" not in scores.columns:
            return
        masks = scores["unusual_days"].fillna(0).to_numpy().astype(np.int64)
        some = masks != 0
        if not some.any():
            return
        scores, masks = scores[some], masks[some]
        series_rows = (self._rows_of(with_owner(scores)) if series_rows is None
                       else series_rows[some])
        col = (usage_days(scores) - np.datetime64(self.matrix.first, "D")).astype(np.int64)
        back = np.arange(robust.UNUSUAL_MEMORY, dtype=np.int64)
        cols = col[:, None] - back
        n_days = self.matrix.values.shape[1]
        marked = (((masks[:, None] >> back) & 1) == 1) & (cols >= 0) & (cols < n_days)
        marked &= series_rows[:, None] >= 0
        if not marked.any():
            return
        self.unusual = np.zeros(self.matrix.values.shape, dtype=bool)
        self.unusual[np.broadcast_to(series_rows[:, None], cols.shape)[marked], cols[marked]] = True

    def add(self, rows: pd.DataFrame | None, series_rows: np.ndarray | None = None) -> None:
        """Flag the rises among anomaly ``rows`` (usage_date, series key, kind, anomaly_start),
        each from its episode's start. ``series_rows``: the matrix row of each of ``rows``
        when the caller knows it (else found by key; rows of other series are ignored)."""
        if rows is None or len(rows) == 0 or "kind" not in rows.columns:
            return
        rows = with_owner(rows)
        up = rows["kind"].astype(str).isin(LEFT_OUT_KINDS).to_numpy()
        if "method" in rows.columns:  # another method's rows are not this detector's verdicts
            up = up & (rows["method"].astype(str) == "robust").to_numpy()
        if self.answered:
            up = up & ~np.array([key in self.answered for key in _episode_keys(rows)], dtype=bool)
        if not up.any():
            return
        rows = rows[up]
        if series_rows is None:
            series_rows = self._rows_of(rows)
        else:
            series_rows = series_rows[up]
        first = np.datetime64(self.matrix.first, "D")
        end = (usage_days(rows) - first).astype(np.int64)
        begin = end.copy()
        if "anomaly_start" in rows.columns:
            start = pd.to_datetime(rows["anomaly_start"], errors="coerce").to_numpy()
            start = start.astype("datetime64[D]")
            begin = np.where(np.isnat(start), end, (start - first).astype(np.int64))
        n_days = self.matrix.values.shape[1]
        if self.mask is None:
            self.mask = np.zeros(self.matrix.values.shape, dtype=bool)
        for row, lo, hi in zip(series_rows, np.clip(begin, 0, None), end, strict=True):
            if row >= 0 and 0 <= hi < n_days:  # an episode of a few days: a short loop
                self.mask[row, lo:hi + 1] = True

    def window(self, rows: np.ndarray | slice, lo: int, hi: int) -> np.ndarray | None:
        """The flags of matrix ``rows`` on columns lo..hi-1 (a baseline's lookback); None when
        nothing there is flagged."""
        parts = [m[rows, lo:hi] for m in (self.mask, self.unusual) if m is not None]
        if not parts:
            return None
        part = parts[0] if len(parts) == 1 else parts[0] | parts[1]
        return part if part.any() else None

    def _rows_of(self, rows: pd.DataFrame) -> np.ndarray:
        """The matrix row of each of ``rows`` by series key, -1 for a series not in it."""
        keys = self.matrix.keys
        codes = series_codes([keys, rows], SERIES_KEY)
        lookup = pd.Series(np.arange(len(keys)), index=codes[:len(keys)])
        return lookup.reindex(codes[len(keys):]).fillna(-1).to_numpy().astype(np.int64)


def _episode_keys(rows: pd.DataFrame) -> list[tuple[str, ...]]:
    """(series key as text, anomaly_start as ISO text) of each row."""
    starts = (pd.to_datetime(rows["anomaly_start"], errors="coerce").dt.strftime("%Y-%m-%d")
              if "anomaly_start" in rows.columns else pd.Series("", index=rows.index))
    parts = [rows[k].fillna("").astype(str) if k in rows.columns
             else pd.Series("", index=rows.index) for k in SERIES_KEY]
    return list(zip(*parts, starts.fillna(""), strict=True))


def _answered(feedback: pd.DataFrame | None) -> set[tuple[str, ...]]:
    """The episodes someone answered (any verdict): never left out of the history."""
    return set(_episode_keys(answered_episodes(feedback)))


class DayScorer:
    """robust.score of each day of a run as soon as its baseline is known, carrying the walk's
    state (the day's anomalies and drift statistics) to the next day, as the cost_scores step
    does; its flagged rises go into ``flagged`` for the days after."""

    def __init__(self, config: DetectionConfig, flagged: FlaggedDays, earlier: Earlier | None,
                 feedback: pd.DataFrame | None) -> None:
        self.config, self.flagged = config, flagged
        flagged.add(earlier.anomalies if earlier else None)
        flagged.remember(earlier.drift if earlier else None)
        self.previous = earlier.previous if earlier else None
        self.drift = earlier.drift if earlier else None
        self.bars = raised_bars(feedback, config.score_threshold)
        self._order: tuple[pd.DataFrame, np.ndarray] | None = None  # the last keys' order

    def score(self, day: date, baseline: pd.DataFrame, window_keys: pd.DataFrame,
              rows: np.ndarray) -> None:
        """Score ``day`` (its baseline rows, those of matrix ``rows`` whose keys are
        ``window_keys``) with its actual costs from the matrix, and flag its rises."""
        matrix = self.flagged.matrix
        col = (day - matrix.first).days  # in the matrix: a day before the range's last
        if len(baseline) == 0:
            self.previous = self.drift = None
            self.flagged.remember(None)
            return
        if self._order is None or self._order[0] is not window_keys:  # new series, or fewer
            self._order = (window_keys, baseline_order(window_keys))
        in_order = rows[self._order[1]]  # the baseline rows' matrix rows
        merged = baseline.copy(deep=False)
        merged["actual_cost"] = np.where(matrix.present[in_order, col],
                                         matrix.values[in_order, col], 0.0)
        scored = robust.score(merged, self.config, self.previous, self.bars, self.drift)
        kind = scored["kind"].astype(str).to_numpy()
        self.previous = scored[kind != ""]
        self.drift = scored
        self.flagged.add(self.previous, in_order[kind != ""])
        self.flagged.remember(scored, in_order)
