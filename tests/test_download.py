"""bmm.download: mirrors tried in order, retries, and a file accepted by either of its
SHA-256s (the .gz's, or its IDX bytes'); another known set's file is refused by name."""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import stat

import numpy as np
import pytest
from conftest import FILES

from bmm import datasets
from bmm import download as download_module
from bmm.datasets import IDXFile, IDXSet
from bmm.download import DownloadError, checksums, download

NAME = FILES["train_images"]


@pytest.fixture
def fetch(synthetic_mnist, tmp_path):
    """download() of the synthetic train images (known by the .gz's SHA-256 only) into
    tmp_path/out, logging into a list."""
    logs: list[str] = []

    def run(mirrors, file=None, **kw):
        kw = {"retries": 3, "backoff": 0, "timeout": 5, "log": logs.append, **kw}
        kw.setdefault("dataset", "synthetic")
        file = file or IDXFile(NAME, synthetic_mnist.sha256[NAME], None)
        return download(file, tmp_path / "out" / NAME, mirrors, **kw)

    run.logs = logs
    run.dest = tmp_path / "out" / NAME
    return run


def same_as_source(fetch, synthetic_mnist) -> bool:
    return fetch.dest.read_bytes() == (synthetic_mnist.dir / NAME).read_bytes()


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
    download(IDXFile("big.bin", sha, None), tmp_path / "big.bin", [url], backoff=0, log=logs.append)
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
    download(IDXFile("big.bin", sha, None), tmp_path / "big.bin", [url], backoff=0, log=logs.append)
    sizes = [m[1] for m in map(re.compile(r"big\.bin: ([\d.]+)MB \[").match, logs) if m]
    assert sizes == ["1.05", "2.10", "3.15"], logs  # 1, 2 and 3 MiB in (decimal) MB
    assert (tmp_path / "big.bin").read_bytes() == data


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
    assert f"{NAME}: {bad}/{NAME}: checksum mismatch: got sha256 " in mismatch[0]
    assert mismatch[0].endswith(f", expected sha256 {expected} (decompressed unknown)")
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
    monkeypatch.setattr(download_module.time, "sleep", sleeps.append)
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
    file = IDXFile(NAME, synthetic_mnist.sha256[NAME], None)
    assert lines[0] == f"could not download synthetic's {NAME} ({file.describe()}) from any mirror:"
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
    assert lines[0].startswith(f"could not download synthetic's {NAME} (sha256 ")
    assert "datasets.synthetic.mirrors" in message
    assert 'datasets: {synthetic: {mirrors: ["/path/to/synthetic"]}}' in message
    assert "--configfile" in message
    assert list(fetch.dest.parent.iterdir()) == []  # no dest, no temporary file


def test_no_mirrors(fetch):
    with pytest.raises(DownloadError, match="no mirrors"):
        fetch([])
    assert not fetch.dest.exists()


# --------------------------------------------------------------------------- checksums


def regzipped(source, dest, level: int = 1):
    """``source`` recompressed (another level, another header): other bytes, the same IDX."""
    dest.write_bytes(gzip.compress(gzip.decompress(source.read_bytes()), level, mtime=12345))
    return dest


def test_checksums_are_of_the_bytes_and_of_the_idx_inside(synthetic_mnist, tmp_path):
    path = synthetic_mnist.dir / NAME
    inner = hashlib.sha256(gzip.decompress(path.read_bytes())).hexdigest()
    assert checksums(path) == (synthetic_mnist.sha256[NAME], inner)
    raw = tmp_path / "raw"  # an uncompressed IDX file is its own content
    raw.write_bytes(gzip.decompress(path.read_bytes()))
    assert checksums(raw) == (inner, inner)
    cut = tmp_path / "cut.gz"
    cut.write_bytes(path.read_bytes()[:500])
    assert checksums(cut) == (hashlib.sha256(path.read_bytes()[:500]).hexdigest(), None)


@pytest.mark.parametrize("known", ["gz", "idx"])
def test_a_file_is_accepted_by_either_of_its_checksums(fetch, synthetic_mnist, known):
    gz, idx = checksums(synthetic_mnist.dir / NAME)
    file = IDXFile(NAME, gz if known == "gz" else None, idx if known == "idx" else None)
    assert fetch([str(synthetic_mnist.dir)], file=file) == str(synthetic_mnist.dir)
    assert same_as_source(fetch, synthetic_mnist)


