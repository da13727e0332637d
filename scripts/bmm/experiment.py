"""One fit and its evaluation, as the pipeline's jobs run them, and the tables they write.

Tables (all Parquet, provenance in the metadata, see :mod:`bmm.io`):

- params: one row per component: ``component``, ``weight`` (π_k), ``mean`` (μ_k, D floats).
- trace: one row per E-step: ``iteration``, ``loglik`` and ``objective`` (per image),
  ``estep_s``, ``mstep_s``.
- metrics: one row per fit: purity, NMI, ARI and log-likelihood per image on the training
  subset and on the test set, BIC, converged, n_iter.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from . import io, mnist
from .em import BernoulliMixture
from .metrics import evaluate

FIT_KEYS = ("variant", "K", "seed", "n_train", "max_iter", "tol", "init", "n_init",
            "mu_prior", "pi_prior")  # fmt: skip


def training_subset(y: np.ndarray, n_train: int | None, seed: int) -> np.ndarray:
    """The images one fit trains on: stratified by label, fixed by (n_train, seed)."""
    return mnist.stratified_subset(y, n_train, seed)


def fit(X: np.ndarray, y: np.ndarray, settings: dict[str, Any]) -> BernoulliMixture:
    """Fit one BernoulliMixture on the training subset that ``settings`` selects."""
    missing = set(FIT_KEYS) - set(settings)
    if missing:
        raise ValueError(f"fit settings lack {sorted(missing)}")
    keep = training_subset(y, settings["n_train"], settings["seed"])
    model = BernoulliMixture(
        settings["K"],
        estep=settings["variant"],
        tol=settings["tol"],
        max_iter=settings["max_iter"],
        n_init=settings["n_init"],
        init_params=settings["init"],
        mu_prior=settings["mu_prior"],
        pi_prior=settings["pi_prior"],
        random_state=settings["seed"],
    )
    return model.fit(X[keep])


def write_params(path, model: BernoulliMixture, meta: dict[str, Any]) -> None:
    K, D = model.means_.shape
    table = pa.table(
        {
            "component": pa.array(np.arange(K), pa.int32()),
            "weight": pa.array(model.weights_, pa.float64()),
            "mean": pa.FixedSizeListArray.from_arrays(
                pa.array(model.means_.ravel(), pa.float64()), D
            ),
        }
    )
    extra = {"converged": bool(model.converged_), "n_iter": int(model.n_iter_),
             "lower_bound": float(model.lower_bound_)}  # fmt: skip
    io.write_parquet(table, path, {**meta, "fit": extra})


def read_params(path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(π, μ, metadata) of a params table."""
    df = pd.read_parquet(path).sort_values("component")
    mu = np.stack(df["mean"].to_numpy()).astype(np.float64)
    return df["weight"].to_numpy(np.float64), mu, io.read_metadata(path)


def model_from_params(path) -> tuple[BernoulliMixture, dict[str, Any]]:
    """A fitted BernoulliMixture rebuilt from a params table, and the table's metadata."""
    pi, mu, meta = read_params(path)
    model = BernoulliMixture(len(pi), estep=meta["config"]["variant"])
    model.weights_, model.means_ = pi, mu
    model.converged_ = meta["fit"]["converged"]
    model.n_iter_ = meta["fit"]["n_iter"]
    model.lower_bound_ = meta["fit"]["lower_bound"]
    return model, meta


def metrics_row(model, meta, X_train, y_train, X_test, y_test) -> pd.DataFrame:
    """The metrics table of one fit, evaluated on its own training subset and the test set."""
    settings = meta["config"]
    keep = training_subset(y_train, settings["n_train"], settings["seed"])
    scores = evaluate(model, X_train[keep], y_train[keep], X_test, y_test)
    row = {
        "variant": settings["variant"],
        "K": settings["K"],
        "seed": settings["seed"],
        "n_train": len(keep),
        "n_test": len(y_test),
        **scores,
        "converged": meta["fit"]["converged"],
        "n_iter": meta["fit"]["n_iter"],
        "lower_bound": meta["fit"]["lower_bound"],
    }
    return pd.DataFrame([row])


def agreement_table(fits: dict[str, tuple], reference: str) -> pd.DataFrame:
    """Max |Δμ| and |Δπ| of each variant's fit against the reference variant's.

    ``fits`` maps variant → (π, μ, metadata) of fits made from the same start on the same
    data for the same number of iterations.
    """
    pi_ref, mu_ref, meta_ref = fits[reference]
    rows = []
    for variant, (pi, mu, meta) in fits.items():
        rows.append(
            {
                "variant": variant,
                "reference": reference,
                "max_abs_diff_mu": float(np.abs(mu - mu_ref).max()),
                "max_abs_diff_pi": float(np.abs(pi - pi_ref).max()),
                "lower_bound": meta["fit"]["lower_bound"],
                "diff_lower_bound": meta["fit"]["lower_bound"] - meta_ref["fit"]["lower_bound"],
                "n_iter": meta["fit"]["n_iter"],
                "K": meta["config"]["K"],
                "n_train": meta["config"]["n_train"],
            }
        )
    return pd.DataFrame(rows)
