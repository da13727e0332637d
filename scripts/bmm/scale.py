"""What one EM iteration costs as N grows: ``python -m bmm.scale``.

Data are drawn from a fitted model (a params table of the pipeline: by default the K = 100
fit of MNIST), packed as they are drawn (``BernoulliMixture.sample(packed=True)``), never as
floats, so 10⁷ images take 1 GB. For each N, in a fresh process (so that its peak resident
memory is its own), one of three ways to hold the rows:

- ``memory``: a :class:`bmm.bits.BitMatrix` and its index of non-zero nibbles;
- ``parquet``: a binarised Parquet file, written block by block as the rows are drawn, then
  read a block at a time on every iteration (:class:`bmm.sources.ParquetRows`);
- ``dask``: a dask array of the rows on a ``LocalCluster`` of 2 worker processes
  (:class:`bmm.sources.DaskRows`).

and three measures: the seconds of one EM iteration (the fused pass and the M-step's update,
the median of a few), the seconds of the E-step alone over the same rows (a block at a time,
keeping no responsibilities), and the process's peak resident memory (``VmHWM``; for dask,
the client's process only: the workers have their own).

    python -m bmm.scale --params results/mnist/fits/auto/K100/seed0/params.parquet \\
        --N 10000 100000 1000000 --modes memory parquet
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

#: The N of the pipeline's experiment: half-decades from 10⁴ up to its scale.max_n.
N_MIN = 10_000

MODES = ("memory", "parquet", "dask")


def grid(max_n: int, n_min: int = N_MIN) -> list[int]:
    """10⁴, 3·10⁴, 10⁵, 3·10⁵, ... up to and with ``max_n``."""
    out, n = [], n_min
    while n < max_n:
        out.append(n)
        n = 3 * n if str(n).startswith("1") else n * 10 // 3
    return [*out, max_n]


def peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM, Linux), MiB."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024


def measure(params: str | Path, N: int, mode: str = "memory", repeats: int = 3, seed: int = 0):
    """Draw N rows from the model in ``params``, hold them as ``mode`` says, and time one EM
    iteration and the E-step on them (in this process)."""
    from . import engine, estep, params_table
    from .bits import e_step
    from .rows import BLOCK_ROWS

    model, _ = params_table.model_from_params(params)
    model.set_params(random_state=seed)
    K, D = model.means_.shape
    variant = estep.VARIANTS["packed_lut"]
    pi, mu = model.weights_, model.means_
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        rows, cluster = _rows(model, N, mode, Path(tmp))
        drawn_s = time.perf_counter() - t0
        try:
            t0 = time.perf_counter()
            engine.summarize(rows, variant, pi, mu)  # the index of non-zero nibbles, once
            first_s = time.perf_counter() - t0
            iteration = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                engine.m_step(engine.summarize(rows, variant, pi, mu), mu)
                iteration.append(time.perf_counter() - t0)
            estep_s = []
            W, c = estep.log_odds(pi, mu)
            for _ in range(repeats if mode == "memory" else 0):
                t0 = time.perf_counter()
                for start in range(0, N, BLOCK_ROWS):
                    e_step(rows[start : start + BLOCK_ROWS], W, c)
                estep_s.append(time.perf_counter() - t0)
        finally:
            if cluster is not None:
                cluster.close()
    return {
        "N": N,
        "K": K,
        "D": D,
        "mode": mode,
        "iteration_s": float(np.median(iteration)),
        "estep_s": float(np.median(estep_s)) if estep_s else float("nan"),
        "first_pass_s": first_s,
        "draw_s": drawn_s,
        "peak_rss_mib": peak_rss_mib(),
    }


def _rows(model, N: int, mode: str, tmp: Path):
    """The N rows drawn from ``model``, held as ``mode`` says (and a dask cluster to close)."""
    from .rows import BLOCK_ROWS

    if mode == "memory":
        return model.sample(N, packed=True)[0], None
    if mode == "parquet":
        from .sources import ParquetRows

        path = tmp / "rows.parquet"
        _write_drawn(model, N, path)
        return ParquetRows(path), None
    if mode == "dask":
        import dask.array as da
        from distributed import Client, LocalCluster

        bits = model.sample(N, packed=True)[0]
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None)
        Client(cluster)
        dense = da.from_array(bits.bits, chunks=(BLOCK_ROWS, -1)).map_blocks(
            _unpack, bits.n_features, dtype=bool, chunks=(BLOCK_ROWS, bits.n_features)
        )
        from .sources import DaskRows

        return DaskRows(dense), cluster
    raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


def _unpack(block, n_features):
    return np.unpackbits(block, axis=1, count=n_features).astype(bool)


def _write_drawn(model, N: int, path: Path) -> None:
    """N rows drawn from ``model`` into a binarised Parquet file, a block of draws at a time
    (so memory holds one block, whatever N)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .rows import BLOCK_ROWS

    D = model.means_.shape[1]
    width = -(-D // 8)
    doc = {"n_pixels": D, "image_shape": None, "has_labels": False, "drawn_from": "bmm.scale"}
    schema = pa.schema([("pixels", pa.binary(width))], metadata={b"bmm": json.dumps(doc).encode()})
    with pq.ParquetWriter(path, schema, use_dictionary=False, compression="none") as writer:
        for block in model.sample_blocks(N):
            column = pa.FixedSizeBinaryArray.from_buffers(
                pa.binary(width), len(block), [None, pa.py_buffer(block.bits.tobytes())]
            )
            writer.write_table(pa.table({"pixels": column}, schema=schema), BLOCK_ROWS)


def in_child(
    params: str | Path,
    N: int,
    mode: str,
    repeats: int = 3,
    seed: int = 0,
    threads: int | None = None,
) -> dict:
    """:func:`measure` in a fresh Python process, so its peak memory is its own (with
    ``threads``: its numba and BLAS pools that size, else the machine's)."""
    code = (
        "import json, sys; from bmm.scale import measure; "
        "print(json.dumps(measure(sys.argv[1], int(sys.argv[2]), sys.argv[3], "
        "int(sys.argv[4]), int(sys.argv[5]))))"
    )
    args = [str(params), str(N), mode, str(repeats), str(seed)]
    env = dict(os.environ)
    if threads:
        for name in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[name] = str(threads)
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=False, env=env
    )
    if proc.returncode:
        raise RuntimeError(f"measuring N={N} ({mode}) failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def experiment(
    params, Ns, modes=("memory",), repeats=3, seed=0, threads=None, log=print
) -> pd.DataFrame:
    """One row per (N, mode), each measured in a fresh process (:func:`in_child`)."""
    rows = []
    for mode in modes:
        for N in Ns:
            row = in_child(params, N, mode, repeats, seed, threads)
            log(
                f"N={N:>9d} {mode:>8}: iteration {row['iteration_s']:.4g} s, E-step "
                f"{row['estep_s']:.4g} s, peak {row['peak_rss_mib']:.0f} MiB"
            )
            rows.append(row)
    return pd.DataFrame(rows)


