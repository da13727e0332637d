"""bmm.idx: strict IDX parsing, and a set's four files checked against each other."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from conftest import FILES

from bmm.idx import IDXError, load_split, load_splits, read_idx


def test_read_idx_valid(synthetic_mnist, idx_writer, tmp_path):
    images, labels = synthetic_mnist.train
    path = synthetic_mnist.dir / FILES["train_images"]
    np.testing.assert_array_equal(read_idx(path), images)
    np.testing.assert_array_equal(read_idx(path, expect_magic=2051), images)
    np.testing.assert_array_equal(read_idx(synthetic_mnist.dir / FILES["train_labels"]), labels)
    raw = idx_writer(tmp_path / "raw-idx", images[:5], gz=False)  # uncompressed works too
    out = read_idx(raw)
    assert out.dtype == np.uint8 and out.shape == (5, 28, 28) and out.flags.writeable
    np.testing.assert_array_equal(out, images[:5])


def test_read_idx_truncated_gzip(synthetic_mnist, tmp_path):
    data = (synthetic_mnist.dir / FILES["train_images"]).read_bytes()
    path = tmp_path / "cut.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(IDXError, match="truncated or corrupt gzip") as info:
        read_idx(path)
    assert str(path) in str(info.value) and "delete it" in str(info.value)


def test_read_idx_corrupt_gzip(synthetic_mnist, tmp_path):
    data = bytearray((synthetic_mnist.dir / FILES["train_labels"]).read_bytes())
    data[-8] ^= 0xFF  # break the CRC
    path = tmp_path / "bad-crc.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(IDXError, match="truncated or corrupt gzip") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_wrong_magic(synthetic_mnist):
    labels = synthetic_mnist.dir / FILES["train_labels"]
    with pytest.raises(IDXError) as info:
        read_idx(labels, expect_magic=2051)
    assert str(labels) in str(info.value)
    assert "2049" in str(info.value) and "2051" in str(info.value)
    images = synthetic_mnist.dir / FILES["train_images"]
    with pytest.raises(IDXError, match=r"train-labels.*magic number 2049"):
        load_split(labels, images)


@pytest.mark.parametrize("magic", [0x01000803, 0x00000903, 0x00000800])
def test_read_idx_not_idx(idx_writer, tmp_path, magic):
    path = idx_writer(tmp_path / "x.gz", np.zeros((2, 3), np.uint8), magic=magic)
    with pytest.raises(IDXError, match="not that of an IDX file") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_payload_too_short(tmp_path):
    path = tmp_path / "short.gz"
    header = bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in (10, 28, 28))
    path.write_bytes(gzip.compress(header + bytes(9 * 784)))
    with pytest.raises(IDXError) as info:
        read_idx(path)
    assert str(info.value) == f"{path}: truncated: expected 7840 bytes of data, found 7056"


def test_read_idx_trailing_bytes(idx_writer, tmp_path):
    path = idx_writer(tmp_path / "long", np.arange(10, dtype=np.uint8), gz=False)
    path.write_bytes(path.read_bytes() + b"xyz")
    with pytest.raises(IDXError, match="3 trailing bytes") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_truncated_header(tmp_path):
    path = tmp_path / "header"
    path.write_bytes(bytes([0, 0, 8, 3, 0, 0, 0, 1]))
    with pytest.raises(IDXError, match="truncated header") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_load_split(synthetic_mnist):
    images, labels = load_split(
        synthetic_mnist.dir / FILES["test_images"], synthetic_mnist.dir / FILES["test_labels"]
    )
    assert images.shape == (100, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (100,) and labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, synthetic_mnist.test[1])


def test_load_split_count_mismatch(synthetic_mnist, idx_writer, tmp_path):
    images = synthetic_mnist.dir / FILES["test_images"]
    labels = idx_writer(tmp_path / "labels.gz", synthetic_mnist.test[1][:99])
    with pytest.raises(IDXError) as info:
        load_split(images, labels)
    message = str(info.value)
    assert str(images) in message and str(labels) in message
    assert "100 images" in message and "99 labels" in message


def test_load_split_bad_labels_and_shapes(synthetic_mnist, idx_writer, tmp_path):
    images = synthetic_mnist.dir / FILES["test_images"]
    labels = idx_writer(tmp_path / "labels.gz", np.full(100, 10, np.uint8))
    paths = {
        "train_images": synthetic_mnist.dir / FILES["train_images"],
        "train_labels": synthetic_mnist.dir / FILES["train_labels"],
        "test_images": images,
        "test_labels": labels,
    }
    with pytest.raises(IDXError, match=r"label 10 outside 0\.\.9") as info:
        load_splits(paths, n_labels=10)
    assert str(labels) in str(info.value)
    assert load_splits(paths)["test"][1].max() == 10  # a set with more labels: no limit
    small = idx_writer(tmp_path / "small.gz", np.zeros((100, 27, 28), np.uint8))
    with pytest.raises(IDXError, match="expected 28 x 28"):
        load_split(small, synthetic_mnist.dir / FILES["test_labels"], (28, 28))


def test_load_splits_checks_the_test_images_against_the_training_images(
    synthetic_mnist, idx_writer, tmp_path
):
    """A set of any image size is read (its shape comes from the files), but its two splits
    must agree; every bad file is named at once."""
    paths = {role: synthetic_mnist.dir / name for role, name in FILES.items()}
    splits = load_splits(paths)
    assert splits["train"][0].shape == (300, 28, 28) and splits["test"][0].shape == (100, 28, 28)
    small = {
        "train_images": idx_writer(tmp_path / "a.gz", np.zeros((4, 20, 20), np.uint8)),
        "train_labels": idx_writer(tmp_path / "b.gz", np.zeros(4, np.uint8)),
        "test_images": idx_writer(tmp_path / "c.gz", np.zeros((3, 20, 21), np.uint8)),
        "test_labels": idx_writer(tmp_path / "d.gz", np.zeros(2, np.uint8)),
    }
    with pytest.raises(IDXError) as info:
        load_splits(small)
    message = str(info.value)
    assert message.startswith("2 problems in the IDX files: ")
    assert f"{small['test_images']}: images of (20, 21) pixels, expected 20 x 20" in message
    assert "holds 3 images but" in message and "holds 2 labels" in message
