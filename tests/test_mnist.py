"""bmm.mnist: downloads from mirrors, strict IDX parsing, binarisation, packed storage."""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import re
import stat

import numpy as np
import pooch
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import require

from bmm import mnist
from bmm.io import CorruptFileError, write_parquet
from bmm.mnist import (
    FILES,
    SHA256,
    DownloadError,
    IDXError,
    binarize,
    binarized_metadata,
    download,
    load_binarized,
    load_split,
    pack,
    read_idx,
    resolve_threshold,
    stratified_subset,
    unpack,
    write_binarized,
)

NAME = FILES["train_images"]


@pytest.fixture
def fetch(synthetic_mnist, tmp_path):
    """download() of the synthetic train images into tmp_path/out, logging into a list."""
    logs: list[str] = []

    def run(mirrors, **kw):
        kw = {"retries": 3, "backoff": 0, "timeout": 5, "log": logs.append, **kw}
        return download(NAME, tmp_path / "out" / NAME, mirrors, synthetic_mnist.sha256[NAME], **kw)

    run.logs = logs
    run.dest = tmp_path / "out" / NAME
    return run


class RecordingHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def same_as_source(fetch, synthetic_mnist) -> bool:
    return fetch.dest.read_bytes() == (synthetic_mnist.dir / NAME).read_bytes()


# --------------------------------------------------------------------------- download


def test_download_over_http(fetch, synthetic_mnist, http_mirror):
    url = http_mirror(synthetic_mnist.dir)
    assert fetch([url + "/"]) == url + "/"
    assert same_as_source(fetch, synthetic_mnist)
    assert url.requests == [f"/{NAME}"]
    size = (synthetic_mnist.dir / NAME).stat().st_size
    assert fetch.logs[-1] == f"{NAME}: served by {url}/: {size} bytes, sha256 ok"
    assert sorted(p.name for p in fetch.dest.parent.iterdir()) == [NAME]


def serve_big_file(tmp_path, http_mirror, mode="ok") -> tuple[str, bytes]:
    """A mirror serving big.bin, 3 MiB and 5 bytes of random data."""
    (tmp_path / "src").mkdir()
    data = np.random.default_rng(0).bytes(3 * 2**20 + 5)
    (tmp_path / "src" / "big.bin").write_bytes(data)
    return http_mirror(tmp_path / "src", mode), data


def test_download_logs_a_progress_bar_line_per_tenth(tmp_path, http_mirror):
    url, data = serve_big_file(tmp_path, http_mirror)
    logs: list[str] = []
    sha = hashlib.sha256(data).hexdigest()
    download("big.bin", tmp_path / "big.bin", [url], sha, backoff=0, log=logs.append)
    bar = re.compile(r"big\.bin: +(\d+)%\|[#0-9 ]{10}\| (\S+)/3\.15M \[")
    percents = [int(m[1]) for m in map(bar.match, logs) if m]
    assert len(percents) == 10, logs  # a few lines, not one per chunk
    assert percents == sorted(set(percents)) and percents[-1] == 100
    assert bar.match(next(line for line in logs if "100%" in line))[2] == "3.15M"
    assert (tmp_path / "big.bin").read_bytes() == data


def test_download_logs_progress_per_mib_when_the_size_is_unknown(tmp_path, http_mirror):
    url, data = serve_big_file(tmp_path, http_mirror, "nolength")
    logs: list[str] = []
    sha = hashlib.sha256(data).hexdigest()
    download("big.bin", tmp_path / "big.bin", [url], sha, backoff=0, log=logs.append)
    sizes = [m[1] for m in map(re.compile(r"big\.bin: ([\d.]+)MB \[").match, logs) if m]
    assert sizes == ["1.05", "2.10", "3.15"], logs  # 1, 2 and 3 MiB in (decimal) MB
    assert (tmp_path / "big.bin").read_bytes() == data


