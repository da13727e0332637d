"""bmm.BernoulliMixture as a scikit-learn estimator: the estimator checks, clone, GridSearchCV,
check_is_fitted, binarize, sample, rebuilding from parameters, verbose progress, and the
remedies for degenerate components (counted, re-seeded, compared).

scikit-learn's checks feed continuous data; the estimator binarises its input by default
(``binarize=0.0``, as ``BernoulliNB``), so they run on the default instance as on others. Every
check passes on the default instance; one is an expected failure on the k-means++ instance,
with its reason (EXPECTED_FAILED_CHECKS).
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import sample_bmm
from scipy.special import logsumexp
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import parametrize_with_checks
from sklearn.utils.validation import check_is_fitted

from bmm import BernoulliMixture, auto, engine, fit_job, idx, params_table, remedies, storage
from bmm.bits import BitMatrix
from bmm.datasets import MNIST
from bmm.engine import TRACE_COLUMNS, degenerate_components, fit_em, initialize
from bmm.estep import EPS, VARIANTS, Variant
from bmm.rows import DenseRows

#: Checks that cannot pass, with the reason, by instance (its repr). The default: none.
EXPECTED_FAILED_CHECKS: dict[str, dict[str, str]] = {
    "k-means++": {
        "check_sample_weight_equivalence_on_dense_data": (
            "k-means++ draws its start from the rows, and re-seeding moves components to rows: "
            "a row repeated and a row weighted give the same distribution of starts and moves, "
            "not the same draws (the random start's fits are equivalent, tested)"
        )
    }
}


@pytest.fixture(scope="module")
def small():
    """A small 3-component problem, as bool images and their labels."""
    rng = np.random.default_rng(1234)
    mu = np.where(rng.random((3, 15)) < 0.5, 0.15, 0.85)
    return sample_bmm(rng, 60, np.array([0.5, 0.3, 0.2]), mu)


@pytest.fixture(scope="module")
def planted():
    """2000 images of 60 pixels from 4 well-separated components."""
    rng = np.random.default_rng(11)
    mu = np.where(rng.random((4, 60)) < 0.5, 0.1, 0.9)
    X, z = sample_bmm(rng, 2000, np.array([0.4, 0.3, 0.2, 0.1]), mu)
    return X, z, mu


# ---------------------------------------------------------------------------------------
# scikit-learn's estimator checks


@parametrize_with_checks(
    [
        BernoulliMixture(),
        BernoulliMixture(
            3,
            binarize=0.5,
            estep="matmul_fused_f32",
            init_params="k-means++",
            mu_prior=2.0,
            reseed_degenerate=True,
        ),
    ],
    expected_failed_checks=lambda estimator: next(
        (checks for key, checks in EXPECTED_FAILED_CHECKS.items() if key in repr(estimator)), {}
    ),
)
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        # the checks cap max_iter; a fit that stops there warns, as GaussianMixture does
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


# ---------------------------------------------------------------------------------------
# clone, repr, GridSearchCV, pipelines


def test_clone_copies_every_parameter_and_no_fitted_state(planted):
    X, _, _ = planted
    model = BernoulliMixture(
        4, estep="matmul_fused_f32", mu_prior=1.5, reseed_degenerate=True, random_state=3
    ).fit(X)
    copy = clone(model)  # clone raises if the copy's get_params() differ from the model's
    assert not hasattr(copy, "means_")
    with pytest.raises(NotFittedError):
        check_is_fitted(copy)
    check_is_fitted(model)


def test_repr_is_scikit_learns_showing_only_changed_parameters():
    assert repr(BernoulliMixture()) == "BernoulliMixture()"
    assert (
        repr(BernoulliMixture(10, mu_prior=2.0))
        == "BernoulliMixture(mu_prior=2.0, n_components=10)"
    )


def test_grid_search_picks_n_components_by_held_out_log_likelihood(planted):
    X, _, _ = planted
    cv = KFold(3, shuffle=True, random_state=0)
    search = GridSearchCV(
        BernoulliMixture(n_init=2, random_state=0), {"n_components": [1, 2, 4]}, cv=cv
    ).fit(X)
    assert search.best_params_ == {"n_components": 4}
    # the scores it ranked are the held-out log-likelihood per image of each fold's fit
    for i, K in enumerate(search.cv_results_["param_n_components"]):
        held_out = [
            BernoulliMixture(K, n_init=2, random_state=0).fit(X[train]).score(X[test])
            for train, test in cv.split(X)
        ]
        assert search.cv_results_["mean_test_score"][i] == pytest.approx(np.mean(held_out))
    assert search.best_estimator_.n_components == 4


def test_the_readmes_grid_search_runs(planted):
    X, _, _ = planted
    search = GridSearchCV(BernoulliMixture(random_state=0), {"n_components": [5, 10]}).fit(X)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


def test_in_a_pipeline_with_dataframe_input(planted):
    X, _, _ = planted
    frame = pd.DataFrame(X.astype(float) * 255, columns=[f"px{i}" for i in range(X.shape[1])])
    pipe = make_pipeline(
        FunctionTransformer(lambda d: d / 255), BernoulliMixture(4, binarize=0.5, random_state=0)
    ).fit(frame)
    model = pipe[-1]
    assert model.n_features_in_ == 60 and list(model.feature_names_in_) == list(frame.columns)
    direct = BernoulliMixture(4, random_state=0).fit(X)
    np.testing.assert_array_equal(model.means_, direct.means_)
    assert pipe.score(frame) == pytest.approx(direct.score(X), rel=1e-12)


# ---------------------------------------------------------------------------------------
# binarize


def test_binarize_reads_values_above_the_threshold_as_one(planted):
    X, _, _ = planted
    rng = np.random.default_rng(0)
    # continuous data whose binarisation at 0.3 is X
    grey = np.where(X, rng.uniform(0.31, 1.0, X.shape), rng.uniform(-1.0, 0.3, X.shape))
    a = BernoulliMixture(4, binarize=0.3, random_state=0).fit(grey)
    b = BernoulliMixture(4, random_state=0).fit(X)
    np.testing.assert_array_equal(a.means_, b.means_)
    np.testing.assert_array_equal(a.predict_proba(grey), b.predict_proba(X))
    # by default, as BernoulliNB: any value above 0 is 1
    c = BernoulliMixture(4, random_state=0).fit(np.where(X, grey + 2.0, 0.0))
    np.testing.assert_array_equal(c.means_, b.means_)
    strict = BernoulliMixture(4, binarize=None)
    with pytest.raises(ValueError, match="X must be binary"):
        strict.fit(grey)
    with pytest.raises(ValueError, match="X must be binary"):
        BernoulliMixture.from_parameters(b.weights_, b.means_, binarize=None).score_samples(grey)


# ---------------------------------------------------------------------------------------
# n_features_in_, sample, from_parameters


def test_n_features_in_and_n_samples_fit(planted):
    X, _, _ = planted
    model = BernoulliMixture(2, random_state=0).fit(X[:500])
    assert model.n_features_in_ == 60 and model.n_samples_fit_ == 500
    assert not hasattr(model, "feature_names_in_")


def test_sample_draws_binary_images_from_each_component(planted):
    X, _, _ = planted
    model = BernoulliMixture(4, random_state=0).fit(X)
    S, y = model.sample(40000)
    assert S.shape == (40000, 60) and S.dtype == bool and y.shape == (40000,)
    assert (np.diff(y) >= 0).all()  # grouped by component, as GaussianMixture.sample
    counts = np.bincount(y, minlength=4) / 40000
    np.testing.assert_allclose(counts, model.weights_, atol=0.01)
    for k in range(4):
        np.testing.assert_allclose(S[y == k].mean(axis=0), model.means_[k], atol=0.05)
    # fixed by random_state: the same draw each time
    S2, y2 = model.sample(40000)
    np.testing.assert_array_equal(S, S2)
    np.testing.assert_array_equal(y, y2)
    assert not np.array_equal(BernoulliMixture(4, random_state=1).fit(X).sample(100)[0], S[:100])


@pytest.mark.parametrize("n", [0, -1, 2.5, True])
def test_sample_refuses_a_bad_count(planted, n):
    model = BernoulliMixture(2, random_state=0).fit(planted[0][:100])
    with pytest.raises(ValueError, match="n_samples must be an integer ≥ 1"):
        model.sample(n)


def test_sample_before_fit_is_refused():
    with pytest.raises(NotFittedError, match="not fitted yet"):
        BernoulliMixture(2).sample(3)


def test_from_parameters_scores_as_the_fitted_model(planted):
    X, _, _ = planted
    fitted = BernoulliMixture(4, mu_prior=1.5, random_state=0).fit(X)
    rebuilt = BernoulliMixture.from_parameters(
        fitted.weights_, fitted.means_, n_samples=len(X), mu_prior=1.5, random_state=0
    )
    check_is_fitted(rebuilt)
    assert rebuilt.get_params() == fitted.get_params()
    assert rebuilt.n_features_in_ == 60 and rebuilt.n_samples_fit_ == len(X)
    np.testing.assert_array_equal(rebuilt.score_samples(X), fitted.score_samples(X))
    np.testing.assert_array_equal(rebuilt.predict(X), fitted.predict(X))
    np.testing.assert_array_equal(rebuilt.sample(50)[0], fitted.sample(50)[0])
    assert rebuilt.bic(X) == fitted.bic(X)
    with pytest.raises(ValueError, match="X has 59 features, but BernoulliMixture is expecting 60"):
        rebuilt.predict(X[:, :59])


@pytest.mark.parametrize(
    ("weights", "means", "kwargs", "message"),
    [
        ([0.5, 0.5], np.full((3, 4), 0.5), {}, "weights must be \\(K,\\) and means \\(K, D\\)"),
        ([[1.0]], np.full((1, 4), 0.5), {}, "weights must be \\(K,\\)"),
        ([0.5, 0.6], np.full((2, 4), 0.5), {}, "weights must sum to 1"),
        ([1.5, -0.5], np.full((2, 4), 0.5), {}, "weights must be finite and ≥ 0"),
        ([0.5, 0.5], np.full((2, 4), 1.5), {}, "means must lie in \\[0, 1\\]"),
        ([0.5, 0.5], np.full((2, 4), np.nan), {}, "means must lie in \\[0, 1\\]"),
        ([0.5, 0.5], np.full((2, 4), 0.5), {"n_components": 3}, "n_components=3 but 2 weights"),
        ([0.5, 0.5], np.full((2, 4), 0.5), {"mu_prior": 0.0}, "'mu_prior' parameter"),
    ],
)
def test_from_parameters_refuses_what_is_not_a_mixture(weights, means, kwargs, message):
    with pytest.raises(ValueError, match=message):
        BernoulliMixture.from_parameters(weights, means, **kwargs)


def fit_settings(**overrides):
    """A pipeline fit's settings (fit_job.FIT_KEYS): K = 4 on all images, as given."""
    settings = {
        "variant": "matmul_fused",
        "K": 4,
        "seed": 0,
        "n_train": None,
        "max_iter": 50,
        "tol": 1e-3,
        "init": "random",
        "n_init": 1,
        "mu_prior": 1.0,
        "pi_prior": 1.0,
        "reseed_degenerate": False,
    }
    return settings | overrides


