"""bmm.scale: the cost of one EM iteration against N, the data drawn from a fitted model and
never held as floats, measured in fresh processes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import sample_bmm

from bmm import BernoulliMixture, params_table, scale
from bmm.bits import BitMatrix
from bmm.sources import ParquetRows


@pytest.fixture(scope="module")
def params(tmp_path_factory):
    """A small fitted model's params table (K = 5, D = 60)."""
    rng = np.random.default_rng(0)
    X, _ = sample_bmm(rng, 500, np.full(5, 0.2), rng.beta(0.5, 0.5, (5, 60)))
    settings = {"variant": "packed_lut", "K": 5, "seed": 0, "n_train": None, "max_iter": 10,
                "tol": 1e-3, "init": "random", "n_init": 1, "mu_prior": 1.0, "pi_prior": 1.0,
                "reseed_degenerate": False}  # fmt: skip
    model = BernoulliMixture(5, estep="packed_lut", random_state=0, max_iter=10).fit(X)
    path = tmp_path_factory.mktemp("scale") / "params.parquet"
    params_table.write_params(path, model, {"config": settings})
    return path


def test_the_grid_goes_by_half_decades_to_the_largest_n():
    assert scale.grid(1_000_000) == [10_000, 30_000, 100_000, 300_000, 1_000_000]
    assert scale.grid(50_000) == [10_000, 30_000, 50_000]
    assert scale.grid(10_000_000)[-3:] == [1_000_000, 3_000_000, 10_000_000]


def test_the_slope_and_the_bytes_an_image_are_read_off_the_table():
    N = np.array([1e4, 1e5, 1e6, 1e7])
    table = pd.DataFrame(
        {"N": N, "iteration_s": 3e-6 * N**1.02, "peak_rss_mib": 300 + N * 200 / 2**20}
    )
    assert scale.slope(table, "iteration_s", 100_000) == pytest.approx(1.02, abs=1e-9)
    assert scale.bytes_per_image(table) == pytest.approx(200.0)


def test_rows_drawn_for_the_parquet_mode_are_the_drawn_rows(params, tmp_path):
    model, _ = params_table.model_from_params(params)
    model.set_params(random_state=1)
    scale._write_drawn(model, 9000, tmp_path / "rows.parquet")
    drawn = ParquetRows(tmp_path / "rows.parquet")
    expected, _ = model.sample(9000, packed=True)
    np.testing.assert_array_equal(np.concatenate([b.bits for b in drawn.blocks()]), expected.bits)
    blocks = list(model.sample_blocks(9000))
    assert all(isinstance(b, BitMatrix) for b in blocks)
    np.testing.assert_array_equal(np.concatenate([b.bits for b in blocks]), expected.bits)


@pytest.mark.parametrize("mode", ["memory", "parquet"])
def test_a_measure_in_a_fresh_process(params, mode):
    row = scale.in_child(params, 5000, mode, repeats=2)
    assert row["N"] == 5000 and row["K"] == 5 and row["mode"] == mode
    assert 0 < row["iteration_s"] < 60 and 100 < row["peak_rss_mib"] < 4000
    assert (row["estep_s"] > 0) if mode == "memory" else np.isnan(row["estep_s"])
