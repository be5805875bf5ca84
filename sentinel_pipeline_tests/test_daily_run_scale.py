"""The daily run's matrix, built from Arrow codes file by file (issue 14), is exactly the one the
pandas MultiIndex pivot built: same series in the same order, same sums, same presence, so the
baselines of a day do not change by a bit."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from sentinel_pipeline.defs.assets.baselines import RawHistory
from sentinel_pipeline.defs.checks import days_with_costs
from sentinel_pipeline.detection import DetectionConfig, baselines_for_days, robust, seed
from sentinel_pipeline.detection import frames as frames_module
from sentinel_pipeline.detection.frames import CostMatrix, to_matrix, usage_days
from sentinel_pipeline.schema import RAW_COLUMNS, SERIES_KEY, conform, with_owner
from sentinel_pipeline.storage import TableStore

DAY = date(2025, 6, 30)


def _pandas_matrix(rows: pd.DataFrame, first: date, last: date) -> CostMatrix:
    """The pivot as it was before issue 14 (string MultiIndex factorize, np.add.at): the
    reference the new path must equal."""
    n_days = (last - first).days + 1
    rows = with_owner(rows)
    offsets = (usage_days(rows) - np.datetime64(first, "D")).astype(np.int64)
    inside = (offsets >= 0) & (offsets < n_days)
    keys = rows.loc[inside, SERIES_KEY].astype("string")
    codes, uniques = pd.MultiIndex.from_frame(keys).factorize()
    assert isinstance(uniques, pd.MultiIndex)
    unique_keys = uniques.to_frame(index=False)
    unique_keys.columns = SERIES_KEY
    values = np.zeros((len(unique_keys), n_days))
    present = np.zeros((len(unique_keys), n_days), dtype=bool)
    cost = pd.to_numeric(rows.loc[inside, "cost"]).to_numpy(dtype=float)
    np.add.at(values, (codes, offsets[inside]), cost)
    present[codes, offsets[inside]] = True
    return CostMatrix(unique_keys.astype("string"), first, values, present)


def _rows(
    n_series: int = 300, days: int = 100, seed_: int = 7, staggered: bool = False
) -> pd.DataFrame:
    """Series with gaps, series that start late or stop, rows split in two (summed), a key with
    a missing part, rows in a shuffled order within each day. ``staggered``: series (and so
    accounts) start one after another through the days."""
    rng = np.random.default_rng(seed_)
    first = DAY - timedelta(days=days)
    start = np.where(rng.random(n_series) < 0.2, rng.integers(0, days, n_series), 0)
    if staggered:
        start = np.arange(n_series) * days // n_series
    stop = np.where(rng.random(n_series) < 0.1, rng.integers(1, days, n_series), days + 1)
    base = np.exp(rng.uniform(0, 6, n_series))
    parts = []
    for d in range(days + 1):
        ids = np.flatnonzero((start <= d) & (d < stop) & (rng.random(n_series) < 0.9))
        ids = np.concatenate([ids, ids[rng.random(len(ids)) < 0.05]])
        rng.shuffle(ids)
        parts.append(pd.DataFrame({
            "usage_date": first + timedelta(days=d),
            "service": [f"svc-{i % 7}" for i in ids],
            "account_id": [None if i == 5 else f"{100000 + i // 7:012d}" for i in ids],
            "region": [["us-east-1", "eu-west-1", "ap-south-1"][i % 3] for i in ids],
            "cost": base[ids] * rng.lognormal(0, 0.2, len(ids)),
            "currency": "USD",
            "estimated": False,
            "source": "test",
        }))
    return pd.concat(parts, ignore_index=True)


def _same(a: CostMatrix, b: CostMatrix) -> None:
    pd.testing.assert_frame_equal(a.keys, b.keys)
    assert a.first == b.first
    assert a.values.dtype == b.values.dtype and np.array_equal(a.values, b.values)
    assert np.array_equal(a.present, b.present)
    assert not np.isnan(b.values).any()


def _store(tmp_path: Path, rows: pd.DataFrame) -> TableStore:
    store = TableStore(str(tmp_path))
    for day in sorted(set(rows["usage_date"])):
        part = rows[rows["usage_date"] == day]
        store.write_partition("raw_daily_costs", day, conform(part, RAW_COLUMNS))
    return store


def test_matrix_from_frames_and_tables_equals_the_pandas_pivot() -> None:
    rows = _rows()
    first, last = DAY - timedelta(days=63), DAY - timedelta(days=1)
    expected = _pandas_matrix(rows, first, last)
    assert len(expected.keys) > 200 and expected.keys["account_id"].isna().any()
    _same(expected, to_matrix(rows, first, last))
    _same(expected, to_matrix(pa.Table.from_pandas(conform(rows, RAW_COLUMNS)), first, last))


def test_matrix_read_file_by_file_equals_the_pandas_pivot(tmp_path: Path) -> None:
    rows = _rows()
    store = _store(tmp_path, rows)
    history = RawHistory(store, DAY - timedelta(days=90), DAY)
    first, last = DAY - timedelta(days=63), DAY - timedelta(days=1)
    _same(_pandas_matrix(rows, first, last), history(first, last))
    read = store.read_range("raw_daily_costs", DAY - timedelta(days=90), DAY)
    assert history.days == days_with_costs(read)


def test_series_index_repacks_and_merges_without_changing_the_matrix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Accounts that keep appearing make the packed key widen (a repack) and, with a tiny merge
    threshold, the recent series move into the main index many times."""
    monkeypatch.setattr(frames_module._SeriesIndex, "MERGE_AT", 4)
    rows = _rows(n_series=400, days=70, seed_=3, staggered=True)
    store = _store(tmp_path, rows)
    first, last = DAY - timedelta(days=70), DAY - timedelta(days=1)
    _same(_pandas_matrix(rows, first, last), RawHistory(store, first, DAY)(first, last))