def test_model_from_params_round_trips_a_params_table(tmp_path, planted):
    X, y, _ = planted
    settings = fit_settings(variant="matmul_fused_f32", seed=2, reseed_degenerate=True)
    model = fit_job.fit(X, y % 10, settings)
    params_table.write_params(tmp_path / "params.parquet", model, {"config": settings})
    rebuilt, meta = params_table.model_from_params(tmp_path / "params.parquet")
    quiet = {"verbose": 0, "verbose_interval": 10}  # how a fit reports is no parameter of it
    assert rebuilt.get_params() == {**model.get_params(), **quiet}
    assert meta["fit"] == {
        "estep": "matmul_fused_f32",
        "converged": model.converged_,
        "n_iter": model.n_iter_,
        "lower_bound": model.lower_bound_,
        "n_samples": len(X),
    }
    assert rebuilt.n_samples_fit_ == len(X) and rebuilt.estep_ == model.estep_
    np.testing.assert_array_equal(rebuilt.means_, model.means_)
    np.testing.assert_array_equal(rebuilt.score_samples(X), model.score_samples(X))


def test_an_auto_fit_records_its_choice_and_the_rebuilt_model_keeps_it(
    tmp_path, planted, monkeypatch
):
    """The pipeline's auto fits: the variant auto chose is in the params table's metadata,
    and the model rebuilt from it scores with that variant, without choosing again."""
    X, y, _ = planted
    settings = fit_settings(variant="auto", seed=0)
    model = fit_job.fit(X, y % 10, settings)
    assert model.estep_ in auto.CANDIDATES
    params_table.write_params(tmp_path / "params.parquet", model, {"config": settings})
    monkeypatch.setattr(auto, "choose", lambda *_: pytest.fail("auto chose again"))
    rebuilt, meta = params_table.model_from_params(tmp_path / "params.parquet")
    assert rebuilt.estep == "auto" and meta["fit"]["estep"] == rebuilt.estep_ == model.estep_
    np.testing.assert_array_equal(rebuilt.score_samples(X), model.score_samples(X))


