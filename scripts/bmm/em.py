"""EM for a Bernoulli mixture, and a scikit-learn-style estimator around it.

The skeleton follows scikit-learn's ``sklearn.mixture``: small named steps
(:func:`initialize`, the E-step from :mod:`bmm.estep`, :func:`m_step`, the objective)
driven by :func:`fit_em`, and :class:`BernoulliMixture` with the familiar
``fit / predict / predict_proba / score_samples / score / bic / aic`` API.

Choices, with their defaults:

- μ is kept in [EPS, 1 − EPS] (``bmm.estep.EPS`` = 1e-10). Clipping is the exact maximiser
  of the M-step objective on that box, so EM stays monotone.
- ``mu_prior`` a ≥ 1 is a symmetric Beta(a, a) prior on every μ_kd and ``pi_prior`` α ≥ 1 a
  symmetric Dirichlet(α) prior on π; the M-step then gives the MAP estimate. Both default to
  1 (no prior: maximum likelihood, as the article). With a prior the objective EM increases
  is the log posterior, reported per image in the trace beside the plain log-likelihood.
- An empty cluster (total responsibility 0) keeps its previous mean and gets weight 0; it then
  stays empty, gets no responsibility, and never causes a division by zero.
- Convergence: the change of the objective per image falls below ``tol``, or ``max_iter``.
"""

from __future__ import annotations

import numbers
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import bits
from . import estep as _estep
from .bits import BitMatrix

INIT_METHODS = ("random", "kmeans++")


# ---------------------------------------------------------------------------------------
# The steps


def initialize(X, n_components, method, rng):
    """Starting (π, μ); X is an N×D binary array or a :class:`bmm.bits.BitMatrix`.

    ``random``: μ ~ U(0.25, 0.75), π uniform, as the article. ``kmeans++``: k-means++ seeding
    on Hamming distance picks K images far apart; each mean is the image shrunk halfway to
    the data's mean pixel intensities, so no μ starts at 0 or 1. Both give the same start
    from the same ``rng`` whether X is dense or packed.
    """
    N, D = X.shape
    K = n_components
    pi = np.full(K, 1.0 / K)
    if method == "random":
        return pi, rng.uniform(0.25, 0.75, size=(K, D))
    if method != "kmeans++":
        raise ValueError(f"init_params must be one of {INIT_METHODS}, got {method!r}")
    Xb = X if isinstance(X, BitMatrix) else BitMatrix.pack(X)
    centers = [int(rng.integers(N))]
    # squared distance to the nearest chosen center (Hamming distance: popcount of the XOR)
    d2 = Xb.hamming(centers[0]).astype(np.float64) ** 2
    for _ in range(1, K):
        total = d2.sum()
        nxt = int(rng.choice(N, p=d2 / total)) if total > 0 else int(rng.integers(N))
        centers.append(nxt)
        d2 = np.minimum(d2, Xb.hamming(nxt).astype(np.float64) ** 2)
    mean = Xb.column_sums() / N
    mu = 0.5 * Xb[np.array(centers)].unpack(np.float64) + 0.5 * mean
    return pi, np.clip(mu, 0.05, 0.95)


def weighted_sums(X, resp):
    """Σ_n γ_nk x_nd (K×D, float64): one matrix product for dense X, in X's dtype (float32
    X stays float32: no N×D conversion per step); from the bits for a BitMatrix."""
    if isinstance(X, BitMatrix):
        return bits.weighted_sums(X, resp)
    return (resp.T.astype(X.dtype, copy=False) @ X).astype(np.float64, copy=False)


def m_step(X, resp, mu_old, mu_prior=1.0, pi_prior=1.0):
    """New (π, μ) from the responsibilities (float64 whatever resp's precision)."""
    N, K = resp.shape
    Nk = resp.sum(axis=0, dtype=np.float64)
    a, alpha = mu_prior - 1.0, pi_prior - 1.0
    pi = (Nk + alpha) / (N + K * alpha)
    weighted = weighted_sums(X, resp)
    with np.errstate(divide="ignore", invalid="ignore"):
        mu = (weighted + a) / (Nk + 2 * a)[:, None]
    empty = Nk + 2 * a <= 0
    mu[empty] = mu_old[empty]  # an empty cluster keeps its mean (and has weight 0)
    return pi, np.clip(mu, _estep.EPS, 1.0 - _estep.EPS)


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


