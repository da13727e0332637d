"""bmm.metrics: purity and majority labels by hand, NMI/ARI wiring, evaluate(), and how
degenerate components are counted and marked in the cluster-mean figures."""

from __future__ import annotations

import matplotlib.colors
import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from bmm import BernoulliMixture, fit_job
from bmm.metrics import cluster_labels, clustering_scores, evaluate, purity
from bmm.report import figures


@pytest.mark.parametrize(
    ("labels_true", "labels_pred", "expected"),
    [
        ([0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 2, 2], 1.0),  # perfect
        ([0, 0, 1, 1, 2, 2], [5, 5, 3, 3, 9, 9], 1.0),  # perfect, clusters renamed
        ([0, 0, 0, 1, 1, 2], [0, 0, 0, 0, 0, 0], 3 / 6),  # one cluster: majority fraction
        ([0, 1, 2, 3], [0, 1, 2, 3], 1.0),  # singletons are always pure
        # cluster 0 holds labels {0, 0, 1} (2 right), cluster 1 holds {1, 2, 2, 2} (3 right)
        ([0, 0, 1, 1, 2, 2, 2], [0, 0, 0, 1, 1, 1, 1], 5 / 7),
        # two clusters both dominated by label 7: purity counts each cluster's majority
        ([7, 7, 1, 7, 7, 2], [0, 0, 0, 1, 1, 1], 4 / 6),
    ],
)
def test_purity_by_hand(labels_true, labels_pred, expected):
    assert purity(labels_true, labels_pred) == pytest.approx(expected, rel=1e-15)
    assert isinstance(purity(labels_true, labels_pred), float)


def test_purity_is_not_symmetric():
    """Purity credits a cluster with its majority class; swapping the roles changes it."""
    truth, pred = [0, 0, 1, 1], [0, 0, 0, 0]
    assert purity(truth, pred) == 0.5
    assert purity(pred, truth) == 1.0


def test_cluster_labels_majority():
    truth = np.array([3, 3, 5, 5, 5, 1, 2, 2, 9])
    pred = np.array([0, 0, 0, 4, 4, 4, 7, 7, 7])
    # cluster 0: {3, 3, 5} → 3; cluster 4: {5, 5, 1} → 5; cluster 7: {2, 2, 9} → 2
    assert cluster_labels(truth, pred) == {0: 3, 4: 5, 7: 2}
    # a tie goes to the smallest label
    assert cluster_labels([4, 2, 8, 8, 2], [1, 1, 1, 1, 1]) == {1: 2}
    labels = cluster_labels(truth, pred)
    assert all(type(k) is int and type(v) is int for k, v in labels.items())


def test_clustering_scores_match_scikit_learn():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 5, size=300)
    pred = np.where(rng.random(300) < 0.7, truth, rng.integers(0, 6, size=300))
    scores = clustering_scores(truth, pred)
    assert list(scores) == ["purity", "nmi", "ari"]
    assert scores["purity"] == purity(truth, pred)
    assert scores["nmi"] == normalized_mutual_info_score(truth, pred)
    assert scores["ari"] == adjusted_rand_score(truth, pred)
    assert scores["nmi"] != scores["ari"]  # not wired to the same function
    perfect = clustering_scores(truth, (truth + 1) % 5)
    assert perfect == {"purity": 1.0, "nmi": pytest.approx(1.0), "ari": pytest.approx(1.0)}


@pytest.fixture(scope="module")
def two_splits():
    rng = np.random.default_rng(5)
    mu = np.where(rng.random((3, 20)) < 0.5, 0.1, 0.9)

    def sample(n):
        y = rng.integers(0, 3, size=n)
        return rng.random((n, 20)) < mu[y], y

    (X_train, y_train), (X_test, y_test) = sample(150), sample(80)
    model = BernoulliMixture(3, n_init=3, random_state=0).fit(X_train)
    return model, X_train, y_train, X_test, y_test


def test_evaluate(two_splits):
    model, X_train, y_train, X_test, y_test = two_splits
    out = evaluate(model, X_train, y_train, X_test, y_test)
    expected_keys = {
        f"{split}_{name}"
        for split in ("train", "test")
        for name in ("purity", "nmi", "ari", "loglik")
    } | {"bic", "n_parameters", "n_empty", "n_degenerate"}
    assert set(out) == expected_keys
    for split, X, y in (("train", X_train, y_train), ("test", X_test, y_test)):
        pred = model.predict(X)
        assert out[f"{split}_purity"] == purity(y, pred)
        assert out[f"{split}_nmi"] == pytest.approx(normalized_mutual_info_score(y, pred))
        assert out[f"{split}_ari"] == pytest.approx(adjusted_rand_score(y, pred))
        assert out[f"{split}_loglik"] == pytest.approx(model.score(X), rel=1e-12)
    assert out["bic"] == pytest.approx(model.bic(X_train), rel=1e-12)
    assert out["n_parameters"] == model.n_parameters() == 3 * 20 + 2
    assert out["n_empty"] == 0 and out["n_degenerate"] == 0
    assert out["train_purity"] > 0.95 and out["test_purity"] > 0.95  # a well-separated toy


