"""Glue between Snakemake's ``script:`` jobs and the bmm package.

Scripts stay thin: each opens a :func:`job`, reads its inputs, calls bmm, writes outputs.
"""

from __future__ import annotations

import contextlib
import sys
import time
import traceback
from pathlib import Path

from . import io
from .threads import limit_threads


@contextlib.contextmanager
def job(smk, threads: int | None = None):
    """Log to the rule's ``log:`` file (and stderr), limit BLAS/numba threads to the job's.

    Yields a ``log(message)`` function. An exception is written to the log with its
    traceback before it propagates, so a failed job explains itself in its log.
    """
    log_path = Path(smk.log[0]) if len(smk.log) else None
    if log_path:
        log_path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(log_path, "w") if log_path else None
    t0 = time.perf_counter()

    def log(message: str):
        line = f"[{time.perf_counter() - t0:8.2f}s] {message}"
        print(line, file=sys.stderr, flush=True)
        if handle:
            print(line, file=handle, flush=True)

    try:
        with limit_threads(threads or smk.threads):
            log(f"rule {smk.rule}: {dict(smk.wildcards.items())} threads={threads or smk.threads}")
            yield log
            log("done")
    except BaseException:
        log("failed:\n" + traceback.format_exc())
        raise
    finally:
        if handle:
            handle.close()


def sources_of(*paths) -> dict[str, str]:
    """The raw-data SHA-256s recorded in the metadata of input tables, merged."""
    out: dict[str, str] = {}
    for path in paths:
        out.update(io.read_metadata(path).get("sources", {}))
    return out
