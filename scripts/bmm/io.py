"""Parquet files that carry their own provenance.

Every table the pipeline writes goes through :func:`write_parquet`, which stores a JSON
document under the schema metadata key ``bmm`` (see :mod:`bmm.provenance`), and every
table is read back through :func:`read_parquet` / :func:`read_metadata`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

META_KEY = b"bmm"


def write_parquet(table: pa.Table | pd.DataFrame, path: str | os.PathLike, meta: dict[str, Any]):
    """Write ``table`` to ``path`` atomically, with ``meta`` as JSON in the schema metadata.

    The file first lands under a temporary name in the same directory and is renamed
    only once it is complete, so an interrupted job never leaves a half-written table.
    """
    if isinstance(table, pd.DataFrame):
        table = pa.Table.from_pandas(table, preserve_index=False)
    existing = dict(table.schema.metadata or {})
    existing[META_KEY] = json.dumps(meta, sort_keys=True, default=_json_default).encode()
    table = table.replace_schema_metadata(existing)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The provenance document stored in a Parquet file by :func:`write_parquet`."""
    raw = (pq.read_schema(path).metadata or {}).get(META_KEY)
    if raw is None:
        raise ValueError(f"{path}: no '{META_KEY.decode()}' metadata; was it written by bmm?")
    return json.loads(raw)


def read_parquet(path: str | os.PathLike) -> pd.DataFrame:
    return pd.read_parquet(path)


def _json_default(obj):
    # numpy scalars and arrays, paths: anything that has an obvious JSON form
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in Parquet metadata")
