"""One knob for every thread pool an E-step may use: BLAS (via threadpoolctl) and numba."""

from __future__ import annotations

import contextlib
import os

import joblib
from threadpoolctl import threadpool_info, threadpool_limits


@contextlib.contextmanager
def limit_threads(n: int | None):
    """Run the body with at most ``n`` BLAS and numba threads (``None``: leave as they are)."""
    if n is None:
        yield
        return
    numba = _numba()
    before = numba.get_num_threads() if numba else None
    with threadpool_limits(limits=n):
        if numba:
            numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
        try:
            yield
        finally:
            if numba:
                numba.set_num_threads(before)


def current() -> dict[str, int | None]:
    """The thread counts in force now: BLAS (the largest pool numpy loaded) and numba."""
    import numpy  # noqa: F401  (load numpy's BLAS before asking)

    blas = [d["num_threads"] for d in threadpool_info() if d.get("user_api") == "blas"]
    numba = _numba()
    return {
        "blas_threads": max(blas) if blas else None,
        "numba_threads": numba.get_num_threads() if numba else None,
        "cpu_count": os.cpu_count(),
    }


def _numba():
    try:
        import numba
    except ImportError:
        return None
    return numba


def cpu_count() -> int:
    """Cores this process may use: joblib's count, the smallest of the machine's cores, this
    process's affinity mask (a Slurm allocation sets it) and a cgroup CPU quota (a container
    started with ``--cpus``), which ``os.cpu_count`` and the affinity mask alone miss."""
    return joblib.cpu_count()
