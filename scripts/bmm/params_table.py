"""The params table of a fit: π and μ as Parquet, and the fitted model rebuilt from it.

One row per component: ``component``, ``weight`` (π_k), ``mean`` (μ_k, D floats); the
metadata's ``config`` holds the fit's settings and ``fit`` how it went (converged, n_iter,
lower_bound, n_samples: the images fitted). The fit's trace (one row per E-step:
``iteration``, ``loglik`` and ``objective`` per image, ``pass_s``, ``update_s``,
``reseeded``) is written beside it by scripts/fit.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from . import io
from .estimator import BernoulliMixture
from .fit_job import estimator_params


def fit_outcome(model: BernoulliMixture) -> dict[str, Any]:
    """How a fit went, as its params table records it (``metadata["fit"]``): the E-step
    variant it ran (``auto``'s choice, for a fit that asked for it) among the rest."""
    return {
        "estep": getattr(model, "estep_", None),  # None: rebuilt from parameters, never fitted
        "converged": bool(model.converged_),
        "n_iter": int(model.n_iter_),
        "lower_bound": float(model.lower_bound_),
        "n_samples": int(model.n_samples_fit_),
    }


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
    io.write_parquet(table, path, {**meta, "fit": fit_outcome(model)})


def read_params(path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(π, μ, metadata) of a params table."""
    df = io.read_parquet(path).sort_values("component")
    mu = np.stack(df["mean"].to_numpy()).astype(np.float64)
    return df["weight"].to_numpy(np.float64), mu, io.read_metadata(path)


def model_from_params(path) -> tuple[BernoulliMixture, dict[str, Any]]:
    """A fitted BernoulliMixture rebuilt from a params table, and the table's metadata.

    The model has the fit's parameters (as ``BernoulliMixture.from_parameters``) and scores
    with the E-step variant the fit ran (``estep_``: auto's choice, for a fit that asked for
    auto, so no trial runs again); how the fit went (estep, converged, n_iter, lower_bound,
    n_samples) is in ``metadata["fit"]``.
    """
    pi, mu, meta = read_params(path)
    model = BernoulliMixture.from_parameters(
        pi,
        mu,
        n_samples=meta["fit"].get("n_samples"),
        **estimator_params(meta["config"]),
    )
    if meta["fit"].get("estep"):  # absent from tables written before it was recorded
        model.estep_ = meta["fit"]["estep"]
    return model, meta