@dataclass
class EMResult:
    weights: np.ndarray
    means: np.ndarray
    converged: bool
    n_iter: int
    lower_bound: float  # objective per image at the returned parameters
    trace: pd.DataFrame = field(repr=False)
    init_index: int = 0  # which of the n_init restarts won


def fit_em(X, pi, mu, e_step, *, tol=1e-3, max_iter=100, mu_prior=1.0, pi_prior=1.0):
    """Run EM from (π, μ) until the objective per image changes by less than ``tol``.

    Returns the final parameters and a trace with one row per E-step: row 0 is the starting
    point, row i follows the i-th M-step. Each row holds the mean log-likelihood per image,
    the objective (log-likelihood plus log-prior, per image), and the seconds the E-step and
    the M-step before it took.
    """
    N = len(X)
    rows = []

    def e(pi, mu, it, m_seconds):
        t0 = time.perf_counter()
        resp, loglik = e_step(X, pi, mu)
        seconds = time.perf_counter() - t0
        ll = float(loglik.mean())
        obj = ll + log_prior(pi, mu, mu_prior, pi_prior) / N
        rows.append((it, ll, obj, seconds, m_seconds))
        return resp, obj

    resp, obj = e(pi, mu, 0, float("nan"))
    converged = False
    for it in range(1, max_iter + 1):
        t0 = time.perf_counter()
        pi, mu = m_step(X, resp, mu, mu_prior, pi_prior)
        m_seconds = time.perf_counter() - t0
        resp, new_obj = e(pi, mu, it, m_seconds)
        change, obj = new_obj - obj, new_obj
        if abs(change) < tol:
            converged = True
            break
    trace = pd.DataFrame(rows, columns=["iteration", "loglik", "objective", "estep_s", "mstep_s"])
    if not np.isfinite(obj):
        raise FloatingPointError(
            "EM produced a non-finite log-likelihood; the E-step variant is not numerically "
            "stable on these data (use a stable variant such as 'matmul_fused')"
        )
    return EMResult(pi, mu, converged, len(rows) - 1, obj, trace)


# ---------------------------------------------------------------------------------------
# The estimator


