"""Timing the E-step variants over a grid of N and K, honestly.

- Each point is timed in-process with ``time.perf_counter`` after a warm-up (for calls
  predicted under a second); every repeat is kept (one row per repeat), so the report can
  show the median and the min–max spread.
- A slow variant is timed only where its predicted time fits the per-point budget. The
  prediction scales the nearest point already measured linearly in N (same K) or in K (same
  N): every variant costs at least linearly in both, plus overhead, so the prediction errs
  high rather than low (up to the machine's noise). A point that does not fit is recorded
  with status "skipped", its predicted time and the reason; nothing is dropped or
  extrapolated silently.
- The machine's limit is measured in the same run: a square GEMM in float64 and float32
  (GFLOP/s), so the E-step's speed can be shown as a fraction of it. The E-step's useful
  work is counted as 2·N·K·D floating-point operations (one N×D by D×K product), whatever
  the variant does; "effective GFLOP/s" = that work / time.
- Every variant's responsibilities are checked against the stable ``matmul_fused`` at each
  point (``max_abs_diff``), so a fast wrong answer cannot hide in a speedup figure.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from . import estep

COLUMNS = [
    "variant",
    "N",
    "K",
    "D",
    "dtype",
    "status",
    "repeat",
    "seconds",
    "predicted_s",
    "max_abs_diff",
    "reason",
]


#: Points predicted to take longer than this get no warm-up call.
WARMUP_LIMIT_S = 1.0

#: Seconds to idle before timing another variant: OpenBLAS's threads spin for about 0.1 s
#: after a product (2**28 cycles, its default OPENBLAS_THREAD_TIMEOUT), slowing whatever
#: runs next on the same cores.
IDLE_S = 0.25


def model_flops(N: int, K: int, D: int) -> float:
    """The E-step's useful work: one N×D by D×K product."""
    return 2.0 * N * K * D


