"""Glue between Snakemake's ``script:`` jobs and the bmm package.

Scripts stay thin: each opens a :func:`job`, reads its inputs, calls bmm, writes outputs.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import traceback
from pathlib import Path

from . import io
from .threads import limit_threads


@contextlib.contextmanager
def job(smk, threads: int | None = None):
    """Log to the rule's ``log:`` file (and stderr), limit BLAS/numba threads to the job's.

    Yields a ``log(message)`` function. A failed job explains itself in one line first:
    ``ERROR: <type>: <message>`` (bmm's errors name the file and the fix, e.g. a corrupt
    input or an unwritable output), on stderr and in the log; the traceback follows in the
    log only, and the job exits with status 1 (so Snakemake shows the line, then its own
    "Error in rule ..." naming the log). An interrupt (Ctrl-C) propagates as it is.
    """
    log_path = Path(smk.log[0]) if len(smk.log) else None
    if log_path:
        log_path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(log_path, "w") if log_path else None
    t0 = time.perf_counter()

    def log(message: str, stderr: bool = True):
        line = f"[{time.perf_counter() - t0:8.2f}s] {message}"
        if stderr or handle is None:
            print(line, file=sys.stderr, flush=True)
        if handle:
            print(line, file=handle, flush=True)

    try:
        with limit_threads(threads or smk.threads):
            log(f"rule {smk.rule}: {dict(smk.wildcards.items())} threads={threads or smk.threads}")
            yield log
            log("done")
    except Exception as e:
        log(f"ERROR: {error_line(e)}")
        log("traceback:\n" + traceback.format_exc(), stderr=False)
        if log_path:
            log(f"(the traceback is in {log_path})")
        raise SystemExit(1) from None
    except BaseException:
        log("interrupted:\n" + traceback.format_exc())
        raise
    finally:
        if handle:
            handle.close()


def error_line(e: BaseException) -> str:
    """``<type>: <message>``, as the last line of a Python traceback (the message may go on
    over more lines: the first is the one that says what went wrong)."""
    message = str(e).strip()
    return f"{type(e).__name__}: {message}" if message else type(e).__name__


def sources_of(*paths) -> dict[str, str]:
    """The raw-data SHA-256s recorded in the metadata of input tables, merged."""
    out: dict[str, str] = {}
    for path in paths:
        out.update(io.read_metadata(path).get("sources", {}))
    return out


#: The directories the pipeline writes its outputs, downloads, logs and benchmarks under.
OUTPUT_ROOTS = ("results", "resources", "logs", "benchmarks")


def unwritable_dirs(roots=OUTPUT_ROOTS) -> list[Path]:
    """The directories under ``roots`` (those that exist) where this process cannot create
    or delete files; below an unwritable directory, nothing more is listed."""
    found: list[Path] = []
    for root in map(Path, roots):
        if not root.is_dir():
            continue
        for here, dirs, _ in os.walk(root):
            if not os.access(here, os.W_OK | os.X_OK):
                found.append(Path(here))
                dirs.clear()
    return found


def check_writable(roots=OUTPUT_ROOTS) -> None:
    """Raise :class:`bmm.io.OutputError` naming the directories under ``roots`` that cannot
    be written, before any job starts (Snakemake would otherwise stop at the first job that
    writes there, with a less direct message, after the jobs before it ran)."""
    bad = unwritable_dirs(roots)
    if bad:
        names = ", ".join(f"{d}/" for d in bad)
        raise io.OutputError(
            f"cannot write to {names} (read-only); make it writable (chmod -R u+w {bad[0]}), "
            "or run snakemake in a directory you can write (--directory), and rerun",
        )
