"""Degenerate components and their remedies, compared on the same data from the same start.

Maximum-likelihood EM can collapse a component onto one image (see :mod:`bmm.engine`). This
module fits one model per (remedy, K), all from the same seed, and tabulates what each
remedy costs and buys: log-likelihood per image on the training and test sets (the plain
log-likelihood, without any prior, so the rows compare), test purity, the number of
degenerate components (N·π_k < 2), and how often the objective dropped during the fit.

Remedies: ``ml`` (plain maximum likelihood, the article), ``beta(a)`` (a symmetric Beta(a, a)
prior on every μ_kd, ``mu_prior=a``), ``reseed`` (a degenerate component moves to the
worst-explained image, ``reseed_degenerate=True``).

From the command line (prints a Markdown table; progress goes to stderr)::

    python -m bmm.remedies --mnist ../shared/data/mnist --K 10 20 50 100 --mu-prior 1.01 1.1 2
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning

from . import idx, storage
from .datasets import MNIST
from .engine import degenerate_components
from .estimator import BernoulliMixture
from .metrics import purity

COLUMNS = [
    "remedy",
    "K",
    "train_loglik",
    "test_loglik",
    "test_purity",
    "n_degenerate",
    "n_iter",
    "converged",
    "objective_drops",
    "seconds",
]
HEADER = {
    "K": "K",
    "remedy": "remedy",
    "train_loglik": "train log-lik/image",
    "test_loglik": "test log-lik/image",
    "test_purity": "test purity",
    "n_degenerate": "degenerate",
    "n_iter": "iterations",
    "converged": "converged",
    "objective_drops": "objective drops",
}


def remedies(mu_priors: Sequence[float] = (1.01, 1.1, 2.0)) -> dict[str, dict[str, Any]]:
    """Remedy name → the estimator parameters that apply it."""
    out: dict[str, dict[str, Any]] = {"ml": {}}
    out.update({f"beta({a:g})": {"mu_prior": float(a)} for a in mu_priors})
    out["reseed"] = {"reseed_degenerate": True}
    return out


def objective_drops(objective: np.ndarray) -> int:
    """How many times the objective went down between two E-steps (beyond rounding)."""
    objective = np.asarray(objective, dtype=np.float64)
    return int((np.diff(objective) < -1e-9 * np.abs(objective[1:])).sum())


def compare(
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    Ks: Sequence[int],
    candidates: dict[str, dict[str, Any]],
    *,
    log: Callable[[str], None] = lambda message: None,
    **fit_params: Any,
) -> pd.DataFrame:
    """One fit per (remedy, K) on ``train`` (X, y), scored on ``train`` and ``test``.

    ``fit_params`` (estep, random_state, max_iter, tol, init_params, ...) are shared by
    every fit, so all remedies start from the same point.
    """
    (X_train, _), (X_test, y_test) = train, test
    rows = []
    for K in Ks:
        for name, params in candidates.items():
            model = BernoulliMixture(K, **fit_params, **params)
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)  # recorded as converged
                model.fit(X_train)
            seconds = time.perf_counter() - t0
            row = {
                "remedy": name,
                "K": K,
                "train_loglik": model.score(X_train),
                "test_loglik": model.score(X_test),
                "test_purity": purity(y_test, model.predict(X_test)),
                "n_degenerate": int(degenerate_components(model.weights_, len(X_train)).sum()),
                "n_iter": model.n_iter_,
                "converged": model.converged_,
                "objective_drops": objective_drops(model.trace_["objective"]),
                "seconds": seconds,
            }
            rows.append(row)
            log(
                ", ".join(
                    f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()
                )
            )
    return pd.DataFrame(rows, columns=COLUMNS)


def markdown(table: pd.DataFrame) -> str:
    """The comparison as a Markdown table, one row per (K, remedy)."""
    fmt = {"train_loglik": "{:.3f}", "test_loglik": "{:.3f}", "test_purity": "{:.4f}"}
    lines = ["| " + " | ".join(HEADER.values()) + " |", "|" + "---|" * len(HEADER)]
    for _, row in table.sort_values("K", kind="stable").iterrows():
        cells = [fmt.get(key, "{}").format(row[key]) for key in HEADER]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def load_mnist(
    directory: str | os.PathLike, threshold: float | str, n_train: int | None, seed: int
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """(X, y) of the training (a stratified subset of ``n_train``; None: all) and test sets."""
    d = Path(directory)
    out = []
    for split in ("train", "test"):
        images, labels = idx.load_split(
            d / MNIST.files[f"{split}_images"].name, d / MNIST.files[f"{split}_labels"].name
        )
        X, y = storage.binarize(images, threshold), labels.astype(np.int64)
        if split == "train":
            keep = storage.stratified_subset(y, n_train, seed)
            X, y = X[keep], y[keep]
        out.append((X, y))
    return out[0], out[1]


def main(argv: Sequence[str] | None = None) -> pd.DataFrame:
    p = argparse.ArgumentParser(prog="python -m bmm.remedies", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--mnist",
        default=os.environ.get("BMM_MNIST_DIR", "../shared/data/mnist"),
        help="directory with the four MNIST .gz files (default: $BMM_MNIST_DIR or "
        "../shared/data/mnist)",
    )
    p.add_argument("--threshold", type=float, default=0.5, help="pixel/255 > threshold is 1")
    p.add_argument("--n-train", type=int, default=None, help="training images (default: all)")
    p.add_argument("--K", type=int, nargs="+", default=[10, 20, 50, 100])
    p.add_argument(
        "--mu-prior", type=float, nargs="+", default=[1.01, 1.1, 2.0], help="Beta(a, a) to try"
    )
    p.add_argument("--estep", default="matmul_fused_f32")
    p.add_argument("--init", default="random", choices=["random", "k-means++"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-iter", type=int, default=100)
    p.add_argument("--tol", type=float, default=1e-3)
    p.add_argument("--csv", type=Path, help="also write the table here")
    args = p.parse_args(argv)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    train, test = load_mnist(args.mnist, args.threshold, args.n_train, args.seed)
    log(f"{len(train[1])} training and {len(test[1])} test images, threshold {args.threshold}")
    table = compare(
        train,
        test,
        args.K,
        remedies(args.mu_prior),
        log=log,
        estep=args.estep,
        init_params=args.init,
        random_state=args.seed,
        max_iter=args.max_iter,
        tol=args.tol,
    )
    if args.csv:
        table.to_csv(args.csv, index=False)
    print(markdown(table))
    return table


if __name__ == "__main__":
    main()
