"""Reproducibility: the same config and seed give the same fitted parameters, run again in
another process, and with one BLAS/numba thread or two. (A SLURM run against a local run is
in tests/test_slurm.py.)"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import (
    copy_workflow,
    require,
    run_snakemake,
    synthetic_digits,
    write_data_yaml,
)

from bmm import fit_job, params_table, storage, threads
from bmm.bits import BitMatrix
from bmm.estep import VARIANTS

STABLE = [name for name, v in VARIANTS.items() if v.stable]


@pytest.mark.slow
def test_the_same_config_twice_gives_identical_params(synthetic_run, synthetic_mnist, tmp_path):
    """Every fit of the session's synthetic run, run again in a fresh directory (new
    processes: Snakemake and one per job): π and μ are equal bit for bit, and the params
    files byte for byte: they hold no time, path or process id, only the fit, its settings
    and the provenance (same code, data, packages, machine). The traces are not
    byte-identical: their pass_s and update_s columns are timings; every other column is."""
    workdir = copy_workflow(tmp_path)
    data = write_data_yaml(workdir, str(synthetic_mnist.dir), synthetic_mnist.sha256, own=True)
    tables = sorted(synthetic_run.workdir.glob("results/*/**/params.parquet"))
    targets = [str(t.relative_to(synthetic_run.workdir)) for t in tables]
    fits = list(synthetic_run.workdir.glob("results/*/fits/*/K*/seed0"))
    shared = list(synthetic_run.workdir.glob("results/*/agreement/*"))
    assert len(targets) == len(fits) + len(shared) and shared  # the shared-subset fits too
    assert {t.split("/")[1] for t in targets} == {"synthetic", "own"}  # both data sets
    run_snakemake(workdir, *targets, "--configfile", "tests/config/config.yaml", str(data))
    for target in targets:
        pi, mu, meta = params_table.read_params(workdir / target)
        pi0, mu0, meta0 = params_table.read_params(synthetic_run.workdir / target)
        np.testing.assert_array_equal(pi, pi0, err_msg=target)
        np.testing.assert_array_equal(mu, mu0, err_msg=target)
        assert meta == meta0, target
        assert (workdir / target).read_bytes() == (synthetic_run.workdir / target).read_bytes()
        trace = pd.read_parquet(workdir / target.replace("params", "trace"))
        trace0 = pd.read_parquet(synthetic_run.workdir / target.replace("params", "trace"))
        timed = ["pass_s", "update_s"]
        pd.testing.assert_frame_equal(trace.drop(columns=timed), trace0.drop(columns=timed))


@pytest.fixture(scope="module")
def digits():
    """3000 synthetic digits, binarised: big enough that BLAS splits the products of a fit
    over threads (OpenBLAS runs small ones on one thread whatever it is allowed)."""
    images, labels = synthetic_digits(3000, np.random.default_rng(1))
    return storage.binarize(images, 0.5), labels


# OpenBLAS splits a product over its threads by blocks of rows, and the kernel for a block's
# edge adds some dot products in another order: with 2 threads thousands of entries of
# X @ W (3000 x 784 by 784 x 10) differ from 1 thread's in the last bit, and EM carries such
# differences on. The engine runs its products on one BLAS thread, and its own sums (numba's
# kernels) add each element in a fixed order whatever the threads, so every variant's fit is
# the same to the bit. (tests/test_engine.py checks the same in fresh processes.)


@pytest.mark.parametrize("init", ["random", "k-means++"])
@pytest.mark.parametrize("variant", STABLE)
def test_one_thread_or_two_give_the_same_params(digits, variant, init):
    """A fit as the pipeline runs it (its settings, the bits it reads), with BLAS and numba
    limited to one thread, then to two: identical params."""
    if threads.cpu_count() < 2:
        require("cores", "needs 2 cores to compare 1 thread with 2")
    X, y = digits
    capped = variant.startswith("loops")  # the loops as the test config caps them
    settings = {
        "variant": variant,
        "K": 10,
        "seed": 0,
        "n_train": 100 if capped else None,
        "max_iter": 2 if capped else 15,
        "tol": 0.0,
        "init": init,
        "n_init": 1,
        "mu_prior": 1.0,
        "pi_prior": 1.0,
        "reseed_degenerate": True,
    }
    fits = {}
    for n in (1, 2):
        with threads.limit_threads(n), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning: max_iter on purpose
            assert threads.current()["blas_threads"] == n
            fits[n] = fit_job.fit(BitMatrix.pack(X), y, settings)
    diff = max(
        np.abs(fits[1].weights_ - fits[2].weights_).max(),
        np.abs(fits[1].means_ - fits[2].means_).max(),
    )
    assert diff == 0.0