# ---------------------------------------------------------------------------------------
# Fitted attributes, scoring, warnings, bad arguments


@pytest.fixture(scope="module")
def fitted(small):
    X, _ = small
    # float64 (matmul_fused): the fit's objective is then the scoring's to 1e-12
    model = BernoulliMixture(3, estep="matmul_fused", random_state=0, max_iter=200, tol=1e-8)
    return model.fit(X), X


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
    assert np.isnan(trace["update_s"].iloc[0])  # row 0 is the start: no M-step before it
    assert trace["update_s"].iloc[1:].notna().all() and trace["pass_s"].notna().all()
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
    # log p(x) = log Σ_k π_k Π_d μ_kd^x_d (1 − μ_kd)^(1 − x_d), written out here
    Xf, mu = X.astype(np.float64), model.means_
    joint = Xf @ np.log(mu).T + (1 - Xf) @ np.log1p(-mu).T + np.log(model.weights_)
    assert samples.shape == (N,)
    np.testing.assert_allclose(samples, logsumexp(joint, axis=1), rtol=1e-12)
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
    rows = VARIANTS["packed_lut"].rows(X)  # what "auto" chooses on such small data
    assert best.estep_ == auto.available()[0] == "packed_lut"
    for _ in range(4):
        pi, mu = initialize(rows, 3, "random", rng)
        bounds.append(fit_em(rows, pi, mu, VARIANTS["packed_lut"], tol=0, max_iter=5))
    assert best.lower_bound_ == max(r.lower_bound for r in bounds)
    assert best.best_init_ == int(np.argmax([r.lower_bound for r in bounds]))