def test_pooch_reports_into_the_log_only(fetch, synthetic_mnist, http_mirror):
    elsewhere = RecordingHandler()
    logger = pooch.get_logger()
    logger.addHandler(elsewhere)
    try:
        url = http_mirror(synthetic_mnist.dir)
        fetch([url])
    finally:
        logger.removeHandler(elsewhere)
    said = [line for line in fetch.logs if line.startswith("pooch: ")]
    assert len(said) == 1 and f"{url}/{NAME}" in said[0]
    assert elsewhere.records == []  # not also on stderr, where pooch's own handler writes
    assert elsewhere not in logger.handlers and logger.handlers  # pooch's handler is back


@pytest.mark.parametrize("served", ["http", "directory"])
def test_downloaded_file_gets_the_usual_mode(fetch, synthetic_mnist, http_mirror, served):
    umask = os.umask(0o022)
    os.umask(umask)
    mirror = http_mirror(synthetic_mnist.dir) if served == "http" else str(synthetic_mnist.dir)
    fetch([mirror])
    # as any file this process writes, not the 0600 of a temporary file
    assert stat.S_IMODE(fetch.dest.stat().st_mode) == 0o666 & ~umask


def test_download_from_local_directory(fetch, synthetic_mnist, monkeypatch):
    assert fetch([str(synthetic_mnist.dir)]) == str(synthetic_mnist.dir)
    assert same_as_source(fetch, synthetic_mnist)
    # relative paths are relative to the working directory
    monkeypatch.chdir(synthetic_mnist.dir.parent)
    fetch.dest.unlink()
    assert fetch([synthetic_mnist.dir.name]) == synthetic_mnist.dir.name
    assert same_as_source(fetch, synthetic_mnist)


def test_download_from_file_url(fetch, synthetic_mnist):
    url = synthetic_mnist.dir.as_uri() + "/"
    assert fetch([url]) == url
    assert same_as_source(fetch, synthetic_mnist)


def test_down_mirror_then_good(fetch, synthetic_mnist, http_mirror, closed_port_url):
    good = http_mirror(synthetic_mnist.dir)
    assert fetch([closed_port_url, good]) == good
    assert same_as_source(fetch, synthetic_mnist)
    assert any(closed_port_url in line and "connection refused" in line for line in fetch.logs)


def test_404_is_not_retried(fetch, synthetic_mnist, http_mirror):
    missing, good = http_mirror(synthetic_mnist.dir, "404"), http_mirror(synthetic_mnist.dir)
    assert fetch([missing, good]) == good
    assert len(missing.requests) == 1
    assert same_as_source(fetch, synthetic_mnist)


def test_corrupt_mirror_falls_back(fetch, synthetic_mnist, http_mirror):
    bad, good = http_mirror(synthetic_mnist.dir, "corrupt"), http_mirror(synthetic_mnist.dir)
    assert fetch([bad, good]) == good
    expected = synthetic_mnist.sha256[NAME]
    mismatch = [line for line in fetch.logs if "checksum mismatch" in line]
    assert len(mismatch) == 1
    assert f"checksum mismatch from {bad}/{NAME}: got " in mismatch[0]
    assert mismatch[0].endswith(f", expected {expected}")
    assert len(bad.requests) == 1  # a checksum mismatch is not retried
    assert same_as_source(fetch, synthetic_mnist)


@pytest.mark.parametrize("retries", [1, 3])
def test_500_is_retried(fetch, synthetic_mnist, http_mirror, retries):
    failing, good = http_mirror(synthetic_mnist.dir, "500"), http_mirror(synthetic_mnist.dir)
    assert fetch([failing, good], retries=retries) == good
    assert len(failing.requests) == retries
    assert len(good.requests) == 1


