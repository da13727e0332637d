"""bmm.sources: fits of data that are not in memory, a binarised Parquet file read a block at a
time and a dask array summed on a dask cluster, give the in-memory fit's parameters bit for
bit, with memory that does not grow with N; and a dask cluster that loses its workers."""

from __future__ import annotations

import os
import signal
import tracemalloc
import warnings

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import require, sample_bmm
from sklearn.utils.validation import check_is_fitted

from bmm import BernoulliMixture, engine, io, storage
from bmm.estep import VARIANTS
from bmm.rows import BLOCK_ROWS
from bmm.sources import DaskFitError, ParquetRows

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
VARIANTS_TO_TRY = [n for n in ("packed_lut", "matmul_fused") if not VARIANTS[n].unavailable]


@pytest.fixture(scope="module")
def data():
    """2.5 blocks of 784-pixel images from 6 components, and sample weights."""
    rng = np.random.default_rng(0)
    mu = rng.beta(0.4, 0.4, size=(6, 784))
    X, _ = sample_bmm(rng, 2 * BLOCK_ROWS + BLOCK_ROWS // 2, rng.dirichlet(np.ones(6) * 3), mu)
    return X, rng.integers(0, 3, len(X)).astype(float)


def write(path, X, row_group_size=BLOCK_ROWS):
    """X as the pipeline stores binarised images, with row groups of the given size."""
    storage.write_binarized(path, X, np.zeros(len(X), np.uint8), {"test": True})
    if row_group_size != BLOCK_ROWS:
        table = pq.read_table(path)
        pq.write_table(table, path, row_group_size=row_group_size)
    return path


def fit(X, w=None, **kw):
    settings = dict(n_components=6, max_iter=15, tol=0, random_state=0) | kw
    return BernoulliMixture(**settings).fit(X, sample_weight=w)


@pytest.mark.parametrize("estep", VARIANTS_TO_TRY)
@pytest.mark.parametrize("layout", ["blocks", "row groups of 1000", "three files"])
def test_a_parquet_fit_is_the_in_memory_fit_bit_for_bit(tmp_path, data, estep, layout):
    """Whatever the row groups and however the rows are split over files, the file is read in
    the engine's blocks: the same sums, the same parameters."""
    X, _ = data
    if layout == "three files":
        path = tmp_path / "parts"
        path.mkdir()
        for i, (a, b) in enumerate([(0, 1000), (1000, 7000), (7000, len(X))]):
            write(path / f"part{i}.parquet", X[a:b])
    else:
        path = write(tmp_path / "train.parquet", X, BLOCK_ROWS if layout == "blocks" else 1000)
    settings = dict(estep=estep, reseed_degenerate=True, init_params="k-means++")
    memory, disk = fit(X, **settings), fit(str(path), **settings)
    np.testing.assert_array_equal(disk.weights_, memory.weights_)
    np.testing.assert_array_equal(disk.means_, memory.means_)
    np.testing.assert_array_equal(disk.trace_["objective"], memory.trace_["objective"])
    assert disk.n_samples_fit_ == len(X) and disk.n_features_in_ == 784
    # scored from the bits a block at a time; the array's scoring is a float64 product
    np.testing.assert_allclose(disk.score_samples(path), memory.score_samples(X), rtol=1e-12)


def test_sample_weights_with_a_parquet_file(tmp_path, data):
    X, w = data
    path = write(tmp_path / "train.parquet", X, 1000)
    memory, disk = fit(X, w=w), fit(path, w=w)
    np.testing.assert_array_equal(disk.means_, memory.means_)


def test_a_pass_over_a_file_holds_a_few_blocks_whatever_its_rows(tmp_path, data):
    """Peak memory of a pass over 2.5 blocks and over 7.5 (the same rows three times): the
    same, to a few kilobytes (no array a row is kept, the blocks are read one at a time)."""
    X, _ = data
    variant = VARIANTS[VARIANTS_TO_TRY[0]]
    pi, mu = np.full(6, 1 / 6), np.random.default_rng(1).uniform(0.2, 0.8, (6, 784))
    peaks = []
    for copies in (1, 3):
        rows = ParquetRows(write(tmp_path / f"x{copies}.parquet", np.tile(X, (copies, 1))))
        engine.summarize(rows, variant, pi, mu)
        tracemalloc.start()
        engine.summarize(rows, variant, pi, mu)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert abs(peaks[1] - peaks[0]) < 200_000, peaks  # 2·N·8 bytes more would be 320 kB


def test_files_that_are_not_binarised_tables_are_named(tmp_path, data):
    def error(path, kind):
        with pytest.raises(kind) as info:
            BernoulliMixture(2).fit(path)
        return str(info.value)

    assert "no such file" in error(tmp_path / "missing.parquet", FileNotFoundError)
    (tmp_path / "empty").mkdir()
    message = error(tmp_path / "empty", FileNotFoundError)
    assert message == f"{tmp_path / 'empty'}: no .parquet files in this directory"
    pq.write_table(pa.table({"x": [1, 2]}), tmp_path / "other.parquet")
    message = error(tmp_path / "other.parquet", ValueError)
    assert message == f"{tmp_path / 'other.parquet'}: no 'bmm' metadata; was it written by bmm?"
    (tmp_path / "torn.parquet").write_bytes(b"PAR1 not really")
    message = error(tmp_path / "torn.parquet", io.CorruptFileError)
    assert message.startswith(f"{tmp_path / 'torn.parquet'} is corrupt or truncated (")
    assert message.endswith("; delete it and rerun snakemake, which rebuilds it")


# ---------------------------------------------------------------------------------------
# dask

try:
    import dask.array as dask_array
    import distributed
except ImportError:  # the dask tests below say so
    dask_array = distributed = None


def needs_dask():
    if dask_array is None:
        require("dask", "dask is not installed: pip install 'bmm[dask]'")


def test_a_dask_fit_without_a_cluster_uses_the_local_scheduler(data):
    needs_dask()
    X, _ = data
    assert distributed.client._get_global_client() is None  # before the cluster's tests
    Xd = dask_array.from_array(X[:3000], chunks=(700, 784))
    np.testing.assert_array_equal(fit(Xd).means_, fit(X[:3000]).means_)


@pytest.fixture(scope="module")
def cluster():
    """A LocalCluster of 2 worker processes, one thread each, and a client on it."""
    needs_dask()
    with (
        warnings.catch_warnings(),
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        warnings.simplefilter("ignore")
        yield cluster, client


@pytest.mark.parametrize("chunk_rows", [BLOCK_ROWS, 1000])
def test_a_dask_fit_on_two_workers_is_the_in_memory_fit_bit_for_bit(cluster, data, chunk_rows):
    X, w = data
    _, client = cluster
    Xd = dask_array.from_array(X, chunks=(chunk_rows, 784))
    memory, on_cluster = fit(X, w=w), fit(Xd, w=w)
    np.testing.assert_array_equal(on_cluster.weights_, memory.weights_)
    np.testing.assert_array_equal(on_cluster.means_, memory.means_)
    assert len(client.scheduler_info()["workers"]) == 2
    np.testing.assert_array_equal(on_cluster.predict(Xd), memory.predict(X))


def test_a_worker_killed_during_a_fit_leaves_the_same_fit(cluster, data):
    """One worker is killed after the third pass (its nanny starts a new one): the chunks it
    kept are computed again, and the fit ends as the in-memory one."""
    X, _ = data
    _, client = cluster
    Xd = dask_array.from_array(X, chunks=(BLOCK_ROWS, 784))

    pids = client.run(os.getpid)  # worker address -> its process

    def kill_after_three(line):
        if line.startswith("  iteration 3:"):
            os.kill(next(iter(pids.values())), signal.SIGKILL)

    model = BernoulliMixture(6, max_iter=8, tol=0, random_state=0, verbose=2, verbose_interval=1)
    model.fit(Xd, log=kill_after_three)
    np.testing.assert_array_equal(model.means_, fit(X, max_iter=8).means_)
    client.wait_for_workers(2)
    assert set(client.run(os.getpid).values()) != set(pids.values())  # one was replaced


def _dies_in_a_worker(block):
    try:
        distributed.get_worker()
    except ValueError:  # not in a worker: computed here
        return block
    os._exit(1)


def test_a_chunk_that_kills_every_worker_stops_the_fit_and_keeps_nothing(data):
    """allowed-failures 1: the chunk's second death ends the pass with a DaskFitError naming
    what happened, and the estimator stays unfitted."""
    import dask

    X, _ = data
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 1}),
        warnings.catch_warnings(),
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as poisoned,
        distributed.Client(poisoned),
    ):
        warnings.simplefilter("ignore")
        Xd = dask_array.from_array(X, chunks=(BLOCK_ROWS, 784)).map_blocks(_dies_in_a_worker)
        model = BernoulliMixture(6, max_iter=3, random_state=0)
        with pytest.raises(DaskFitError) as info:
            model.fit(Xd)
        message = str(info.value)
        assert message.startswith("the dask cluster could not complete a pass of the fit (")
        assert "KilledWorker" in message
        assert message.endswith(
            "the fit was stopped and nothing of it was kept. Check the workers (their logs, "
            "their memory), then fit again"
        )
        with pytest.raises(Exception, match="not fitted"):
            check_is_fitted(model)
