"""How good is a clustering of the digits: purity, NMI, ARI, held-out likelihood, BIC, and
how many of its components are wasted (empty or degenerate).

NMI and ARI come from scikit-learn, the reference implementations; purity is read off
scikit-learn's contingency table.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.metrics.cluster import contingency_matrix

from .engine import bic, degenerate_components
from .estep import scoring


def purity(labels_true, labels_pred) -> float:
    """Fraction of samples whose cluster's majority label is their own label."""
    table = contingency_matrix(labels_true, labels_pred)  # classes × clusters
    return float(table.max(axis=0).sum() / table.sum())


def cluster_labels(labels_true, labels_pred) -> dict[int, int]:
    """The majority true label of each cluster (cluster index → label)."""
    labels_true, labels_pred = np.asarray(labels_true), np.asarray(labels_pred)
    out = {}
    for k in np.unique(labels_pred):
        values, counts = np.unique(labels_true[labels_pred == k], return_counts=True)
        out[int(k)] = int(values[counts.argmax()])
    return out


#: The scores that compare clusters with labels (left out, as NaN, for data without labels).
CLUSTERING_SCORES = ("purity", "nmi", "ari")


def clustering_scores(labels_true, labels_pred) -> dict[str, float]:
    return {
        "purity": purity(labels_true, labels_pred),
        "nmi": float(normalized_mutual_info_score(labels_true, labels_pred)),
        "ari": float(adjusted_rand_score(labels_true, labels_pred)),
    }


def evaluate(model, X_train, y_train, X_test, y_test) -> dict[str, float]:
    """Every metric of a fitted :class:`bmm.BernoulliMixture` on its training and test data.
    Labels ``y_train``, ``y_test`` may be None (data without labels): purity, NMI and ARI
    are then NaN (not measured), never 0.

    Also counts the components that are empty (π_k = 0) and degenerate (N·π_k < 2 for the
    N training images: collapsed onto one image, or empty; see
    :func:`bmm.engine.degenerate_components`).
    """
    out = {}
    for split, X, y in (("train", X_train, y_train), ("test", X_test, y_test)):
        # one stable E-step gives both what model.predict and model.score_samples would each
        # compute again
        resp, loglik = scoring(X, model.weights_, model.means_)
        scores = None if y is None else clustering_scores(y, resp.argmax(axis=1))
        for name in CLUSTERING_SCORES:
            out[f"{split}_{name}"] = np.nan if scores is None else scores[name]
        out[f"{split}_loglik"] = float(loglik.mean())
        if split == "train":
            out["bic"] = float(bic(loglik.sum(), model.n_parameters(), len(loglik)))
    out["n_parameters"] = model.n_parameters()
    out["n_empty"] = int((model.weights_ == 0).sum())
    out["n_degenerate"] = int(degenerate_components(model.weights_, len(X_train)).sum())
    return out