def test_backoff_doubles(fetch, synthetic_mnist, http_mirror, monkeypatch):
    sleeps: list[float] = []
    monkeypatch.setattr(mnist.time, "sleep", sleeps.append)
    failing = http_mirror(synthetic_mnist.dir, "500")
    with pytest.raises(DownloadError, match=r"HTTP 500 .*\(after 4 attempts\)"):
        fetch([failing], retries=4, backoff=0.5)
    assert sleeps == [0.5, 1.0, 2.0]


def test_truncated_transfer_is_retried_then_falls_back(fetch, synthetic_mnist, http_mirror):
    short, good = http_mirror(synthetic_mnist.dir, "truncate"), http_mirror(synthetic_mnist.dir)
    assert fetch([short, good], retries=2) == good
    assert len(short.requests) == 2
    assert any("incomplete transfer" in line for line in fetch.logs)
    assert same_as_source(fetch, synthetic_mnist)


def test_all_mirrors_fail(fetch, synthetic_mnist, http_mirror, closed_port_url, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    mirrors = [
        closed_port_url,
        http_mirror(synthetic_mnist.dir, "404"),
        http_mirror(synthetic_mnist.dir, "500"),
        http_mirror(synthetic_mnist.dir, "corrupt"),
        http_mirror(synthetic_mnist.dir, "truncate"),
        http_mirror(synthetic_mnist.dir, "hang"),
        str(empty),
        empty.as_uri(),
        "ftp://example.org/mnist",
    ]
    fetch.dest.parent.mkdir()
    fetch.dest.write_bytes(b"stale")  # a previous wrong file must not survive either
    with pytest.raises(DownloadError) as info:
        fetch(mirrors, retries=2, timeout=0.5)
    message = str(info.value)
    lines = message.splitlines()
    sha256 = synthetic_mnist.sha256[NAME]
    assert lines[0] == f"could not download {NAME} (sha256 {sha256}) from any mirror:"
    for mirror, reason in zip(
        mirrors,
        [
            "connection refused",
            "HTTP 404",
            "HTTP 500",
            "checksum mismatch",
            "incomplete transfer",
            "timeout",
            "missing file",
            "missing file",
            "unsupported mirror",
        ],
        strict=True,
    ):
        shown = str(empty / NAME) if mirror in (str(empty), empty.as_uri()) else mirror
        assert any(shown in line and reason in line for line in lines), (mirror, reason, message)
    assert "mnist.mirrors" in message
    assert 'mnist: {mirrors: ["/path/to/mnist"]}' in message
    assert "--configfile" in message
    assert list(fetch.dest.parent.iterdir()) == []  # no dest, no temporary file


def test_no_mirrors(fetch):
    with pytest.raises(DownloadError, match="no mirrors"):
        fetch([])
    assert not fetch.dest.exists()


# --------------------------------------------------------------------------- IDX


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
    with pytest.raises(IDXError, match=r"label 10 outside 0\.\.9") as info:
        load_split(images, labels)
    assert str(labels) in str(info.value)
    small = idx_writer(tmp_path / "small.gz", np.zeros((100, 27, 28), np.uint8))
    with pytest.raises(IDXError, match="expected 28 x 28"):
        load_split(small, synthetic_mnist.dir / FILES["test_labels"])


# --------------------------------------------------------------------------- binarisation

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
    with pytest.raises(ValueError, match="784"):
        binarize(np.zeros((2, 10, 10), np.uint8), 0.5)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64, np.bool_, np.int64])
def test_pack_unpack_round_trip(dtype):
    X = np.random.default_rng(1).random((37, 784)) < 0.3
    packed = pack(X)
    assert packed.dtype == np.uint8 and packed.shape == (37, 98)
    np.testing.assert_array_equal(packed[:, 0], np.packbits(X[:, :8], axis=1)[:, 0])
    out = unpack(packed, dtype)
    assert out.dtype == dtype and out.shape == (37, 784)
    np.testing.assert_array_equal(out, X.astype(dtype))
    assert pack(X.astype(np.uint8)).tobytes() == packed.tobytes()


