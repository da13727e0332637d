"""bmm.datasets: the registry of data sets known by name, and the sets a config describes."""

from __future__ import annotations

import re

import pytest

from bmm import datasets
from bmm.datasets import FASHION_MNIST, MNIST, REGISTRY, DataSetError, IDXSet, OwnSet
from bmm.download import checksums

HEX64 = re.compile(r"^[0-9a-f]{64}$")


def config(sets, **entries):
    return {"data": {"sets": sets, "threshold": 0.5}, "datasets": entries}


def test_the_registry_holds_mnist_and_fashion_mnist_with_two_checksums_a_file():
    assert list(REGISTRY) == ["mnist", "fashion-mnist"]
    for s in REGISTRY.values():
        assert list(s.files) == list(datasets.ROLES)
        assert s.mirrors and all(m.startswith(("http://", "https://")) for m in s.mirrors)
        assert len(s.label_names) == 10 and s.image_shape == (28, 28)
        for f in s.files.values():
            assert HEX64.match(f.gz_sha256) and HEX64.match(f.idx_sha256), (s.name, f)
    every = [
        h for s in REGISTRY.values() for f in s.files.values() for h in (f.gz_sha256, f.idx_sha256)
    ]
    assert len(set(every)) == len(every)  # no file of one set could pass for another's
    assert FASHION_MNIST.label_names[9] == "Ankle boot"


@pytest.mark.mnist
def test_the_registry_checksums_are_those_of_the_real_mnist(real_mnist_dir):
    for f in MNIST.files.values():
        assert checksums(real_mnist_dir / f.name) == (f.gz_sha256, f.idx_sha256)
    sums = real_mnist_dir / "SHA256SUMS"
    if sums.is_file():  # the copy's own list of the published .gz checksums agrees
        words = sums.read_text().split()
        assert dict(zip(words[1::2], words[::2], strict=True)) == {
            f.name: f.gz_sha256 for f in MNIST.files.values()
        }


@pytest.mark.fashion_mnist
def test_the_registry_checksums_are_those_of_the_real_fashion_mnist(real_fashion_mnist_dir):
    """Debian's copy: recompressed .gz files (other SHA-256s), the published IDX bytes."""
    for f in FASHION_MNIST.files.values():
        gz, idx = checksums(real_fashion_mnist_dir / f.name)
        assert idx == f.idx_sha256 and f.accepts(gz, idx)


def test_a_registry_set_takes_its_mirrors_from_the_config_and_nothing_else():
    assert datasets.from_config("mnist", config(["mnist"])) is MNIST
    local = datasets.from_config("mnist", config(["mnist"], mnist={"mirrors": ["/data/mnist"]}))
    assert local.mirrors == ("/data/mnist",) and local.files == MNIST.files
    with pytest.raises(DataSetError) as info:
        datasets.from_config("mnist", config(["mnist"], mnist={"files": {}, "path": "x.npy"}))
    assert str(info.value).startswith("datasets.mnist: 'mnist' is in the registry")
    assert "files, path cannot be set" in str(info.value)


def test_an_idx_set_is_described_by_its_files_checksums_and_mirrors():
    files = {role: {"name": f"{role}.gz", "idx_sha256": "a" * 64} for role in datasets.ROLES}
    files["train_images"] = {"name": "x.gz", "gz_sha256": "b" * 64}
    kmnist = datasets.from_config(
        "kmnist", config(["kmnist"], kmnist={"mirrors": ["http://h/k"], "files": files})
    )
    assert isinstance(kmnist, IDXSet) and kmnist.mirrors == ("http://h/k",)
    assert kmnist.files["train_images"] == datasets.IDXFile("x.gz", "b" * 64, None)
    assert kmnist.file("test_labels.gz").idx_sha256 == "a" * 64
    assert kmnist.label_names is None and kmnist.image_shape is None
    with pytest.raises(DataSetError, match=r"datasets.kmnist: an IDX set needs mirrors"):
        datasets.from_config("kmnist", config(["kmnist"], kmnist={"files": files}))
    with pytest.raises(DataSetError, match=r"image_shape cannot be set for an IDX set"):
        datasets.from_config(
            "kmnist",
            config(["kmnist"], kmnist={"mirrors": ["m"], "files": files, "image_shape": [2]}),
        )


def test_own_data_are_described_by_a_path():
    own = datasets.from_config(
        "mine", config(["mine"], mine={"path": "x.npy", "labels": "y.npy", "image_shape": [4, 5]})
    )
    assert own == OwnSet("mine", "x.npy", "y.npy", (4, 5), 0.2)
    with pytest.raises(DataSetError) as info:
        datasets.from_config("mine", config(["mine"], mine={"path": "x.npy", "threshold": 0.3}))
    assert str(info.value).startswith("datasets.mine: threshold cannot be set for the user's own")


def test_an_unknown_name_is_refused_with_the_known_ones_and_the_fix():
    with pytest.raises(DataSetError) as info:
        datasets.configured(config(["mnist", "fashion_mnist"]))
    message = str(info.value)
    assert message.startswith("data.sets: 'fashion_mnist' is neither in the registry")
    assert "(fashion-mnist, mnist)" in message and "datasets.fashion_mnist" in message
    assert "\n" not in message


def test_identify_names_the_set_a_file_belongs_to():
    f = FASHION_MNIST.files["test_labels"]
    assert datasets.identify(f.gz_sha256, None, REGISTRY.values()) == (
        "fashion-mnist's t10k-labels-idx1-ubyte.gz"
    )
    m = MNIST.files["train_images"]
    assert datasets.identify("0" * 64, m.idx_sha256, REGISTRY.values()) == (
        "mnist's train-images-idx3-ubyte.gz"
    )
    assert datasets.identify("0" * 64, None, REGISTRY.values()) is None


def test_a_sets_own_threshold_overrides_the_shared_one():
    c = config(["mnist", "fashion-mnist"], **{"fashion-mnist": {"threshold": 0.25}})
    assert datasets.threshold(c, "fashion-mnist") == 0.25
    assert datasets.threshold(c, "mnist") == 0.5


@pytest.mark.parametrize("required", ["1", None])
def test_a_missing_real_data_set_skips_the_tests_or_fails_them_under_ci(
    tmp_path, monkeypatch, required
):
    """conftest's one helper for real data: skip, saying where it looked, or fail when
    BMM_REQUIRE_DATA=1 (as .ci/run sets it), so CI cannot pass without its real data."""
    from conftest import real_dir

    monkeypatch.setenv("BMM_FASHION_MNIST_DIR", str(tmp_path))
    monkeypatch.delenv("BMM_REQUIRE_ALL", raising=False)  # as .ci/run sets it
    if required:
        monkeypatch.setenv("BMM_REQUIRE_DATA", required)
    else:
        monkeypatch.delenv("BMM_REQUIRE_DATA", raising=False)
    outcome = pytest.fail.Exception if required else pytest.skip.Exception
    with pytest.raises((pytest.fail.Exception, pytest.skip.Exception)) as info:
        real_dir("fashion-mnist")
    assert info.type is outcome  # a skip where a failure is due is not let through
    message = str(info.value)
    assert f"real fashion-mnist not found: {tmp_path} lacks train-images-idx3-ubyte.gz" in message
    assert ("BMM_REQUIRE_DATA=1 or BMM_REQUIRE_ALL=1 forbids skipping" in message) == bool(required)
    for f in FASHION_MNIST.file_names:  # with the files there, it is found
        (tmp_path / f).write_bytes(b"")
    assert real_dir("fashion-mnist") == tmp_path
