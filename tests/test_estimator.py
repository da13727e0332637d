"""bmm.BernoulliMixture as a scikit-learn estimator: the estimator checks, clone, GridSearchCV,
check_is_fitted, binarize, sample, rebuilding from parameters, verbose progress, and the
remedies for degenerate components (counted, re-seeded, compared).

scikit-learn's checks feed continuous data, so they run on instances that binarise their
input (``binarize=<threshold>``, as ``BernoulliNB``). Every check passes on them: no check
is listed as an expected failure.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import sample_bmm
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import parametrize_with_checks
from sklearn.utils.validation import check_is_fitted

from bmm import BernoulliMixture, em, fit_job, params_table, remedies
from bmm.em import degenerate_components, fit_em
from bmm.estep import EPS, VARIANTS

#: Checks that cannot pass, with the reason. None: every check passes.
EXPECTED_FAILED_CHECKS: dict[str, str] = {}


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
        BernoulliMixture(binarize=0.0),
        BernoulliMixture(
            3,
            binarize=0.5,
            estep="matmul_fused_f32",
            init_params="kmeans++",
            mu_prior=2.0,
            reseed_degenerate=True,
        ),
    ],
    expected_failed_checks=lambda estimator: EXPECTED_FAILED_CHECKS,
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
    with pytest.raises(ValueError, match="X must be binary"):
        BernoulliMixture(4).fit(grey)
    with pytest.raises(ValueError, match="X must be binary"):
        b.score_samples(grey)


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
        "converged": model.converged_,
        "n_iter": model.n_iter_,
        "lower_bound": model.lower_bound_,
        "n_samples": len(X),
    }
    assert rebuilt.n_samples_fit_ == len(X)
    np.testing.assert_array_equal(rebuilt.means_, model.means_)
    np.testing.assert_array_equal(rebuilt.score_samples(X), model.score_samples(X))


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
    r = fit_em(X, pi, mu, VARIANTS["matmul_fused"], tol=1e-8, max_iter=50)
    assert degenerate_components(r.weights, len(X)).tolist() == [False, False, True]
    assert r.weights[2] == pytest.approx(1 / 300, rel=0.05)  # one image


def test_reseeding_frees_a_collapsed_component_without_lowering_the_objective(collapsed_start):
    X, pi, mu = collapsed_start
    plain = fit_em(X, pi, mu, VARIANTS["matmul_fused"], tol=1e-8, max_iter=50)
    r = fit_em(X, pi, mu, VARIANTS["matmul_fused"], tol=1e-8, max_iter=50, reseed_degenerate=True)
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

    reseed = em._reseed
    monkeypatch.setattr(em, "_reseed", spy)
    # the fit after convergence: two clusters merged, one collapsed component, nothing to gain
    two = X[:200]
    mu2 = np.clip(np.vstack([two[:100].mean(0), two[100:].mean(0), two[0]]), EPS, 1 - EPS)
    pi2 = np.array([0.5, 0.5 - 1 / 200, 1 / 200])
    plain = fit_em(two, pi2, mu2, VARIANTS["matmul_fused"], tol=0, max_iter=5)
    r = fit_em(two, pi2, mu2, VARIANTS["matmul_fused"], tol=0, max_iter=5, reseed_degenerate=True)
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
