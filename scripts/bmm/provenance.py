"""What produced a result: the config values, the code, the data and the machine.

:func:`collect` gathers it once per job; :func:`bmm.io.write_parquet` stores it in
every Parquet file the job writes.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from . import __version__

PACKAGES = ("numpy", "pandas", "pyarrow", "scikit-learn", "snakemake", "numba")


def collect(
    config: dict[str, Any] | None = None,
    sources: dict[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Provenance for one job.

    ``config``: the config values this job used (its ``params``); ``sources``: file name to
    SHA-256 of the raw data it derives from; ``extra``: anything job-specific.
    """
    doc = {
        "config": config or {},
        "sources": sources or {},
        "versions": package_versions(),
        "git": git_commit(),
        "machine": machine(),
    }
    doc.update(extra)
    return doc


@functools.cache
def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version(), "bmm": __version__}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


@functools.cache
def git_commit() -> str:
    """The commit of the code that ran, with ``-dirty`` when the tree had local edits."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("-dirty" if dirty else "")


@functools.cache
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas_info() -> list[dict[str, Any]]:
    """The BLAS/OpenMP libraries numpy loaded, with their versions and current thread counts.

    Sorted, not in the order the process happened to load them (which differs between a
    local job and the same job under SLURM), so the same libraries give the same record."""
    import numpy  # noqa: F401  (load numpy's BLAS before asking)
    from threadpoolctl import threadpool_info

    keep = ("user_api", "internal_api", "version", "num_threads", "threading_layer", "architecture")
    found = [{k: d.get(k) for k in keep} for d in threadpool_info()]
    return sorted(found, key=lambda d: [str(d[k]) for k in keep])


def machine() -> dict[str, Any]:
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "blas": blas_info(),
    }


def sha256_file(path: str | os.PathLike) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
