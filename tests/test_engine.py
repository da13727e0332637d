"""bmm.engine: EM's guarantees (monotone objective, MAP M-step, empty clusters), one pass per
iteration that gives the two-pass iteration's sums (block by block, whatever the threads, with
memory flat in N), recovery of a planted mixture, and a fit of the real MNIST."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tracemalloc
import warnings

import numpy as np
import pytest
from conftest import require, sample_bmm
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment
from threadpoolctl import threadpool_limits

from bmm import BernoulliMixture, engine, idx, storage
from bmm.datasets import MNIST
from bmm.engine import INIT_METHODS, fit_em, initialize, log_prior, m_step
from bmm.estep import EPS, VARIANTS
from bmm.metrics import purity
from bmm.rows import BLOCK_ROWS, DenseRows, Stats, lowest, stats_of

STABLE = [name for name, v in VARIANTS.items() if v.stable]
AVAILABLE = [name for name in STABLE if not VARIANTS[name].unavailable]
FAST = [name for name in AVAILABLE if not name.startswith("loops_")]
# Many fits here run to max_iter on purpose (tol=0); the warning is tested on its own below.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def small():
    """A small 3-component problem, as bool images and their labels."""
    rng = np.random.default_rng(1234)
    mu = np.where(rng.random((3, 15)) < 0.5, 0.15, 0.85)
    return sample_bmm(rng, 60, np.array([0.5, 0.3, 0.2]), mu)


# ---------------------------------------------------------------------------------------
# EM never decreases its objective


@st.composite
def problems(draw):
    N = draw(st.integers(5, 60))
    D = draw(st.integers(3, 30))
    K = draw(st.integers(1, min(6, N)))
    seed = draw(st.integers(0, 2**32 - 1))
    mu_prior = draw(st.sampled_from([1.0, 1.0, 1.5, 4.0]))
    pi_prior = draw(st.sampled_from([1.0, 1.0, 2.0, 10.0]))
    init = draw(st.sampled_from(INIT_METHODS))
    reseed = draw(st.booleans())
    rng = np.random.default_rng(seed)
    true_k = int(rng.integers(1, 7))
    mu = rng.beta(0.5, 0.5, size=(true_k, D))  # many μ near 0 and 1
    X, _ = sample_bmm(rng, N, rng.dirichlet(np.ones(true_k)), mu)
    return X, K, seed, mu_prior, pi_prior, init, reseed


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_objective_never_decreases(problem):
    """Whatever the remedy for degenerate components (a prior, re-seeding, or both)."""
    X, K, seed, mu_prior, pi_prior, init, reseed = problem
    model = BernoulliMixture(
        K,
        estep="matmul_fused",  # float64: monotone to rounding (float32 wobbles by 1e-7)
        tol=0,
        max_iter=25,
        init_params=init,
        mu_prior=mu_prior,
        pi_prior=pi_prior,
        reseed_degenerate=reseed,
        random_state=seed,
    ).fit(X)
    obj = model.trace_["objective"].to_numpy()
    assert np.isfinite(obj).all()
    drops = np.diff(obj) + 1e-9 * np.abs(obj[1:])
    assert (drops >= 0).all(), f"objective decreased: {obj}"
    # the objective the trace ends on is the returned parameters' own, computed afresh
    prior = log_prior(model.weights_, model.means_, mu_prior, pi_prior) / len(X)
    assert model.lower_bound_ == pytest.approx(model.score(X) + prior, rel=1e-12, abs=1e-12)
    if mu_prior == 1.0 and pi_prior == 1.0:
        np.testing.assert_array_equal(model.trace_["loglik"], model.trace_["objective"])
    else:  # the objective is the log posterior per image: log-likelihood + log prior / N
        prior = log_prior(model.weights_, model.means_, mu_prior, pi_prior) / len(X)
        assert model.trace_["objective"].iloc[-1] == pytest.approx(
            model.trace_["loglik"].iloc[-1] + prior, rel=1e-12, abs=1e-12
        )


# ---------------------------------------------------------------------------------------
# Reproducibility


@pytest.mark.parametrize("estep", ["matmul_fused", "matmul_fused_f32"])
@pytest.mark.parametrize("init", INIT_METHODS)
@pytest.mark.parametrize("reseed", [False, True])
def test_same_seed_gives_bit_identical_fits(small, estep, init, reseed):
    X, _ = small

    def fit(seed):
        return BernoulliMixture(
            3,
            estep=estep,
            n_init=3,
            init_params=init,
            max_iter=30,
            reseed_degenerate=reseed,
            random_state=seed,
        ).fit(X)

    a, b, c = fit(7), fit(7), fit(8)
    assert np.array_equal(a.weights_, b.weights_) and np.array_equal(a.means_, b.means_)
    assert np.array_equal(a.trace_["loglik"], b.trace_["loglik"])
    assert a.best_init_ == b.best_init_ and a.n_iter_ == b.n_iter_
    assert not np.array_equal(a.means_, c.means_)


def test_a_generator_as_random_state_is_used():
    """A Generator is drawn from (its state moves on), so the same seed gives the same fit
    as the int seed, and other seeds other fits: a fit that ignored it could pass none of
    these."""
    X = np.random.default_rng(0).random((30, 10)) < 0.5

    def means(random_state):
        return BernoulliMixture(2, max_iter=5, random_state=random_state).fit(X).means_

    rng = np.random.default_rng(5)
    before = rng.bit_generator.state
    a = means(rng)
    assert rng.bit_generator.state != before  # the fit drew from it
    np.testing.assert_array_equal(a, means(np.random.default_rng(5)))
    np.testing.assert_array_equal(a, means(5))  # default_rng(5) is the int seed's generator
    assert not np.array_equal(a, means(np.random.default_rng(6)))
    assert not np.array_equal(a, means(rng))  # the same generator, moved on: a new start


# ---------------------------------------------------------------------------------------
# Recovery of a planted mixture


def test_recovers_a_planted_mixture():
    rng = np.random.default_rng(42)
    K, D, N = 5, 100, 2000
    true_pi = np.array([0.1, 0.15, 0.2, 0.25, 0.3])
    true_mu = np.where(rng.random((K, D)) < 0.5, 0.1, 0.9)
    X, z = sample_bmm(rng, N, true_pi, true_mu)
    model = BernoulliMixture(K, n_init=3, init_params="k-means++", random_state=0).fit(X)
    pred = model.predict(X)
    assert purity(z, pred) >= 0.95
    # match fitted components to planted ones by the largest overlap
    overlap = np.zeros((K, K))
    np.add.at(overlap, (z, pred), 1)
    rows, cols = linear_sum_assignment(-overlap)
    np.testing.assert_allclose(model.weights_[cols], true_pi[rows], atol=0.03)
    assert np.abs(model.means_[cols] - true_mu[rows]).max() < 0.15
    assert model.converged_


# ---------------------------------------------------------------------------------------
# Every stable variant fits the same parameters as the scalar reference


@pytest.fixture(scope="module")
def reference_fit(small):
    X, _ = small
    return BernoulliMixture(3, estep="loops_ndk", tol=0, max_iter=8, random_state=3).fit(X)


@pytest.mark.parametrize("estep", STABLE)
def test_every_stable_variant_fits_like_the_reference(small, reference_fit, estep):
    if VARIANTS[estep].unavailable:
        require("numba", f"{estep} unavailable: {VARIANTS[estep].unavailable}")
    X, _ = small
    model = BernoulliMixture(3, estep=estep, tol=0, max_iter=8, random_state=3).fit(X)
    tol = 1e-4 if VARIANTS[estep].dtype == np.float32 else 1e-9
    assert np.abs(model.means_ - reference_fit.means_).max() <= tol
    assert np.abs(model.weights_ - reference_fit.weights_).max() <= tol
    np.testing.assert_allclose(
        model.trace_["loglik"], reference_fit.trace_["loglik"], rtol=10 * tol
    )


# ---------------------------------------------------------------------------------------
# The M-step and empty clusters


def sums(X, resp) -> Stats:
    """The M-step's input from full responsibilities, as the two-pass iteration has them."""
    X = np.asarray(X, dtype=np.float64)
    return stats_of(np.zeros(len(X)), resp.sum(axis=0, dtype=np.float64), resp.T @ X)


