"""One fit and its evaluation, as the pipeline's jobs run them, and the tables they write.

Tables (all Parquet, provenance in the metadata, see :mod:`bmm.io`):

- params: one row per component: ``component``, ``weight`` (π_k), ``mean`` (μ_k, D floats);
  the metadata's ``fit`` holds converged, n_iter, lower_bound and n_samples (images fitted).
- trace: one row per E-step: ``iteration``, ``loglik`` and ``objective`` (per image),
  ``estep_s``, ``mstep_s``, ``reseeded`` (components re-seeded before it).
- metrics: one row per fit: purity, NMI, ARI and log-likelihood per image on the training
  subset and on the test set, BIC, the numbers of empty and degenerate components,
  converged, n_iter.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from . import io, mnist
from .em import BernoulliMixture
from .metrics import evaluate

FIT_KEYS = (
    "variant",
    "K",
    "seed",
    "n_train",
    "max_iter",
    "tol",
    "init",
    "n_init",
    "mu_prior",
    "pi_prior",
    "reseed_degenerate",
)


def training_subset(y: np.ndarray, n_train: int | None, seed: int) -> np.ndarray:
    """The images one fit trains on: stratified by label, fixed by (n_train, seed)."""
    return mnist.stratified_subset(y, n_train, seed)


def estimator_params(settings: dict[str, Any]) -> dict[str, Any]:
    """The BernoulliMixture parameters that a fit's settings (FIT_KEYS) name."""
    return {
        "n_components": settings["K"],
        "estep": settings["variant"],
        "tol": settings["tol"],
        "max_iter": settings["max_iter"],
        "n_init": settings["n_init"],
        "init_params": settings["init"],
        "mu_prior": settings["mu_prior"],
        "pi_prior": settings["pi_prior"],
        # absent from the settings of fits made before the option existed: it was off
        "reseed_degenerate": settings.get("reseed_degenerate", False),
        "random_state": settings["seed"],
    }


def fit(
    X: np.ndarray,
    y: np.ndarray,
    settings: dict[str, Any],
    log: Callable[[str], None] | None = None,
    verbose_interval: int = 1,
) -> BernoulliMixture:
    """Fit one BernoulliMixture on the training subset that ``settings`` selects.

    With ``log`` (a function taking one line), the fit reports each start and every
    ``verbose_interval`` iterations there (log-likelihood per image, its change, seconds
    per iteration), and any warning it raises (such as a ConvergenceWarning).
    """
    missing = set(FIT_KEYS) - set(settings)
    if missing:
        raise ValueError(f"fit settings lack {sorted(missing)}")
    keep = training_subset(y, settings["n_train"], settings["seed"])
    model = BernoulliMixture(
        **estimator_params(settings),
        verbose=2 if log else 0,
        verbose_interval=verbose_interval,
    )
    if log is None:
        return model.fit(X[keep])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(X[keep], log=log)
    for w in caught:
        log(f"{w.category.__name__}: {w.message}")
    return model


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
    extra = {
        "converged": bool(model.converged_),
        "n_iter": int(model.n_iter_),
        "lower_bound": float(model.lower_bound_),
        "n_samples": int(model.n_samples_fit_),
    }
    io.write_parquet(table, path, {**meta, "fit": extra})


def read_params(path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(π, μ, metadata) of a params table."""
    df = pd.read_parquet(path).sort_values("component")
    mu = np.stack(df["mean"].to_numpy()).astype(np.float64)
    return df["weight"].to_numpy(np.float64), mu, io.read_metadata(path)


def model_from_params(path) -> tuple[BernoulliMixture, dict[str, Any]]:
    """A fitted BernoulliMixture rebuilt from a params table, and the table's metadata.

    The model has the fit's parameters (as ``BernoulliMixture.from_parameters``); how the
    fit went (converged, n_iter, lower_bound, n_samples) is in ``metadata["fit"]``.
    """
    pi, mu, meta = read_params(path)
    model = BernoulliMixture.from_parameters(
        pi,
        mu,
        n_samples=meta["fit"].get("n_samples"),
        **estimator_params(meta["config"]),
    )
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
