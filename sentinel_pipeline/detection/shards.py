"""Which shard a series belongs to, and how many shards a run uses: pure numpy / pyarrow.

Detection is per series (no statistic mixes two series), so the series can be split into
shards computed apart, by Dagster's executor in separate processes or containers, and joined
back into the same rows. A series' shard is a stable hash of its whole key as text (service,
account_id, region, owner), not Python's ``hash`` (salted per process): every process, every
day and every machine puts a series in the same shard for a given shard count. The whole key,
not the account alone, because one large account would otherwise make one shard the run.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa

from sentinel_pipeline.schema import SERIES_KEY

_NULL_HASH = np.uint64(0x9E3779B97F4A7C15)  # a key part that is missing (no owner)
# One odd multiplier per key part: a row's hash is the sum of its parts' hashes times these, so
# the work per row is a lookup and an add per part (the multiplying is done per distinct value).
_MULTIPLIERS = [np.uint64(m) for m in (0xBF58476D1CE4E5B9, 0x94D049BB133111EB,
                                       0xD6E8FEB86659FD93, 0xFF51AFD7ED558CCD)]


def shard_count(series: int, shard_series: int, max_shards: int) -> int:
    """Shards a run uses for ``series`` series: 1 (no split) up to ``max_shards``.

    ``shard_series`` 0 splits every run into ``max_shards``; otherwise a run splits only above
    ``shard_series`` series, into one shard per ``shard_series`` series (rounded up), at most
    ``max_shards``, so a small account is not paying for processes it does not need."""
    if max_shards < 1 or shard_series < 0:
        raise ValueError(f"shards: max_shards {max_shards} must be >= 1 and shard_series "
                         f"{shard_series} >= 0")
    if shard_series == 0:
        return max_shards
    return max(1, min(max_shards, math.ceil(series / shard_series)))


def _part_hashes(column: pa.ChunkedArray | None, n_rows: int,
                 multiplier: np.uint64) -> np.ndarray:
    """A stable 64-bit hash of each row's value as text, times ``multiplier``: the distinct
    values are hashed (pandas' fixed-key SipHash) and multiplied, the rows take theirs by
    dictionary index; no Python per row."""
    with np.errstate(over="ignore"):
        if column is None:
            return np.full(n_rows, _NULL_HASH * multiplier, dtype=np.uint64)
        parts = []
        for chunk in column.chunks:
            if not pa.types.is_dictionary(chunk.type):
                chunk = chunk.dictionary_encode()
            values = chunk.dictionary.cast(pa.string())
            text = values.to_numpy(zero_copy_only=False).astype(object)
            missing = np.asarray(values.is_null())
            text[missing] = ""
            hashed = pd.util.hash_array(text, categorize=False)
            hashed[missing] = _NULL_HASH
            lookup = np.append(hashed, _NULL_HASH) * multiplier  # the last slot: null index
            indices = chunk.indices.fill_null(len(chunk.dictionary)).to_numpy()
            parts.append(lookup[indices])
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)


def shard_of_rows(table: pa.Table, shards: int) -> np.ndarray:
    """The shard (0..shards-1) of each row's series; a key column the table lacks counts as
    missing, as the series matrix reads it. The high half of the hash picks the shard (the
    sums' low bits mix least)."""
    n = table.num_rows
    combined = np.zeros(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for key, multiplier in zip(SERIES_KEY, _MULTIPLIERS, strict=True):
            column = table.column(key) if key in table.column_names else None
            combined += _part_hashes(column, n, multiplier)
    combined >>= np.uint64(32)
    return (combined % np.uint64(max(shards, 1))).astype(np.int64)


def shard_of_series(keys: pd.DataFrame, shards: int) -> np.ndarray:
    """``shard_of_rows`` of a pandas frame of series keys (text, or anything made text)."""
    columns = {k: pa.array(keys[k].astype("string").array) for k in SERIES_KEY
               if k in keys.columns}
    return shard_of_rows(pa.table(columns) if columns else pa.table({"_": [None] * len(keys)}),
                         shards)


def in_shard(table: pa.Table, shard: int, shards: int) -> pa.Table:
    """The rows of ``table`` whose series is in ``shard`` of ``shards`` (all when 1)."""
    if shards <= 1:
        return table
    return table.filter(pa.array(shard_of_rows(table, shards) == shard))


def merge_shards(parts: list[pd.DataFrame], key: list[str] = SERIES_KEY) -> pd.DataFrame:
    """One day's rows of every shard in the order the unsharded computation gives them:
    sorted by series key (cost_baselines' order, see frames.baseline_frame), so a sharded and
    an unsharded run write the same file."""
    rows = [p for p in parts if len(p)]
    if not rows:
        return parts[0] if parts else pd.DataFrame()
    if len(rows) == 1:
        return rows[0]
    whole = pd.concat(rows, ignore_index=True)
    return whole.sort_values(key, kind="stable").reset_index(drop=True)