class BernoulliMixture:
    """A mixture of K multivariate Bernoulli distributions over binary vectors, fitted by EM.

    Parameters follow ``sklearn.mixture.GaussianMixture`` where they mean the same thing.

    n_components: K, the number of mixture components (≥ 1).
    estep: name of the E-step variant in ``bmm.estep.VARIANTS`` used during fitting.
    tol: convergence threshold on the change of the objective per image.
    max_iter: EM iterations per initialisation.
    n_init: initialisations to run; the best objective is kept.
    init_params: "random" (μ ~ U(0.25, 0.75), the article) or "kmeans++".
    mu_prior, pi_prior: symmetric Beta and Dirichlet prior parameters (1 = none).
    random_state: int seed (or a numpy Generator) making a fit reproducible to the bit.

    After ``fit``: ``weights_`` (K), ``means_`` (K×D), ``converged_``, ``n_iter_``,
    ``lower_bound_`` (objective per image), ``trace_`` (pandas DataFrame of the winning run).
    Scoring (``predict_proba``, ``score_samples``, ``score``) always uses the stable
    ``matmul_fused`` E-step, whatever variant fitted the model.
    """

    def __init__(
        self,
        n_components=1,
        *,
        estep="matmul_fused",
        tol=1e-3,
        max_iter=100,
        n_init=1,
        init_params="random",
        mu_prior=1.0,
        pi_prior=1.0,
        random_state=None,
    ):
        self.n_components = n_components
        self.estep = estep
        self.tol = tol
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.mu_prior = mu_prior
        self.pi_prior = pi_prior
        self.random_state = random_state

    # -- fitting -----------------------------------------------------------------------

    def _check_params(self, n_samples):
        variant = _estep.get(self.estep)
        if variant.unavailable:
            raise ValueError(f"E-step variant {self.estep!r} is unavailable: {variant.unavailable}")
        if not _is_int(self.n_components) or self.n_components < 1:
            raise ValueError(f"n_components must be an integer ≥ 1, got {self.n_components!r}")
        if self.n_components > n_samples:
            raise ValueError(
                f"n_components={self.n_components} is larger than the number of samples "
                f"({n_samples}); use at most {n_samples} components or more data"
            )
        if not _is_int(self.max_iter) or self.max_iter < 0:
            raise ValueError(f"max_iter must be an integer ≥ 0, got {self.max_iter!r}")
        if not _is_int(self.n_init) or self.n_init < 1:
            raise ValueError(f"n_init must be an integer ≥ 1, got {self.n_init!r}")
        if not (isinstance(self.tol, numbers.Real) and self.tol >= 0):
            raise ValueError(f"tol must be a number ≥ 0, got {self.tol!r}")
        if self.init_params not in INIT_METHODS:
            raise ValueError(f"init_params must be one of {INIT_METHODS}, got {self.init_params!r}")
        for name in ("mu_prior", "pi_prior"):
            value = getattr(self, name)
            if not (isinstance(value, numbers.Real) and value >= 1):
                raise ValueError(f"{name} must be a number ≥ 1 (1 = no prior), got {value!r}")
        return variant

    def fit(self, X, y=None):
        """Fit by EM, ``n_init`` times from different starts; keep the best objective."""
        X = _check_X(X)
        variant = self._check_params(len(X))
        Xv = variant.prepare(X)
        rng = np.random.default_rng(self.random_state)
        best = None
        for i in range(self.n_init):
            pi, mu = initialize(X, self.n_components, self.init_params, rng)
            result = fit_em(
                Xv,
                pi,
                mu,
                variant,
                tol=self.tol,
                max_iter=self.max_iter,
                mu_prior=self.mu_prior,
                pi_prior=self.pi_prior,
            )
            result.init_index = i
            if best is None or result.lower_bound > best.lower_bound:
                best = result
        self.weights_, self.means_ = best.weights, best.means
        self.converged_, self.n_iter_ = best.converged, best.n_iter
        self.lower_bound_, self.trace_ = best.lower_bound, best.trace
        self.best_init_ = best.init_index
        return self

    def fit_predict(self, X, y=None):
        return self.fit(X).predict(X)

    # -- scoring -----------------------------------------------------------------------

    def _e_step(self, X):
        if not hasattr(self, "means_"):
            raise ValueError("this BernoulliMixture is not fitted yet; call fit(X) first")
        X = _check_X(X, n_features=self.means_.shape[1])
        scorer = _estep.VARIANTS["matmul_fused"]
        return scorer(scorer.prepare(X), self.weights_, self.means_)

    def predict_proba(self, X):
        """Responsibilities p(k | x) for each sample (N×K)."""
        return self._e_step(X)[0]

    def predict(self, X):
        """The most responsible component for each sample."""
        return self.predict_proba(X).argmax(axis=1)

    def score_samples(self, X):
        """log p(x) for each sample."""
        return self._e_step(X)[1]

    def score(self, X, y=None):
        """Mean log-likelihood per sample."""
        return float(self.score_samples(X).mean())

    def n_parameters(self):
        K, D = self.means_.shape
        return K * D + K - 1

    def bic(self, X):
        """Bayesian information criterion on X (lower is better)."""
        return -2 * self.score(X) * len(X) + self.n_parameters() * np.log(len(X))

    def aic(self, X):
        """Akaike information criterion on X (lower is better)."""
        return -2 * self.score(X) * len(X) + 2 * self.n_parameters()

    def __repr__(self):
        return f"BernoulliMixture(n_components={self.n_components}, estep={self.estep!r})"


def _is_int(value):
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _check_X(X, n_features=None):
    if isinstance(X, BitMatrix):  # binary by construction
        if n_features is not None and X.n_features != n_features:
            raise ValueError(
                f"X has {X.n_features} features, but the model was fitted on {n_features}"
            )
        return X
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-D array (n_samples × n_features), got shape {X.shape}")
    if X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"X must have at least one sample and one feature, got shape {X.shape}")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"X has {X.shape[1]} features, but the model was fitted on {n_features}")
    if X.dtype != bool and not np.isin(X, (0, 1)).all():
        raise ValueError("X must be binary: every entry 0 or 1 (binarise the images first)")
    return X