def test_m_step_is_the_weighted_mean_clipped():
    rng = np.random.default_rng(0)
    X = (rng.random((40, 12)) < 0.5).astype(np.float64)
    X[:, 0], X[:, 1] = 0.0, 1.0  # pixels never / always on: μ clipped to EPS / 1 − EPS
    resp = rng.dirichlet(np.ones(4), size=40)
    pi, mu = m_step(sums(X, resp), np.full((4, 12), 0.5))
    Nk = resp.sum(axis=0)
    np.testing.assert_allclose(pi, Nk / 40, rtol=1e-14)
    np.testing.assert_allclose(mu, np.clip((resp.T @ X) / Nk[:, None], EPS, 1 - EPS), rtol=1e-13)
    assert (mu[:, 0] == EPS).all() and (mu[:, 1] == 1 - EPS).all()


def test_m_step_with_priors_is_the_map_estimate():
    """Beta(a, a) on μ and Dirichlet(α) on π: the mode of the posterior, written out."""
    rng = np.random.default_rng(1)
    N, D, K, a, alpha = 30, 8, 3, 2.5, 4.0
    X = (rng.random((N, D)) < 0.3).astype(np.float64)
    resp = rng.dirichlet(np.ones(K), size=N)
    pi, mu = m_step(sums(X, resp), np.full((K, D), 0.5), mu_prior=a, pi_prior=alpha)
    for k in range(K):
        Nk = resp[:, k].sum()
        assert pi[k] == pytest.approx((Nk + alpha - 1) / (N + K * alpha - K), rel=1e-13)
        for d in range(D):
            on = (resp[:, k] * X[:, d]).sum()
            assert mu[k, d] == pytest.approx((on + a - 1) / (Nk + 2 * a - 2), rel=1e-12)
    assert pi.sum() == pytest.approx(1.0, rel=1e-14)