def test_unstable_variant_failing_raises_floating_point_error():
    """matmul_as_published on images far from both clusters: NaN, reported clearly."""
    X = np.zeros((4, 784))
    X[:, :300] = 1.0
    mu = np.full((2, 784), 0.01)
    with pytest.raises(FloatingPointError, match="not numerically stable"):
        fit_em(DenseRows(X), np.full(2, 0.5), mu, VARIANTS["matmul_as_published"], max_iter=2)


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


@pytest.mark.parametrize(
    "X", [np.array([[0, 0.5], [1, 0]]), np.array([[0, 2], [1, 0]]), np.array([[0, -1], [1, 0]])]
)
def test_without_binarize_x_must_be_binary(X):
    with pytest.raises(ValueError, match="X must be binary: every entry 0 or 1"):
        BernoulliMixture(1, binarize=None).fit(X)


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
    with pytest.raises(ValueError, match="Expected 2D array, got 1D array"):
        model.predict_proba(X[0])


# ---------------------------------------------------------------------------------------
# verbose progress

LINE = re.compile(
    r"  iteration (\d+): log-likelihood per sample (-?\d+\.\d{4}), "
    r"objective change ([+-]\d\.\d{3}e[+-]\d+), (\d+\.\d{3}) s/iteration"
)


def test_verbose_2_logs_every_iteration_to_the_given_log(planted, capsys):
    X, _, _ = planted
    lines = []
    model = BernoulliMixture(4, verbose=2, verbose_interval=1, random_state=0)
    model.fit(X, log=lines.append)
    assert capsys.readouterr().out == ""  # nothing printed: it all went to the log
    assert lines[0] == "Initialization 0"
    assert lines[1].startswith("  start: log-likelihood per sample")
    iterations = [LINE.fullmatch(line) for line in lines[2:-1]]
    assert all(iterations), lines
    trace = model.trace_
    assert [int(m[1]) for m in iterations] == list(range(1, model.n_iter_ + 1))
    for m, (_, row) in zip(iterations, trace.iloc[1:].iterrows(), strict=True):
        assert float(m[2]) == pytest.approx(row["loglik"], abs=1e-4)
    changes = np.diff(trace["objective"])
    np.testing.assert_allclose([float(m[3]) for m in iterations], changes, rtol=1e-3)
    assert re.fullmatch(r"Initialization 0 converged after \d+ iterations, .*", lines[-1])


