"""Benchmark the E-step variants side by side: ``python -m bmm.bench``.

Two modes, both measuring every ratio inside one run, so that a noisy machine slows every
variant alike:

- **One point** (the default): each variant's time at one (N, K), its ratio to a baseline and
  to the article's final attempt, its effective GFLOP/s, and the peak memory one call
  allocates (``tracemalloc``, which sees numpy's buffers, in a separate call).
- **The suite** (``--suite``): on full MNIST (N = 60000), the article's three lines as
  published against every vectorised variant at K = 10, 50, 100, beside the same run's GEMM
  peak and the bare product ``X @ W`` of the same shape; one whole EM iteration (E + M) of the
  fastest variant; the peak resident memory of a K = 100 fit in a child process; and, at
  the article's point (N = 1000, K = 10), the article's attempt 1 as published against the
  fastest. ``--json`` prints one JSON object instead of the tables.

Repeats are interleaved: every variant once per round, in a new seeded random order each
round. A call can slow the next one (a large array after another variant's work costs fresh
page faults), so each timed call of a fast variant (under 1 s) follows an untimed call of the
same variant, as in the pipeline's timing grid. X is real MNIST with ``--mnist DIR`` (the four
.gz files; the pipeline downloads them to resources/mnist), else random binary images with
MNIST's ink density. μ ~ U(0.25, 0.75) and π uniform, as the article.

    python -m bmm.bench                         # N=1000, K=10, every available variant
    python -m bmm.bench --N 10000 --K 100 --skip loops_ndk loops_nk
    python -m bmm.bench --suite --mnist resources/mnist
    python -m bmm.bench --suite --mnist resources/mnist --json > bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from . import em, estep, idx, storage, threads, timing
from .datasets import MNIST

#: The variants the suite compares with the article's three lines: every one without a
#: Python loop over the images (the loops are timed at the article's point only).
SUITE_VARIANTS = (
    "matmul",
    "matmul_fused",
    "matmul_fused_f32",
    "numba_ndk",
    "numba_simd",
    "packed_lut",
)
ARTICLE = estep.ARTICLE_FINAL  # the article's three lines, as published
ATTEMPT_1 = estep.ARTICLE_FIRST  # the article's first attempt, as published

#: What issue 8 asked of a 2-core machine (ratios from one run); printed beside the results.
TARGETS = {
    "speedup_vs_article_k10": (">=", 20),
    "speedup_vs_article_k100": (">=", 15),
    "peak_fraction_k10": (">=", 0.30),
    "peak_fraction_k100": (">=", 1.00),
    "em_iter_over_estep_k10": ("<=", 2.2),
    "peak_rss_mib_k100": ("<=", 256),
    "loop_over_best_n1000_k10": (">=", 1e4),
    "simd_loop_over_blas_k10": ("<=", 1.5),
}


def load_X(N: int, mnist_dir: str | None, seed: int = 0) -> np.ndarray:
    """The first N binarised MNIST training images (bool), or random ones with MNIST's ink."""
    if mnist_dir:
        files = {role: f.name for role, f in MNIST.files.items()}
        images, _ = idx.load_split(
            f"{mnist_dir}/{files['train_images']}", f"{mnist_dir}/{files['train_labels']}"
        )
        if N > len(images):
            raise SystemExit(f"--N {N} exceeds the {len(images)} MNIST training images")
        return storage.binarize(images[:N], 0.5)
    return np.random.default_rng(seed).random((N, 784)) < 0.13  # MNIST's share of ink at 0.5


def peak_memory(v, X, pi, mu) -> int:
    tracemalloc.start()
    try:
        v(X, pi, mu)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def interleaved(
    calls: dict[str, Callable[[], object]], repeats: int, warmup: int, idle: float = 0.0
) -> dict:
    """Seconds of each call over ``repeats`` rounds, every call once a round, shuffled.

    Before each call (and its settling call) the machine idles ``idle`` seconds: after
    a matrix product OpenBLAS's threads keep spinning on the cores for about 0.1 s, and a
    numba kernel started in that time ran 60 % slower here (88 against 55 ms), a penalty
    that belongs to the previous call, not to the one measured.
    """
    first = {}
    for name, call in calls.items():
        for _ in range(warmup):
            t0 = time.perf_counter()
            call()
            first[name] = time.perf_counter() - t0
    times: dict[str, list[float]] = {name: [] for name in calls}
    order = np.random.default_rng(0)
    for _ in range(repeats):
        for name in order.permutation(list(calls)):
            time.sleep(idle)
            if warmup and first[name] < timing.WARMUP_LIMIT_S:
                calls[name]()  # settle after the previous call
            t0 = time.perf_counter()
            calls[name]()
            times[name].append(time.perf_counter() - t0)
    return times


# ---------------------------------------------------------------------------------------
# One point


