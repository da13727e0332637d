"""Binarised data sets: thresholds, subsets, and bit-packed Parquet tables.

Threshold semantics
-------------------
A pixel is "on" when ``pixel / 255 > threshold`` (strict), for a threshold in [0, 1).
``"article"`` means 0.0: the article's notebook thresholded the raw 0-255 values, so in
effect every non-zero pixel is on. 0.5 makes pixels 128..255 on and 0..127 off.

Storage
-------
A binarised set is one Parquet table per split with a column ``pixels``
(``fixed_size_binary(ceil(D/8))``: each image's D bits as :class:`bmm.bits.BitMatrix` packs
them, 98 bytes for a 28×28 image) and, when the set has labels, ``label`` (int32). The file's
metadata (:func:`bmm.io.read_metadata`) also says D, the image shape (None: the features are
not an image), the label names, and how much ink the images hold (:func:`ink`). Rows are
written in row groups of :data:`ROW_GROUP_ROWS`, so a reader can take one group at a time.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from .bits import BitMatrix
from .io import iter_batches, read_metadata, read_schema, write_parquet
from .rows import BLOCK_ROWS

THRESHOLD_ARTICLE = "article"
PACKING = "numpy.packbits, big bit order, D features -> ceil(D/8) bytes a row"
#: Rows per Parquet row group of a binarised table: the EM engine's blocks, so that a fit
#: that streams the file (out of core) reads one group a block and sums exactly what an
#: in-memory fit sums (0.4 MB of bits for 28×28 images).
ROW_GROUP_ROWS = BLOCK_ROWS

#: How a table of bits is written: row groups of :data:`ROW_GROUP_ROWS`, and the bits neither
#: dictionary-encoded nor compressed: every row differs, they compress little, and decoding
#: them would take longer than a pass of EM over them (docs/scaling.md, with the figures).
BITS_LAYOUT = {
    "row_group_size": ROW_GROUP_ROWS,
    "use_dictionary": ["label"],
    "compression": {"label": "snappy", "pixels": "none"},
}


def resolve_threshold(t: float | str) -> float:
    """The threshold as a float in [0, 1); ``"article"`` is 0.0 (every non-zero pixel is on)."""
    if t == THRESHOLD_ARTICLE:
        return 0.0
    if isinstance(t, numbers.Real) and not isinstance(t, bool) and 0 <= t < 1:
        return float(t)
    raise ValueError(
        f"invalid threshold {t!r}: use a number in [0, 1) or {THRESHOLD_ARTICLE!r} (= 0.0)"
    )


def binarize(images: np.ndarray, threshold: float | str) -> np.ndarray:
    """Bool (N, D): ``pixel / 255 > threshold`` for uint8 images (N, ...) of D pixels each."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim < 2:
        raise ValueError(f"expected uint8 images (N, ...), got {images.dtype} {images.shape}")
    on = np.arange(256) / 255 > resolve_threshold(threshold)  # exact per-value lookup table
    return on[images.reshape(len(images), -1)]