def test_verbose_interval_and_levels(planted, capsys):
    X, _, _ = planted
    lines = []
    model = BernoulliMixture(4, tol=0, max_iter=9, verbose=2, verbose_interval=4, random_state=0)
    with pytest.warns(ConvergenceWarning):
        model.fit(X, log=lines.append)
    assert [int(m[1]) for m in map(LINE.fullmatch, lines) if m] == [4, 8]
    lines.clear()
    BernoulliMixture(4, n_init=2, verbose=1, random_state=0).fit(X, log=lines.append)
    assert [line.split(" ")[:2] for line in lines] == [["Initialization", "0"]] * 2 + [
        ["Initialization", "1"]
    ] * 2
    BernoulliMixture(4, verbose=0, random_state=0).fit(X, log=lines.append)
    assert len(lines) == 4
    # without a log, the lines are printed (as scikit-learn's estimators do)
    BernoulliMixture(4, verbose=2, verbose_interval=1, random_state=0).fit(X)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Initialization 0" and LINE.fullmatch(out[2])


def test_pipeline_fit_logs_progress_and_warnings(planted):
    X, y, _ = planted
    settings = fit_settings(max_iter=3, tol=0.0)
    lines = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the warning goes to the log, not to the caller
        model = fit_job.fit(X, y % 10, settings, log=lines.append)
    assert [int(m[1]) for m in map(LINE.fullmatch, lines) if m] == [1, 2, 3]
    assert lines[-1].startswith("ConvergenceWarning: EM stopped at max_iter=3")
    assert model.n_iter_ == 3


# ---------------------------------------------------------------------------------------
# Degenerate components and the remedies


def test_degenerate_means_fewer_than_two_effective_images():
    weights = np.array([0.0, 1, 1.99, 2, 500]) / 1000
    assert degenerate_components(weights, 1000).tolist() == [True, True, True, False, False]
    assert degenerate_components(weights, 1000, min_images=1.5).tolist() == [
        True,
        True,
        False,
        False,
        False,
    ]


@pytest.fixture(scope="module")
def collapsed_start():
    """Three clusters of 100 images; a start with components on clusters A and B and the third
    collapsed onto one image of A (μ that image, clipped): maximum likelihood keeps it there."""
    rng = np.random.default_rng(8)
    protos = np.where(rng.random((3, 80)) < 0.5, 0.05, 0.95)
    X = np.concatenate([rng.random((100, 80)) < p for p in protos]).astype(np.float64)
    mu = np.vstack([X[:100].mean(0), X[100:200].mean(0), X[0]])
    mu = np.clip(mu, EPS, 1 - EPS)
    pi = np.array([0.5, 0.5 - 1 / 300, 1 / 300])
    return X, pi, mu


def test_maximum_likelihood_keeps_a_collapsed_component(collapsed_start):
    X, pi, mu = collapsed_start
    r = fit_em(DenseRows(X), pi, mu, VARIANTS["matmul_fused"], tol=1e-8, max_iter=50)
    assert degenerate_components(r.weights, len(X)).tolist() == [False, False, True]
    assert r.weights[2] == pytest.approx(1 / 300, rel=0.05)  # one image