def run(args) -> list[dict]:
    names = [n for n in (args.variants or estep.available()) if n not in args.skip]
    for n in names:
        estep.get(n)  # unknown names fail here, before any timing
    X = load_X(args.N, args.mnist)
    pi, mu = timing.article_parameters(args.K, X.shape[1], 0)
    inputs = {n: estep.VARIANTS[n].prepare(X) for n in names}
    with threads.limit_threads(args.threads):
        calls = {n: partial(estep.VARIANTS[n], inputs[n], pi, mu) for n in names}
        times = interleaved(calls, args.repeats, args.warmup, args.idle)
        used = threads.current()
        memory = {
            n: peak_memory(estep.VARIANTS[n], inputs[n], pi, mu) if args.memory else np.nan
            for n in names
        }
    flops = timing.model_flops(args.N, args.K, X.shape[1])
    rows = []
    for n in names:
        med = statistics.median(times[n])
        rows.append(
            {
                "variant": n,
                "median_s": med,
                "min_s": min(times[n]),
                "max_s": max(times[n]),
                "gflops": flops / med / 1e9,
                "peak_mib": memory[n] / 2**20,
            }
        )
    base = {r["variant"]: r["median_s"] for r in rows}
    for r in rows:
        r["vs_baseline"] = base.get(args.baseline, np.nan) / r["median_s"]
        r["vs_matmul"] = base.get("matmul", np.nan) / r["median_s"]
    print(
        f"E-step at N={args.N}, K={args.K}, D={X.shape[1]} "
        f"({'MNIST' if args.mnist else 'random binary X'}); {args.repeats} interleaved repeats "
        f"after {args.warmup} warm-up; threads {used}"
    )
    unavailable = estep.unavailable()
    print(
        f"{'variant':<22} {'median s':>10} {'min s':>10} {'max s':>10} "
        f"{'x ' + args.baseline:>14} {'x matmul':>9} {'GFLOP/s':>8} {'peak MiB':>9}"
    )
    for r in rows:
        print(
            f"{r['variant']:<22} {r['median_s']:>10.4g} {r['min_s']:>10.4g} {r['max_s']:>10.4g} "
            f"{r['vs_baseline']:>14.4g} {r['vs_matmul']:>9.3g} {r['gflops']:>8.3g} "
            f"{r['peak_mib']:>9.2f}"
        )
    for n, why in unavailable.items():
        print(f"{n:<22} unavailable: {why}")
    return rows


# ---------------------------------------------------------------------------------------
# The suite


def suite(args) -> dict:
    """Every figure of the suite, as one JSON-able dict (see the module docstring)."""
    missing = [n for n in (*SUITE_VARIANTS, ARTICLE, ATTEMPT_1) if estep.VARIANTS[n].unavailable]
    if missing:
        raise SystemExit(f"the suite needs {missing}: {estep.unavailable()}")
    X = load_X(args.N, args.mnist)
    N, D = X.shape
    out: dict = {"N": N, "D": D, "data": "MNIST" if args.mnist else "random binary X"}
    with threads.limit_threads(args.threads):
        out["threads"] = threads.current()
        out["gemm_peak_gflops"] = {
            dt: timing.gemm_peak(dt) for dt in ("float32", "float64")
        }  # the same run's limit
        names = (ARTICLE, *SUITE_VARIANTS)
        inputs = {n: estep.VARIANTS[n].prepare(X) for n in names}
        bare = {dt: X.astype(dt) for dt in ("float32", "float64")}
        out["points"] = {}
        for K in args.Ks:
            pi, mu = timing.article_parameters(K, D, 0)
            W = {dt: np.log(mu / (1 - mu)).T.astype(dt) for dt in bare}
            calls = {n: partial(estep.VARIANTS[n], inputs[n], pi, mu) for n in names}
            calls |= {f"X @ W ({dt})": partial(np.matmul, bare[dt], W[dt]) for dt in bare}
            times = interleaved(calls, args.repeats, args.warmup, args.idle)
            out["points"][K] = _summarise(times, N, K, D, out["gemm_peak_gflops"])
        K0, K1 = min(args.Ks), max(args.Ks)
        best0 = _fastest(out["points"][K0])
        out["em_iteration"] = _em_iteration(inputs[best0], best0, K0, args)
        out["article_point"] = _article_point(args)
    out["peak_rss"] = _fit_memory(X, _fastest(out["points"][K1]), K1, args)
    p0, p1 = out["points"][K0], out["points"][K1]
    b0, b1 = _fastest(p0), _fastest(p1)
    out["summary"] = {
        f"speedup_vs_article_k{K0}": p0[ARTICLE]["median_s"] / p0[b0]["median_s"],
        f"speedup_vs_article_k{K1}": p1[ARTICLE]["median_s"] / p1[b1]["median_s"],
        f"peak_fraction_k{K0}": p0[b0]["peak_fraction"],
        f"peak_fraction_k{K1}": p1[b1]["peak_fraction"],
        f"em_iter_over_estep_k{K0}": out["em_iteration"]["ratio"],
        f"peak_rss_mib_k{K1}": out["peak_rss"]["peak_mib"],
        f"loop_over_best_n{out['article_point']['N']}_k10": out["article_point"]["ratio"],
        f"simd_loop_over_blas_k{K0}": p0["numba_simd"]["median_s"]
        / p0["matmul_fused_f32"]["median_s"],
        f"fastest_k{K0}": b0,
        f"fastest_k{K1}": b1,
    }
    return out


