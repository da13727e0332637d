"""The user's own binary data: reading it, and saying exactly what is wrong with it.

A data set of one's own (``datasets.<name>.path`` in the config, :class:`bmm.datasets.OwnSet`)
is one file of N rows and D columns of 0/1 values:

- ``.npy``: a 2-d array, bool or numbers that are all 0 or 1;
- ``.parquet``: D columns, each bool or numbers that are all 0 or 1 (no other columns).

Labels, optional, are a second file with one label per row: a ``.npy`` array of N values or
a ``.parquet`` table of one column; numbers or text (text labels are numbered in sorted
order, and their texts kept as the label names). ``image_shape``, optional, is the shape one
row has as an image (its product must be D); without it the report draws cluster means as a
K×D heat map.

:func:`inspect` checks what can be checked cheaply (the files exist, their shapes agree) and
runs before any job; :func:`load` also checks every value, in the first job. Each raises
:class:`bmm.datasets.DataSetError` with one line naming the set, the file and the fix.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from . import storage
from .datasets import DataSetError, OwnSet

SUFFIXES = (".npy", ".parquet")


def inspect(s: OwnSet) -> tuple[int, int]:
    """(N, D) of the set's data, from the files' headers, after checking that the files exist
    and are of a known kind, that the data are 2-d, that there are as many labels as rows and
    that ``image_shape`` holds D pixels."""
    path = _existing(s, "path", s.path)
    if path.suffix == ".npy":
        shape = np.load(path, mmap_mode="r").shape
    else:
        import pyarrow.parquet as pq

        meta = pq.read_metadata(path)
        shape = (meta.num_rows, meta.num_columns)
    if len(shape) != 2 or 0 in shape:
        raise DataSetError(
            f"datasets.{s.name}.path: {s.path} holds an array of shape {shape}; expected N×D "
            "(a row per image, a column per pixel, at least one of each): reshape it, e.g. "
            "X.reshape(len(X), -1), and save it again"
        )
    N, D = shape
    if s.labels is not None:
        n = _label_count(s)
        if n != N:
            raise DataSetError(
                f"datasets.{s.name}.labels: {s.labels} holds {n} labels but {s.path} holds {N} "
                "rows; give one label per row, in the same order"
            )
    if s.image_shape is not None and int(np.prod(s.image_shape)) != D:
        raise DataSetError(
            f"datasets.{s.name}.image_shape: {list(s.image_shape)} holds "
            f"{int(np.prod(s.image_shape))} pixels but {s.path} has D = {D} columns; give a "
            f"shape whose product is {D}, or leave image_shape out"
        )
    n_test = round(N * s.test_fraction)
    if n_test < 1 or N - n_test < 1:
        raise DataSetError(
            f"datasets.{s.name}.test_fraction: {s.test_fraction} of the {N} rows of {s.path} "
            f"leaves {n_test} test and {N - n_test} training rows; give more rows, or a "
            "fraction that leaves at least one of each"
        )
    return N, D


def load(s: OwnSet) -> tuple[np.ndarray, np.ndarray | None, list[str] | None]:
    """The data as bool (N, D), the labels as int64 (N,) or None, and the label names (None
    for numeric labels), after every check of :func:`inspect` and a check of every value."""
    inspect(s)
    path = Path(s.path)
    if path.suffix == ".npy":
        X = np.load(path)
        columns = None
    else:
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        columns = table.column_names
        for name, column in zip(columns, table.columns, strict=True):
            kind = column.type
            if not (_numeric(kind) or str(kind) == "bool"):
                raise DataSetError(
                    f"datasets.{s.name}.path: column {name!r} of {s.path} is {kind}; every "
                    "column must be 0/1 numbers or bool: drop the others (labels go in their "
                    "own file, datasets.<name>.labels)"
                )
            if column.null_count:
                raise DataSetError(
                    f"datasets.{s.name}.path: column {name!r} of {s.path} has "
                    f"{column.null_count} missing values; fill them with 0 or 1"
                )
        X = np.column_stack([c.to_numpy() for c in table.columns])
    if X.dtype != bool:
        if not (np.issubdtype(X.dtype, np.number)):
            raise DataSetError(
                f"datasets.{s.name}.path: {s.path} holds {X.dtype} values; expected 0/1 "
                "numbers or bool: save the data as such"
            )
        bad = np.argwhere((X != 0) & (X != 1))
        if len(bad):
            i, j = bad[0]
            column = repr(columns[j]) if columns else j
            where = f"{X[i, j].item()!r} at row {i}, column {column}"
            raise DataSetError(
                f"datasets.{s.name}.path: {s.path} holds values other than 0 and 1 ({where}, "
                f"and {len(bad) - 1} more); binarise the data first (e.g. "
                "X > threshold) and save them as 0/1 or bool"
            )
        X = X.astype(bool)
    labels, names = (None, None) if s.labels is None else _labels(s)
    return X, labels, names


def split(n: int, labels: np.ndarray | None, test_fraction: float, seed: int) -> dict:
    """``{"train": rows, "test": rows}`` (sorted indices) of ``n`` rows: round(n ·
    test_fraction) test rows drawn by ``seed``, stratified by label (uniform without), and
    the rest for training."""
    test = storage.subset(n, labels, round(n * test_fraction), seed)
    return {"train": np.setdiff1d(np.arange(n), test), "test": test}


def _existing(s: OwnSet, key: str, value: str) -> Path:
    path = Path(value)
    if path.suffix not in SUFFIXES:
        raise DataSetError(
            f"datasets.{s.name}.{key}: {value} is neither .npy nor .parquet; save it as one of "
            "them (numpy.save, or a Parquet table)"
        )
    if not path.is_file():
        raise DataSetError(
            f"datasets.{s.name}.{key}: {value} does not exist (relative to "
            f"{os.getcwd()}); give the path of an existing file, absolute or relative to the "
            "directory snakemake runs in"
        )
    return path


def _label_count(s: OwnSet) -> int:
    path = _existing(s, "labels", s.labels)
    if path.suffix == ".npy":
        shape = np.load(path, mmap_mode="r").shape
    else:
        import pyarrow.parquet as pq

        meta = pq.read_metadata(path)
        shape = (meta.num_rows,) if meta.num_columns == 1 else (meta.num_rows, meta.num_columns)
    if len(shape) != 1:
        raise DataSetError(
            f"datasets.{s.name}.labels: {s.labels} holds an array of shape {shape}; expected "
            "one label per row (a 1-d array, or a Parquet table of one column)"
        )
    return shape[0]


def _labels(s: OwnSet) -> tuple[np.ndarray, list[str] | None]:
    """Labels as int64 codes, and the names of text labels (None for integer labels)."""
    path = Path(s.labels)
    if path.suffix == ".npy":
        values = np.load(path, allow_pickle=False)
    else:
        import pyarrow.parquet as pq

        values = pq.read_table(path).column(0).to_numpy(zero_copy_only=False)
    if np.issubdtype(values.dtype, np.integer) and (values >= 0).all():
        return values.astype(np.int64), None
    if np.issubdtype(values.dtype, np.number) and not np.issubdtype(values.dtype, np.integer):
        raise DataSetError(
            f"datasets.{s.name}.labels: {s.labels} holds {values.dtype} numbers; labels must "
            "be integers or text: save them as such"
        )
    names, codes = np.unique(values.astype(str), return_inverse=True)
    return codes.astype(np.int64), [str(n) for n in names]


def _numeric(kind) -> bool:
    import pyarrow as pa

    return pa.types.is_integer(kind) or pa.types.is_floating(kind)