def test_without_labels_the_scores_that_need_them_are_left_out_not_zero(two_splits):
    """Data without labels: purity, NMI and ARI are NaN (not measured), the rest as with
    labels; and a fit's metrics row says so too."""
    model, X_train, y_train, X_test, y_test = two_splits
    out = evaluate(model, X_train, None, X_test, None)
    labelled = evaluate(model, X_train, y_train, X_test, y_test)
    for split in ("train", "test"):
        for name in ("purity", "nmi", "ari"):
            assert np.isnan(out[f"{split}_{name}"]), (split, name)
        assert out[f"{split}_loglik"] == labelled[f"{split}_loglik"]
    assert out["bic"] == labelled["bic"] and out["n_degenerate"] == labelled["n_degenerate"]
    settings = {"dataset": "mine", "variant": "auto", "K": 3, "seed": 0, "n_train": None}
    outcome = {"estep": "packed_lut", "converged": True, "n_iter": 3, "lower_bound": -1.0}
    row = fit_job.metrics_row(
        model, {"config": settings, "fit": outcome}, X_train, None, X_test, None
    )
    assert row.loc[0, "dataset"] == "mine" and row.loc[0, "n_test"] == len(X_test)
    assert row.loc[0, "variant"] == "auto" and row.loc[0, "estep"] == "packed_lut"
    assert row[["train_purity", "test_purity", "test_nmi", "test_ari"]].isna().all().all()
    assert row.loc[0, "n_train"] == len(X_train)


def test_evaluate_counts_empty_clusters(two_splits):
    model, X_train, y_train, X_test, y_test = two_splits
    empty = BernoulliMixture.from_parameters(
        np.append(model.weights_, 0.0), np.vstack([model.means_, np.full(20, 0.5)])
    )
    out = evaluate(empty, X_train, y_train, X_test, y_test)
    assert out["n_empty"] == 1 and out["n_degenerate"] == 1  # an empty one is degenerate too
    assert out["n_parameters"] == 4 * 20 + 3
    # the empty component changes nothing but the parameter count
    assert out["train_loglik"] == pytest.approx(model.score(X_train), rel=1e-12)


def test_evaluate_counts_components_collapsed_onto_one_image(two_splits):
    """A component holding one training image (π = 1/N, μ = that image) is degenerate; one
    holding two images' worth (N·π = 2) is not."""
    model, X_train, y_train, X_test, y_test = two_splits
    N = len(X_train)
    for n_images, degenerate in ((1.0, 1), (1.999, 1), (2.0, 0), (5.0, 0)):
        pi = np.append(model.weights_ * (1 - n_images / N), n_images / N)
        mu = np.vstack([model.means_, np.clip(X_train[0], 1e-10, 1 - 1e-10)])
        out = evaluate(BernoulliMixture.from_parameters(pi, mu), X_train, y_train, X_test, y_test)
        assert out["n_degenerate"] == degenerate, n_images
        assert out["n_empty"] == 0


def test_cluster_means_marks_degenerate_components(tmp_path, monkeypatch):
    """Red frame and "degenerate" in a red title for the flagged components only."""
    figures_drawn = []
    monkeypatch.setattr(figures, "_save", lambda fig, path: figures_drawn.append(fig))
    rng = np.random.default_rng(0)
    pi = np.array([0.5, 0.3, 0.2 - 1e-4, 1e-4])
    mu = rng.random((4, 784))
    degenerate = np.array([False, False, False, True])
    figures.cluster_means(pi, mu, tmp_path / "m.png", {0: 3, 3: 7}, "t", degenerate, (28, 28))
    (fig,) = figures_drawn
    axes = fig.axes[:4]  # ordered by weight: the degenerate component comes last
    assert [ax.get_title() for ax in axes] == [
        "π=0.500 '3'",
        "π=0.300",
        "π=0.200",
        "degenerate\nπ=0.0001 '7'",
    ]
    red = matplotlib.colors.to_rgba("red")
    for ax, flagged in zip(axes, [False, False, False, True], strict=True):
        spines = ax.spines.values()
        assert all((s.get_edgecolor() == red) == flagged for s in spines)
        assert (ax.title.get_color() == "red") == flagged
    # without flags, nothing is marked
    figures.cluster_means(pi, mu, tmp_path / "m.png", None, "t", image_shape=(28, 28))
    assert not any("degenerate" in ax.get_title() for ax in figures_drawn[-1].axes)


def test_cluster_means_without_an_image_shape_are_one_heat_map(tmp_path, monkeypatch):
    """Features that are not an image: one K×D heat map, a row per component ordered by
    weight, its label naming π_k (and the majority label), degenerate ones in red."""
    figures_drawn = []
    monkeypatch.setattr(figures, "_save", lambda fig, path: figures_drawn.append(fig))
    pi = np.array([0.2, 0.5, 0.3 - 1e-4, 1e-4])
    mu = np.random.default_rng(1).random((4, 37))
    degenerate = np.array([False, False, False, True])
    figures.cluster_means(pi, mu, tmp_path / "m.png", {1: "b"}, "t", degenerate)
    (fig,) = figures_drawn
    ax = fig.axes[0]
    (image,) = ax.get_images()
    np.testing.assert_array_equal(image.get_array(), mu[[1, 2, 0, 3]])  # by weight
    ticks = ax.get_yticklabels()
    assert [t.get_text() for t in ticks] == [
        "π=0.500 'b'",
        "π=0.300",
        "π=0.200",
        "degenerate π=1e-04",  # not 0.000: a small weight keeps its digits
    ]
    assert [t.get_color() == "red" for t in ticks] == [False, False, False, True]
    assert "D = 37" in ax.get_xlabel()
