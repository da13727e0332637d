"""EM for a Bernoulli mixture: one pass over the data per iteration, memory flat in N.

The steps, each small and named, as in scikit-learn's ``sklearn.mixture``:

- :func:`initialize`: a start (π, μ), random as the article's or by k-means++ seeding;
- :func:`summarize`: one pass over the rows at (π, μ), giving the E-step's log-likelihood and,
  fused with it, the sums the M-step needs (:class:`Stats`). The rows are read a block at a
  time; each block's sums start from zero and the blocks' sums are added in their order, so
  the same blocks give the same sums, bit for bit, whatever holds them (memory, a Parquet
  file, a dask array) and whatever the number of threads. The N×K matrix of responsibilities
  is never built;
- :func:`m_step`: the new (π, μ) from those sums;
- :func:`reseed`: a proposal that moves degenerate components to the worst-explained images;
- :func:`fit_em`: the loop and its stopping rule.

The data are any :class:`bmm.rows.Rows`, dense or bit-packed: the engine never asks which.

Choices, with their defaults:

- μ is kept in [EPS, 1 − EPS] (``bmm.estep.EPS`` = 1e-10). Clipping is the exact maximiser
  of the M-step objective on that box, so EM stays monotone.
- ``mu_prior`` a ≥ 1 is a symmetric Beta(a, a) prior on every μ_kd and ``pi_prior`` α ≥ 1 a
  symmetric Dirichlet(α) prior on π; the M-step then gives the MAP estimate. Both default to
  1 (no prior: maximum likelihood, as the article). With a prior the objective EM increases
  is the log posterior, reported per image in the trace beside the plain log-likelihood.
- An empty cluster (total responsibility 0) keeps its previous mean and gets weight 0; it then
  stays empty, gets no responsibility, and never causes a division by zero.
- Degenerate components: maximum likelihood can collapse a component onto a single image
  (π_k = 1/N, μ_k that image), the singularity of mixture likelihoods. A component whose
  effective number of images N·π_k is below 2 is counted as degenerate
  (:func:`degenerate_components`). Two remedies: ``mu_prior`` > 1 (a component with one
  image can no longer reproduce it exactly) and ``reseed_degenerate`` (move it to the
  worst-explained image, as k-means relocates an empty cluster).
- Convergence: the change of the objective per image falls below ``tol``, or ``max_iter``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import estep as _estep
from .rows import Rows, Stats

INIT_METHODS = ("random", "k-means++")

#: A component with fewer effective images (N·π_k) than this is degenerate.
DEGENERATE_MIN_IMAGES = 2.0


# ---------------------------------------------------------------------------------------
# The steps


def summarize(X: Rows, variant: _estep.Variant, pi, mu, weights=None) -> Stats:
    """One pass over X (in ``variant``'s form) at (π, μ): the E-step and the M-step's sums,
    each row counted ``weights[n]`` times (None: once)."""
    return X.summarize(variant, pi, mu, weights)


def initialize(X: Rows, n_components: int, method: str, rng: np.random.Generator, weights=None):
    """Starting (π, μ).

    ``random``: μ ~ U(0.25, 0.75), π uniform, as the article. ``k-means++``: k-means++ seeding
    on Hamming distance picks K images far apart (each image drawn with probability
    proportional to its weight times its squared distance); each mean is the image shrunk
    halfway to the data's (weighted) mean image, so no μ starts at 0 or 1. Both give the same
    start from the same ``rng`` whatever form X is in.
    """
    N, D = X.shape
    K = n_components
    pi = np.full(K, 1.0 / K)
    if method == "random":
        return pi, rng.uniform(0.25, 0.75, size=(K, D))
    if method != "k-means++":
        raise ValueError(f"init_params must be one of {INIT_METHODS}, got {method!r}")
    w = np.ones(N) if weights is None else weights
    first = rng.integers(N) if weights is None else rng.choice(N, p=w / w.sum())
    centers = [int(first)]
    # squared distance to the nearest chosen center (Hamming distance: popcount of the XOR)
    d2 = X.hamming(centers[0]).astype(np.float64) ** 2
    for _ in range(1, K):
        p = d2 if weights is None else w * d2
        total = p.sum()
        nxt = int(rng.choice(N, p=p / total)) if total > 0 else int(rng.integers(N))
        centers.append(nxt)
        d2 = np.minimum(d2, X.hamming(nxt).astype(np.float64) ** 2)
    total = N if weights is None else w.sum()
    return pi, means_from_images(X[np.array(centers)], X.column_sums(weights) / total)


def means_from_images(images: Rows, x_mean: np.ndarray) -> np.ndarray:
    """Component means made from ``images``: each shrunk halfway to the data's mean image
    ``x_mean`` and kept in [0.05, 0.95], so no μ starts at 0 or 1 (k-means++ starts and
    re-seeding both use it)."""
    return np.clip(0.5 * images.dense(np.float64) + 0.5 * x_mean, 0.05, 0.95)


def m_step(stats: Stats, mu_old: np.ndarray, mu_prior=1.0, pi_prior=1.0):
    """New (π, μ) from one pass's sums (float64).

    π_k is N_k over Σ_k N_k rather than over N: the same number when each row's
    responsibilities sum to 1, and weights that sum to 1 to float64's precision when they sum
    to 1 only to float32's (Σ_k γ_nk = 1 ± 1e-7 a row, 4e-9 in π's sum over MNIST).
    """
    K = len(stats.Nk)
    Nk = stats.Nk
    a, alpha = mu_prior - 1.0, pi_prior - 1.0
    pi = (Nk + alpha) / (Nk.sum() + K * alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        mu = (stats.weighted_sums() + a) / (Nk + 2 * a)[:, None]
    empty = Nk + 2 * a <= 0
    mu[empty] = mu_old[empty]  # an empty cluster keeps its mean (and has weight 0)
    # C order whatever order the sums came in: a row's reductions (the log-odds' sums) then
    # add in the same order as those of means read back from a table, so a model rebuilt
    # from its parameters scores exactly as the fitted one
    return pi, np.ascontiguousarray(np.clip(mu, _estep.EPS, 1.0 - _estep.EPS))


def log_prior(pi, mu, mu_prior=1.0, pi_prior=1.0):
    """log p(π, μ) up to a constant: 0 without priors."""
    out = 0.0
    if mu_prior != 1.0:
        m = np.clip(mu, _estep.EPS, 1.0 - _estep.EPS)
        out += (mu_prior - 1.0) * (np.log(m).sum() + np.log1p(-m).sum())
    if pi_prior != 1.0:
        with np.errstate(divide="ignore"):
            out += (pi_prior - 1.0) * np.log(pi).sum()
    return out


def degenerate_components(weights, n_samples, min_images=DEGENERATE_MIN_IMAGES):
    """Which components are degenerate: effective number of images N·π_k below ``min_images``.

    A component that maximum likelihood has collapsed onto one image (π_k = 1/N, μ_k that
    image) explains nothing about the data; an empty one (π_k = 0) neither.
    """
    return n_samples * np.asarray(weights, dtype=np.float64) < min_images


def reseed(X: Rows, pi, mu, worst_rows, blocked, x_mean, n_images=None):
    """A proposal: each degenerate component (not ``blocked``) moves to a worst-explained image.

    As k-means implementations relocate an empty cluster to a far point: the m degenerate
    components take the m images with the lowest log p(x) under the parameters of the last
    pass (``worst_rows``, lowest first), each as its mean shrunk halfway to the data's mean
    image (as the k-means++ start, so no μ starts at 0 or 1), with weight 1/K; the other
    weights shrink to sum to 1 − m/K. Returns the proposed (π, μ) and the mask of the
    components it moves (none: no proposal). With fewer than 2 images a component (N < 2K;
    N: ``n_images``, the total sample weight, or the rows) some component is degenerate
    whatever EM does, so no move is proposed: it would only cost a pass each iteration.
    """
    N, K = len(X) if n_images is None else n_images, len(pi)
    if N < 2 * K:
        return pi, mu, np.zeros(K, dtype=bool)
    move = degenerate_components(pi, N) & ~blocked
    m = int(move.sum())
    if m == 0:
        return pi, mu, move
    mu, pi = mu.copy(), pi.copy()
    mu[move] = means_from_images(X[np.asarray(worst_rows[:m])], x_mean)
    rest = pi[~move].sum()
    if rest > 0:
        pi[~move] *= (1.0 - m / K) / rest
        pi[move] = 1.0 / K
    else:
        pi[:] = 1.0 / K
    return pi, mu, move


# ---------------------------------------------------------------------------------------
# The loop


@dataclass
class EMResult:
    weights: np.ndarray
    means: np.ndarray
    converged: bool
    n_iter: int
    lower_bound: float  # objective per image at the returned parameters
    trace: pd.DataFrame = field(repr=False)
    init_index: int = 0  # which of the n_init restarts won


TRACE_COLUMNS = ["iteration", "loglik", "objective", "pass_s", "update_s", "reseeded"]


def fit_em(
    X: Rows,
    pi,
    mu,
    variant: _estep.Variant,
    *,
    tol=1e-3,
    max_iter=100,
    mu_prior=1.0,
    pi_prior=1.0,
    reseed_degenerate=False,
    callback=None,
    weights=None,
):
    """Run EM from (π, μ) until the objective per image changes by less than ``tol``.

    X is in ``variant``'s form (``variant.rows``); ``weights`` (float64, one a row, or None)
    count each row that many times: integer weights fit as repeated rows do, zero weights as
    if the rows were not there. Returns the final parameters and a trace
    with one row per pass: row 0 is the start, row i follows the i-th M-step. Each row holds
    the mean log-likelihood per image, the objective (log-likelihood plus log-prior, per
    image), the seconds of the pass that computed them (the E-step fused with the M-step's
    sums) and of everything since the previous row (the M-step's update, and any re-seeding
    tried), and how many components were re-seeded before it.

    ``reseed_degenerate``: after an M-step that leaves degenerate components (see
    :func:`degenerate_components`), propose moving them to the worst-explained images
    (:func:`reseed`). The move is kept only if the objective after it is no lower than before
    the M-step; otherwise the M-step's parameters are kept, as without the option, and the
    components it would have moved are not proposed again. So the objective never decreases
    (EM's own guarantee covers the M-step), a fit tries at most K moves that it refuses, and
    convergence is not declared at a row that followed a move.

    ``callback(row)``, if given, is called after every row with that row as a dict plus
    ``change`` (the objective's change since the previous row; NaN at row 0).
    """
    K = len(pi)
    N = len(X) if weights is None else float(weights.sum())  # the images the sums count
    rows = []
    blocked = np.zeros(K, dtype=bool)  # components whose move was refused
    x_mean = None

    def one_pass(pi, mu):
        t0 = time.perf_counter()
        stats = summarize(X, variant, pi, mu, weights)
        seconds = time.perf_counter() - t0
        ll = stats.loglik / N
        return stats, ll, ll + log_prior(pi, mu, mu_prior, pi_prior) / N, seconds

    def record(it, ll, obj, pass_seconds, update_seconds, moved, previous):
        rows.append((it, ll, obj, pass_seconds, update_seconds, moved))
        if callback is not None:
            callback(dict(zip(TRACE_COLUMNS, rows[-1], strict=True), change=obj - previous))

    stats, ll, obj, seconds = one_pass(pi, mu)
    record(0, ll, obj, seconds, float("nan"), 0, float("nan"))
    converged = False
    for it in range(1, max_iter + 1):
        t0 = time.perf_counter()
        pi, mu = m_step(stats, mu, mu_prior, pi_prior)
        step, moved = None, 0
        if reseed_degenerate:
            if x_mean is None:
                x_mean = X.column_sums(weights) / N
            pi2, mu2, move = reseed(X, pi, mu, stats.worst_rows, blocked, x_mean, N)
            if move.any():
                step = one_pass(pi2, mu2)
                if step[2] >= obj:  # keep the move: the objective did not drop
                    pi, mu, moved = pi2, mu2, int(move.sum())
                else:  # its pass counts in this row's update_s
                    step, blocked = None, blocked | move
        if step is None:
            update_seconds = time.perf_counter() - t0
            step = one_pass(pi, mu)
        else:
            update_seconds = time.perf_counter() - t0 - step[3]
        stats, ll, new_obj, seconds = step
        record(it, ll, new_obj, seconds, update_seconds, moved, obj)
        change, obj = new_obj - obj, new_obj
        if not moved and abs(change) < tol:
            converged = True
            break
    trace = pd.DataFrame(rows, columns=TRACE_COLUMNS)
    if not np.isfinite(obj):
        raise FloatingPointError(
            "EM produced a non-finite log-likelihood; the E-step variant is not numerically "
            "stable on these data (use a stable variant such as 'matmul_fused')"
        )
    return EMResult(pi, mu, converged, len(rows) - 1, obj, trace)


def bic(total_loglik: float, n_parameters: int, n_samples: int) -> float:
    """Bayesian information criterion from a data set's total log-likelihood (lower is better)."""
    return -2 * total_loglik + n_parameters * np.log(n_samples)