def test_a_recompressed_file_is_accepted_by_its_decompressed_checksum(
    fetch, synthetic_mnist, tmp_path
):
    """As Debian's dataset-fashion-mnist: the .gz recompressed, the IDX bytes the same."""
    (tmp_path / "repacked").mkdir()
    repacked = regzipped(synthetic_mnist.dir / NAME, tmp_path / "repacked" / NAME)
    gz, idx = checksums(synthetic_mnist.dir / NAME)
    assert checksums(repacked)[0] != gz and checksums(repacked)[1] == idx
    assert fetch([str(repacked.parent)], file=IDXFile(NAME, gz, idx)) == str(repacked.parent)
    assert fetch.dest.read_bytes() == repacked.read_bytes()
    # with only the .gz's checksum known, the same file is refused
    with pytest.raises(DownloadError, match="checksum mismatch"):
        fetch([str(repacked.parent)], file=IDXFile(NAME, gz, None))
    assert list(fetch.dest.parent.iterdir()) == []


def test_another_sets_file_under_the_right_name_is_refused_naming_the_set(
    fetch, synthetic_mnist, tmp_path, idx_writer
):
    """A mirror of set "b" serves set "a"'s train images under the right name: refused, and
    the message names the file, both pairs of checksums and the set it actually is."""
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    a_dir.mkdir(), b_dir.mkdir()
    images = synthetic_mnist.train[0]
    idx_writer(a_dir / NAME, images)
    idx_writer(b_dir / NAME, 255 - images)
    a_gz, a_idx = checksums(a_dir / NAME)
    b_gz, b_idx = checksums(b_dir / NAME)

    def known(name, gz, idx):
        files = {role: IDXFile(f"{role}.gz", None, None) for role in datasets.ROLES}
        return IDXSet(name, name, {**files, "train_images": IDXFile(NAME, gz, idx)}, ())

    sets = [known("a", a_gz, a_idx), known("b", b_gz, b_idx)]

    def identify(gz, idx):
        return datasets.identify(gz, idx, sets)

    with pytest.raises(DownloadError) as info:
        fetch([str(a_dir)], file=IDXFile(NAME, b_gz, b_idx), dataset="b", identify=identify)
    message = str(info.value)
    assert message.startswith(
        f"could not download b's {NAME} (sha256 {b_gz} (decompressed {b_idx}))"
    )
    line = next(line for line in message.splitlines() if str(a_dir) in line)
    assert f"this is a's {NAME}, not b's: sha256 {a_gz} (decompressed {a_idx})" in line
    assert f"expected sha256 {b_gz} (decompressed {b_idx})" in line
    assert list(fetch.dest.parent.iterdir()) == []
    # a file no known set holds is a plain checksum mismatch
    idx_writer(a_dir / NAME, images // 2)
    with pytest.raises(DownloadError, match="checksum mismatch: got sha256"):
        fetch([str(a_dir)], file=IDXFile(NAME, b_gz, b_idx), dataset="b", identify=identify)


def test_a_killed_downloads_temporary_file_is_removed(fetch, synthetic_mnist):
    fetch.dest.parent.mkdir()
    stale = fetch.dest.parent / f".{NAME}{download_module.TMP_INFIX}99999"
    stale.write_bytes(b"half a file")
    fetch([str(synthetic_mnist.dir)])
    assert sorted(p.name for p in fetch.dest.parent.iterdir()) == [NAME]


# --------------------------------------------------------------------------- real data


@pytest.mark.mnist
def test_real_mnist_over_http(real_mnist_dir, http_mirror, tmp_path):
    url = http_mirror(real_mnist_dir)
    for file in datasets.MNIST.files.values():  # each served by this mirror, in one request
        assert download(file, tmp_path / file.name, [url], backoff=0, log=lambda _: None) == url
        assert checksums(tmp_path / file.name) == (file.gz_sha256, file.idx_sha256)
    assert url.requests == [f"/{f.name}" for f in datasets.MNIST.files.values()]


@pytest.mark.mnist
def test_mnist_offered_as_fashion_mnist_is_refused_naming_mnist(real_mnist_dir, tmp_path):
    file = datasets.FASHION_MNIST.files["train_images"]
    mnist = datasets.MNIST.files["train_images"]
    with pytest.raises(DownloadError) as info:
        download(
            file,
            tmp_path / file.name,
            [real_mnist_dir],
            dataset="fashion-mnist",
            identify=lambda gz, idx: datasets.identify(gz, idx, datasets.REGISTRY.values()),
            log=lambda _: None,
        )
    message = str(info.value)
    assert f"this is mnist's {file.name}, not fashion-mnist's: {mnist.describe()}" in message
    assert f"expected {file.describe()}" in message
    assert not (tmp_path / file.name).exists()


@pytest.mark.fashion_mnist
def test_debians_fashion_mnist_is_accepted_by_its_decompressed_checksums(
    real_fashion_mnist_dir, tmp_path
):
    for file in datasets.FASHION_MNIST.files.values():
        download(file, tmp_path / file.name, [real_fashion_mnist_dir], log=lambda _: None)
        _, idx = checksums(tmp_path / file.name)
        assert idx == file.idx_sha256  # the published IDX bytes, whichever .gz holds them