def _summarise(times, N, K, D, peaks) -> dict:
    flops = timing.model_flops(N, K, D)
    out = {}
    for name, ts in times.items():
        med = statistics.median(ts)
        v = estep.VARIANTS.get(name)
        dtype = np.dtype(v.dtype).name if v else name.split("(")[1].rstrip(")")
        out[name] = {
            "median_s": med,
            "min_s": min(ts),
            "max_s": max(ts),
            "repeats": len(ts),
            "dtype": dtype,
            "gflops": flops / med / 1e9,
            "peak_fraction": flops / med / 1e9 / peaks[dtype],
        }
    return out


def _fastest(point: dict) -> str:
    """The fastest stable E-step variant at a point (bare products and the article excluded)."""
    names = [n for n in point if n in estep.VARIANTS and estep.VARIANTS[n].stable]
    return min(names, key=lambda n: point[n]["median_s"])


def _em_iteration(X, name: str, K: int, args) -> dict:
    """One EM iteration (E-step then M-step, as bmm.em.fit_em runs them) against its E-step."""
    v = estep.VARIANTS[name]
    pi, mu = timing.article_parameters(K, X.shape[1], 0)

    def iteration():
        resp, _ = v(X, pi, mu)
        em.m_step(X, resp, mu)

    times = interleaved(
        {"estep": lambda: v(X, pi, mu), "iteration": iteration},
        args.repeats,
        args.warmup,
        args.idle,
    )
    e, it = statistics.median(times["estep"]), statistics.median(times["iteration"])
    return {"variant": name, "K": K, "estep_s": e, "iteration_s": it, "ratio": it / e}


def _article_point(args) -> dict:
    """The article's attempt 1, as published, against the fastest variant at N=1000, K=10
    (or at a smaller --N)."""
    N = min(1000, args.N)
    X = load_X(N, args.mnist)
    pi, mu = timing.article_parameters(10, X.shape[1], 0)
    names = (ATTEMPT_1, *SUITE_VARIANTS)
    inputs = {n: estep.VARIANTS[n].prepare(X) for n in names}
    fast = {n: partial(estep.VARIANTS[n], inputs[n], pi, mu) for n in SUITE_VARIANTS}
    times = interleaved(fast, max(args.repeats, 20), args.warmup, args.idle)
    best = min(fast, key=lambda n: statistics.median(times[n]))
    t0 = time.perf_counter()
    estep.VARIANTS[ATTEMPT_1](inputs[ATTEMPT_1], pi, mu)  # ~10 s: once is enough
    slow = time.perf_counter() - t0
    fastest = statistics.median(times[best])
    return {
        "N": N,
        "attempt_1_s": slow,
        "fastest": best,
        "fastest_s": fastest,
        "ratio": slow / fastest,
    }


_FIT_CHILD = """
import sys, time
def mib():  # this process's peak resident memory (VmHWM; ru_maxrss would count the parent's)
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024
from bmm import BernoulliMixture, storage, threads
imports = mib()
X, _ = storage.load_binarized(sys.argv[1], packed=True)
t0 = time.perf_counter()
with threads.limit_threads(int(sys.argv[4]) if sys.argv[4] != "None" else None):
    model = BernoulliMixture(int(sys.argv[2]), estep=sys.argv[3], max_iter=5, tol=0,
                             random_state=0).fit(X)
print(imports, mib(), time.perf_counter() - t0)
"""