def test_m_step_map_estimate_maximises_the_objective():
    """Perturbing the MAP (π, μ) never increases the expected complete log posterior."""
    rng = np.random.default_rng(2)
    N, D, K, a, alpha = 25, 6, 3, 3.0, 2.0
    X = (rng.random((N, D)) < 0.4).astype(np.float64)
    resp = rng.dirichlet(np.ones(K), size=N)

    def q(pi, mu):
        ll = resp * (np.log(pi) + X @ np.log(mu).T + (1 - X) @ np.log1p(-mu).T)
        return ll.sum() + log_prior(pi, mu, a, alpha)

    pi, mu = m_step(sums(X, resp), np.full((K, D), 0.5), a, alpha)
    best = q(pi, mu)
    for _ in range(20):
        mu2 = np.clip(mu + rng.normal(0, 0.02, mu.shape), 0.01, 0.99)
        pi2 = np.abs(pi + rng.normal(0, 0.02, K))
        assert q(pi2 / pi2.sum(), mu2) <= best


def test_m_step_empty_cluster_keeps_its_mean_and_gets_weight_zero():
    rng = np.random.default_rng(3)
    X = (rng.random((20, 10)) < 0.5).astype(np.float64)
    resp = rng.dirichlet(np.ones(3), size=20)
    resp[:, 1] = 0.0
    resp /= resp.sum(axis=1, keepdims=True)
    mu_old = rng.uniform(0.2, 0.8, size=(3, 10))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a division by zero would warn
        pi, mu = m_step(sums(X, resp), mu_old)
    assert pi[1] == 0.0 and pi.sum() == pytest.approx(1.0)
    np.testing.assert_array_equal(mu[1], mu_old[1])
    assert np.isfinite(mu).all()
    # with a Beta prior the empty cluster's mean is the prior's mode, 1/2
    pi, mu = m_step(sums(X, resp), mu_old, mu_prior=3.0)
    assert pi[1] == 0.0
    np.testing.assert_array_equal(mu[1], 0.5)