@pytest.mark.parametrize("method", ["robust", "seed"])
def test_baselines_of_a_day_are_identical(tmp_path: Path, method: str) -> None:
    rows = _rows()
    config = DetectionConfig(method=method)
    module = robust if method == "robust" else seed
    span = timedelta(days=module.history_days(config))
    old = _pandas_matrix(rows, DAY - span, DAY - timedelta(days=1))
    expected = module.baselines_from_matrix(old, DAY, config)
    assert len(expected) > 200
    from_files = RawHistory(_store(tmp_path, rows), DAY - timedelta(days=90), DAY)
    for history in (rows, from_files):
        got = baselines_for_days(history, [DAY], config)[DAY]
        pd.testing.assert_frame_equal(expected, got)


def test_no_rows_and_no_days_give_an_empty_matrix(tmp_path: Path) -> None:
    empty = to_matrix(pd.DataFrame(), DAY - timedelta(days=5), DAY)
    assert empty.values.shape == (0, 6) and list(empty.keys.columns) == SERIES_KEY
    assert all(empty.keys[k].dtype == "string" for k in SERIES_KEY)
    history = RawHistory(TableStore(str(tmp_path)), DAY - timedelta(days=90), DAY)
    assert history(DAY - timedelta(days=5), DAY).values.shape == (0, 6)
    assert history.days == set()


def test_odd_files_read_as_the_pandas_pivot_reads_them(tmp_path: Path) -> None:
    """A file holding rows of other days (one before the window with rows inside it, summed
    with that day's own rows), dates stored as text, a file without a key column: the matrix is
    still the pivot of every row read, and the days are those of every row."""
    rows = _rows(n_series=50, days=30)
    store = _store(tmp_path, rows)
    first, last = DAY - timedelta(days=20), DAY - timedelta(days=1)
    early = DAY - timedelta(days=25)
    stray = rows[rows["usage_date"] == DAY - timedelta(days=3)].head(10)
    mixed = pd.concat([rows[rows["usage_date"] == early], stray], ignore_index=True)
    store.write_partition("raw_daily_costs", early, conform(mixed, RAW_COLUMNS))
    text_day = DAY - timedelta(days=10)
    as_text = rows[rows["usage_date"] == text_day].assign(usage_date=str(text_day))
    store.write_partition("raw_daily_costs", text_day, as_text)
    no_region = DAY - timedelta(days=12)
    store.write_partition("raw_daily_costs", no_region,
                          rows[rows["usage_date"] == no_region].drop(columns=["region"]))
    read = store.read_range("raw_daily_costs", DAY - timedelta(days=30), DAY)
    history = RawHistory(store, DAY - timedelta(days=30), DAY)
    _same(_pandas_matrix(read, first, last), history(first, last))
    assert history.days == days_with_costs(read)
