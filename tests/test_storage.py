"""bmm.storage: thresholds, subsets, and binarised sets stored bit-packed in Parquet."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bmm.bits import BitMatrix
from bmm.io import CorruptFileError, read_metadata, write_parquet
from bmm.storage import (
    ROW_GROUP_ROWS,
    binarize,
    ink,
    load_binarized,
    resolve_threshold,
    stratified_subset,
    subset,
    write_binarized,
)

PIXELS = np.array([0, 1, 127, 128, 254, 255], np.uint8)


def as_images(values: np.ndarray) -> np.ndarray:
    """One 28x28 image per value, every pixel set to it."""
    return np.repeat(values, 784).reshape(-1, 28, 28)


@pytest.mark.parametrize(
    ("threshold", "on"),
    [
        (0.5, [False, False, False, True, True, True]),
        ("article", [False, True, True, True, True, True]),
        (0, [False, True, True, True, True, True]),
        (127 / 255, [False, False, False, True, True, True]),  # strict: 127 stays off
        (0.999, [False, False, False, False, False, True]),
    ],
)
def test_binarize_threshold(threshold, on):
    X = binarize(as_images(PIXELS), threshold)
    assert X.dtype == np.bool_ and X.shape == (len(PIXELS), 784)
    np.testing.assert_array_equal(X[:, 0], on)
    assert (X == X[:, :1]).all()
    np.testing.assert_array_equal(binarize(as_images(PIXELS).reshape(-1, 784), threshold), X)


def test_resolve_threshold():
    assert resolve_threshold("article") == 0.0
    assert resolve_threshold(0.5) == 0.5 and isinstance(resolve_threshold(0), float)
    assert resolve_threshold(np.float32(0.25)) == 0.25
    for bad in [-1, 1, 1.5, "foo", "0.5", float("nan"), True, None]:
        with pytest.raises(ValueError, match="article"):
            resolve_threshold(bad)
    with pytest.raises(ValueError):
        binarize(as_images(PIXELS), 1.5)


def test_binarize_rejects_bad_images():
    with pytest.raises(ValueError, match="uint8"):
        binarize(as_images(PIXELS).astype(np.float64), 0.5)
    with pytest.raises(ValueError, match="uint8 images"):
        binarize(np.zeros(10, np.uint8), 0.5)
    assert binarize(np.full((2, 5, 3), 200, np.uint8), 0.5).shape == (2, 15)  # any image size


def test_binarized_round_trip(synthetic_mnist, tmp_path):
    images, labels = synthetic_mnist.train
    X = binarize(images, 0.5)
    path = tmp_path / "bin" / "train.parquet"
    meta = {"threshold": 0.5, "split": "train"}
    names = [f"class {c}" for c in range(10)]
    write_binarized(path, X, labels, meta, image_shape=(28, 28), label_names=names)
    assert meta == {"threshold": 0.5, "split": "train"}  # the caller's dict is left alone

    schema = pq.read_schema(path)
    assert schema.field("label").type == pa.int32()
    assert schema.field("pixels").type == pa.binary(98)
    stored = read_metadata(path)
    assert {k: stored[k] for k in ("threshold", "split", "n_images", "n_pixels")} == {
        "threshold": 0.5,
        "split": "train",
        "n_images": 300,
        "n_pixels": 784,
    }
    assert stored["image_shape"] == [28, 28] and stored["label_names"] == names
    assert stored["pixels_on"] == pytest.approx(X.mean())
    Xf, y = load_binarized(path)
    assert Xf.dtype == np.float64 and Xf.shape == (300, 784)
    assert y.dtype == np.int64
    np.testing.assert_array_equal(Xf, X)
    np.testing.assert_array_equal(y, labels)
    X8, _ = load_binarized(path, dtype=np.uint8)
    assert X8.dtype == np.uint8
    np.testing.assert_array_equal(X8, X)
    bits, _ = load_binarized(path, packed=True)
    assert isinstance(bits, BitMatrix) and bits.shape == (300, 784)
    np.testing.assert_array_equal(bits.unpack(), X)
    # packed in 98 bytes per image: the table holds the bits, not 784 values
    row = pq.read_table(path).column("pixels")[0].as_py()
    assert row == np.packbits(X[0]).tobytes()


@pytest.mark.parametrize("D", [1, 7, 13, 64, 100])
def test_any_number_of_features_without_labels_round_trips(tmp_path, D):
    X = np.random.default_rng(D).random((9, D)) < 0.4
    path = tmp_path / "own.parquet"
    write_binarized(path, X, None, {})
    assert pq.read_schema(path).names == ["pixels"]  # no label column
    assert read_metadata(path)["image_shape"] is None
    X_back, y = load_binarized(path, dtype=bool)
    assert y is None
    np.testing.assert_array_equal(X_back, X)
    with pytest.raises(ValueError, match=r"image shape \(2, 3\) does not hold"):
        write_binarized(path, X, None, {}, image_shape=(2, 3))


def test_rows_are_stored_in_row_groups_of_a_fixed_size(tmp_path):
    N = 2 * ROW_GROUP_ROWS + 5
    X = np.random.default_rng(0).random((N, 16)) < 0.5
    path = tmp_path / "rows.parquet"
    write_binarized(path, X, np.arange(N) % 3, {})
    meta = pq.ParquetFile(path).metadata
    assert [meta.row_group(g).num_rows for g in range(meta.num_row_groups)] == [
        ROW_GROUP_ROWS,
        ROW_GROUP_ROWS,
        5,
    ]


def test_ink_counts_pixels_on_and_non_zero_nibbles():
    X = np.zeros((2, 16), bool)
    X[0, [0, 1, 2, 3]] = True  # one nibble
    X[1, [3, 4, 15]] = True  # three nibbles
    found = ink(BitMatrix.pack(X))
    assert found == {"pixels_on": 7 / 32, "nonzero_nibbles": 2.0}


def test_load_binarized_rejects_other_tables(tmp_path):
    wrong = tmp_path / "wrong.parquet"
    write_parquet(pa.table({"label": pa.array([1], pa.int64()), "pixels": [b"x"]}), wrong, {})
    with pytest.raises(ValueError, match="not a binarised table") as info:
        load_binarized(wrong)
    assert str(wrong) in str(info.value)
    not_parquet = tmp_path / "x.parquet"
    not_parquet.write_bytes(b"hello")
    with pytest.raises(CorruptFileError, match="corrupt or truncated") as info:
        load_binarized(not_parquet)
    assert str(not_parquet) in str(info.value) and "delete it and rerun" in str(info.value)


def test_write_binarized_checks_labels(tmp_path):
    X = np.zeros((3, 784), bool)
    with pytest.raises(ValueError, match="labels"):
        write_binarized(tmp_path / "a.parquet", X, np.array([0, 1]), {})
    with pytest.raises(ValueError, match="labels"):
        write_binarized(tmp_path / "a.parquet", X, np.array([0, 1, -1]), {})
    with pytest.raises(ValueError, match="labels"):
        write_binarized(tmp_path / "a.parquet", X, np.array([0.0, 1.0, 2.0]), {})
    assert not (tmp_path / "a.parquet").exists()


# --------------------------------------------------------------------------- subsets


def test_stratified_subset():
    labels = np.repeat(np.arange(10), [50, 100, 150, 200, 250, 300, 350, 400, 450, 500])
    labels = np.random.default_rng(7).permutation(labels)  # 2750 items
    idx = stratified_subset(labels, 275, seed=3)
    assert idx.dtype == np.int64 and len(idx) == 275 and len(np.unique(idx)) == 275
    assert (np.diff(idx) > 0).all()
    np.testing.assert_array_equal(np.bincount(labels[idx]), np.arange(1, 11) * 5)
    np.testing.assert_array_equal(idx, stratified_subset(labels, 275, seed=3))
    assert not np.array_equal(idx, stratified_subset(labels, 275, seed=4))


@pytest.mark.parametrize("n", [1, 7, 13, 99, 299])
def test_stratified_subset_largest_remainder(synthetic_mnist, n):
    labels = synthetic_mnist.train[1]  # 30 per class
    counts = np.bincount(labels[stratified_subset(labels, n, seed=0)], minlength=10)
    assert counts.sum() == n
    assert counts.max() - counts.min() <= 1  # equal classes: quotas differ by at most one


def test_stratified_subset_all_and_invalid():
    labels = np.array([3, 1, 2, 1, 3])
    all_idx = np.arange(5, dtype=np.int64)
    for n in (None, 5, 6):
        out = stratified_subset(labels, n, seed=0)
        assert out.dtype == np.int64
        np.testing.assert_array_equal(out, all_idx)
    for n in (0, -3):
        with pytest.raises(ValueError):
            stratified_subset(labels, n, seed=0)


def test_a_set_without_labels_gets_a_uniform_subset():
    out = subset(100, None, 10, seed=0)
    assert len(out) == 10 and (np.diff(out) > 0).all()
    np.testing.assert_array_equal(out, subset(100, None, 10, seed=0))
    assert not np.array_equal(out, subset(100, None, 10, seed=1))
    labels = np.arange(100) % 4
    np.testing.assert_array_equal(subset(100, labels, 8, 0), stratified_subset(labels, 8, 0))
    np.testing.assert_array_equal(subset(100, None, None, 0), np.arange(100))