def test_reseeding_frees_a_collapsed_component_without_lowering_the_objective(collapsed_start):
    X, pi, mu = collapsed_start
    rows, fused = DenseRows(X), VARIANTS["matmul_fused"]
    plain = fit_em(rows, pi, mu, fused, tol=1e-8, max_iter=50)
    r = fit_em(rows, pi, mu, fused, tol=1e-8, max_iter=50, reseed_degenerate=True)
    assert not degenerate_components(r.weights, len(X)).any()
    assert r.trace["reseeded"].sum() >= 1 and r.trace["reseeded"].iloc[1] == 1
    assert (np.diff(r.trace["objective"]) >= 0).all()
    assert r.converged and r.trace["reseeded"].iloc[-1] == 0
    # the three clusters found: every cluster's images share one component
    resp, _ = VARIANTS["matmul_fused"](X, r.weights, r.means)
    assert sorted(len(set(resp[i : i + 100].argmax(1))) for i in (0, 100, 200)) == [1, 1, 1]
    # and it escaped the local optimum maximum likelihood stayed in
    assert r.lower_bound > plain.lower_bound + 1.0


def test_a_reseed_that_would_lower_the_objective_is_refused(collapsed_start, monkeypatch):
    """Late in a fit a collapsed component is worth more to the likelihood than a fresh one:
    moving it would lower the objective, so the move is refused and the fit is plain EM's."""
    X, _, _ = collapsed_start
    proposals = []

    def spy(*args):
        out = reseed(*args)
        proposals.append(out[2].nonzero()[0].tolist())
        return out

    reseed = engine.reseed
    monkeypatch.setattr(engine, "reseed", spy)
    # the fit after convergence: two clusters merged, one collapsed component, nothing to gain
    two = X[:200]
    mu2 = np.clip(np.vstack([two[:100].mean(0), two[100:].mean(0), two[0]]), EPS, 1 - EPS)
    pi2 = np.array([0.5, 0.5 - 1 / 200, 1 / 200])
    rows, fused = DenseRows(two), VARIANTS["matmul_fused"]
    plain = fit_em(rows, pi2, mu2, fused, tol=0, max_iter=5)
    r = fit_em(rows, pi2, mu2, fused, tol=0, max_iter=5, reseed_degenerate=True)
    assert r.trace["reseeded"].sum() == 0
    # proposed once, refused, and not proposed again
    assert proposals == [[2], [], [], [], []]
    np.testing.assert_array_equal(r.means, plain.means)
    np.testing.assert_array_equal(r.trace["objective"], plain.trace["objective"])
    assert degenerate_components(r.weights, len(two)).tolist() == [False, False, True]


def test_remedies_cli_prints_a_markdown_table(synthetic_mnist, capsys):
    args = ["--mnist", str(synthetic_mnist.dir), "--K", "3", "12", "--mu-prior", "2"]
    table = remedies.main([*args, "--max-iter", "15", "--estep", "matmul_fused"])
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0].startswith("| K | remedy | train log-lik/image | test log-lik/image |")
    assert len(out) == 2 + 2 * 3
    assert [line.split(" | ")[1] for line in out[2:]] == ["ml", "beta(2)", "reseed"] * 2
    assert list(table["remedy"]) == ["ml", "beta(2)", "reseed"] * 2
    assert (table["objective_drops"] == 0).all()
    # the printed table is the returned one, each figure to the digits it prints
    labels = out[0].strip("| ").split(" | ")
    rows = table.sort_values("K", kind="stable").iterrows()
    for line, (_, row) in zip(out[2:], rows, strict=True):
        cells = dict(zip(labels, line.strip("| ").split(" | "), strict=True))
        assert int(cells["K"]) == row["K"] and int(cells["iterations"]) == row["n_iter"], line
        for label, key, digits in (
            ("train log-lik/image", "train_loglik", 3),
            ("test log-lik/image", "test_loglik", 3),
            ("test purity", "test_purity", 4),
        ):
            assert float(cells[label]) == pytest.approx(row[key], abs=0.51 * 10**-digits), line