def gemm_peak(
    dtype=np.float64,
    n: int = 1536,
    repeats: int = 5,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Best GFLOP/s of an n×n by n×n product in ``dtype`` (the machine's practical limit)."""
    rng = np.random.default_rng(0)
    A = rng.random((n, n)).astype(dtype)
    B = rng.random((n, n)).astype(dtype)
    A @ B  # warm-up: page in, spin up the BLAS threads
    best = math.inf
    for _ in range(repeats):
        t0 = clock()
        A @ B
        best = min(best, clock() - t0)
    return 2.0 * n**3 / best / 1e9


def article_parameters(K: int, D: int, seed: int):
    """π uniform and μ ~ U(0.25, 0.75), the article's timing harness."""
    rng = np.random.default_rng([seed, K])
    return np.full(K, 1.0 / K), rng.uniform(0.25, 0.75, size=(K, D))


def time_variant_grid(
    variant: str,
    X: np.ndarray,
    Ns: Sequence[int],
    Ks: Sequence[int],
    *,
    repeats: int = 5,
    warmup: int = 1,
    budget_s: float = 10.0,
    variant_budget_s: float = math.inf,
    seed: int = 0,
    log: Callable[[str], None] = print,
    clock: Callable[[], float] = time.perf_counter,
    reference: Callable[[int, int], np.ndarray] | None = None,
) -> pd.DataFrame:
    """Time one variant on the first N rows of X (0/1, N_max×D) for every N × K.

    Points run in order of K, then N. A point is skipped when its predicted time exceeds
    ``budget_s``; at every K but the first (the article's K = 10, which is timed in full),
    also when it would take the variant's calls at those K past ``variant_budget_s``.
    Returns one row per repeat (status "ok"), or one row per point that was not timed
    (status "skipped" or "unavailable", with the reason). X is put in the variant's form
    (``Variant.prepare``: a float copy, or bits) once per N before anything is timed.
    ``reference(N, K)``: the float64 responsibilities each point's are compared with
    (default: ``matmul_fused`` computed here; the timing job shares one
    :func:`reference_responsibilities` between variants).
    """
    v = estep.get(variant)
    D = X.shape[1]
    inputs = _prepared(v, X, Ns)
    time.sleep(IDLE_S)  # let the previous variant's BLAS threads go idle
    reference = reference or reference_responsibilities(X, seed)
    rows = []
    measured: dict[tuple[int, int], float] = {}  # (N, K) -> median seconds
    spent = 0.0  # seconds of this variant's calls beyond the first K, warm-ups included
    dtype = np.dtype(v.dtype).name

    def row(N, K, status, repeat=-1, seconds=math.nan, predicted=math.nan, diff=math.nan, why=""):
        rows.append((variant, N, K, D, dtype, status, repeat, seconds, predicted, diff, why))

    for K in sorted(Ks):
        first_K = K == min(Ks)
        pi, mu = article_parameters(K, D, seed)
        for N in sorted(Ns):
            if v.unavailable:
                row(N, K, "unavailable", why=v.unavailable)
                continue
            if N > len(X):
                row(N, K, "skipped", why=f"N={N} exceeds the {len(X)} images available")
                continue
            predicted = _predict(measured, N, K)
            if predicted > budget_s:
                why = f"predicted {predicted:.3g} s > budget {budget_s:g} s per point"
                row(N, K, "skipped", predicted=predicted, why=why)
                continue
            if not first_K and spent + predicted > variant_budget_s:
                why = (
                    f"predicted {predicted:.3g} s; the variant's budget of {variant_budget_s:g} s "
                    f"is spent ({spent:.3g} s used)"
                )
                row(N, K, "skipped", predicted=predicted, why=why)
                continue
            x = inputs[N]
            # a warm-up pays for short calls (caches, BLAS threads spinning up); a call that
            # takes a second or more gains nothing from one, so it is not spent there
            n_warm = (
                warmup if predicted < WARMUP_LIMIT_S and predicted * (warmup + 1) <= budget_s else 0
            )
            n_rep = repeats
            if predicted > 0:
                n_rep = max(1, min(repeats, int((budget_s - n_warm * predicted) / predicted)))
            t_start = clock()
            for _ in range(n_warm):
                v(x, pi, mu)
            times = []
            for _ in range(n_rep):
                t0 = clock()
                resp, _ = v(x, pi, mu)
                times.append(clock() - t0)
            if not first_K:
                spent += clock() - t_start
            diff = float(np.abs(resp - reference(N, K)).max())
            for r, t in enumerate(times):
                row(N, K, "ok", r, t, predicted, diff)
            measured[N, K] = float(np.median(times))
            log(
                f"{variant:>20s} N={N:>6d} K={K:>4d}: median {measured[N, K]:.3g} s "
                f"over {n_rep} (predicted {predicted:.3g} s), max |Δγ| {diff:.1e}"
            )
    return pd.DataFrame(rows, columns=COLUMNS)


def reference_responsibilities(
    X: np.ndarray, seed: int, Ns: Sequence[int] = (), Ks: Sequence[int] = ()
) -> Callable[[int, int], np.ndarray]:
    """``reference(N, K)``: matmul_fused's responsibilities on X's first N rows with the
    article's parameters for K, computed once per (N, K) and kept; those of the grid
    ``Ns`` × ``Ks`` at once, so that no product runs between the timed calls (OpenBLAS's
    threads spin for 0.1 s after one, slowing the variant timed next)."""
    X64 = X.astype(np.float64, copy=False)

    @functools.cache
    def reference(N: int, K: int) -> np.ndarray:
        pi, mu = article_parameters(K, X.shape[1], seed)
        return estep.matmul_fused(X64[:N], pi, mu)[0]

    for K in Ks:
        for N in Ns:
            if N <= len(X):
                reference(N, K)
    return reference


def _prepared(v: estep.Variant, X: np.ndarray, Ns: Sequence[int]) -> dict:
    """X's first N rows in the variant's form, for each N that X has (none if unavailable)."""
    if v.unavailable:
        return {}
    if v.packed:  # bits, each with its own index of non-zero nibbles
        return {N: v.prepare(X[:N]) for N in Ns if N <= len(X)}
    Xv = v.prepare(X)
    return {N: Xv[:N] for N in Ns if N <= len(X)}


def _predict(measured: dict[tuple[int, int], float], N: int, K: int) -> float:
    """Scale the nearest measured point: largest N' < N at this K, else largest K' < K at N.

    Failing both, the largest measured point below in both N and K, scaled in both. 0 when
    nothing smaller has been measured: the smallest point always runs.
    """
    same_k = [n for (n, k) in measured if k == K and n < N]
    if same_k:
        n = max(same_k)
        return measured[n, K] * N / n
    same_n = [k for (n, k) in measured if n == N and k < K]
    if same_n:
        k = max(same_n)
        return measured[N, k] * K / k
    smaller = [(n, k) for (n, k) in measured if n <= N and k <= K]
    if smaller:  # a smaller N at this K was skipped, or nothing at this N yet
        n, k = max(smaller, key=lambda nk: nk[0] * nk[1])
        return measured[n, k] * (N / n) * (K / k)
    return 0.0


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    """Median, min and max seconds per (variant, N, K) over the timed repeats."""
    ok = df[df["status"] == "ok"]
    g = ok.groupby(["variant", "N", "K", "D", "dtype"], sort=False)["seconds"]
    out = g.agg(median_s="median", min_s="min", max_s="max", repeats="count").reset_index()
    out["effective_gflops"] = model_flops(out["N"], out["K"], out["D"]) / out["median_s"] / 1e9
    return out