def slope(table: pd.DataFrame, column: str, n_from: int) -> float:
    """The log-log slope of ``column`` against N, from ``n_from`` on (least squares)."""
    t = table[table["N"] >= n_from]
    return float(np.polyfit(np.log(t["N"]), np.log(t[column]), 1)[0])


def bytes_per_image(table: pd.DataFrame) -> float:
    """How many bytes of peak memory each image adds: the growth between the smallest and the
    largest N."""
    t = table.sort_values("N")
    lo, hi = t.iloc[0], t.iloc[-1]
    return float((hi["peak_rss_mib"] - lo["peak_rss_mib"]) * 2**20 / (hi["N"] - lo["N"]))


def slope_from(table: pd.DataFrame) -> int:
    """Where the fitted slope starts: 10⁵ when at least two sizes lie there (below it, fixed
    costs such as the model's tables still show), else the smallest N."""
    return 100_000 if (table["N"] >= 100_000).sum() >= 2 else int(table["N"].min())


def describe(table: pd.DataFrame) -> str:
    """One mode's rows in words: the fitted slope of the iteration's time, and the bytes each
    image adds to the peak memory."""
    n_from = slope_from(table)
    return (
        f"log-log slope of the iteration's time from N = {n_from:,}: "
        f"{slope(table, 'iteration_s', n_from):.3f}; {bytes_per_image(table):.0f} bytes an image"
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bmm.scale", description=__doc__.split("\n")[0])
    p.add_argument("--params", required=True, help="a params table of a fit (the model drawn from)")
    p.add_argument("--N", type=float, nargs="+", help="sizes (default: 10^4 ... 10^6)")
    p.add_argument("--modes", nargs="+", default=["memory"], choices=MODES)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, help="numba and BLAS threads (default: every core)")
    p.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    args = p.parse_args(argv)
    Ns = [int(n) for n in args.N] if args.N else grid(1_000_000)
    table = experiment(
        args.params,
        Ns,
        args.modes,
        args.repeats,
        threads=args.threads,
        log=lambda m: print(m, file=sys.stderr),
    )
    if args.json:
        print(table.to_json(orient="records"))
        return 0
    print(table.to_string(index=False))
    for mode, t in table.groupby("mode"):
        if len(t) >= 2:
            print(f"{mode}: {describe(t)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