# ---------------------------------------------------------------------------------------
# sample_weight


WEIGHTED = [
    n for n in ("packed_lut", "matmul_fused", "matmul_fused_f32") if not VARIANTS[n].unavailable
]


@pytest.mark.parametrize("estep", WEIGHTED)
def test_integer_weights_fit_as_repeated_rows_and_zero_weights_as_dropped_ones(planted, estep):
    """Within 1e-9 relative after a whole fit (50 iterations): the sums differ only in the
    order of their additions. The random start draws nothing from the data, so both fits
    start alike."""
    X, _, _ = planted
    X = X[:700]
    w = np.random.default_rng(4).integers(0, 4, len(X))  # 0, 1, 2 or 3 copies
    settings = dict(estep=estep, max_iter=50, tol=0, random_state=0)
    weighted = BernoulliMixture(4, **settings).fit(X, sample_weight=w)
    repeated = BernoulliMixture(4, **settings).fit(np.repeat(X, w, axis=0))
    np.testing.assert_allclose(weighted.weights_, repeated.weights_, rtol=1e-9)
    np.testing.assert_allclose(weighted.means_, repeated.means_, rtol=1e-9)
    assert weighted.lower_bound_ == pytest.approx(repeated.lower_bound_, rel=1e-9)
    ones = BernoulliMixture(4, **settings).fit(X, sample_weight=np.ones(len(X)))
    plain = BernoulliMixture(4, **settings).fit(X)
    np.testing.assert_array_equal(ones.means_, plain.means_)  # weight 1: the same bits


def test_weights_reach_the_k_means_plus_plus_start_and_the_reseeding(planted):
    """A zero-weight image is never a start nor a re-seeded mean: it is not there."""
    X, _, _ = planted
    w = np.zeros(len(X))
    w[:50] = 1.0  # only the first 50 images count
    model = BernoulliMixture(
        8, init_params="k-means++", reseed_degenerate=True, max_iter=20, random_state=0
    ).fit(X, sample_weight=w)
    drop = BernoulliMixture(
        8, init_params="k-means++", reseed_degenerate=True, max_iter=20, random_state=0
    ).fit(X[:50])
    assert model.score(X[:50]) == pytest.approx(drop.score(X[:50]), abs=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = VARIANTS["matmul_fused"].rows(X)
        _, mu = initialize(rows, 8, "k-means++", np.random.default_rng(0), w)
    counted = X[:50].mean(axis=0)
    for row in mu:  # each start mean is a counted image shrunk halfway to the counted mean
        image, unclipped = 2 * row - counted, (row > 0.05) & (row < 0.95)
        assert any(np.allclose(image[unclipped], x[unclipped]) for x in X[:50].astype(float))


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        (np.ones(3), "sample_weight.shape == \\(3,\\), expected \\(2000,\\)"),
        (-np.ones(2000), "sample_weight must be finite and ≥ 0"),
        (np.full(2000, np.nan), "Input sample_weight contains NaN"),
        (np.zeros(2000), "Sample weights must contain at least one non-zero number"),
    ],
)
def test_bad_sample_weights_are_refused(planted, weights, message):
    with pytest.raises(ValueError, match=message):
        BernoulliMixture(2).fit(planted[0], sample_weight=weights)


# ---------------------------------------------------------------------------------------
# partial_fit: stepwise EM


