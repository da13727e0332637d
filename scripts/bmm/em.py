"""EM for a Bernoulli mixture, and a scikit-learn estimator around it.

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
- Degenerate components: maximum likelihood can collapse a component onto a single image
  (π_k = 1/N, μ_k that image), the singularity of mixture likelihoods. A component whose
  effective number of images N·π_k is below 2 is counted as degenerate
  (:func:`degenerate_components`). Two remedies: ``mu_prior`` > 1 (a component with one
  image can no longer reproduce it exactly) and ``reseed_degenerate`` (move it to the
  worst-explained image, as k-means relocates an empty cluster).
- Convergence: the change of the objective per image falls below ``tol``, or ``max_iter``
  (then the estimator warns, ``ConvergenceWarning``).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import ClassVar, NamedTuple

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from . import bits
from . import estep as _estep
from .bits import BitMatrix

INIT_METHODS = ("random", "kmeans++")

#: A component with fewer effective images (N·π_k) than this is degenerate.
DEGENERATE_MIN_IMAGES = 2.0


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
    return pi, _means_from_images(Xb, np.array(centers))


def _means_from_images(X, rows):
    """Component means made from the images ``X[rows]``: each shrunk halfway to the data's
    mean image and kept in [0.05, 0.95], so no μ starts at 0 or 1 (k-means++ starts and
    re-seeding both use it). X dense or a BitMatrix (whose counts are exact)."""
    if isinstance(X, BitMatrix):
        x_mean, images = X.column_sums() / len(X), X[rows].unpack(np.float64)
    else:
        x_mean, images = X.mean(axis=0, dtype=np.float64), np.asarray(X[rows], np.float64)
    return np.clip(0.5 * images + 0.5 * x_mean, 0.05, 0.95)


def weighted_sums(X, resp):
    """Σ_n γ_nk x_nd (K×D, float64): one matrix product for dense X, in X's dtype (float32
    X stays float32: no N×D conversion per step); from the bits for a BitMatrix."""
    if isinstance(X, BitMatrix):
        return bits.weighted_sums(X, resp)
    return (resp.T.astype(X.dtype, copy=False) @ X).astype(np.float64, copy=False)


def m_step(X, resp, mu_old, mu_prior=1.0, pi_prior=1.0):
    """New (π, μ) from the responsibilities (float64 whatever resp's precision)."""
    N, K = resp.shape
    Nk = component_totals(resp, compiled=isinstance(X, BitMatrix))
    a, alpha = mu_prior - 1.0, pi_prior - 1.0
    pi = (Nk + alpha) / (N + K * alpha)
    weighted = weighted_sums(X, resp)
    with np.errstate(divide="ignore", invalid="ignore"):
        mu = (weighted + a) / (Nk + 2 * a)[:, None]
    empty = Nk + 2 * a <= 0
    mu[empty] = mu_old[empty]  # an empty cluster keeps its mean (and has weight 0)
    return pi, np.clip(mu, _estep.EPS, 1.0 - _estep.EPS)


def component_totals(resp, compiled=False) -> np.ndarray:
    """N_k = Σ_n γ_nk (float64), rows added one after another as numpy's
    ``resp.sum(axis=0, dtype=np.float64)`` adds them.

    ``compiled=True`` adds them in one numba pass: the same sums, bit for bit, but numpy casts
    float32 rows through small buffers on that path, 4-5× slower (at N = 60000, 1.07 → 0.21
    ms at K = 10, a sixth of the packed M-step, and 4.2 → 1.0 ms at K = 100, measured side by
    side in one process). Only the packed M-step asks for it, as its kernels run in numba
    anyway: a dense fit would pay numba's start-up (0.12-0.15 s and 44 MiB in a fresh
    process) to save 0.2 ms an iteration.
    """
    if compiled and _sum_rows is not None:
        return _sum_rows(resp)
    return resp.sum(axis=0, dtype=np.float64)


def _sum_rows(resp):  # pragma: no cover (compiled)
    N, K = resp.shape
    out = np.zeros(K)
    for n in range(N):
        for k in range(K):
            out[k] += resp[n, k]
    return out


_sum_rows = bits.numba.njit(cache=True)(_sum_rows) if bits.numba is not None else None


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


def _reseed(X, pi, mu, loglik, blocked):
    """A proposal: each degenerate component (not ``blocked``) moves to a worst-explained image.

    As k-means implementations relocate an empty cluster to a far point: the m degenerate
    components take the m images with the lowest log p(x) under the parameters of the last
    E-step, each as its mean shrunk halfway to the data's mean image (as the kmeans++ start,
    so no μ starts at 0 or 1), with weight 1/K; the other weights shrink to sum to 1 − m/K.
    Returns the proposed (π, μ) and the mask of the components it moves (none: no proposal).
    With fewer than 2 images a component (N < 2K) some component is degenerate whatever
    EM does, so no move is proposed: it would only cost an E-step each iteration.
    """
    N, K = len(X), len(pi)
    if N < 2 * K:
        return pi, mu, np.zeros(K, dtype=bool)
    move = degenerate_components(pi, N) & ~blocked
    m = int(move.sum())
    if m == 0:
        return pi, mu, move
    worst = np.argsort(loglik, kind="stable")[:m]
    mu, pi = mu.copy(), pi.copy()
    mu[move] = _means_from_images(X, worst)
    rest = pi[~move].sum()
    if rest > 0:
        pi[~move] *= (1.0 - m / K) / rest
        pi[move] = 1.0 / K
    else:
        pi[:] = 1.0 / K
    return pi, mu, move


@dataclass
class EMResult:
    weights: np.ndarray
    means: np.ndarray
    converged: bool
    n_iter: int
    lower_bound: float  # objective per image at the returned parameters
    trace: pd.DataFrame = field(repr=False)
    init_index: int = 0  # which of the n_init restarts won


TRACE_COLUMNS = ["iteration", "loglik", "objective", "estep_s", "mstep_s", "reseeded"]


class _Step(NamedTuple):
    """One E-step of :func:`fit_em`: its outputs, the objective per image and its seconds."""

    resp: np.ndarray
    loglik: np.ndarray
    ll: float  # mean log-likelihood per image
    objective: float
    seconds: float


def fit_em(
    X,
    pi,
    mu,
    e_step,
    *,
    tol=1e-3,
    max_iter=100,
    mu_prior=1.0,
    pi_prior=1.0,
    reseed_degenerate=False,
    callback=None,
):
    """Run EM from (π, μ) until the objective per image changes by less than ``tol``.

    Returns the final parameters and a trace with one row per E-step: row 0 is the starting
    point, row i follows the i-th M-step. Each row holds the mean log-likelihood per image,
    the objective (log-likelihood plus log-prior, per image), the seconds the E-step and
    the M-step before it took (with any re-seeding tried), and how many components were
    re-seeded before it.

    ``reseed_degenerate``: after an M-step that leaves degenerate components (see
    :func:`degenerate_components`), propose moving them to the worst-explained images
    (:func:`_reseed`). The move is kept only if the objective after it is no lower than
    before the M-step; otherwise the M-step's parameters are kept, as without the option,
    and the components it would have moved are not proposed again. So the objective never
    decreases (EM's own guarantee covers the M-step), a fit tries at most K moves that it
    refuses, and convergence is not declared at a row that followed a move.

    ``callback(row)``, if given, is called after every row with that row as a dict plus
    ``change`` (the objective's change since the previous row; NaN at row 0).
    """
    N, K = len(X), len(pi)
    rows = []
    blocked = np.zeros(K, dtype=bool)  # components whose move was refused

    def e(pi, mu):
        t0 = time.perf_counter()
        resp, loglik = e_step(X, pi, mu)
        seconds = time.perf_counter() - t0
        ll = float(loglik.mean())
        return _Step(resp, loglik, ll, ll + log_prior(pi, mu, mu_prior, pi_prior) / N, seconds)

    def record(it, ll, obj, e_seconds, m_seconds, moved, previous):
        rows.append((it, ll, obj, e_seconds, m_seconds, moved))
        if callback is not None:
            callback(dict(zip(TRACE_COLUMNS, rows[-1], strict=True), change=obj - previous))

    resp, loglik, ll, obj, e_seconds = e(pi, mu)
    record(0, ll, obj, e_seconds, float("nan"), 0, float("nan"))
    converged = False
    for it in range(1, max_iter + 1):
        t0 = time.perf_counter()
        pi, mu = m_step(X, resp, mu, mu_prior, pi_prior)
        resp = None  # free it before the E-step makes the next (N×K: 24 MB at K=100 on MNIST)
        step = None
        moved = 0
        if reseed_degenerate:
            pi2, mu2, move = _reseed(X, pi, mu, loglik, blocked)
            if move.any():
                step = e(pi2, mu2)
                if step.objective >= obj:  # keep the move: the objective did not drop
                    pi, mu, moved = pi2, mu2, int(move.sum())
                else:
                    step, blocked = None, blocked | move
        if step is None:
            m_seconds = time.perf_counter() - t0
            step = e(pi, mu)
        else:
            m_seconds = time.perf_counter() - t0 - step.seconds
        resp, loglik, ll, new_obj, e_seconds = step
        record(it, ll, new_obj, e_seconds, m_seconds, moved, obj)
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


# ---------------------------------------------------------------------------------------
# The estimator


def bic(total_loglik: float, n_parameters: int, n_samples: int) -> float:
    """Bayesian information criterion from a data set's total log-likelihood (lower is better)."""
    return -2 * total_loglik + n_parameters * np.log(n_samples)


class BernoulliMixture(DensityMixin, BaseEstimator):
    """A mixture of K multivariate Bernoulli distributions over binary vectors, fitted by EM.

    A scikit-learn estimator: ``clone``, ``GridSearchCV`` (which picks by :meth:`score`, the
    held-out log-likelihood per sample), pipelines and ``check_is_fitted`` work. Parameters
    follow ``sklearn.mixture.GaussianMixture`` where they mean the same thing.

    Parameters
    ----------
    n_components : int ≥ 1, default 1
        K, the number of mixture components.
    estep : str, default "matmul_fused"
        Name of the E-step variant in ``bmm.estep.VARIANTS`` used during fitting.
    tol : float ≥ 0, default 1e-3
        Convergence threshold on the change of the objective per sample.
    max_iter : int ≥ 0, default 100
        EM iterations per initialisation. A fit that stops here without converging warns
        (``ConvergenceWarning``), as ``GaussianMixture`` does.
    n_init : int ≥ 1, default 1
        Initialisations to run; the best objective is kept.
    init_params : {"random", "kmeans++"}, default "random"
        "random": μ ~ U(0.25, 0.75), as the article; "kmeans++": k-means++ seeding.
    mu_prior : float ≥ 1, default 1.0
        Symmetric Beta(a, a) prior on every μ_kd (MAP estimate); 1 is none (maximum
        likelihood, as the article). Any a > 1 keeps every μ inside (0, 1), so a component
        left with one image no longer reproduces it exactly (but from a random start on
        MNIST it empties more components than it saves: see config/README.md).
    pi_prior : float ≥ 1, default 1.0
        Symmetric Dirichlet(α) prior on π; 1 is none.
    reseed_degenerate : bool, default False
        After an M-step, move each degenerate component (N·π_k < 2) to a worst-explained
        image, if that does not lower the objective; a refused move is not proposed again
        for that component (see :func:`fit_em`). EM stays monotone.
    binarize : float or None, default None
        None: X must already be binary (every entry 0 or 1, or bool). A number: entries
        above it are 1, the others 0 (as ``sklearn.naive_bayes.BernoulliNB``).
    random_state : None, int, numpy Generator or RandomState, default None
        Makes a fit (and :meth:`sample`) reproducible to the bit.
    verbose : int, default 0
        0 silent; 1: a line per initialisation; 2: also a line every ``verbose_interval``
        iterations (log-likelihood per sample, its change, seconds per iteration). Lines go
        to the ``log`` callable given to :meth:`fit`, else to stdout.
    verbose_interval : int ≥ 1, default 10
        Iterations between two progress lines at ``verbose=2``.

    Attributes
    ----------
    weights_ : (K,) π. means_ : (K, D) μ.
    converged_, n_iter_, lower_bound_ (objective per sample at the end), best_init_ (the
    winning start), trace_ (a DataFrame, one row per E-step of the winning start),
    n_features_in_, feature_names_in_ (for DataFrame input), n_samples_fit_ (samples fitted
    on; None for a model rebuilt by :meth:`from_parameters` without it).

    Scoring (``predict_proba``, ``predict``, ``score_samples``, ``score``, ``bic``, ``aic``)
    always uses the stable float64 E-step :func:`bmm.estep.scoring` (``matmul_fused``, or the
    same sums from the bits for a BitMatrix), whatever variant fitted the model.
    """

    _parameter_constraints: ClassVar[dict] = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "estep": [StrOptions(set(_estep.VARIANTS))],
        "tol": [Interval(Real, 0.0, None, closed="left")],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "init_params": [StrOptions(set(INIT_METHODS))],
        "mu_prior": [Interval(Real, 1.0, None, closed="left")],
        "pi_prior": [Interval(Real, 1.0, None, closed="left")],
        "reseed_degenerate": ["boolean"],
        "binarize": [None, Interval(Real, None, None, closed="neither")],
        "random_state": ["random_state", np.random.Generator],
        "verbose": ["verbose"],
        "verbose_interval": [Interval(Integral, 1, None, closed="left")],
    }

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
        reseed_degenerate=False,
        binarize=None,
        random_state=None,
        verbose=0,
        verbose_interval=10,
    ):
        self.n_components = n_components
        self.estep = estep
        self.tol = tol
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.mu_prior = mu_prior
        self.pi_prior = pi_prior
        self.reseed_degenerate = reseed_degenerate
        self.binarize = binarize
        self.random_state = random_state
        self.verbose = verbose
        self.verbose_interval = verbose_interval

    # -- input -------------------------------------------------------------------------

    def _validate_X(self, X, *, reset):
        """The one place where input data are checked: X as a bool (n_samples × n_features).

        scikit-learn's ``validate_data`` checks the shape, finiteness and dtype and records
        (``reset=True``, in fit) or compares (scoring) ``n_features_in_`` and feature names;
        then X is binarised (``binarize`` a number) or must already be binary. A
        :class:`bmm.bits.BitMatrix` is binary by construction and stays packed: only its number
        of features is checked.
        """
        if isinstance(X, BitMatrix):
            if reset:
                self.n_features_in_ = X.n_features
                self.__dict__.pop("feature_names_in_", None)
            elif X.n_features != self.n_features_in_:
                raise ValueError(
                    f"X has {X.n_features} features, but {type(self).__name__} is expecting "
                    f"{self.n_features_in_} features as input."
                )
            if len(X) < 1:
                raise ValueError("Found array with 0 sample(s) while a minimum of 1 is required.")
            return X
        X = validate_data(self, X, reset=reset)
        if self.binarize is not None:
            return X > self.binarize
        if X.dtype != bool and not ((X == 0) | (X == 1)).all():
            raise ValueError(
                "X must be binary: every entry 0 or 1 (binarise the images first, or set "
                "binarize=threshold to have values above the threshold read as 1)"
            )
        return X.astype(bool, copy=False)

    # -- fitting -----------------------------------------------------------------------

    def fit(self, X, y=None, *, log=None):
        """Fit by EM, ``n_init`` times from different starts; keep the best objective.

        ``log``: a function taking one line of text, where ``verbose`` messages go (default:
        printed to stdout, as scikit-learn's estimators do).
        """
        self._validate_params()
        X = self._validate_X(X, reset=True)
        n_samples = len(X)
        variant = _estep.VARIANTS[self.estep]
        if variant.unavailable:
            raise ValueError(f"E-step variant {self.estep!r} is unavailable: {variant.unavailable}")
        if self.n_components > n_samples:
            raise ValueError(
                f"n_components={self.n_components} is larger than the number of samples "
                f"({n_samples}); use at most {n_samples} components or more data"
            )
        say = print if log is None else log
        Xv = variant.prepare(X)
        rng = np.random.default_rng(self.random_state)
        best = None
        for i in range(self.n_init):
            if self.verbose:
                say(f"Initialization {i}")
            pi, mu = initialize(X, self.n_components, self.init_params, rng)
            t0 = time.perf_counter()
            result = fit_em(
                Xv,
                pi,
                mu,
                variant,
                tol=self.tol,
                max_iter=self.max_iter,
                mu_prior=self.mu_prior,
                pi_prior=self.pi_prior,
                reseed_degenerate=self.reseed_degenerate,
                callback=self._progress(say) if self.verbose >= 2 else None,
            )
            result.init_index = i
            if self.verbose:
                status = "converged" if result.converged else "did not converge"
                say(
                    f"Initialization {i} {status} after {result.n_iter} iterations, "
                    f"{time.perf_counter() - t0:.2f} s; objective per sample "
                    f"{result.lower_bound:.4f}"
                )
            if best is None or result.lower_bound > best.lower_bound:
                best = result
        self.weights_, self.means_ = best.weights, best.means
        self.converged_, self.n_iter_ = best.converged, best.n_iter
        self.lower_bound_, self.trace_ = best.lower_bound, best.trace
        self.best_init_ = best.init_index
        self.n_samples_fit_ = n_samples
        if not self.converged_ and self.max_iter > 0:
            obj = best.trace["objective"].to_numpy()
            warnings.warn(
                f"EM stopped at max_iter={self.max_iter} without converging: the objective "
                f"per sample last changed by {obj[-1] - obj[-2]:.3g}, more than tol={self.tol}. "
                "Increase max_iter or tol, or try other starts (n_init, init_params).",
                ConvergenceWarning,
                stacklevel=2,
            )
        return self

    def _progress(self, say):
        """The per-iteration callback of ``verbose=2``: a line every ``verbose_interval``."""
        last = {"time": time.perf_counter(), "iteration": 0}

        def progress(row):
            it = row["iteration"]
            if it == 0:
                say(f"  start: log-likelihood per sample {row['loglik']:.4f}")
                last["time"] = time.perf_counter()
            elif it % self.verbose_interval == 0:
                now = time.perf_counter()
                per_iter = (now - last["time"]) / (it - last["iteration"])
                last.update(time=now, iteration=it)
                extra = f", {row['reseeded']} component(s) re-seeded" if row["reseeded"] else ""
                say(
                    f"  iteration {it}: log-likelihood per sample {row['loglik']:.4f}, "
                    f"objective change {row['change']:+.3e}, {per_iter:.3f} s/iteration"
                    f"{extra}"
                )

        return progress

    def fit_predict(self, X, y=None, *, log=None):
        """Fit, then the most responsible component of each sample of X."""
        return self.fit(X, log=log).predict(X)

    @classmethod
    def from_parameters(cls, weights, means, *, n_samples=None, **params):
        """A fitted model from its parameters, e.g. read back from a params table.

        ``weights`` (K) must be ≥ 0 and sum to 1, ``means`` (K×D) lie in [0, 1];
        ``n_samples`` is the number of samples it was fitted on (sets ``n_samples_fit_``),
        ``params`` any constructor parameters (``n_components`` is K). The model scores,
        predicts and samples as the fitted one did; ``converged_``, ``n_iter_``,
        ``lower_bound_`` and ``trace_`` belong to a fit and are not set.
        """
        weights = np.array(weights, dtype=np.float64)
        means = np.array(means, dtype=np.float64)
        if weights.ndim != 1 or means.ndim != 2 or len(weights) != len(means):
            raise ValueError(
                f"weights must be (K,) and means (K, D) for the same K, got {weights.shape} "
                f"and {means.shape}"
            )
        if not (np.isfinite(weights).all() and (weights >= 0).all()):
            raise ValueError("weights must be finite and ≥ 0")
        if abs(weights.sum() - 1.0) > 1e-8:
            raise ValueError(f"weights must sum to 1, got {weights.sum()!r}")
        if not (np.isfinite(means).all() and (means >= 0).all() and (means <= 1).all()):
            raise ValueError("means must lie in [0, 1]")
        K = len(weights)
        if params.get("n_components", K) != K:
            raise ValueError(f"n_components={params['n_components']} but {K} weights given")
        model = cls(**{**params, "n_components": K})
        model._validate_params()
        model.weights_, model.means_ = weights, means
        model.n_features_in_ = means.shape[1]
        model.n_samples_fit_ = None if n_samples is None else int(n_samples)
        return model

    # -- scoring -----------------------------------------------------------------------

    def _estimate(self, X):
        """(responsibilities N×K, log p(x) per sample) by the stable scoring E-step."""
        check_is_fitted(self, msg=_NOT_FITTED)
        X = self._validate_X(X, reset=False)
        return _estep.scoring(X, self.weights_, self.means_)

    def predict_proba(self, X):
        """Responsibilities p(k | x) for each sample (N×K)."""
        return self._estimate(X)[0]

    def predict(self, X):
        """The most responsible component for each sample."""
        return self.predict_proba(X).argmax(axis=1)

    def score_samples(self, X):
        """log p(x) for each sample."""
        return self._estimate(X)[1]

    def score(self, X, y=None):
        """Mean log-likelihood per sample (higher is better: what ``GridSearchCV`` maximises)."""
        return float(self.score_samples(X).mean())

    def sample(self, n_samples=1):
        """``n_samples`` binary samples from the fitted mixture, and the component of each.

        As ``GaussianMixture.sample``: the samples come grouped by component (y sorted),
        drawn from ``random_state`` afresh at each call. Returns X (bool, n_samples × D) and
        y (int, n_samples).
        """
        check_is_fitted(self, msg=_NOT_FITTED)
        if not isinstance(n_samples, Integral) or isinstance(n_samples, bool) or n_samples < 1:
            raise ValueError(f"n_samples must be an integer ≥ 1, got {n_samples!r}")
        rng = np.random.default_rng(self.random_state)
        counts = rng.multinomial(n_samples, self.weights_ / self.weights_.sum())
        y = np.repeat(np.arange(len(self.weights_)), counts)
        X = rng.random((n_samples, self.means_.shape[1])) < self.means_[y]
        return X, y

    def n_parameters(self):
        """Free parameters: K·D means and K − 1 weights."""
        check_is_fitted(self, msg=_NOT_FITTED)
        K, D = self.means_.shape
        return K * D + K - 1

    def bic(self, X):
        """Bayesian information criterion on X (lower is better)."""
        loglik = self.score_samples(X)
        return bic(loglik.sum(), self.n_parameters(), len(loglik))

    def aic(self, X):
        """Akaike information criterion on X (lower is better)."""
        return -2 * self.score_samples(X).sum() + 2 * self.n_parameters()


_NOT_FITTED = "This %(name)s instance is not fitted yet; call fit(X) first."