def test_pack_bit_order():
    X = np.zeros((1, 784), bool)
    X[0, 0] = X[0, 783] = True
    packed = pack(X)
    assert packed[0, 0] == 0b1000_0000 and packed[0, 97] == 0b0000_0001
    with pytest.raises(ValueError):
        pack(np.zeros((2, 783), bool))
    with pytest.raises(ValueError):
        unpack(np.zeros((2, 97), np.uint8))


def test_binarized_round_trip(synthetic_mnist, tmp_path):
    images, labels = synthetic_mnist.train
    X = binarize(images, 0.5)
    path = tmp_path / "bin" / "train.parquet"
    meta = {"threshold": 0.5, "split": "train"}
    write_binarized(path, X, labels, meta)
    assert meta == {"threshold": 0.5, "split": "train"}  # the caller's dict is left alone

    schema = pq.read_schema(path)
    assert schema.field("label").type == pa.uint8()
    assert schema.field("pixels").type == pa.binary(98)
    assert schema.field("pixels").type.byte_width == 98
    assert binarized_metadata(path) == {
        "threshold": 0.5,
        "split": "train",
        "n_images": 300,
        "shape": [28, 28],
        "packing": "numpy.packbits, big bit order, 784 pixels -> 98 bytes",
    }
    Xf, y = load_binarized(path)
    assert Xf.dtype == np.float64 and Xf.shape == (300, 784)
    assert y.dtype == np.int64
    np.testing.assert_array_equal(Xf, X)
    np.testing.assert_array_equal(y, labels)
    X8, _ = load_binarized(path, dtype=np.uint8)
    assert X8.dtype == np.uint8
    np.testing.assert_array_equal(X8, X)
    # packed in 98 bytes per image: the table holds the bits, not 784 values
    row = pq.read_table(path).column("pixels")[0].as_py()
    assert row == np.packbits(X[0]).tobytes()


def test_load_binarized_rejects_other_tables(tmp_path):
    wrong = tmp_path / "wrong.parquet"
    write_parquet(pa.table({"label": pa.array([1], pa.int64()), "pixels": [b"x"]}), wrong, {})
    with pytest.raises(ValueError, match="not a binarised MNIST table") as info:
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
        write_binarized(tmp_path / "a.parquet", X, [0, 1], {})
    with pytest.raises(ValueError, match="labels"):
        write_binarized(tmp_path / "a.parquet", X, [0, 1, 10], {})
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


# --------------------------------------------------------------------------- real MNIST


@pytest.mark.mnist
def test_real_mnist_over_http(real_mnist_dir, http_mirror, tmp_path):
    url = http_mirror(real_mnist_dir)
    for name in FILES.values():  # each served over HTTP by this mirror, in one request
        assert (
            download(name, tmp_path / name, [url], SHA256[name], backoff=0, log=lambda _: None)
            == url
        )
    assert url.requests == [f"/{name}" for name in FILES.values()]
    expected = {
        "train": [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
        "test": [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
    }
    for split, n in (("train", 60000), ("test", 10000)):
        images, labels = load_split(
            tmp_path / FILES[f"{split}_images"], tmp_path / FILES[f"{split}_labels"]
        )
        assert images.shape == (n, 28, 28) and images.dtype == np.uint8
        assert labels.shape == (n,) and labels.min() == 0 and labels.max() == 9
        assert np.bincount(labels).tolist() == expected[split]
        assert images.max() == 255 and images.min() == 0


@pytest.mark.mnist
def test_sha256_table_matches_shared_sums(real_mnist_dir):
    if not (real_mnist_dir / "SHA256SUMS").is_file():
        require("data", f"no SHA256SUMS in {real_mnist_dir}")
    sums = (real_mnist_dir / "SHA256SUMS").read_text().split()
    assert dict(zip(sums[1::2], sums[::2], strict=True)) == SHA256
    assert set(SHA256) == set(FILES.values())
