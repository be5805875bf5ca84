"""Long cost rows <-> a series x day matrix, so the statistics run on all series at once."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sentinel_pipeline.schema import (
    ANOMALY_COLUMNS,
    BASELINE_COLUMNS,
    SERIES_KEY,
    conform,
    empty_frame,
    with_owner,
)


@dataclass
class CostMatrix:
    """Costs of ``keys`` (one row per series) on ``days`` (one column per day, 0 = no spend)."""

    keys: pd.DataFrame
    first: date
    values: np.ndarray
    present: np.ndarray  # True where the source had a row for that series and day

    @property
    def n_days(self) -> int:
        return self.values.shape[1]

    def window(self, first: date, last: date) -> CostMatrix:
        """The days [first, last] of the series that have at least one row in them."""
        return self.window_and_rows(first, last)[0]

    def window_and_rows(self, first: date, last: date) -> tuple[CostMatrix, np.ndarray]:
        """window(first, last), and the positions in this matrix of its rows."""
        lo = (first - self.first).days
        hi = (last - self.first).days + 1
        if lo < 0 or hi > self.n_days:
            raise ValueError(f"window {first}..{last} is outside the matrix")
        present = self.present[:, lo:hi]
        active = present.any(axis=1)
        if active.all():  # views, no copy: the common case when every series is active
            return (CostMatrix(self.keys, first, self.values[:, lo:hi], present),
                    np.arange(self.values.shape[0]))
        rows = np.flatnonzero(active)
        return (CostMatrix(self.keys.iloc[rows].reset_index(drop=True), first,
                           self.values[rows, lo:hi], present[rows]), rows)

    def day_numbers(self) -> np.ndarray:
        return np.datetime64(self.first, "D") + np.arange(self.n_days)


def usage_days(rows: pd.DataFrame) -> np.ndarray:
    """usage_date as numpy days, whatever it was stored as (date objects, timestamps, text)."""
    column = rows["usage_date"]
    if pd.api.types.is_datetime64_any_dtype(column):
        return column.to_numpy().astype("datetime64[D]")
    return pd.to_datetime(column).to_numpy().astype("datetime64[D]")


def to_matrix(rows: pd.DataFrame | pa.Table | None, first: date, last: date) -> CostMatrix:
    """Pivot rows with usage_date in [first, last] into a dense matrix (others are dropped).

    Series are in first-seen order, a (series, day) with several rows holds their sum, added in
    row order.
    """
    builder = MatrixBuilder(first, last)
    if rows is not None and len(rows):
        builder.add(rows if isinstance(rows, pa.Table) else _arrow_rows(with_owner(rows)))
    return builder.matrix()


def _arrow_rows(rows: pd.DataFrame) -> pa.Table:
    """The columns of a pandas frame that the matrix needs, as Arrow (keys as text, as the
    series are compared as text whatever they were stored as)."""
    columns: dict[str, pa.Array] = {
        "usage_date": pa.array(usage_days(rows)),
        "cost": pa.array(pd.to_numeric(rows["cost"]).to_numpy(dtype=float)),
    }
    for key in SERIES_KEY:
        if key in rows.columns:
            columns[key] = pa.array(rows[key].astype("string").array)
    return pa.table(columns)


class _Dictionary:
    """One key column's distinct values across all tables added, each with a code kept for
    good: 0 is null (a series key may lack a part), the values are 1, 2, ... in first-seen
    order. A table's own dictionary is mapped onto it once, so rows cost one integer take."""

    def __init__(self) -> None:
        self.chunks: list[pa.Array] = []
        self.index = pd.Index([], dtype=object)
        self.size = 1  # codes given out, null included

    def row_codes(self, column: pa.ChunkedArray | None, n_rows: int) -> np.ndarray:
        if column is None:
            return np.zeros(n_rows, dtype=np.int64)
        parts = []
        for chunk in column.chunks:
            if not pa.types.is_dictionary(chunk.type):
                chunk = chunk.dictionary_encode()
            lookup = np.append(self._codes(chunk.dictionary), 0)  # the last slot: null
            indices = chunk.indices.fill_null(len(chunk.dictionary))
            parts.append(lookup[indices.to_numpy()])
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def _codes(self, values: pa.Array) -> np.ndarray:
        """The code of each of a table's distinct values (null among them gets 0)."""
        values = values.cast(pa.string())
        objects = values.to_numpy(zero_copy_only=False)
        codes = self.index.get_indexer(objects).astype(np.int64) + 1
        null = np.asarray(values.is_null())
        new = (codes == 0) & ~null
        if new.any():
            fresh = pd.unique(objects[new])  # a dictionary has each value once; to be sure
            self.chunks.append(pa.array(fresh, type=pa.string()))
            self.index = self.index.append(pd.Index(fresh, dtype=object))
            self.size += len(fresh)
            codes[new] = self.index.get_indexer(objects[new]) + 1
        codes[null] = 0
        return codes

    def values(self, codes: np.ndarray) -> pa.Array:
        return pa.concat_arrays([pa.nulls(1, pa.string()), *self.chunks]).take(pa.array(codes))