def stratified_subset(labels: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    """Sorted int64 indices of ``n`` items drawn per class in proportion to class sizes.

    Per-class counts are ``n * count / N`` rounded by largest remainder (ties to the smaller
    label), so they sum to exactly ``n``; ``n=None`` or ``n >= N`` gives every index.
    """
    labels = np.asarray(labels)
    if n is not None and n < 1:
        raise ValueError(f"subset size must be at least 1, got {n}")
    if n is None or n >= len(labels):
        return np.arange(len(labels), dtype=np.int64)
    classes, counts = np.unique(labels, return_counts=True)
    take, remainder = np.divmod(counts * n, len(labels))
    take[np.argsort(-remainder, kind="stable")[: n - take.sum()]] += 1
    rng = np.random.default_rng(seed)
    picks = [
        rng.choice(np.flatnonzero(labels == c), size=k, replace=False)
        for c, k in zip(classes, take, strict=True)
    ]
    return np.sort(np.concatenate(picks)).astype(np.int64)


def subset(n_items: int, labels: np.ndarray | None, n: int | None, seed: int) -> np.ndarray:
    """:func:`stratified_subset` of ``n`` of ``n_items`` items; without labels, a uniform one
    (the same draw, with every item in one class)."""
    if labels is None:
        labels = np.zeros(n_items, dtype=np.int8)
    return stratified_subset(labels, n, seed)


def ink(X: BitMatrix) -> dict[str, float]:
    """How much of the images is on: the fraction of pixels, and the non-zero nibbles (groups
    of 4 pixels) per image, which is what the bit-packed E-step's cost grows with."""
    bits = X.bits
    nibbles = np.count_nonzero(bits >> 4) + np.count_nonzero(bits & 0x0F)
    n = max(len(X), 1)
    on = int(np.bitwise_count(bits).sum(dtype=np.int64))
    return {"pixels_on": on / (n * X.n_features), "nonzero_nibbles": nibbles / n}


def write_binarized(
    path: str | os.PathLike,
    X_bool: np.ndarray,
    labels: np.ndarray | None,
    meta: dict[str, Any],
    *,
    image_shape: Sequence[int] | None = None,
    label_names: Sequence[str] | None = None,
) -> None:
    """Store binarised images (N, D) packed in a Parquet table with ``meta``, in row groups
    of :data:`ROW_GROUP_ROWS`; ``labels`` (N non-negative integers) or None."""
    X = BitMatrix.pack(X_bool)
    N, D = X.shape
    if image_shape is not None and int(np.prod(image_shape)) != D:
        raise ValueError(f"image shape {tuple(image_shape)} does not hold {D} pixels")
    width = X.bits.shape[1]
    columns: dict[str, pa.Array] = {}
    if labels is not None:
        labels = np.asarray(labels)
        if (
            labels.shape != (N,)
            or not np.issubdtype(labels.dtype, np.integer)
            or np.any(labels < 0)
        ):
            raise ValueError(
                f"expected {N} labels, non-negative integers; got {labels.dtype} {labels.shape}"
            )
        columns["label"] = pa.array(labels.astype(np.int32))
    columns["pixels"] = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(width), N, [None, pa.py_buffer(np.ascontiguousarray(X.bits).tobytes())]
    )
    meta = {
        **meta,
        "n_images": N,
        "n_pixels": D,
        "image_shape": None if image_shape is None else [int(s) for s in image_shape],
        "has_labels": labels is not None,
        "label_names": None if label_names is None else [str(n) for n in label_names],
        "packing": PACKING,
        **ink(X),
    }
    write_parquet(pa.table(columns), path, meta, **BITS_LAYOUT)


def _rows(path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def load_binarized(
    path: str | os.PathLike, dtype: npt.DTypeLike = np.float64, *, packed: bool = False
) -> tuple[np.ndarray | BitMatrix, np.ndarray | None]:
    """X and labels y (N,) int64 (None when the set has no labels) from :func:`write_binarized`.

    X is (N, D) of 0/1 in ``dtype``, or with ``packed=True`` a :class:`bmm.bits.BitMatrix`
    over the stored bytes as they are (nothing unpacked).
    """
    schema = read_schema(path)  # an unreadable file: CorruptFileError, naming it and the fix
    D = read_metadata(path).get("n_pixels")
    found = {field.name: field.type for field in schema}
    width = -(-D // 8) if isinstance(D, int) else None
    label = found.get("label")
    if (
        width is None
        or found.get("pixels") != pa.binary(width)
        or (label is not None and not pa.types.is_integer(label))
    ):
        raise ValueError(
            f"{path}: not a binarised table (expected pixels: fixed_size_binary[ceil(D/8)] with "
            f"D in the metadata, and an integer label column or none; found "
            f"{', '.join(map(str, schema))})"
        )
    # a row group at a time into memory numpy owns: the peak is the bits once and one group,
    # not an Arrow table of them beside their copy
    stored, ys, start = None, [], 0
    for batch in iter_batches(path, ROW_GROUP_ROWS):
        if stored is None:
            stored = np.empty((_rows(path), width), dtype=np.uint8)
        pixels = batch.column("pixels")
        if pixels.null_count or (label is not None and batch.column("label").null_count):
            raise ValueError(f"{path}: null labels or pixels")
        n = len(pixels)
        stored[start : start + n] = np.frombuffer(
            pixels.buffers()[1], dtype=np.uint8, count=n * width, offset=pixels.offset * width
        ).reshape(n, width)
        if label is not None:
            ys.append(batch.column("label").to_numpy().astype(np.int64))
        start += n
    if stored is None:  # no rows
        stored = np.empty((0, width), dtype=np.uint8)
    y = None if label is None else (np.concatenate(ys) if ys else np.empty(0, np.int64))
    X = BitMatrix(stored, D)
    return (X if packed else X.unpack(dtype)), y