def _fit_memory(X, name: str, K: int, args) -> dict:
    """Peak resident memory of a K-component fit (5 EM iterations) in a fresh process that
    loads the data as the pipeline's fit job does, from a bit-packed Parquet table."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.parquet"
        storage.write_binarized(path, X, None, {"bench": True})
        env = dict(os.environ, PYTHONWARNINGS="ignore")
        proc = subprocess.run(
            [sys.executable, "-c", _FIT_CHILD, str(path), str(K), name, str(args.threads)],
            capture_output=True,
            text=True,
            check=False,
            env=env,
        )
    if proc.returncode:
        raise RuntimeError(f"the fit in a child process failed:\n{proc.stderr[-3000:]}")
    imports, peak, seconds = map(float, proc.stdout.split())
    return {
        "variant": name,
        "K": K,
        "peak_mib": peak,
        "after_imports_mib": imports,
        "fit_s": seconds,
    }


def print_suite(out: dict) -> None:
    peaks = out["gemm_peak_gflops"]
    print(
        f"E-step suite on {out['data']}: N={out['N']}, D={out['D']}; threads {out['threads']}; "
        f"same-run GEMM peak {peaks['float32']:.0f} GFLOP/s (float32), "
        f"{peaks['float64']:.0f} (float64)"
    )
    for K, point in out["points"].items():
        print(f"\nK = {K}")
        print(
            f"| {'variant':<22} | {'median ms':>9} | {'min–max ms':>15} | "
            f"{'× article':>9} | {'GFLOP/s':>7} | {'of peak':>7} |"
        )
        print(f"|{'-' * 24}|{'-' * 11}:|{'-' * 17}:|{'-' * 11}:|{'-' * 9}:|{'-' * 9}:|")
        art = point[ARTICLE]["median_s"]
        for name, r in sorted(point.items(), key=lambda kv: -kv[1]["median_s"]):
            spread = f"{1e3 * r['min_s']:.1f}–{1e3 * r['max_s']:.1f}"
            print(
                f"| {name:<22} | {1e3 * r['median_s']:>9.1f} | {spread:>15} | "
                f"{art / r['median_s']:>9.2f} | {r['gflops']:>7.1f} | "
                f"{100 * r['peak_fraction']:>6.0f}% |"
            )
    it, ap, mem = out["em_iteration"], out["article_point"], out["peak_rss"]
    print(
        f"\nOne EM iteration of {it['variant']} at K={it['K']}: {1e3 * it['iteration_s']:.1f} ms"
        f" = {it['ratio']:.2f} × its E-step ({1e3 * it['estep_s']:.1f} ms)"
    )
    print(
        f"Peak resident memory of a K={mem['K']} fit with {mem['variant']} on N={out['N']}: "
        f"{mem['peak_mib']:.0f} MiB (of which {mem['after_imports_mib']:.0f} MiB after "
        f"importing the libraries, before loading data)"
    )
    print(
        f"At N={ap['N']}, K=10: the article's attempt 1 as published {ap['attempt_1_s']:.2f} s, "
        f"{ap['fastest']} {1e3 * ap['fastest_s']:.3f} ms: {ap['ratio']:.3g}×"
    )
    print("\n| figure | value | target (issue 8, 2-core machine) |\n|---|---:|---|")
    for key, value in out["summary"].items():
        if isinstance(value, str):
            continue
        K0, K1 = min(out["points"]), max(out["points"])
        generic = key.replace(f"_k{K0}", "_k10").replace(f"_k{K1}", "_k100")
        op, bound = TARGETS.get(generic, ("", None))
        met = "" if bound is None else (value >= bound if op == ">=" else value <= bound)
        mark = "" if bound is None else f"{op} {bound:g}: {'met' if met else 'MISSED'}"
        print(f"| {key} | {value:.4g} | {mark} |")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bmm.bench", description=__doc__.split("\n")[0])
    p.add_argument("--suite", action="store_true", help="the whole suite (see --help above)")
    p.add_argument("--json", action="store_true", help="with --suite: print one JSON object")
    p.add_argument("--N", type=int, help="images per E-step (default 1000; suite: 60000)")
    p.add_argument("--K", type=int, default=10, help="components (default 10)")
    p.add_argument("--Ks", type=int, nargs="+", default=[10, 50, 100], help="suite: the Ks")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument(
        "--idle",
        type=float,
        default=timing.IDLE_S,
        help=f"seconds to idle before each call, so the previous one's BLAS threads stop "
        f"spinning (default {timing.IDLE_S})",
    )
    p.add_argument("--variants", nargs="+", help="variants to run (default: all available)")
    p.add_argument("--skip", nargs="+", default=[], help="variants to leave out")
    p.add_argument("--baseline", default="loops_ndk", help="ratios against this variant")
    p.add_argument("--threads", type=int, help="BLAS/numba threads (default: as they are)")
    p.add_argument("--mnist", metavar="DIR", help="use real MNIST from DIR (the four .gz files)")
    p.add_argument(
        "--no-memory",
        dest="memory",
        action="store_false",
        help="skip the traced call that measures peak memory (slow for the loops)",
    )
    args = p.parse_args(argv)
    if args.N is None:
        args.N = 60000 if args.suite else 1000
    if args.N < 1 or args.K < 1 or min(args.Ks) < 1 or args.repeats < 1 or args.warmup < 0:
        p.error("--N, --K, --Ks and --repeats must be ≥ 1, --warmup ≥ 0")
    try:
        if args.suite:
            out = suite(args)
            print(json.dumps(out, indent=1)) if args.json else print_suite(out)
        else:
            run(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