class _SeriesIndex:
    """Series id (a matrix row, in first-seen order) of each row's key codes (one per part of
    SERIES_KEY), by one int64 per series: the codes packed into bits, hashed by pandas. New
    series go to a small second index merged into the main one now and then, so a file with a
    few new series does not rebuild the hash of a million."""

    MERGE_AT = 65_536  # recent series merged into the main index above this (or 1/8 of it)

    def __init__(self, parts: int = len(SERIES_KEY)) -> None:
        self.codes = np.zeros((0, parts), dtype=np.int64)  # the key codes of each series
        self.bits = (0,) * parts
        self.main = pd.Index([], dtype=np.int64)
        self.recent = pd.Index([], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.codes)

    def ids(self, codes: list[np.ndarray], sizes: list[int]) -> np.ndarray:
        """The series id of each row, new series numbered in order of first appearance."""
        bits = tuple(max(self.bits[i], max(sizes[i], 2).bit_length())
                     for i in range(len(self.bits)))
        if sum(bits) > 63:  # millions of distinct values in the parts: not cost data
            raise ValueError("too many distinct series key values to pack into 63 bits")
        if bits != self.bits:  # a part grew past its bits: repack the series known so far
            self.bits = bits
            self.main, self.recent = pd.Index(self._pack(list(self.codes.T))), self.recent[:0]
        packed = self._pack(codes)
        ids = self.main.get_indexer(pd.Index(packed)).astype(np.int64)
        missing = np.flatnonzero(ids < 0)
        if len(missing):
            ids[missing] = self._recent_ids(packed[missing])
        return ids

    def _recent_ids(self, packed: np.ndarray) -> np.ndarray:
        ids = self.recent.get_indexer(pd.Index(packed)).astype(np.int64)
        new = ids < 0
        if new.any():
            fresh = pd.unique(packed[new])
            self.recent = self.recent.append(pd.Index(fresh))
            self.codes = np.concatenate([self.codes, self._unpack(fresh)])
            ids[new] = self.recent.get_indexer(pd.Index(packed[new]))
        ids += len(self.main)
        if len(self.recent) > max(len(self.main) // 8, self.MERGE_AT):
            self.main, self.recent = self.main.append(self.recent), self.recent[:0]
        return ids

    def _shifts(self) -> list[int]:
        """Where each part's bits start: the first part highest."""
        return [sum(self.bits[i + 1:]) for i in range(len(self.bits))]

    def _pack(self, codes: list[np.ndarray]) -> np.ndarray:
        packed = np.zeros(len(codes[0]), dtype=np.int64)
        for part, shift in zip(codes, self._shifts(), strict=True):
            packed |= np.asarray(part, dtype=np.int64) << shift
        return packed

    def _unpack(self, packed: np.ndarray) -> np.ndarray:
        return np.stack([(packed >> shift) & ((1 << bits) - 1)
                         for shift, bits in zip(self._shifts(), self.bits, strict=True)], axis=1)


class MatrixBuilder:
    """Builds the series x day matrix of [first, last] from Arrow tables added one at a time
    (a day's file each), so the rows never exist all at once nor as Python objects: each
    table's keys become integer codes, the codes one int64 per row, the rows summed straight
    into the matrix. ``days`` collects the usage dates of every row added, inside the window or
    not (which days the history has)."""

    def __init__(self, first: date, last: date) -> None:
        self.first = first
        self.n_days = max((last - first).days + 1, 0)
        self._origin = np.datetime64(first, "D").astype(np.int64)
        self._dicts = {key: _Dictionary() for key in SERIES_KEY}
        self._series = _SeriesIndex()
        self._values = np.zeros((0, self.n_days))
        self._present = np.zeros((0, self.n_days), dtype=bool)
        self._day_numbers: set[int] = set()
        self._filled: set[int] = set()  # matrix columns that rows were added to

    @property
    def days(self) -> set[date]:
        return {d.item() for d in np.array(sorted(self._day_numbers), dtype="datetime64[D]")}

    def add(self, table: pa.Table) -> None:
        if table.num_rows == 0 or "usage_date" not in table.column_names:
            return
        numbers = _day_numbers(table.column("usage_date"))
        self._note_days(numbers)
        if self.n_days == 0 or "cost" not in table.column_names:
            return
        offsets = numbers - self._origin
        inside = (offsets >= 0) & (offsets < self.n_days)
        if not inside.all():
            if not inside.any():
                return
            table, offsets = table.filter(pa.array(inside)), offsets[inside]
        n = table.num_rows
        names = table.column_names
        codes = [self._dicts[k].row_codes(table.column(k) if k in names else None, n)
                 for k in SERIES_KEY]
        ids = self._series.ids(codes, [self._dicts[k].size for k in SERIES_KEY])
        self._grow(len(self._series))
        cost = table.column("cost")
        if cost.type != pa.float64():
            cost = pc.cast(cost, pa.float64())
        weights = cost.to_numpy()
        day = int(offsets[0])
        if day not in self._filled and (offsets == day).all():
            # A daily file and its day still empty: bincount sums a series' rows in row order
            # from 0, as np.add.at would, in one pass instead of a scatter per row.
            n = len(self._series)
            self._values[:n, day] = np.bincount(ids, weights=weights, minlength=n)
            self._present[ids, day] = True
            self._filled.add(day)
            return
        flat = ids * self.n_days + offsets
        np.add.at(self._values.reshape(-1), flat, weights)
        self._present.reshape(-1)[flat] = True
        self._filled.update(int(d) for d in np.unique(offsets))

    def _note_days(self, numbers: np.ndarray) -> None:
        valid = numbers[numbers != _NO_DAY]
        if len(valid) and valid.min() == valid.max():  # a daily file: one date
            self._day_numbers.add(int(valid[0]))
        else:
            self._day_numbers.update(int(d) for d in np.unique(valid))

    def _grow(self, n_series: int) -> None:
        """Room for ``n_series`` rows. Zeros come from calloc: room never written costs no RSS,
        so it is generous (twice the series), sparing the copy of a grown matrix."""
        if n_series <= len(self._values):
            return
        capacity = max(2 * n_series, 1024)
        values = np.zeros((capacity, self.n_days))
        present = np.zeros((capacity, self.n_days), dtype=bool)
        values[: len(self._values)] = self._values
        present[: len(self._present)] = self._present
        self._values, self._present = values, present

    def matrix(self) -> CostMatrix:
        n = len(self._series)
        codes = self._series.codes
        keys = pd.DataFrame({key: pd.array(self._dicts[key].values(codes[:, i]), dtype="string")
                             for i, key in enumerate(SERIES_KEY)})
        if n == 0:
            shape = (0, self.n_days)
            return CostMatrix(keys, self.first, np.zeros(shape), np.zeros(shape, dtype=bool))
        return CostMatrix(keys, self.first, self._values[:n], self._present[:n])


_NO_DAY = np.iinfo(np.int64).min


def _day_numbers(column: pa.ChunkedArray) -> np.ndarray:
    """usage_date as days since 1970 (int64; _NO_DAY where null), whatever it was stored as."""
    if not pa.types.is_date32(column.type):
        try:
            column = pc.cast(column, pa.date32())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            days = usage_days(pd.DataFrame({"usage_date": column.to_pandas()}))
            return np.where(np.isnat(days), _NO_DAY, days.astype(np.int64))
    numbers = pc.cast(column, pa.int32()).to_numpy(zero_copy_only=False)
    if column.null_count:
        return np.where(np.isnan(numbers), _NO_DAY, np.nan_to_num(numbers)).astype(np.int64)
    return numbers.astype(np.int64)


def daily_totals(rows: pd.DataFrame) -> pd.DataFrame:
    """Cost per series and day (actual_cost) with the series' currency."""
    columns = ["usage_date", *SERIES_KEY, "actual_cost", "currency"]
    if rows is None or len(rows) == 0:
        return pd.DataFrame({c: [] for c in columns})
    frame = rows.assign(usage_date=usage_days(rows))
    if "currency" not in frame.columns:
        frame = frame.assign(currency="USD")
    frame = frame.astype({k: "string" for k in SERIES_KEY})
    return frame.groupby(["usage_date", *SERIES_KEY], as_index=False, dropna=False).agg(
        actual_cost=("cost", "sum"), currency=("currency", "first")
    )


def _keyed(frame: pd.DataFrame) -> pd.DataFrame:
    """The merge keys in one form, whatever the frame held (also when it is empty)."""
    return frame.assign(usage_date=usage_days(frame)).astype({k: "string" for k in SERIES_KEY})


def join_actual_and_baselines(actual: pd.DataFrame, baselines: pd.DataFrame) -> pd.DataFrame:
    """One row per (day, series) seen in either: actual 0 where there was no spend, no baseline
    columns (NaN) where the series had no history.

    Rows are in (usage_date, service, account_id, region) order, text compared as text, a
    missing key part last, as a pandas outer merge on the text keys gives them. The merge runs
    on one int64 per row instead: each key part is coded by its rank among the distinct values
    of both frames, the codes and the day packed into one integer, so the order of the integers
    is the order of the text; the value columns are then taken by row number. A year of
    10,000 series is 3.65 million rows: the merge on three text columns was the peak of a
    365-day backfill."""
    actual = actual if actual is None else with_owner(actual)
    baselines = baselines if baselines is None else with_owner(baselines)
    if actual is None or len(actual) == 0 or baselines is None or len(baselines) == 0:
        return _join_by_text(actual, baselines)
    keys = None if {"actual_cost", "currency"} & set(baselines.columns) else (
        _PackedKeys.of(actual, baselines))
    if keys is None:  # dates missing, too many distinct values to pack, or clashing names
        return _join_by_text(actual, baselines)
    currency = actual["currency"].array if "currency" in actual.columns else "USD"
    totals = (pd.DataFrame({"_key": keys.actual, "cost": actual["cost"].array,
                            "currency": currency})
              .groupby("_key", sort=True)
              .agg(actual_cost=("cost", "sum"), currency=("currency", "first")))
    if "method" not in baselines.columns:  # as the text merge would fail
        raise KeyError("['method'] not found in axis")
    # The merge of the keys alone gives each output row its row of either side (or none);
    # the columns are then taken one at a time, as the merge would fill them (an integer
    # column with rows missing becomes float, NaN there), never all in one block copy.
    rows = pd.DataFrame({"_key": totals.index.to_numpy(), "_left": np.arange(len(totals))}).merge(
        pd.DataFrame({"_key": keys.baselines, "_right": np.arange(len(keys.baselines))}),
        on="_key", how="outer")
    packed = rows["_key"].to_numpy()
    left = rows["_left"].fillna(-1).to_numpy().astype(np.int64)
    right = rows["_right"].fillna(-1).to_numpy().astype(np.int64)
    del rows
    merged = pd.DataFrame(keys.decode(packed))
    del packed
    take = pd.api.extensions.take
    for name in ("actual_cost", "currency"):
        merged[name] = take(totals[name].array, left, allow_fill=True)
    del totals, left
    skip = {"usage_date", *SERIES_KEY, "method"}
    for name in baselines.columns:
        if name not in skip:
            merged[name] = take(baselines[name].array, right, allow_fill=True)
    merged["actual_cost"] = merged["actual_cost"].fillna(0.0)
    merged["currency"] = merged["currency"].astype("string").fillna("USD")
    return merged


def _join_by_text(actual: pd.DataFrame, baselines: pd.DataFrame) -> pd.DataFrame:
    """join_actual_and_baselines by a merge on the text keys (when one side is empty)."""
    if baselines is None or len(baselines) == 0:
        baselines = pd.DataFrame({c: [] for c in BASELINE_COLUMNS})
    base = _keyed(baselines).drop(columns=["method"])
    merged = _keyed(daily_totals(actual)).merge(base, on=["usage_date", *SERIES_KEY],
                                                how="outer")
    merged["actual_cost"] = merged["actual_cost"].fillna(0.0)
    merged["currency"] = merged["currency"].astype("string").fillna("USD")
    return merged


@dataclass
class _PackedKeys:
    """(usage_date, service, account_id, region) of two frames as one int64 a row, ordered as
    the text is: the day, then each part's rank among the distinct values of both frames (a
    missing part after every value), as digits of one number (the day most significant)."""

    actual: np.ndarray
    baselines: np.ndarray
    first_day: int
    parts: list[Any]  # each part's distinct values as text, sorted

    @classmethod
    def of(cls, actual: pd.DataFrame, baselines: pd.DataFrame) -> _PackedKeys | None:
        frames = (actual, baselines)
        packed = [usage_days(f).astype(np.int64) for f in frames]
        if any((d == np.datetime64("NaT").astype(np.int64)).any() for d in packed):
            return None
        first = min(int(d.min()) for d in packed)
        span = max(int(d.max()) for d in packed) - first + 1
        for d in packed:
            d -= first
        parts = []
        for key in SERIES_KEY:
            codes, uniques = text_codes(frames, key, sort=True)
            values = uniques.array
            radix = len(values) + 1  # a missing part after every value, as the merge sorts
            span *= radix
            if span >= 2**62:
                return None
            for side, side_codes in enumerate(codes):
                packed[side] *= radix
                packed[side] += np.where(side_codes < 0, len(values), side_codes)
            del codes
            parts.append(values)
        return cls(packed[0], packed[1], first, parts)

    def decode(self, packed: np.ndarray) -> dict[str, Any]:
        """The key columns of packed keys, as the text merge makes them."""
        out: dict[str, Any] = {}
        rest = packed
        for key, values in reversed(list(zip(SERIES_KEY, self.parts, strict=True))):
            rest, code = np.divmod(rest, len(values) + 1)
            code[code == len(values)] = -1
            out[key] = values.take(code, allow_fill=True)
        days = (rest + self.first_day).astype("datetime64[D]")
        return {"usage_date": days, **{key: out[key] for key in SERIES_KEY}}


def text_codes(frames: Sequence[pd.DataFrame], column: str,
               sort: bool = False) -> tuple[list[np.ndarray], pd.Index]:
    """Each frame's ``column`` as codes into the distinct values of all of them compared as
    text (in text order with ``sort``), -1 where missing. Each frame's column is factorized as
    it is (a category column by its codes) and only its distinct values are made text (two may
    make the same text: 1 and "1"): a million rows of text cost a second, their few distinct
    values nothing."""
    local = [pd.factorize(f[column]) for f in frames]
    text = [pd.Series(np.asarray(u, dtype=object), dtype=object).astype("string")
            for _, u in local]
    ranks, values = pd.factorize(pd.concat(text, ignore_index=True), sort=sort)
    out, offset = [], 0
    for (codes, _), t in zip(local, text, strict=True):
        lookup = np.append(ranks[offset:offset + len(t)], -1)  # -1 (missing) takes the last
        offset += len(t)
        out.append(lookup[codes])
    return out, values


def series_codes(frames: pd.DataFrame | list[pd.DataFrame],
                 key: list[str] = SERIES_KEY) -> np.ndarray:
    """One integer per row naming its series (the key compared as text, a missing part equal
    to itself), over the rows of the frames one after the other: each key part factorized on
    its own, the parts' codes combined and factorized again, rather than a MultiIndex of a row
    tuple each (3.65 million of them in a year of 10,000 series); the parts' codes by
    text_codes."""
    frames = frames if isinstance(frames, list) else [frames]
    n = sum(len(f) for f in frames)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    combined = np.zeros(n, dtype=np.int64)
    for part_name in key:
        codes, values = text_codes(frames, part_name)
        part = np.concatenate(codes).astype(np.int64)  # a missing part is -1
        # Renumbered each time, so the product stays below rows x values.
        combined = pd.factorize(combined * (len(values) + 1) + (part + 1))[0].astype(np.int64)
    return combined


@cache
def _baseline_types() -> dict[str, Any]:
    """The cost_baselines contract's column types (numpy or pandas dtypes), in contract order."""
    return dict(empty_frame(BASELINE_COLUMNS).dtypes)


def baseline_order(keys: pd.DataFrame) -> np.ndarray:
    """The positions of ``keys``' rows in the order baseline_frame writes them: by series, the
    key compared as text part by part, a missing part last, ties as they came (a stable sort).

    From each part's text-order codes (text_codes) packed into one integer and sorted once:
    pandas' stable sort of a million rows by four text columns took 0.24 s CPU, this 0.15 s."""
    if len(keys) == 0:
        return np.zeros(0, dtype=np.int64)
    parts, sizes = [], []
    for part_name in SERIES_KEY:
        (codes,), values = text_codes([keys], part_name, sort=True)
        parts.append(np.where(codes < 0, len(values), codes).astype(np.int64))  # missing: last
        sizes.append(len(values) + 1)
    if math.prod(sizes) >= PACKED_SPAN:  # too many distinct keys to pack: part by part
        return np.lexsort(parts[::-1])
    packed = np.zeros(len(keys), dtype=np.int64)
    for codes, size in zip(parts, sizes, strict=True):
        packed = packed * size + codes
    return np.argsort(packed, kind="stable")


PACKED_SPAN = 2 ** 62  # distinct key combinations baseline_order packs into one int64


def baseline_frame(
    keys: pd.DataFrame, day: date, columns: dict[str, np.ndarray], method: str
) -> pd.DataFrame:
    """The cost_baselines rows of one day, in the contract's order and types (as ``conform``
    makes them: a contract column not given is NaN, or 0 for the day counts).

    Sorted by series, so a day's file is the same whether it was computed alone or in a range.
    Built in one go rather than column by column and then conformed: this runs once per day of
    every baselines computation, and that pandas work was most of a day's cost.
    """
    types = _baseline_types()
    extra = [c for c in columns if c not in types]
    if extra:
        raise ValueError(f"not cost_baselines columns: {extra}")
    keys = keys.reset_index(drop=True)
    order = baseline_order(keys)
    n = len(order)
    data: dict[str, object] = {"usage_date": np.full(n, day, dtype=object)}
    for key in SERIES_KEY:
        data[key] = keys[key].astype(types[key]).array.take(order)
    for name, dtype in types.items():
        if name in data or name == "method":
            continue
        is_count = pd.api.types.is_integer_dtype(dtype)
        if name not in columns:
            data[name] = np.zeros(n, dtype=np.int64) if is_count else np.full(n, np.nan)
            continue
        values = np.asarray(columns[name])[order]
        if is_count and values.dtype.kind != "i":
            values = np.nan_to_num(values.astype(np.float64), nan=0.0)
        data[name] = values.astype(np.int64 if is_count else np.float64)
    # One value taken n times (a list of n strings took 10x as long at a million rows).
    data["method"] = pd.array([method], dtype=types["method"]).take(np.zeros(n, dtype=np.int64))
    return pd.DataFrame(data, copy=False)  # fresh arrays: kept as they are, not stacked again


def anomaly_frame(scored: pd.DataFrame) -> pd.DataFrame:
    """The cost_anomalies rows, in contract order."""
    return conform(scored, ANOMALY_COLUMNS)


def split_days(frame: pd.DataFrame, days: list[date]) -> dict[date, pd.DataFrame]:
    """Rows per usage_date, every requested day present (possibly empty).

    Rows already in day order (as the join leaves them) are cut into one slice a day: no mask
    over the whole range per day, and the slices share the frame's memory (copy-on-write)
    rather than copying the range once more."""
    if len(frame) == 0:
        return {d: frame for d in days}
    keys = usage_days(frame)
    wanted = np.array(days, dtype="datetime64[D]")
    if not np.isnat(keys).any() and (keys[1:] >= keys[:-1]).all():
        lo = np.searchsorted(keys, wanted, side="left")
        hi = np.searchsorted(keys, wanted, side="right")
        return {day: frame.iloc[a:b].reset_index(drop=True)
                for day, a, b in zip(days, lo.tolist(), hi.tolist(), strict=True)}
    out = {}
    for day in days:
        out[day] = frame[keys == np.datetime64(day, "D")].reset_index(drop=True)
    return out
