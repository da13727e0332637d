"""Parquet files that carry their own provenance.

Every table the pipeline writes goes through :func:`write_parquet`, which stores a JSON
document under the schema metadata key ``bmm`` (see :mod:`bmm.provenance`), and every
table is read back through :func:`read_table` / :func:`read_parquet` / :func:`read_metadata`.

Both directions turn the faults a run meets into one line a person can act on: a table that
cannot be read back (truncated, overwritten, not Parquet) raises :class:`CorruptFileError`,
naming the file and the fix (delete it, rerun); an output that cannot be written (a read-only
directory, a full disk) raises :class:`OutputError`, naming the path. ``bmm.pipeline.job``
puts that line first in the job's log.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

META_KEY = b"bmm"
#: Temporary files of :func:`write_parquet` are named ``.<name><TMP_INFIX><pid>``.
TMP_INFIX = ".tmp-"


class CorruptFileError(ValueError):
    """A Parquet file cannot be read back: truncated, damaged, or not Parquet at all."""


class OutputError(OSError):
    """An output file cannot be written (a read-only directory, a full disk, ...)."""


def corrupt_message(path: str | os.PathLike, reason: object) -> str:
    """The one line a user sees for an unreadable input: the file, why, and the fix."""
    why = " ".join(str(reason).split())  # pyarrow's messages may span lines
    why = re.sub(r"^Could not open Parquet input source '.*?': ", "", why)  # names it again
    return (
        f"{os.fspath(path)} is corrupt or truncated ({why}); delete it and rerun snakemake, "
        "which rebuilds it"
    )


def write_parquet(
    table: pa.Table | pd.DataFrame,
    path: str | os.PathLike,
    meta: dict[str, Any],
    **options: Any,
):
    """Write ``table`` to ``path`` atomically, with ``meta`` as JSON in the schema metadata
    (``options``: pyarrow's, such as ``row_group_size`` or ``compression``).

    The file first lands under a temporary name in the same directory and is renamed
    only once it is complete, so an interrupted job never leaves a half-written table.
    A temporary file that a killed job left there (SIGKILL skips every cleanup) is deleted
    when the job runs again. Raises :class:`OutputError`, naming the path, when the
    directory cannot be written.
    """
    if isinstance(table, pd.DataFrame):
        table = pa.Table.from_pandas(table, preserve_index=False)
    existing = dict(table.schema.metadata or {})
    existing[META_KEY] = json.dumps(meta, sort_keys=True, default=_json_default).encode()
    table = table.replace_schema_metadata(existing)
    path = Path(path)
    tmp = path.with_name(f".{path.name}{TMP_INFIX}{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in path.parent.glob(f".{path.name}{TMP_INFIX}*"):
            stale.unlink(missing_ok=True)
        try:
            pq.write_table(table, tmp, **options)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as e:  # pyarrow's IO errors are OSErrors too
        raise OutputError(_unwritable_message(path, e)) from e


def _unwritable_message(path: Path, e: OSError) -> str:
    why = e.strerror or " ".join(str(e).split())
    where = next((p for p in [path.parent, *path.parent.parents] if p.exists()), path.parent)
    return (
        f"cannot write {path}: {why} (in {where}); make {where} writable, or run snakemake in "
        "a directory you can write (--directory), and rerun"
    )


@contextlib.contextmanager
def _reading(path: str | os.PathLike):
    """Around a pyarrow read of ``path``: a missing file raises FileNotFoundError, an unreadable
    one :class:`CorruptFileError` naming the file and the fix."""
    if not os.path.exists(path):
        raise FileNotFoundError(2, "no such file", os.fspath(path))
    try:
        yield
    except (PermissionError, FileNotFoundError):
        raise
    except (pa.ArrowException, OSError) as e:
        raise CorruptFileError(corrupt_message(path, e)) from e


def read_table(path: str | os.PathLike, **kwargs: Any) -> pa.Table:
    """``pyarrow.parquet.read_table(path, **kwargs)``; :class:`CorruptFileError` (naming the
    file and the fix) when it cannot be read. A missing file raises FileNotFoundError."""
    with _reading(path):
        return pq.read_table(path, **kwargs)


def read_schema(path: str | os.PathLike) -> pa.Schema:
    """The schema of a Parquet file (its footer only); errors as :func:`read_table`'s."""
    with _reading(path):
        return pq.read_schema(path)


def iter_batches(
    path: str | os.PathLike, batch_size: int, **kwargs: Any
) -> Iterator[pa.RecordBatch]:
    """The rows of a Parquet file, ``batch_size`` at a time (``pyarrow.parquet.ParquetFile
    .iter_batches``): memory for one batch, not the table; errors as :func:`read_table`'s."""
    with _reading(path):
        yield from pq.ParquetFile(path).iter_batches(batch_size=batch_size, **kwargs)


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The provenance document stored in a Parquet file by :func:`write_parquet`."""
    with _reading(path):
        raw = (pq.read_schema(path).metadata or {}).get(META_KEY)
    if raw is None:
        raise ValueError(f"{path}: no '{META_KEY.decode()}' metadata; was it written by bmm?")
    return json.loads(raw)


def read_parquet(path: str | os.PathLike) -> pd.DataFrame:
    """A table as a DataFrame (:func:`read_table`, so an unreadable file says what to do)."""
    return read_table(path).to_pandas()


def _json_default(obj):
    # numpy scalars and arrays, paths: anything that has an obvious JSON form
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in Parquet metadata")