def test_a_cluster_far_from_all_data_becomes_empty_and_stays_empty():
    """Cluster 2 starts with μ = 0.999 on images that are mostly 0: its responsibilities
    underflow to exactly 0, so after the first M-step its weight is 0 and its mean kept."""
    rng = np.random.default_rng(4)
    mu_true = np.where(rng.random((2, 200)) < 0.5, 0.05, 0.3)
    X, _ = sample_bmm(rng, 80, np.array([0.5, 0.5]), mu_true)
    X = X.astype(np.float64)
    mu0 = np.vstack([rng.uniform(0.1, 0.3, (2, 200)), np.full((1, 200), 0.999)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = fit_em(
            DenseRows(X), np.full(3, 1 / 3), mu0, VARIANTS["matmul_fused"], tol=0, max_iter=10
        )
    assert result.weights[2] == 0.0
    np.testing.assert_array_equal(result.means[2], mu0[2])
    assert np.isfinite(result.trace[["loglik", "objective"]].to_numpy()).all()
    assert (np.diff(result.trace["objective"]) >= -1e-12).all()
    model = BernoulliMixture.from_parameters(result.weights, result.means)
    proba = model.predict_proba(X)
    assert (proba[:, 2] == 0.0).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    assert 2 not in model.predict(X)


def test_more_components_than_distinct_images():
    """Four copies each of two images, K = 5: fits without error, everything finite."""
    X = np.repeat(np.array([[0, 1, 1, 0, 1, 0], [1, 0, 0, 1, 1, 1]], dtype=bool), 4, axis=0)
    for init in INIT_METHODS:
        model = BernoulliMixture(5, init_params=init, max_iter=50, random_state=0).fit(X)
        assert np.isfinite(model.means_).all() and np.isfinite(model.lower_bound_)
        assert model.weights_.sum() == pytest.approx(1.0)
        # two distinct images are explained perfectly: log-likelihood log(1/2) per image
        assert model.score(X) == pytest.approx(np.log(0.5), abs=1e-3)


def test_initialize():
    rng = np.random.default_rng(0)
    X = rng.random((50, 20)) < 0.3
    pi, mu = initialize(DenseRows(X), 4, "random", np.random.default_rng(1))
    np.testing.assert_array_equal(pi, 0.25)
    assert mu.shape == (4, 20) and mu.min() >= 0.25 and mu.max() <= 0.75
    pi, mu = initialize(DenseRows(X), 4, "k-means++", np.random.default_rng(1))
    assert mu.shape == (4, 20) and mu.min() >= 0.05 and mu.max() <= 0.95
    # each k-means++ mean is an image shrunk halfway to the mean image (before clipping)
    for row in mu:
        image = np.clip(2 * row - X.mean(axis=0), 0, 1)
        unclipped = (row > 0.05) & (row < 0.95)
        assert any(np.allclose(image[unclipped], x[unclipped]) for x in X)
    with pytest.raises(ValueError, match="init_params must be one of"):
        initialize(DenseRows(X), 4, "kmeans", rng)


# ---------------------------------------------------------------------------------------
# The real MNIST


@pytest.mark.mnist
def test_real_mnist_purity(real_mnist_dir):
    d = real_mnist_dir
    f = {role: d / file.name for role, file in MNIST.files.items()}
    train = idx.load_split(f["train_images"], f["train_labels"])
    test = idx.load_split(f["test_images"], f["test_labels"])
    X_train, y_train = storage.binarize(train[0][:10000], 0.5), train[1][:10000]
    X_test, y_test = storage.binarize(test[0], 0.5), test[1]
    model = BernoulliMixture(10, estep="matmul_fused", max_iter=50, tol=1e-4, random_state=0).fit(
        X_train
    )
    train_purity = purity(y_train, model.predict(X_train))
    test_purity = purity(y_test, model.predict(X_test))
    msg = (
        f"real MNIST, K=10, 10000 training images: test purity {test_purity:.4f}, "
        f"train purity {train_purity:.4f}, {model.n_iter_} iterations"
    )
    print(msg)
    assert test_purity >= 0.55, msg
    assert np.isfinite(model.lower_bound_) and (np.diff(model.trace_["objective"]) > -1e-9).all()


def test_no_reseeding_is_proposed_with_fewer_than_two_images_a_component():
    """With N < 2K some component is degenerate whatever EM does: proposing moves would
    only cost a pass each iteration (the default run's capped loops fit 100 images with
    K = 100)."""
    rng = np.random.default_rng(0)
    X = DenseRows(rng.random((11, 20)) < 0.5)
    pi = np.array([0.5, 0.49, 0.01, 0, 0, 0])  # four degenerate of six
    mu = rng.uniform(0.2, 0.8, (6, 20))
    worst, x_mean = np.arange(6), np.full(20, 0.5)
    _, _, move = engine.reseed(X, pi, mu, worst, np.zeros(6, dtype=bool), x_mean)
    assert not move.any()
    X2 = DenseRows(np.vstack([X.X, X.X]))
    _, _, move = engine.reseed(X2, pi, mu, worst, np.zeros(6, bool), x_mean)
    assert move.tolist() == [False, False, True, True, True, True]  # N = 22 > 2K: moves


def test_property_tests_draw_the_same_examples_on_every_run():
    """tests/conftest.py loads the derandomised "ci" Hypothesis profile (unless
    HYPOTHESIS_PROFILE says otherwise), so a property test that fails in CI fails the same
    way anywhere: the same test draws the same examples twice."""
    import os

    if os.environ.get("HYPOTHESIS_PROFILE", "ci") != "ci":
        pytest.skip(f"HYPOTHESIS_PROFILE={os.environ['HYPOTHESIS_PROFILE']}")
    drawn: list[int] = []

    @settings(max_examples=30)
    @given(st.integers())
    def draw(x):
        drawn.append(x)

    draw()
    first = drawn[:]
    drawn.clear()
    draw()
    assert drawn == first and len(set(first)) > 5


# ---------------------------------------------------------------------------------------
# One pass per iteration: the two-pass iteration's sums, a block at a time


def clusters(seed, N, D=64, K=6):
    """N images from K planted components, and a start (π, μ) a few EM iterations could
    take from there: responsibilities mostly near 0 or 1, as in a fit."""
    rng = np.random.default_rng(seed)
    mu = rng.beta(0.4, 0.4, size=(K, D))
    X, _ = sample_bmm(rng, N, rng.dirichlet(np.ones(K) * 3), mu)
    start = np.clip(mu + rng.normal(0, 0.05, mu.shape), 0.02, 0.98)
    return X, rng.dirichlet(np.ones(K) * 5), start


def two_pass(X, variant, pi, mu):
    """The textbook iteration: the E-step's full N×K responsibilities, then their sums."""
    resp, loglik = variant(variant.prepare(X), pi, mu)
    with threadpool_limits(1, user_api="blas"):
        weighted = resp.T.astype(np.float64) @ X.astype(np.float64)
    return resp.sum(axis=0, dtype=np.float64), weighted, loglik


@pytest.mark.parametrize("name", FAST)
@pytest.mark.parametrize("N", [1, 700, 3 * BLOCK_ROWS + 5])
def test_a_pass_gives_the_sums_of_the_two_pass_iteration(name, N):
    """N_k, Σ γ x and the log-likelihood of one fused pass against those of the full γ:
    within 1e-12 relative (the blocks add in another order), bit for bit where the order of
    the additions is the same (N_k of one block: rows added one after another)."""
    X, pi, mu = clusters(N, N)
    variant = VARIANTS[name]
    stats = engine.summarize(variant.rows(X), variant, pi, mu)
    Nk, weighted, loglik = two_pass(X, variant, pi, mu)
    assert stats.n == N
    np.testing.assert_allclose(stats.Nk, Nk, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(stats.weighted_sums(), weighted, rtol=1e-12, atol=1e-12)
    assert stats.loglik == pytest.approx(loglik.sum(), rel=1e-12)
    if N <= BLOCK_ROWS:
        np.testing.assert_array_equal(stats.Nk, Nk)
        if not variant.packed:  # the same product on the same block
            np.testing.assert_array_equal(stats.weighted_sums(), weighted)
    # the worst-explained rows, lowest first, as a full sort of the log-likelihoods gives them
    worst = np.lexsort((np.arange(N), loglik))[: len(pi)]
    np.testing.assert_array_equal(stats.worst_rows, worst)


@pytest.mark.parametrize("name", FAST)
def test_one_iteration_then_a_whole_fit_match_the_two_pass_iteration(name):
    """The parameters after one iteration within 1e-12 relative of the two-pass iteration's,
    and after a whole fit (40 iterations) within 1e-9."""
    X, pi0, mu0 = clusters(0, 2 * BLOCK_ROWS + 100)
    variant = VARIANTS[name]
    rows = variant.rows(X)

    def reference(iterations):
        pi, mu = pi0, mu0
        for _ in range(iterations):
            Nk, weighted, _ = two_pass(X, variant, pi, mu)
            pi, mu = Nk / Nk.sum(), np.clip(weighted / Nk[:, None], EPS, 1 - EPS)
        return pi, mu

    for iterations, rtol in ((1, 1e-12), (40, 1e-9)):
        pi, mu = reference(iterations)
        result = fit_em(rows, pi0, mu0, variant, tol=0, max_iter=iterations)
        np.testing.assert_allclose(result.weights, pi, rtol=rtol)
        np.testing.assert_allclose(result.means, mu, rtol=rtol)


@pytest.mark.parametrize("packed", [True, False], ids=["packed", "dense"])
def test_blocks_passed_one_at_a_time_add_up_to_the_pass_bit_for_bit(packed):
    """What makes a fit from a Parquet file's row groups or a dask array's chunks the
    in-memory fit: each block's sums start from zero, and the blocks' sums add in order."""
    X, pi, mu = clusters(1, 2 * BLOCK_ROWS + 321)
    variant = VARIANTS["packed_lut" if packed else "matmul_fused"]
    if variant.unavailable:
        require("numba", variant.unavailable)
    whole = engine.summarize(variant.rows(X), variant, pi, mu)
    parts = None
    for start in range(0, len(X), BLOCK_ROWS):
        block = variant.rows(X[start : start + BLOCK_ROWS])
        here = engine.summarize(block, variant, pi, mu)
        parts = here if parts is None else parts + here
    for field in ("n", "loglik", "Nk", "sums", "worst_loglik", "worst_rows"):
        np.testing.assert_array_equal(getattr(parts, field), getattr(whole, field), err_msg=field)


def test_the_worst_rows_are_the_lowest_ties_to_the_lower_row():
    values = np.array([3.0, -1.0, 2.0, -1.0, -5.0, 2.0])
    rows = np.array([10, 11, 12, 13, 14, 15])
    assert rows[lowest(values, rows, 3)].tolist() == [14, 11, 13]
    reversed_rows = rows[::-1].copy()  # the same values, other rows: the tie breaks the other way
    assert reversed_rows[lowest(values, reversed_rows, 3)].tolist() == [11, 12, 14]
    assert rows[lowest(values, rows, 10)].tolist() == [14, 11, 13, 12, 15, 10]


def test_fits_do_not_depend_on_the_number_of_threads():
    """Every fast stable variant fits the same parameters, to the bit, with one thread or two
    (BLAS and numba): each sum is over a fixed split of the rows, in a fixed order, and
    the engine's products run on one BLAS thread. Fresh processes: numba fixes its pool."""
    code = textwrap.dedent(
        """
        import sys, warnings, hashlib, numpy as np
        from bmm import BernoulliMixture, threads
        warnings.simplefilter("ignore")
        rng = np.random.default_rng(0)
        mu = rng.beta(0.4, 0.4, size=(10, 784))  # the shapes where OpenBLAS's threads differ
        X = rng.random((9000, 784)) < mu[rng.integers(0, 10, 9000)]
        digest = hashlib.sha256()
        with threads.limit_threads(int(sys.argv[1])):
            for name in sys.argv[2:]:
                m = BernoulliMixture(10, estep=name, max_iter=6, tol=0, random_state=0,
                                     init_params="k-means++", reseed_degenerate=True).fit(X)
                digest.update(m.weights_.tobytes() + m.means_.tobytes())
        print(digest.hexdigest())
        """
    )
    out = [
        subprocess.run(
            [sys.executable, "-c", code, str(n), *FAST],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for n in (1, 2)
    ]
    assert out[0] == out[1] and len(out[0].strip()) == 64


def test_a_pass_never_builds_the_n_by_k_responsibilities():
    """Memory flat in N: a pass over twice the rows allocates at most a few bytes a row more
    (its log-likelihoods), far from the N×K responsibilities (here 4·K = 256 bytes a row)."""
    name = "packed_lut" if not VARIANTS["packed_lut"].unavailable else "matmul_fused"
    variant = VARIANTS[name]
    peaks = {}
    for N in (4 * BLOCK_ROWS, 8 * BLOCK_ROWS):
        X, pi, mu = clusters(2, N, D=64, K=64)
        rows = variant.rows(X)
        engine.summarize(rows, variant, pi, mu)  # compiled, and any index built, before measuring
        tracemalloc.start()
        engine.summarize(rows, variant, pi, mu)
        peaks[N] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    per_row = (peaks[8 * BLOCK_ROWS] - peaks[4 * BLOCK_ROWS]) / (4 * BLOCK_ROWS)
    assert per_row <= 16, f"{per_row:.1f} bytes a row more for more rows: {peaks}"
