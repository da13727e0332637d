"""The E-step of EM for a Bernoulli mixture, written eleven ways.

Given binary data X (N×D), weights π (K) and means μ (K×D), the E-step computes the
responsibilities γ[n, k] = p(k | x_n) and the per-sample log-likelihood log p(x_n):

    log p(x_n, k) = log π_k + Σ_d x_nd log μ_kd + (1 − x_nd) log(1 − μ_kd)
    γ[n, k]       = exp(log p(x_n, k) − logsumexp_k log p(x_n, k))

The variants below follow the article "Vectorisation: how to speed up your ML algorithm
by x78" (2019), whose attempts remove one Python loop at a time, then go past it. Read them
top to bottom and watch the loops disappear:

    loops_ndk              attempt 1: Python loops over N, K and D, one scalar at a time
    loops_ndk_as_published attempt 1 with the article's exact arithmetic (probabilities)
    loops_nk               attempt 2: loops over N and K; D vectorised in the log domain
    loops_n                attempt 3: a loop over N; K and D vectorised
    matmul                 attempt 4: no loop, two matrix products
    matmul_as_published    attempt 4 with the article's exact arithmetic (no max shift)
    matmul_fused           one matrix product on the log-odds
    matmul_fused_f32       the same in float32
    numba_ndk              attempt 1's loops, compiled by numba as written (a branch a pixel)
    numba_simd             attempt 1's loops written for a vectorising compiler
    packed_lut             X as bits: lookup tables, no float copy of X at all

Every variant has the signature ``f(X, pi, mu) -> (resp, loglik)`` and is numerically
stable (μ clipped to [EPS, 1 − EPS], normalisation shifted by the row maximum), except the
two "as published" forms, which keep the article's arithmetic for timing fidelity and
underflow to 0/0 (NaN) once an image is far from every cluster. A component with π_k = 0
(an empty cluster) gets γ[:, k] = 0 from every variant. ``loglik`` is float64; ``resp`` has
the variant's precision (``VARIANTS[name].dtype``): the float32 variants do not spend a pass
over N×K on a float64 copy.

X must already be in the variant's form (``VARIANTS[name].prepare(X)``: float64, float32, or
bits), so the variants time the E-step itself, not a conversion of the data.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import bits
from .bits import BitMatrix
from .rows import DenseRows, Rows

try:
    import numba
except ImportError:  # an optional extra: pip install "bmm[numba]"
    numba = None

#: μ is clipped to [EPS, 1 − EPS] before taking logs: a pixel never seen "on" in a cluster
#: costs log(EPS) ≈ −23 nats instead of −∞.
EPS = 1e-10

EStep = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Variant:
    """One way to compute the E-step, and what a reader or a scheduler needs to know of it."""

    name: str
    func: EStep
    dtype: type  # the precision it computes in (and X's dtype, unless packed)
    attempt: str  # where it sits in the article's story
    stable: bool = True  # False: as published, may give NaN
    packed: bool = False  # True: X is a bmm.bits.BitMatrix
    unavailable: str | None = None  # why it cannot run here, or None
    data_dependent: bool = False  # True: its cost depends on the data's ink, not only N, K, D

    def __call__(self, X, pi, mu):
        if self.unavailable:
            raise VariantUnavailable(
                f"E-step variant {self.name!r} is unavailable: {self.unavailable}"
            )
        return self.func(X, pi, mu)

    def rows(self, X) -> Rows:
        """Binary X (as for :meth:`prepare`) as the rows EM's engine reads, in this form. Rows
        streamed from elsewhere (bmm.sources) stay as they are: each block is put in this form
        as it is read."""
        if getattr(X, "streamed", False):
            return X
        X = self.prepare(X)
        return X if isinstance(X, BitMatrix) else DenseRows(X)

    def prepare(self, X):
        """Binary X (bool or 0/1 numbers, N×D, or a BitMatrix) in the form this variant reads."""
        if self.packed:
            X = X if isinstance(X, BitMatrix) else BitMatrix.pack(X)
            if not self.unavailable:
                X.nibbles  # noqa: B018 (list the non-zero nibbles now, once, not in an E-step)
            return X
        if isinstance(X, BitMatrix):
            return X.unpack(self.dtype)
        return np.asarray(X).astype(self.dtype, copy=False)


class VariantUnavailable(RuntimeError):
    """The variant needs an optional dependency that is not installed."""


VARIANTS: dict[str, Variant] = {}

#: Not a variant but the name that asks for one: the fastest stable variant for the data and
#: K on this machine (:func:`bmm.auto.choose`), ``BernoulliMixture``'s default ``estep``, and
#: in the pipeline's ``fit.variants`` the fits that make the full-data models.
AUTO = "auto"

#: The article's own code, exactly as published: its first attempt and its final three lines.
ARTICLE_FIRST, ARTICLE_FINAL = "loops_ndk_as_published", "matmul_as_published"


def _register(
    name,
    dtype=np.float64,
    attempt="",
    stable=True,
    packed=False,
    unavailable=None,
    data_dependent=False,
):
    def wrap(func):
        VARIANTS[name] = Variant(
            name, func, dtype, attempt, stable, packed, unavailable, data_dependent
        )
        return func

    return wrap


# ---------------------------------------------------------------------------------------
# Shared pieces of the vectorised variants. loops_ndk uses none of them: it is the
# independent reference the tests compare every other variant against.


def _logs(pi, mu):
    """log π (−∞ where π = 0), log μ and log(1 − μ), with μ clipped to [EPS, 1 − EPS]."""
    mu = np.clip(mu, EPS, 1.0 - EPS)
    with np.errstate(divide="ignore"):
        log_pi = np.log(pi)
    return log_pi, np.log(mu), np.log1p(-mu)


def log_odds(pi, mu):
    """(W, c): the log-odds W = log μ − log(1 − μ) (D×K) and c = Σ_d log(1 − μ) + log π (K),
    so that log p(x, k) = x · W[:, k] + c[k] (see matmul_fused)."""
    log_pi, log_mu, log_1mu = _logs(pi, mu)
    return (log_mu - log_1mu).T, log_1mu.sum(axis=1) + log_pi


def _normalise(log_p, compiled=False):
    """Responsibilities (in log_p's dtype, in place) and float64 log-likelihood from the joint
    log p(x_n, k), stable: shifted by the row maximum before exp.

    numpy's exp is vectorised (SIMD) but runs on one core, and its reductions along a short
    row are slow. ``compiled=True`` finds the maxima and divides by the sums in parallel
    numba kernels instead. Only the variants that run in numba's threads anyway ask for it:
    after a parallel region numba's OpenMP threads spin for a while, and an OpenBLAS product
    started then waits for a core, so the BLAS variants keep numpy's.
    """
    shift_rows, rescale_rows = (
        _compiled_rows if compiled and numba else (_shift_rows, _rescale_rows)
    )
    top = shift_rows(log_p)
    np.exp(log_p, out=log_p)
    return log_p, rescale_rows(log_p, top)


def _shift_rows(log_p):
    """Subtract each row's maximum from it (in place); return the maxima."""
    top = log_p.max(axis=1)
    log_p -= top[:, None]
    return top


def _rescale_rows(p, top):
    """Divide each row of p = exp(log p − top) by its sum (in place); return log p(x), float64."""
    s = p.sum(axis=1)
    p /= s[:, None]
    return (top + np.log(s)).astype(np.float64)


def _shift_rows_compiled(log_p):  # pragma: no cover (compiled)
    top = np.empty(log_p.shape[0], dtype=log_p.dtype)
    for n in numba.prange(log_p.shape[0]):
        top[n] = log_p[n].max()
        log_p[n] -= top[n]
    return top


def _rescale_rows_compiled(p, top):  # pragma: no cover (compiled)
    loglik = np.empty(p.shape[0])
    for n in numba.prange(p.shape[0]):
        s = p[n].sum()
        p[n] /= s
        loglik[n] = top[n] + np.log(np.float64(s))
    return loglik


_compiled_rows = None
if numba is not None:
    _compiled_rows = tuple(
        numba.njit(parallel=True, fastmath={"reassoc"}, cache=True)(kernel)
        for kernel in (_shift_rows_compiled, _rescale_rows_compiled)
    )


# ---------------------------------------------------------------------------------------
# Attempt 1: three nested loops over scalars (the article: 11.688 s at N=1000, K=10).


@_register("loops_ndk", attempt="1")
def loops_ndk(X, pi, mu):
    N, D = X.shape
    K = len(pi)
    resp, loglik = np.empty((N, K)), np.empty(N)
    for n in range(N):
        log_p = [0.0] * K
        for k in range(K):
            s = math.log(pi[k]) if pi[k] > 0 else -math.inf
            for d in range(D):
                m = min(max(mu[k, d], EPS), 1.0 - EPS)
                s += math.log(m) if X[n, d] else math.log1p(-m)
            log_p[k] = s
        top = max(log_p)
        total = sum(math.exp(v - top) for v in log_p)
        for k in range(K):
            resp[n, k] = math.exp(log_p[k] - top) / total
        loglik[n] = top + math.log(total)
    return resp, loglik


# Attempt 1 exactly as published: probabilities multiplied pixel by pixel (numpy scalars, as
# the article's code indexes its arrays), normalised by a plain row sum. No logs, no shift:
# the product of 784 probabilities underflows to 0 for an image far from every cluster, and
# γ becomes 0/0 = NaN. Timed beside loops_ndk, whose log-domain steps cost differently.


@_register("loops_ndk_as_published", attempt="1 (as published)", stable=False)
def loops_ndk_as_published(X, pi, mu):
    N, D = X.shape
    K = len(pi)
    gamma, loglik = np.zeros((N, K)), np.empty(N)
    with np.errstate(divide="ignore", invalid="ignore", under="ignore"):
        for n in range(N):
            for k in range(K):
                m = 1.0
                for d in range(D):
                    m *= mu[k, d] ** X[n, d] * (1 - mu[k, d]) ** (1 - X[n, d])
                gamma[n, k] = pi[k] * m
            total = gamma[n].sum()
            gamma[n] /= total
            loglik[n] = np.log(total)
    return gamma, loglik


# Attempt 2: loops over N and K; the sum over D is two dot products in the log domain.


@_register("loops_nk", attempt="2")
def loops_nk(X, pi, mu):
    log_pi, log_mu, log_1mu = _logs(pi, mu)
    N, K = len(X), len(pi)
    log_p = np.empty((N, K))
    for n in range(N):
        for k in range(K):
            log_p[n, k] = log_pi[k] + X[n] @ log_mu[k] + (1 - X[n]) @ log_1mu[k]
    return _normalise(log_p)


# Attempt 3: one loop over N; all K clusters at once with matrix-vector products.


@_register("loops_n", attempt="3")
def loops_n(X, pi, mu):
    log_pi, log_mu, log_1mu = _logs(pi, mu)
    log_p = np.empty((len(X), len(pi)))
    for n in range(len(X)):
        log_p[n] = log_pi + log_mu @ X[n] + log_1mu @ (1 - X[n])
    return _normalise(log_p)


# Attempt 4: no loop at all, two matrix products (the article: 0.012 s at N=1000, K=10).


@_register("matmul", attempt="4")
def matmul(X, pi, mu):
    log_pi, log_mu, log_1mu = _logs(pi, mu)
    log_p = X @ log_mu.T + (1 - X) @ log_1mu.T + log_pi
    return _normalise(log_p)


# Attempt 4 exactly as published: probabilities normalised by a plain row sum. Fast, but
# exp() underflows to 0 for an image far from every cluster and γ becomes 0/0 = NaN.


@_register("matmul_as_published", attempt="4 (as published)", stable=False)
def matmul_as_published(X, pi, mu):
    with np.errstate(divide="ignore", invalid="ignore", under="ignore"):
        p = np.exp(X @ np.log(mu).T + (1 - X) @ np.log(1 - mu).T + np.log(pi))
        total = p.sum(axis=1, keepdims=True)
        return p / total, np.log(total[:, 0])


# Beyond the article: Σ_d x log μ + (1 − x) log(1 − μ) = x · (log μ − log(1 − μ)) + Σ_d log(1 − μ),
# so one product with the log-odds does it, and no N×D temporary such as 1 − X is made.


@_register("matmul_fused", attempt="beyond")
def matmul_fused(X, pi, mu):
    log_pi, log_mu, log_1mu = _logs(pi, mu)
    log_p = X @ (log_mu - log_1mu).T
    log_p += log_1mu.sum(axis=1) + log_pi
    return _normalise(log_p)


# The same in float32: half the memory traffic, twice the SIMD width. The log-odds and the
# per-cluster constant are computed in float64 first, so only the product runs in float32.


@_register("matmul_fused_f32", dtype=np.float32, attempt="beyond")
def matmul_fused_f32(X, pi, mu):
    log_pi, log_mu, log_1mu = _logs(pi, mu)
    log_p = X @ (log_mu - log_1mu).T.astype(np.float32)
    log_p += (log_1mu.sum(axis=1) + log_pi).astype(np.float32)
    return _normalise(log_p)


# Attempt 1's loops again, compiled to machine code by numba: are loops slow, or Python?


def _numba_log_joint(X, log_pi, log_mu, log_1mu):  # pragma: no cover (compiled)
    # attempt 1's three loops as written: each pixel picks log μ or log(1 − μ) by a branch
    N, D = X.shape
    K = log_pi.shape[0]
    log_p = np.empty((N, K))
    for n in numba.prange(N):
        for k in range(K):
            s = log_pi[k]
            for d in range(D):
                s += log_mu[k, d] if X[n, d] else log_1mu[k, d]
            log_p[n, k] = s
    return log_p


def _numba_log_joint_simd(X, W, c):  # pragma: no cover (compiled)
    # the same loops written for the compiler: float32, one product with the log-odds W (no
    # branch: x is 0 or 1), contiguous over D, so the sum over D becomes SIMD instructions
    N, D = X.shape
    K = W.shape[0]
    log_p = np.empty((N, K), dtype=np.float32)
    for n in numba.prange(N):
        for k in range(K):
            s = np.float32(0.0)
            for d in range(D):
                s += X[n, d] * W[k, d]
            log_p[n, k] = s + c[k]
    return log_p


NO_NUMBA = None if numba else "numba is not installed (pip install 'bmm[numba]')"
if numba is not None:
    _numba_log_joint = numba.njit(parallel=True, cache=True)(_numba_log_joint)
    # reassociation lets the compiler reorder the sum over D, which vectorising it needs (not
    # the rest of fastmath: c is −∞ for an empty cluster)
    _numba_log_joint_simd = numba.njit(parallel=True, fastmath={"reassoc"}, cache=True)(
        _numba_log_joint_simd
    )


# a branch a pixel: its cost depends on how the data's pixels fall (the branch predictor)
@_register("numba_ndk", attempt="1, compiled", unavailable=NO_NUMBA, data_dependent=True)
def numba_ndk(X, pi, mu):
    return _normalise(_numba_log_joint(X, *_logs(pi, mu)), compiled=True)


@_register("numba_simd", dtype=np.float32, attempt="1, compiled for SIMD", unavailable=NO_NUMBA)
def numba_simd(X, pi, mu):
    log_pi, log_mu, log_1mu = _logs(pi, mu)
    W = (log_mu - log_1mu).astype(np.float32)
    c = (log_1mu.sum(axis=1) + log_pi).astype(np.float32)
    return _normalise(_numba_log_joint_simd(X, W, c), compiled=True)


# X is binary, so it need not be floats at all: kept as bits (98 bytes a MNIST image instead
# of 3136 in float32), the product X @ W is a sum of lookup-table rows, one per non-zero
# nibble (4 pixels) of each image, each row normalised while it is in registers; bmm.bits
# explains how. The E-step then reads 30× less memory than matmul_fused_f32 and adds 45 table
# rows an image instead of multiplying 784. ``dtype`` is the precision of the tables and of γ:
# float32 as a variant, float64 in scoring.


# its cost grows with the non-zero nibbles an image holds: with the data's ink
@_register(
    "packed_lut",
    dtype=np.float32,
    attempt="beyond",
    packed=True,
    unavailable=NO_NUMBA,
    data_dependent=True,
)
def packed_lut(X, pi, mu, dtype=np.float32):
    return bits.e_step(X, *log_odds(pi, mu), dtype)


# ---------------------------------------------------------------------------------------
# Scoring a fitted model: not a variant of the story, the E-step the estimator's predict,
# predict_proba and score_samples use whatever variant fitted the model.


def scoring(X, pi, mu):
    """Responsibilities and log p(x) in float64, stable, for X dense or packed.

    Dense X: ``matmul_fused``, a block of rows at a time (so no N×D float64 copy of X is
    made). Packed X (with numba): the same sums through float64 lookup tables, exact to
    rounding like ``matmul_fused`` (they agree to 1e-12).
    """
    if isinstance(X, BitMatrix) and not VARIANTS["packed_lut"].unavailable:
        return packed_lut(X, pi, mu, dtype=np.float64)
    rows = X if isinstance(X, BitMatrix) else DenseRows(X)
    resp, loglik = np.empty((len(rows), len(pi))), np.empty(len(rows))
    start = 0
    for block in rows.blocks():
        end = start + len(block)
        resp[start:end], loglik[start:end] = matmul_fused(block.dense(np.float64), pi, mu)
        start = end
    return resp, loglik


# ---------------------------------------------------------------------------------------


def get(name: str) -> Variant:
    """The variant called ``name``; a ValueError listing the known names otherwise."""
    try:
        return VARIANTS[name]
    except KeyError:
        raise ValueError(
            f"unknown E-step variant {name!r}; choose one of: {', '.join(VARIANTS)}"
        ) from None


def available() -> list[str]:
    """Names of the variants that can run here, in the article's order."""
    return [name for name, v in VARIANTS.items() if not v.unavailable]


def unavailable() -> dict[str, str]:
    """Variants that cannot run here, with the reason and the fix."""
    return {name: v.unavailable for name, v in VARIANTS.items() if v.unavailable}
