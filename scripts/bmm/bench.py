"""Benchmark the E-step variants side by side: ``python -m bmm.bench``.

Prints each variant's time at one (N, K) and its ratio to the baseline and to the article's
final attempt, measured in one run with the repeats interleaved: every variant once per
round, in a new seeded random order each round, so that a noisy machine slows them all
alike. A call can slow the next one (a large array after another variant's work costs
fresh page faults), so each timed call of a fast variant (under 1 s) follows an untimed
call of the same variant, as in the pipeline's timing grid. Also printed: the peak memory
one call allocates (``tracemalloc``, which sees numpy's buffers), measured in a separate
call so tracing does not distort the times. X is real MNIST when ``--mnist DIR`` is given,
else random binary images with MNIST's ink density; μ ~ U(0.25, 0.75), π uniform, as the
article.

    python -m bmm.bench                         # N=1000, K=10, every available variant
    python -m bmm.bench --N 10000 --K 100 --skip loops_ndk loops_nk
    python -m bmm.bench --mnist ../shared/data/mnist --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import tracemalloc

import numpy as np

from . import estep, mnist, threads, timing


def load_X(N: int, mnist_dir: str | None, seed: int = 0) -> np.ndarray:
    if mnist_dir:
        files = mnist.FILES
        images, _ = mnist.load_split(
            f"{mnist_dir}/{files['train_images']}", f"{mnist_dir}/{files['train_labels']}"
        )
        if N > len(images):
            raise SystemExit(f"--N {N} exceeds the {len(images)} MNIST training images")
        return mnist.binarize(images[:N], 0.5)
    return np.random.default_rng(seed).random((N, 784)) < 0.13  # MNIST's share of ink at 0.5


def peak_memory(v, X, pi, mu) -> int:
    tracemalloc.start()
    try:
        v(X, pi, mu)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def run(args) -> list[dict]:
    names = [n for n in (args.variants or estep.available()) if n not in args.skip]
    for n in names:
        estep.get(n)  # unknown names fail here, before any timing
    X = load_X(args.N, args.mnist)
    pi, mu = timing.article_parameters(args.K, X.shape[1], 0)
    inputs = {n: X.astype(estep.VARIANTS[n].dtype) for n in names}
    times: dict[str, list[float]] = {n: [] for n in names}
    with threads.limit_threads(args.threads):
        first = {}
        for n in names:
            for _ in range(args.warmup):
                t0 = time.perf_counter()
                estep.VARIANTS[n](inputs[n], pi, mu)
                first[n] = time.perf_counter() - t0
        order = np.random.default_rng(0)
        for _ in range(args.repeats):
            for n in order.permutation(names):
                if args.warmup and first[n] < timing.WARMUP_LIMIT_S:
                    estep.VARIANTS[n](inputs[n], pi, mu)  # settle after the previous variant
                t0 = time.perf_counter()
                estep.VARIANTS[n](inputs[n], pi, mu)
                times[n].append(time.perf_counter() - t0)
        used = threads.current()
        memory = {
            n: peak_memory(estep.VARIANTS[n], inputs[n], pi, mu) if args.memory else np.nan
            for n in names
        }
    flops = timing.model_flops(args.N, args.K, X.shape[1])
    rows = []
    for n in names:
        med = statistics.median(times[n])
        rows.append({"variant": n, "median_s": med, "min_s": min(times[n]),
                     "max_s": max(times[n]), "gflops": flops / med / 1e9,
                     "peak_mib": memory[n] / 2**20})  # fmt: skip
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
        f"{'variant':<20} {'median s':>10} {'min s':>10} {'max s':>10} "
        f"{'x ' + args.baseline:>14} {'x matmul':>9} {'GFLOP/s':>8} {'peak MiB':>9}"
    )
    for r in rows:
        print(
            f"{r['variant']:<20} {r['median_s']:>10.4g} {r['min_s']:>10.4g} {r['max_s']:>10.4g} "
            f"{r['vs_baseline']:>14.4g} {r['vs_matmul']:>9.3g} {r['gflops']:>8.3g} "
            f"{r['peak_mib']:>9.2f}"
        )
    for n, why in unavailable.items():
        print(f"{n:<20} unavailable: {why}")
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bmm.bench", description=__doc__.split("\n")[0])
    p.add_argument("--N", type=int, default=1000, help="images per E-step (default 1000)")
    p.add_argument("--K", type=int, default=10, help="components (default 10)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
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
    if args.N < 1 or args.K < 1 or args.repeats < 1 or args.warmup < 0:
        p.error("--N, --K and --repeats must be ≥ 1, --warmup ≥ 0")
    try:
        run(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
