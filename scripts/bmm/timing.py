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
- Beside the variants, the bare float32 product ``X @ W`` (:data:`BARE_PRODUCT`) is timed
  as a yardstick: the one product a dense E-step cannot avoid, with nothing around it.
- On several data sets (:func:`variants_for`): every variant on the first; on the others the
  variants whose cost depends on the data (``Variant.data_dependent``), beside the article's
  three lines as published and the bare product. A dense product costs the same whatever
  the pixels hold, so timing it again would double the job and show nothing new.
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


#: The yardstick's name in a timings table: the bare float32 product X @ W, W the D×K
#: log-odds, as a dense E-step's core (no logs, no normalisation).
BARE_PRODUCT = "bare_product_f32"

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


def variants_for(variants: Sequence[str], first: bool) -> list[str]:
    """What the timing job times on a data set, from ``timing.variants``: every one of them
    on the first set; on the others those whose cost depends on the data and the article's
    three lines as published (each if listed); then the bare product, on every set."""
    keep = [v for v in variants if first or estep.get(v).data_dependent or v == estep.ARTICLE_FINAL]
    return [*keep, BARE_PRODUCT]


def why_timed(first: bool) -> str:
    """Why a data set's timings hold the variants :func:`variants_for` chose, in words."""
    if first:
        return "every variant listed in timing.variants (the first data set)"
    return (
        "the variants whose cost depends on the data (a branch a pixel, or a cost per "
        "non-zero nibble), the article's three lines as published and the bare float32 "
        "product: the dense products cost the same whatever the pixels hold, so they are "
        "timed on the first data set only"
    )


class _BareProduct:
    """The bare float32 product X @ W, timed like a variant (W computed outside the timed
    call, as the data are); its output is not responsibilities, so it is not checked."""

    name, dtype, packed, unavailable, stable = BARE_PRODUCT, np.float32, False, None, False

    def prepare(self, X):
        return np.asarray(X).astype(np.float32, copy=False)

    @staticmethod
    def bind(x, pi, mu):
        mu = np.clip(mu, estep.EPS, 1 - estep.EPS)
        W = np.ascontiguousarray((np.log(mu) - np.log1p(-mu)).T, dtype=np.float32)
        return functools.partial(np.matmul, x, W)


def _timed(variant: str):
    return _BareProduct() if variant == BARE_PRODUCT else estep.get(variant)


def _bind(v, x, pi, mu):
    """The call to time, with everything but the timed work done before."""
    return v.bind(x, pi, mu) if isinstance(v, _BareProduct) else functools.partial(v, x, pi, mu)


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
    also when it would take the variant's calls at those K past ``variant_budget_s``,
    except the largest N at the largest K (the report compares variants and data sets
    there, at the smallest and the largest K), which only ``budget_s`` limits.
    Returns one row per repeat (status "ok"), or one row per point that was not timed
    (status "skipped" or "unavailable", with the reason). X is put in the variant's form
    (``Variant.prepare``: a float copy, or bits) once per N before anything is timed.
    ``reference(N, K)``: the float64 responsibilities each point's are compared with
    (default: ``matmul_fused`` computed here; the timing job shares one
    :func:`reference_responsibilities` between variants).
    """
    v = _timed(variant)
    D = X.shape[1]
    inputs = _prepared(v, X, Ns)
    time.sleep(IDLE_S)  # let the previous variant's BLAS threads go idle
    reference = reference or reference_responsibilities(X, seed)
    rows = []
    measured: dict[tuple[int, int], float] = {}  # (N, K) -> median seconds
    spent = 0.0  # seconds of this variant's calls beyond the first K, warm-ups included
    # the point the report reads at the largest K: beyond the variant's budget
    corner = (max([n for n in Ns if n <= len(X)], default=None), max(Ks))
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
            if not first_K and spent + predicted > variant_budget_s and (N, K) != corner:
                why = (
                    f"predicted {predicted:.3g} s; the variant's budget of {variant_budget_s:g} s "
                    f"is spent ({spent:.3g} s used)"
                )
                row(N, K, "skipped", predicted=predicted, why=why)
                continue
            call = _bind(v, inputs[N], pi, mu)
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
                call()
            times = []
            for _ in range(n_rep):
                t0 = clock()
                out = call()
                times.append(clock() - t0)
            if not first_K:
                spent += clock() - t_start
            diff = (
                math.nan
                if v.name == BARE_PRODUCT
                else float(np.abs(out[0] - reference(N, K)).max())
            )
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


def _prepared(v, X: np.ndarray, Ns: Sequence[int]) -> dict:
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
    """Median, min and max seconds per (variant, N, K) over the timed repeats (and per data
    set, when the table holds several)."""
    ok = df[df["status"] == "ok"]
    keys = ["dataset"] * ("dataset" in df) + ["variant", "N", "K", "D", "dtype"]
    g = ok.groupby(keys, sort=False)["seconds"]
    out = g.agg(median_s="median", min_s="min", max_s="max", repeats="count").reset_index()
    out["effective_gflops"] = model_flops(out["N"], out["K"], out["D"]) / out["median_s"] / 1e9
    return out
