"""One fit as a pipeline job runs it: its settings, its training subset, the estimator, and
its row of the metrics table.

A fit's settings are the job's params (``FIT_KEYS``, from workflow/rules/common.smk); they are
stored in the metadata of every table the fit writes (``metadata["config"]``), so a table
says how it was made, and :func:`estimator_params` rebuilds the estimator from them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from . import storage
from .estimator import BernoulliMixture
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


def training_subset(n_items: int, y: np.ndarray | None, n_train: int | None, seed: int):
    """The images one fit trains on (sorted int64 indices): stratified by label (uniform
    without labels), fixed by (n_train, seed)."""
    return storage.subset(n_items, y, n_train, seed)


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
    y: np.ndarray | None,
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
    keep = training_subset(len(X), y, settings["n_train"], settings["seed"])
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


def metrics_row(model, meta, X_train, y_train, X_test, y_test) -> pd.DataFrame:
    """The metrics table of one fit, evaluated on its own training subset and the test set.
    Without labels (``y_train`` None) purity, NMI and ARI are left out: NaN, never 0."""
    settings = meta["config"]
    keep = training_subset(len(X_train), y_train, settings["n_train"], settings["seed"])
    y_fit = None if y_train is None else y_train[keep]
    scores = evaluate(model, X_train[keep], y_fit, X_test, y_test)
    row = {
        "dataset": settings.get("dataset"),
        "variant": settings["variant"],
        "estep": meta["fit"]["estep"],  # the variant that ran: auto's choice, for auto
        "K": settings["K"],
        "seed": settings["seed"],
        "n_train": len(keep),
        "n_test": len(X_test),
        **scores,
        "converged": meta["fit"]["converged"],
        "n_iter": meta["fit"]["n_iter"],
        "lower_bound": meta["fit"]["lower_bound"],
    }
    return pd.DataFrame([row])