def test_partial_fit_keeps_a_running_average_of_the_sums(planted):
    """Three batches against the stepwise-EM recursion written out with the float64 scoring
    E-step: s ← (1 − ρ_t) s + ρ_t s(batch), ρ_t = (t + t₀)^(−κ), parameters from s."""
    X, _, _ = planted
    batches = [X[:300], X[300:500], X[500:1100]]
    model = BernoulliMixture(
        4, estep="matmul_fused", learning_decay=0.8, learning_offset=1.5, random_state=0
    )
    for batch in batches:
        model.partial_fit(batch)
    assert model.n_batches_seen_ == 3 and model.n_samples_fit_ == 1100
    pi, mu = initialize(
        VARIANTS["matmul_fused"].rows(batches[0]), 4, "random", np.random.default_rng(0)
    )
    for t, batch in enumerate(batches):
        resp, _ = VARIANTS["matmul_fused"](batch.astype(np.float64), pi, mu)
        s_N, s_S = resp.mean(axis=0), resp.T @ batch / len(batch)
        if t == 0:
            Nk, S = s_N, s_S
        else:
            rho = (t + 1.5) ** -0.8
            Nk, S = (1 - rho) * Nk + rho * s_N, (1 - rho) * S + rho * s_S
        pi, mu = Nk / Nk.sum(), np.clip(S / Nk[:, None], EPS, 1 - EPS)
    np.testing.assert_allclose(model.weights_, pi, rtol=1e-10)
    np.testing.assert_allclose(model.means_, mu, rtol=1e-10)


def test_partial_fit_after_fit_starts_from_the_fitted_model(planted):
    """The first batch after a fit: its own sums at the fitted parameters, nothing averaged."""
    X, _, _ = planted
    model = BernoulliMixture(4, estep="matmul_fused", random_state=0).fit(X[:1000])
    pi0, mu0 = model.weights_.copy(), model.means_.copy()
    batch = X[1000:1500]
    model.partial_fit(batch)
    assert model.n_batches_seen_ == 1
    resp, _ = VARIANTS["matmul_fused"](batch.astype(np.float64), pi0, mu0)
    Nk, S = resp.sum(axis=0), resp.T @ batch
    np.testing.assert_allclose(model.weights_, Nk / Nk.sum(), rtol=1e-12)
    np.testing.assert_allclose(model.means_, np.clip(S / Nk[:, None], EPS, 1 - EPS), rtol=1e-12)
    with pytest.raises(ValueError, match="X has 59 features, but BernoulliMixture is expecting 60"):
        model.partial_fit(X[:10, :59])


def test_partial_fit_with_weights_and_a_first_batch_too_small():
    X = np.random.default_rng(0).random((40, 12)) < 0.4
    with pytest.raises(ValueError, match="larger than the first batch \\(3 samples\\)"):
        BernoulliMixture(4).partial_fit(X[:3])
    w = np.random.default_rng(1).integers(0, 3, 40)
    a = BernoulliMixture(3, estep="matmul_fused", random_state=0).partial_fit(X, sample_weight=w)
    b = BernoulliMixture(3, estep="matmul_fused", random_state=0).partial_fit(np.repeat(X, w, 0))
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-12)


@pytest.mark.mnist
def test_two_online_passes_come_within_a_nat_of_the_batch_fit(real_mnist_dir):
    """MNIST, K = 10, k-means++ starts, batches of 1000: after two passes the held-out
    log-likelihood per image is within 1 nat of the batch fit's (measured: 0.07)."""
    d = real_mnist_dir
    f = {role: d / file.name for role, file in MNIST.files.items()}
    train = idx.load_split(f["train_images"], f["train_labels"])
    test = idx.load_split(f["test_images"], f["test_labels"])
    X, X_test = storage.binarize(train[0], 0.5), storage.binarize(test[0], 0.5)
    settings = dict(init_params="k-means++", random_state=0)
    batch = BernoulliMixture(10, **settings).fit(X)
    online = BernoulliMixture(10, **settings)
    for _ in range(2):
        for start in range(0, len(X), 1000):
            online.partial_fit(X[start : start + 1000])
    gap = batch.score(X_test) - online.score(X_test)
    assert gap <= 1.0, gap


def test_packed_samples_are_the_samples_bit_for_bit(planted):
    X, _, _ = planted
    model = BernoulliMixture(4, random_state=3).fit(X)
    dense, y = model.sample(9000)
    packed, y2 = model.sample(9000, packed=True)
    assert isinstance(packed, BitMatrix) and packed.shape == (9000, 60)
    np.testing.assert_array_equal(packed.unpack(bool), dense)
    np.testing.assert_array_equal(y2, y)


def test_the_docstring_examples_run():
    import doctest

    from bmm import estimator

    result = doctest.testmod(estimator, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 5 and result.failed == 0
