"""bmm.em: EM's guarantees (monotone objective, MAP M-step, empty clusters), the estimator's
API and argument checks, recovery of a planted mixture, and a fit of the real MNIST."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import sample_bmm
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment
from sklearn.exceptions import ConvergenceWarning, NotFittedError

from bmm import idx, storage
from bmm.datasets import MNIST
from bmm.em import (
    INIT_METHODS,
    BernoulliMixture,
    component_totals,
    fit_em,
    initialize,
    log_prior,
    m_step,
)
from bmm.estep import EPS, VARIANTS, Variant
from bmm.metrics import purity

STABLE = [name for name, v in VARIANTS.items() if v.stable]
TRACE_COLUMNS = ["iteration", "loglik", "objective", "estep_s", "mstep_s", "reseeded"]
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
        tol=0,
        max_iter=25,
        init_params=init,
        mu_prior=mu_prior,
        pi_prior=pi_prior,
        reseed_degenerate=reseed,
        random_state=seed,
    ).fit(X)
    obj = model.trace_["objective"].to_numpy()
    assert len(obj) == 26 and np.isfinite(obj).all()
    drops = np.diff(obj) + 1e-9 * np.abs(obj[1:])
    assert (drops >= 0).all(), f"objective decreased: {obj}"
    assert model.lower_bound_ == obj[-1]
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
    model = BernoulliMixture(K, n_init=3, init_params="kmeans++", random_state=0).fit(X)
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
        pytest.skip(f"{estep} unavailable: {VARIANTS[estep].unavailable}")
    X, _ = small
    model = BernoulliMixture(3, estep=estep, tol=0, max_iter=8, random_state=3).fit(X)
    tol = 1e-4 if VARIANTS[estep].dtype == np.float32 else 1e-9
    assert model.n_iter_ == reference_fit.n_iter_ == 8
    assert np.abs(model.means_ - reference_fit.means_).max() <= tol
    assert np.abs(model.weights_ - reference_fit.weights_).max() <= tol
    np.testing.assert_allclose(
        model.trace_["loglik"], reference_fit.trace_["loglik"], rtol=10 * tol
    )


# ---------------------------------------------------------------------------------------
# The M-step and empty clusters


def test_m_step_is_the_weighted_mean_clipped():
    rng = np.random.default_rng(0)
    X = (rng.random((40, 12)) < 0.5).astype(np.float64)
    X[:, 0], X[:, 1] = 0.0, 1.0  # pixels never / always on: μ clipped to EPS / 1 − EPS
    resp = rng.dirichlet(np.ones(4), size=40)
    pi, mu = m_step(X, resp, np.full((4, 12), 0.5))
    Nk = resp.sum(axis=0)
    np.testing.assert_allclose(pi, Nk / 40, rtol=1e-14)
    np.testing.assert_allclose(mu, np.clip((resp.T @ X) / Nk[:, None], EPS, 1 - EPS), rtol=1e-13)
    assert (mu[:, 0] == EPS).all() and (mu[:, 1] == 1 - EPS).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(60000, 10), (997, 100), (3, 20), (0, 4)])
def test_component_totals_are_numpys_float64_column_sums_bit_for_bit(dtype, shape):
    """The packed M-step's N_k come from a compiled loop (numpy's float32 → float64 column
    sums are 4-5× slower): it must add the rows as numpy does, so that fits are the same, to
    the bit, with or without numba, packed or dense. K > N and N = 0 included."""
    resp = np.random.default_rng(7).dirichlet(np.ones(shape[1]), size=shape[0]).astype(dtype)
    totals = component_totals(resp, compiled=True)
    assert totals.dtype == np.float64
    np.testing.assert_array_equal(totals, resp.sum(axis=0, dtype=np.float64))


def test_m_step_with_priors_is_the_map_estimate():
    """Beta(a, a) on μ and Dirichlet(α) on π: the mode of the posterior, written out."""
    rng = np.random.default_rng(1)
    N, D, K, a, alpha = 30, 8, 3, 2.5, 4.0
    X = (rng.random((N, D)) < 0.3).astype(np.float64)
    resp = rng.dirichlet(np.ones(K), size=N)
    pi, mu = m_step(X, resp, np.full((K, D), 0.5), mu_prior=a, pi_prior=alpha)
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

    pi, mu = m_step(X, resp, np.full((K, D), 0.5), a, alpha)
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
        pi, mu = m_step(X, resp, mu_old)
    assert pi[1] == 0.0 and pi.sum() == pytest.approx(1.0)
    np.testing.assert_array_equal(mu[1], mu_old[1])
    assert np.isfinite(mu).all()
    # with a Beta prior the empty cluster's mean is the prior's mode, 1/2
    pi, mu = m_step(X, resp, mu_old, mu_prior=3.0)
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
        result = fit_em(X, np.full(3, 1 / 3), mu0, VARIANTS["matmul_fused"], tol=0, max_iter=10)
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
    pi, mu = initialize(X, 4, "random", np.random.default_rng(1))
    np.testing.assert_array_equal(pi, 0.25)
    assert mu.shape == (4, 20) and mu.min() >= 0.25 and mu.max() <= 0.75
    pi, mu = initialize(X, 4, "kmeans++", np.random.default_rng(1))
    assert mu.shape == (4, 20) and mu.min() >= 0.05 and mu.max() <= 0.95
    # each kmeans++ mean is an image shrunk halfway to the mean image (before clipping)
    for row in mu:
        image = np.clip(2 * row - X.mean(axis=0), 0, 1)
        unclipped = (row > 0.05) & (row < 0.95)
        assert any(np.allclose(image[unclipped], x[unclipped]) for x in X)
    with pytest.raises(ValueError, match="init_params must be one of"):
        initialize(X, 4, "kmeans", rng)


# ---------------------------------------------------------------------------------------
# The estimator's API


@pytest.fixture(scope="module")
def fitted(small):
    X, _ = small
    return BernoulliMixture(3, random_state=0, max_iter=200, tol=1e-8).fit(X), X


def test_fit_returns_self(small):
    model = BernoulliMixture(2, random_state=0)
    assert model.fit(small[0]) is model


def test_fitted_attributes(fitted):
    model, X = fitted
    assert model.weights_.shape == (3,) and model.means_.shape == (3, 15)
    assert model.weights_.sum() == pytest.approx(1.0, rel=1e-14)
    assert model.means_.min() >= EPS and model.means_.max() <= 1 - EPS
    assert model.converged_ is True
    assert 0 < model.n_iter_ < 200
    trace = model.trace_
    assert list(trace.columns) == TRACE_COLUMNS
    assert len(trace) == model.n_iter_ + 1
    assert list(trace["iteration"]) == list(range(model.n_iter_ + 1))
    assert np.isnan(trace["mstep_s"].iloc[0])  # row 0 is the start: no M-step before it
    assert (trace["mstep_s"].iloc[1:] >= 0).all() and (trace["estep_s"] >= 0).all()
    assert model.lower_bound_ == trace["objective"].iloc[-1]
    assert model.score(X) == pytest.approx(model.lower_bound_, rel=1e-12)


def test_scoring_shapes_and_consistency(fitted):
    model, X = fitted
    N, K = len(X), 3
    proba = model.predict_proba(X)
    assert proba.shape == (N, K)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(model.predict(X), proba.argmax(axis=1))
    np.testing.assert_array_equal(model.fit_predict(X), model.predict(X))
    samples = model.score_samples(X)
    assert samples.shape == (N,) and (samples < 0).all()
    assert model.score(X) == pytest.approx(samples.mean(), rel=1e-15)
    p = K * 15 + K - 1
    assert model.n_parameters() == p
    assert model.bic(X) == pytest.approx(-2 * model.score(X) * N + p * np.log(N), rel=1e-12)
    assert model.aic(X) == pytest.approx(-2 * model.score(X) * N + 2 * p, rel=1e-12)
    # accepted inputs: bool, ints and floats holding 0/1 give the same answers
    for Xc in (X.astype(np.uint8), X.astype(np.float32), X.astype(int).tolist()):
        np.testing.assert_allclose(model.score_samples(Xc), samples, rtol=1e-15)


def test_max_iter_reached_means_not_converged_and_warns(small):
    with pytest.warns(ConvergenceWarning, match="stopped at max_iter=4 without converging"):
        model = BernoulliMixture(3, tol=0, max_iter=4, random_state=0).fit(small[0])
    assert model.converged_ is False and model.n_iter_ == 4 and len(model.trace_) == 5
    # max_iter=0 asks for the start itself (as GaussianMixture): not converged, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = BernoulliMixture(3, max_iter=0, random_state=0).fit(small[0])
    assert model.converged_ is False and model.n_iter_ == 0 and len(model.trace_) == 1


def test_a_converged_fit_does_not_warn(small):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = BernoulliMixture(3, max_iter=200, random_state=0).fit(small[0])
    assert model.converged_ is True


def test_n_init_keeps_the_best_start(small):
    X, _ = small
    best = BernoulliMixture(3, n_init=4, max_iter=5, tol=0, random_state=9).fit(X)
    assert 0 <= best.best_init_ < 4
    # rerunning each start alone (same generator stream) cannot beat the kept one
    rng = np.random.default_rng(9)
    bounds = []
    for _ in range(4):
        pi, mu = initialize(X, 3, "random", rng)
        bounds.append(fit_em(X.astype(float), pi, mu, VARIANTS["matmul_fused"], tol=0, max_iter=5))
    assert best.lower_bound_ == max(r.lower_bound for r in bounds)
    assert best.best_init_ == int(np.argmax([r.lower_bound for r in bounds]))


def test_unstable_variant_failing_raises_floating_point_error():
    """matmul_as_published on images far from both clusters: NaN, reported clearly."""
    X = np.zeros((4, 784))
    X[:, :300] = 1.0
    mu = np.full((2, 784), 0.01)
    with pytest.raises(FloatingPointError, match="not numerically stable"):
        fit_em(X, np.full(2, 0.5), mu, VARIANTS["matmul_as_published"], max_iter=2)


# ---------------------------------------------------------------------------------------
# Bad arguments


X_OK = np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0], [0, 0, 1]])


def _constraint(name, allowed, got):
    """scikit-learn's InvalidParameterError message, as a regular expression."""
    return rf"The '{name}' parameter of BernoulliMixture must be {allowed}\. Got {got} instead"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_components": 0}, _constraint("n_components", r"an int in the range \[1, inf\)", 0)),
        ({"n_components": -2}, _constraint("n_components", "an int.*", -2)),
        ({"n_components": 2.0}, _constraint("n_components", "an int.*", r"2\.0")),
        ({"n_components": "2"}, _constraint("n_components", "an int.*", "'2'")),
        ({"n_components": 5}, "n_components=5 is larger than the number of samples \\(4\\)"),
        ({"estep": "nope"}, _constraint("estep", "a str among .*'loops_ndk'.*", "'nope'")),
        ({"init_params": "kmeans"}, _constraint("init_params", "a str among .*", "'kmeans'")),
        ({"n_init": 0}, _constraint("n_init", r"an int in the range \[1, inf\)", 0)),
        ({"max_iter": -1}, _constraint("max_iter", r"an int in the range \[0, inf\)", -1)),
        ({"max_iter": 2.5}, _constraint("max_iter", "an int.*", r"2\.5")),
        ({"tol": -1e-3}, _constraint("tol", r"a float in the range \[0\.0, inf\)", "-0.001")),
        ({"tol": float("nan")}, _constraint("tol", "a float.*", "nan")),
        ({"mu_prior": 0.5}, _constraint("mu_prior", r"a float in the range \[1\.0, inf\)", "0.5")),
        ({"pi_prior": 0.0}, _constraint("pi_prior", r"a float in the range \[1\.0, inf\)", "0.0")),
        ({"binarize": "half"}, _constraint("binarize", "None or a float.*", "'half'")),
        ({"reseed_degenerate": "yes"}, _constraint("reseed_degenerate", ".*bool.*", "'yes'")),
        ({"verbose_interval": 0}, _constraint("verbose_interval", "an int.*", 0)),
        ({"random_state": "0"}, _constraint("random_state", ".*", "'0'")),
    ],
)
def test_bad_parameters(kwargs, message):
    params = {"n_components": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        BernoulliMixture(**params).fit(X_OK)


@pytest.mark.parametrize(
    ("X", "message"),
    [
        (np.array([[0, 0.5], [1, 0]]), "X must be binary"),
        (np.array([[0, 2], [1, 0]]), "X must be binary"),
        (np.array([[0, -1], [1, 0]]), "X must be binary"),
        (np.array([[0, np.nan], [1, 0]]), "Input X contains NaN"),
        (np.array([[0, np.inf], [1, 0]]), "Input X contains infinity"),
        (np.array([0, 1, 1, 0]), "Expected 2D array, got 1D array instead"),
        (np.zeros((2, 3, 4)), "Found array with dim 3"),
        (np.zeros((0, 5)), "Found array with 0 sample\\(s\\) \\(shape=\\(0, 5\\)\\)"),
        (np.zeros((5, 0)), "Found array with 0 feature\\(s\\) \\(shape=\\(5, 0\\)\\)"),
        (np.array([]), "Expected 2D array, got 1D array instead"),
    ],
)
def test_bad_data(X, message):
    with pytest.raises(ValueError, match=message):
        BernoulliMixture(1).fit(X)


def test_unavailable_variant_is_refused_by_the_estimator(monkeypatch):
    variant = Variant("numba_ndk", VARIANTS["matmul"].func, np.float64, "1", unavailable="gone")
    monkeypatch.setitem(VARIANTS, "numba_ndk", variant)
    with pytest.raises(ValueError, match="'numba_ndk' is unavailable: gone"):
        BernoulliMixture(2, estep="numba_ndk").fit(X_OK)


@pytest.mark.parametrize(
    "method", ["predict", "predict_proba", "score_samples", "score", "bic", "aic"]
)
def test_scoring_before_fit_is_refused(method):
    with pytest.raises(NotFittedError, match="not fitted yet; call fit"):
        getattr(BernoulliMixture(2), method)(X_OK)


def test_scoring_checks_the_data(fitted):
    model, X = fitted
    with pytest.raises(ValueError, match="X has 14 features, but BernoulliMixture is expecting 15"):
        model.predict(X[:, :14])
    with pytest.raises(ValueError, match="X must be binary"):
        model.score_samples(X * 2)
    with pytest.raises(ValueError, match="Expected 2D array, got 1D array"):
        model.predict_proba(X[0])


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
    only cost an E-step each iteration (the default run's capped loops fit 100 images with
    K = 100)."""
    from bmm import em

    rng = np.random.default_rng(0)
    X = rng.random((11, 20)) < 0.5
    pi = np.array([0.5, 0.49, 0.01, 0, 0, 0])  # four degenerate of six
    mu = rng.uniform(0.2, 0.8, (6, 20))
    _, _, move = em._reseed(X, pi, mu, rng.normal(size=11), np.zeros(6, dtype=bool))
    assert not move.any()
    _, _, move = em._reseed(np.vstack([X, X]), pi, mu, rng.normal(size=22), np.zeros(6, bool))
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
