"""Benchmark the E-step variants side by side: ``python -m bmm.bench``.

Two modes, both measuring every ratio inside one run, so that a noisy machine slows every
variant alike:

- **One point** (the default): each variant's time at one (N, K), its ratio to a baseline and
  to the article's final attempt, its effective GFLOP/s, and the peak memory one call
  allocates (``tracemalloc``, which sees numpy's buffers, in a separate call).
- **The suite** (``--suite``): on a data set's training images (all 60000 of MNIST's), the
  article's three lines as published against every vectorised variant at K = 10, 50, 100,
  beside the same run's GEMM peak and the bare product ``X @ W`` of the same shape; one EM
  iteration (the fused pass and the M-step's update) against the fastest E-step, at the
  smallest and the largest K; the peak resident memory of a K = 100 fit in a child process,
  on the data and on the data repeated ten times (how memory grows with N); what
  ``estep="auto"`` chooses; and, at the article's point (N = 1000, K = 10), the article's
  attempt 1 as published against the fastest. ``--json`` prints one JSON object instead.

Repeats are interleaved: every variant once per round, in a new seeded random order each
round. A call can slow the next one (a large array after another variant's work costs fresh
page faults), so each timed call of a fast variant (under 1 s) follows an untimed call of the
same variant, as in the pipeline's timing grid. X is a data set's training images with
``--data DIR`` (DIR holds the four IDX .gz files of MNIST's layout: MNIST, Fashion-MNIST, ...;
``--mnist`` is the same option), binarised at 0.5, else random binary images with MNIST's ink
density. μ ~ U(0.25, 0.75) and π uniform, as the article.

    python -m bmm.bench                         # N=1000, K=10, every available variant
    python -m bmm.bench --N 10000 --K 100 --skip loops_ndk loops_nk
    python -m bmm.bench --suite --data resources/mnist
    python -m bmm.bench --suite --data resources/mnist --json > bench.json
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

from . import auto, engine, estep, idx, storage, threads, timing
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

#: Targets set for a 2-core machine on MNIST (ratios from one run), printed beside the results.
TARGETS = {
    "speedup_vs_article_k10": (">=", 25),
    "speedup_vs_article_k100": (">=", 25),
    "peak_fraction_k10": (">=", 0.30),
    "peak_fraction_k100": (">=", 1.00),
    "packed_over_bare_k10": ("<=", 0.25),
    "packed_over_bare_k100": ("<=", 0.40),
    "em_iter_over_estep_k10": ("<=", 1.30),
    "em_iter_over_estep_k100": ("<=", 1.30),
    "peak_rss_mib_k100": ("<=", 256),
    "rss_growth_mib_per_million_k100": ("<=", 300),
    "auto_over_fastest_k100": ("<=", 1.10),
    "loop_over_best_n1000_k10": (">=", 1e4),
    "simd_loop_over_blas_k10": ("<=", 1.5),
}

#: EM iterations from the article's start before an iteration is timed: a fit spends nearly
#: all its iterations past this, where most responsibilities are 0 or 1.
FITTED_AFTER = 10

#: The fit whose memory is measured runs on the data and on the data repeated this often.
REPEAT_FOR_GROWTH = 10


def load_X(N: int, data_dir: str | None, seed: int = 0) -> np.ndarray:
    """The first N binarised training images (bool) of the data set in ``data_dir`` (four IDX
    files in MNIST's layout, named as MNIST's are), or random ones with MNIST's ink."""
    if data_dir:
        files = {role: f.name for role, f in MNIST.files.items()}
        images, _ = idx.load_split(
            f"{data_dir}/{files['train_images']}", f"{data_dir}/{files['train_labels']}"
        )
        if N > len(images):
            raise SystemExit(f"--N {N} exceeds the {len(images)} training images in {data_dir}")
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
    a matrix product OpenBLAS's threads keep spinning on the cores for a while (2^28 cycles,
    OPENBLAS_THREAD_TIMEOUT's default), and a numba kernel started in that time runs slower,
    a penalty that belongs to the previous call, not to the one measured.
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
    X = load_X(args.N, args.data)
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
    data = Path(args.data).name if args.data else "random binary X"
    print(
        f"E-step at N={args.N}, K={args.K}, D={X.shape[1]} ({data}); {args.repeats} "
        f"interleaved repeats after {args.warmup} warm-up; threads {used}"
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
    X = load_X(args.N, args.data)
    N, D = X.shape
    data = Path(args.data).name if args.data else "random binary X"
    out: dict = {"N": N, "D": D, "data": data}
    K0, K1 = min(args.Ks), max(args.Ks)
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
        out["em_iteration"] = {K: _em_iteration(X, K, args) for K in sorted({K0, K1})}
        out["auto"] = {K: auto.choose(X, K) for K in sorted({K0, K1})}
        out["article_point"] = _article_point(args)
    best1 = _fastest(out["points"][K1])
    small, large = (_fit_memory(X, best1, K1, args, repeat) for repeat in (1, REPEAT_FOR_GROWTH))
    out["peak_rss"] = small
    out["peak_rss_repeated"] = large
    growth = (large["peak_mib"] - small["peak_mib"]) / (large["N"] - small["N"]) * 1e6
    p0, p1 = out["points"][K0], out["points"][K1]
    b0, b1 = _fastest(p0), best1
    packed = [n for n in SUITE_VARIANTS if estep.VARIANTS[n].packed]

    def packed_over_bare(point):
        return min(point[n]["median_s"] for n in packed) / point["X @ W (float32)"]["median_s"]

    out["summary"] = {
        f"speedup_vs_article_k{K0}": p0[ARTICLE]["median_s"] / p0[b0]["median_s"],
        f"speedup_vs_article_k{K1}": p1[ARTICLE]["median_s"] / p1[b1]["median_s"],
        f"peak_fraction_k{K0}": p0[b0]["peak_fraction"],
        f"peak_fraction_k{K1}": p1[b1]["peak_fraction"],
        f"packed_over_bare_k{K0}": packed_over_bare(p0),
        f"packed_over_bare_k{K1}": packed_over_bare(p1),
        f"em_iter_over_estep_k{K0}": out["em_iteration"][K0]["ratio"],
        f"em_iter_over_estep_k{K1}": out["em_iteration"][K1]["ratio"],
        f"peak_rss_mib_k{K1}": small["peak_mib"],
        f"rss_growth_mib_per_million_k{K1}": growth,
        f"auto_choice_k{K0}": out["auto"][K0],
        f"auto_choice_k{K1}": out["auto"][K1],
        f"auto_over_fastest_k{K1}": p1[out["auto"][K1]]["median_s"] / p1[b1]["median_s"],
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


def _em_iteration(X, K: int, args) -> dict:
    """One EM iteration as bmm.engine.fit_em runs it (a pass: the E-step fused with the
    M-step's sums; then the M-step's update), of the fastest stable variant, against the
    fastest E-step alone (every suite variant's, timed beside it), where a fit spends its
    iterations: at the parameters after :data:`FITTED_AFTER` iterations from the article's
    start. The same ratio at the start itself (μ ~ U(0.25, 0.75): every responsibility
    fractional) is ``at_start``."""
    pi, mu = timing.article_parameters(K, X.shape[1], 0)
    rows = estep.VARIANTS["packed_lut"].rows(X)
    fitted = engine.fit_em(rows, pi, mu, estep.VARIANTS["packed_lut"], tol=0, max_iter=FITTED_AFTER)
    out = {"K": K, "fitted_after": FITTED_AFTER}
    for label, (p, m) in (("fitted", (fitted.weights, fitted.means)), ("at_start", (pi, mu))):
        calls, data = {}, {}
        for name in SUITE_VARIANTS:
            v = estep.VARIANTS[name]
            x, data[name] = v.prepare(X), v.rows(X)
            calls[f"estep {name}"] = partial(v, x, p, m)
        times = interleaved(calls, args.repeats, args.warmup, args.idle)
        e_step = {n.split()[1]: statistics.median(t) for n, t in times.items()}
        best = min(e_step, key=e_step.get)
        v = estep.VARIANTS[best]

        def iteration(v=v, rows=data[best], p=p, m=m):
            engine.m_step(engine.summarize(rows, v, p, m), m)

        both = interleaved(
            {"estep": calls[f"estep {best}"], "iteration": iteration},
            args.repeats,
            args.warmup,
            args.idle,
        )
        e, it = statistics.median(both["estep"]), statistics.median(both["iteration"])
        out[label] = {"variant": best, "estep_s": e, "iteration_s": it, "ratio": it / e}
    out.update(out["fitted"])
    return out


def _article_point(args) -> dict:
    """The article's attempt 1, as published, against the fastest variant at N=1000, K=10
    (or at a smaller --N)."""
    N = min(1000, args.N)
    X = load_X(N, args.data)
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


def _fit_memory(X, name: str, K: int, args, repeat: int = 1) -> dict:
    """Peak resident memory of a K-component fit (5 EM iterations) in a fresh process that
    loads the data as the pipeline's fit job does, from a bit-packed Parquet table; the data
    repeated ``repeat`` times."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.parquet"
        Xr = np.tile(X, (repeat, 1)) if repeat > 1 else X
        storage.write_binarized(path, Xr, None, {"bench": True})
        del Xr
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
        "N": len(X) * repeat,
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
    ap, mem, big = out["article_point"], out["peak_rss"], out["peak_rss_repeated"]
    print()
    for K, it in out["em_iteration"].items():
        start = it["at_start"]
        print(
            f"One EM iteration of {it['variant']} at K={K}, after {it['fitted_after']} "
            f"iterations: {1e3 * it['iteration_s']:.1f} ms = {it['ratio']:.2f} × the fastest "
            f"E-step ({1e3 * it['estep_s']:.1f} ms); at the article's start "
            f"{start['ratio']:.2f} × ({1e3 * start['iteration_s']:.1f} ms)"
        )
    print(
        f"Peak resident memory of a K={mem['K']} fit with {mem['variant']}: "
        f"{mem['peak_mib']:.0f} MiB on N={mem['N']} (of which {mem['after_imports_mib']:.0f} MiB "
        f"after importing the libraries, before loading data), {big['peak_mib']:.0f} MiB "
        f"on N={big['N']}"
    )
    print(f"estep='auto' chose: {', '.join(f'{c} at K={K}' for K, c in out['auto'].items())}")
    print(
        f"At N={ap['N']}, K=10: the article's attempt 1 as published {ap['attempt_1_s']:.2f} s, "
        f"{ap['fastest']} {1e3 * ap['fastest_s']:.3f} ms: {ap['ratio']:.3g}×"
    )
    print("\n| figure | value | target (2-core machine, MNIST) |\n|---|---:|---|")
    for key, value in out["summary"].items():
        if isinstance(value, str):
            continue
        K0, K1 = min(out["points"]), max(out["points"])
        generic = key.replace(f"_k{K0}", "_k10").replace(f"_k{K1}", "_k100")
        op, bound = TARGETS.get(generic, ("", None))
        met = "" if bound is None else (value >= bound if op == ">=" else value <= bound)
        mark = "" if bound is None else f"{op} {bound:g}: {'met' if met else 'MISSED'}"
        print(f"| {key} | {value:.4g} | {mark} |")


def online(args) -> list[dict]:
    """Stepwise EM (partial_fit) against the batch fit on a data set's training images:
    one and two passes in batches of ``--batch`` images, from each start, scored on the
    test images (log-likelihood per image, purity)."""
    from .estimator import BernoulliMixture
    from .metrics import purity

    files = {role: f.name for role, f in MNIST.files.items()}
    X, _ = idx.load_split(
        f"{args.data}/{files['train_images']}", f"{args.data}/{files['train_labels']}"
    )
    Xt, yt = idx.load_split(
        f"{args.data}/{files['test_images']}", f"{args.data}/{files['test_labels']}"
    )
    X, Xt = storage.binarize(X, 0.5), storage.binarize(Xt, 0.5)
    rows = []

    def row(init, how, model, seconds):
        rows.append({"init": init, "fit": how, "test_loglik": model.score(Xt),
                     "test_purity": purity(yt, model.predict(Xt)), "seconds": seconds})  # fmt: skip
        r = rows[-1]
        print(
            f"| {init} | {how} | {r['test_loglik']:.3f} | {r['test_purity']:.4f} | {seconds:.1f} |"
        )

    print("| start | fit | test log-lik/image | test purity | seconds |\n|---|---|---:|---:|---:|")
    for init in ("random", "k-means++"):
        settings = dict(n_components=args.K, init_params=init, random_state=0)
        t0 = time.perf_counter()
        row(init, "batch EM", BernoulliMixture(**settings).fit(X), time.perf_counter() - t0)
        model, t0 = BernoulliMixture(**settings), time.perf_counter()
        for n in (1, 2):
            for start in range(0, len(X), args.batch):
                model.partial_fit(X[start : start + args.batch])
            row(init, f"online, {n} pass{'es' if n > 1 else ''}", model, time.perf_counter() - t0)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bmm.bench", description=__doc__.split("\n")[0])
    p.add_argument("--suite", action="store_true", help="the whole suite (see --help above)")
    p.add_argument(
        "--online",
        action="store_true",
        help="stepwise EM (partial_fit, in batches of --batch) against the batch fit, on --data",
    )
    p.add_argument("--batch", type=int, default=1000, help="--online: images a batch")
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
    p.add_argument(
        "--data",
        "--mnist",
        metavar="DIR",
        help="a data set's four IDX .gz files in MNIST's layout (MNIST, Fashion-MNIST, ...)",
    )
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
        if args.online:
            if not args.data:
                p.error(
                    "--online needs --data DIR (a data set's four IDX files, with its test set)"
                )
            online(args)
        elif args.suite:
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
