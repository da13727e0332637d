"""``estep="auto"``: the fastest stable E-step variant for the data and K, on this machine.

Which variant is fastest depends on the machine (its vector width, caches and BLAS), on K, and
for the bit-packed E-step on the data's ink: its cost grows with the non-zero nibbles of each
row, a dense product's does not. So the choice is measured, not guessed, and then kept:

- The candidates (:data:`CANDIDATES`) are the stable variants without a Python loop; the
  loops and the two-product form compute the same thing as a candidate, by construction
  slower.
- Small problems (N·K·D below :data:`SMALL`, where every candidate takes well under a
  millisecond an iteration) take the first available candidate: no timing at all.
- Otherwise one EM pass of each candidate is timed on the first block of rows
  (:data:`bmm.rows.BLOCK_ROWS`) at the data's K (the fastest of 5 after a warm-up: a busy
  machine slows some calls, never speeds one up), from a start like a fit's (means made from
  images). The fastest wins, unless the first candidate in
  :data:`CANDIDATES` order is within :data:`MARGIN` of it, so that timing noise between two
  near-equal variants does not flip the choice.
- The result is cached per machine (CPU, cores, package versions) and per *bucket* of the
  problem (K, D and the share of ones rounded to 0.05) in a JSON file
  (``$BMM_CACHE_DIR``, else ``$XDG_CACHE_HOME/bmm``, else ``~/.cache/bmm``). The same data
  therefore gives the same choice on a rerun, and a trial runs once per bucket and machine.
  Concurrent processes take a lock around the trial, so they all read the first one's result.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import engine, estep, provenance
from .rows import BLOCK_ROWS, rows_of

#: The variants ``auto`` chooses among, in order of preference on a near tie.
CANDIDATES = ("packed_lut", "numba_simd", "matmul_fused_f32", "matmul_fused")

#: Below this N·K·D, no trial: the first available candidate.
SMALL = 1 << 22

#: A preferred candidate within this fraction of the fastest is chosen instead.
MARGIN = 0.10

_REPEATS = 5


def cache_path() -> Path:
    """Where choices are kept: ``$BMM_CACHE_DIR``, else the XDG cache directory."""
    root = os.environ.get("BMM_CACHE_DIR")
    if root:
        return Path(root) / "auto.json"
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg) / "bmm" / "auto.json"


def available() -> list[str]:
    return [name for name in CANDIDATES if not estep.VARIANTS[name].unavailable]


def choose(X, n_components: int) -> str:
    """The E-step variant ``BernoulliMixture(estep="auto")`` fits X with (see the module)."""
    names = available()
    N, D = X.shape
    if len(names) == 1 or N * n_components * D < SMALL:
        return names[0]
    sample = X[:BLOCK_ROWS]
    ones = float(rows_of(sample).column_sums().sum())
    bucket = f"K={n_components} D={D} ones={round(ones / (len(sample) * D) / 0.05) * 0.05:.2f}"
    machine = _machine_key()
    with _locked(cache_path()) as cache:
        known = cache.get(machine, {}).get(bucket)
        if known is not None and known["choice"] in names:
            return known["choice"]
        seconds = trial(sample, n_components, names)
        choice = pick(seconds, names)
        cache.setdefault(machine, {})[bucket] = {"choice": choice, "seconds": seconds}
    return choice


def pick(seconds: dict[str, float], order: list[str]) -> str:
    """The fastest, unless a candidate earlier in ``order`` is within :data:`MARGIN` of it."""
    fastest = min(seconds.values())
    return next(name for name in order if seconds[name] <= fastest * (1 + MARGIN))


def trial(sample, n_components: int, names: list[str], clock=time.perf_counter) -> dict:
    """Seconds of one EM pass of each variant on ``sample`` (the fastest of a few)."""
    rng = np.random.default_rng(0)
    rows = rows_of(sample)
    picks = rng.choice(len(rows), size=n_components, replace=len(rows) < n_components)
    mu = engine.means_from_images(rows[picks], rows.column_sums() / len(rows))
    pi = np.full(n_components, 1.0 / n_components)
    out = {}
    for name in names:
        variant = estep.VARIANTS[name]
        data = variant.rows(sample)
        engine.summarize(data, variant, pi, mu)  # warm-up (and numba's first compilation)
        times = []
        for _ in range(_REPEATS):
            t0 = clock()
            engine.summarize(data, variant, pi, mu)
            times.append(clock() - t0)
        out[name] = min(times)
    return out


def _machine_key() -> str:
    versions = provenance.package_versions()
    parts = [provenance.cpu_model(), f"{os.cpu_count()} cores"]
    parts += [f"{name} {versions.get(name)}" for name in ("bmm", "numpy", "numba")]
    return "; ".join(parts)


@contextlib.contextmanager
def _locked(path: Path):
    """The cache as a dict, under an exclusive lock; written back (atomically) on exit.
    An unwritable cache directory is not an error: the choice is then made afresh."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = open(path.with_suffix(".lock"), "a")
    except OSError:
        yield {}
        return
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        cache: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            cache = json.loads(path.read_text())
        before = json.dumps(cache, sort_keys=True)
        yield cache
        if json.dumps(cache, sort_keys=True) != before:
            tmp = path.with_name(f".{path.name}.{os.getpid()}")
            with contextlib.suppress(OSError):
                tmp.write_text(json.dumps(cache, indent=1, sort_keys=True))
                os.replace(tmp, path)
