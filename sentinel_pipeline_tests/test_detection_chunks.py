"""The robust kernel works through its series in chunks (robust.CHUNK_SERIES): a series'
baselines are its own, the same whatever the other series of the run and however they are cut;
and the chunks' rows come out in series order."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from sentinel_pipeline.detection import DetectionConfig, frames, robust
from sentinel_pipeline.detection.frames import CostMatrix
from sentinel_pipeline.schema import SERIES_KEY

DAY = date(2025, 3, 3)  # its lookback holds a month's turn and February
LOOKBACK = 63


def mixed_matrix(n: int, seed: int) -> CostMatrix:
    """``n`` series of a lookback before DAY, of the kinds a bill mixes: steady ones, ones that
    skip days, young ones, sporadic jobs, a credit, monthly charges, a step down and spikes."""
    rng = np.random.default_rng(seed)
    first = DAY - timedelta(days=LOOKBACK)
    weekday = np.array([(first + timedelta(days=i)).weekday() for i in range(LOOKBACK)])
    base = np.exp(rng.uniform(2, 8, n))[:, None]
    values = base * (1 - 0.3 * (weekday >= 5)) * rng.lognormal(0, 0.1, (n, LOOKBACK))
    present = np.ones(values.shape, dtype=bool)
    kind = np.arange(n) % 8
    present[kind == 1] = rng.random(((kind == 1).sum(), LOOKBACK)) > 0.2  # skips days
    present[kind == 2, :40] = False  # young
    present[kind == 3] = rng.random(((kind == 3).sum(), LOOKBACK)) > 0.85  # a job now and then
    values[kind == 4, 50] = -3.0  # a credit
    values[kind == 5, ::30] += 500.0  # a monthly charge
    values[kind == 6, 40:] *= 0.5  # resized down
    values[kind == 7, 30:33] *= 4.0  # an episode in the history
    values[~present] = 0.0
    keys = pd.DataFrame({"service": pd.array([f"s{i:04d}" for i in range(n)], "string"),
                         "account_id": pd.array(["a"] * n, "string"),
                         "region": pd.array(["r"] * n, "string"),
                         "owner": pd.array([""] * n, "string")})
    return CostMatrix(keys, first, values, present)


@pytest.mark.parametrize("chunk", [7, 64, 100])
def test_chunks_give_the_rows_of_a_whole_run(chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bit for bit, with flagged episodes and an accepted level in chunks other than the first."""
    matrix = mixed_matrix(240, seed=1)
    flagged = np.zeros(matrix.values.shape, dtype=bool)
    flagged[[9, 130, 201], 20:26] = True
    since = {3: DAY - timedelta(days=9), 150: DAY - timedelta(days=20)}
    whole = robust.baselines_from_matrix(matrix, DAY, DetectionConfig(), since, flagged)
    monkeypatch.setattr(robust, "CHUNK_SERIES", chunk)
    chunked = robust.baselines_from_matrix(matrix, DAY, DetectionConfig(), since, flagged)
    pd.testing.assert_frame_equal(chunked, whole, check_exact=True)
    assert len(whole) == 240


def test_a_series_baselines_do_not_depend_on_its_neighbours_gaps() -> None:
    """A steady series computed alone, beside steady ones, and beside ones that skip days and
    stopped: the same row to the last bit (medians once turned float64 for every series as soon
    as any had a gap, and rounding followed)."""
    matrix = mixed_matrix(16, seed=2)
    steady = [i for i in range(16) if i % 8 == 0]

    def rows(picked: list[int]) -> pd.DataFrame:
        part = CostMatrix(matrix.keys.iloc[picked].reset_index(drop=True), matrix.first,
                          matrix.values[picked], matrix.present[picked])
        found = robust.baselines_from_matrix(part, DAY, DetectionConfig())
        return found[found["service"] == "s0000"].reset_index(drop=True)

    alone = rows([0])
    pd.testing.assert_frame_equal(rows(steady), alone, check_exact=True)
    pd.testing.assert_frame_equal(rows(list(range(16))), alone, check_exact=True)


KEY_PARTS = ["", "a", "A", "b", "Z", "é", "10", "9", "a b", "ab", "Amazon EC2", "amazon ec2", None]


@pytest.mark.parametrize("packed", [True, False])
def test_baseline_rows_are_ordered_by_series_as_text(packed: bool,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """baseline_order packs the key parts' text-order codes into one integer (or sorts part by
    part when there are too many to pack): the order of a stable sort of the key as text, a
    missing part last, ties as they came, whatever the keys' index."""
    if not packed:
        monkeypatch.setattr(frames, "PACKED_SPAN", 2)
    rng = np.random.default_rng(3)
    for trial in range(40):
        n = int(rng.integers(0, 50))
        keys = pd.DataFrame({part: pd.array([KEY_PARTS[i] for i in rng.integers(
            0, len(KEY_PARTS), n)], "string") for part in SERIES_KEY})
        keys.index = rng.permutation(n) + 7
        expected = keys.reset_index(drop=True).sort_values(
            SERIES_KEY, kind="stable").index.to_numpy()
        assert frames.baseline_order(keys).tolist() == expected.tolist(), trial
