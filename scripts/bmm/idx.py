"""Strict parsing of IDX files, the format of MNIST and of every set in its layout.

An IDX file (gzipped or not) is a 4-byte magic number, then one big-endian uint32 per
dimension, then the data in C order. The magic number's first two bytes are zero, the third
is the element type (0x08 = unsigned byte, the only one these sets use) and the fourth is the
number of dimensions; hence 2051 (0x00000803) for images (N × rows × columns) and 2049
(0x00000801) for labels (N). :func:`read_idx` checks all of this and that the data length is
exactly the product of the dimensions; :func:`load_splits` reads a set's four files and checks
them against each other.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .datasets import ROLES

IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049


class IDXError(ValueError):
    """A file is not a valid IDX file of unsigned bytes (or not the one expected)."""


def read_idx(path: str | os.PathLike, expect_magic: int | None = None) -> np.ndarray:
    """Parse an IDX file of unsigned bytes (gzipped or not) into an array of its shape."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (EOFError, zlib.error, gzip.BadGzipFile) as e:
            raise IDXError(
                f"{path}: truncated or corrupt gzip file ({e}); delete it so it is downloaded again"
            ) from e
    if len(raw) < 4:
        raise IDXError(f"{path}: {len(raw)} bytes, too short for an IDX magic number")
    magic, ndim = int.from_bytes(raw[:4], "big"), raw[3]
    if raw[:3] != b"\x00\x00\x08" or ndim == 0:
        raise IDXError(
            f"{path}: magic number 0x{magic:08x} is not that of an IDX file of unsigned bytes "
            "(00 00 08 <ndim>)"
        )
    if expect_magic is not None and magic != expect_magic:
        raise IDXError(
            f"{path}: magic number {magic} ({ndim}-d), expected {expect_magic} "
            f"({expect_magic & 0xFF}-d); is this the right file?"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IDXError(f"{path}: truncated header: {ndim} dimensions need {header} bytes")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected, found = int(np.prod(dims, dtype=np.int64)), len(raw) - header
    if found < expected:
        raise IDXError(f"{path}: truncated: expected {expected} bytes of data, found {found}")
    if found > expected:
        raise IDXError(f"{path}: {found - expected} trailing bytes after {expected} bytes of data")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()


def load_split(
    images_path: str | os.PathLike,
    labels_path: str | os.PathLike,
    image_shape: Sequence[int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, rows, columns) uint8 and labels (N,) uint8 of one split, checked against
    each other (and against ``image_shape``, if given)."""
    images = read_idx(images_path, expect_magic=IMAGES_MAGIC)
    labels = read_idx(labels_path, expect_magic=LABELS_MAGIC)
    problems = _split_problems(images, labels, images_path, labels_path, image_shape)
    if problems:
        raise IDXError(problems[0])
    return images, labels


def load_splits(
    paths: Mapping[str, str | os.PathLike],
    image_shape: Sequence[int] | None = None,
    n_labels: int | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Both splits, ``{"train": (images, labels), "test": (...)}``, from the four files
    ``paths`` names by role (:data:`bmm.datasets.ROLES`).

    All four files are read and checked (:func:`read_idx`, then images against labels, the
    image shape against ``image_shape`` or the other split's, labels below ``n_labels``)
    before anything is returned, so a caller that writes only afterwards writes nothing when
    any of them is bad. Raises :class:`IDXError` naming every bad file, in one line.
    """
    arrays: dict[str, np.ndarray] = {}
    problems: list[str] = []
    for role in ROLES:
        magic = IMAGES_MAGIC if role.endswith("_images") else LABELS_MAGIC
        try:
            arrays[role] = read_idx(paths[role], expect_magic=magic)
        except IDXError as e:
            problems.append(str(e))
    for split in ("train", "test"):
        images, labels = f"{split}_images", f"{split}_labels"
        if images in arrays and labels in arrays:
            shape = image_shape
            if shape is None and split == "test" and "train_images" in arrays:
                shape = arrays["train_images"].shape[1:]  # the test images must match
            problems += _split_problems(
                arrays[images], arrays[labels], paths[images], paths[labels], shape, n_labels
            )
    if len(problems) == 1:
        raise IDXError(problems[0])
    if problems:
        raise IDXError(f"{len(problems)} problems in the IDX files: " + "; ".join(problems))
    return {
        split: (arrays[f"{split}_images"], arrays[f"{split}_labels"]) for split in ("train", "test")
    }


def _split_problems(
    images, labels, images_path, labels_path, image_shape=None, n_labels=None
) -> list[str]:
    """What is wrong with one split's images and labels taken together (nothing: [])."""
    problems = []
    if image_shape is not None and images.shape[1:] != tuple(image_shape):
        want = " x ".join(map(str, image_shape))
        problems.append(f"{images_path}: images of {images.shape[1:]} pixels, expected {want}")
    if len(images) != len(labels):
        problems.append(
            f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels"
        )
    if n_labels is not None and labels.size and labels.max() >= n_labels:
        problems.append(f"{labels_path}: label {labels.max()} outside 0..{n_labels - 1}")
    return problems
