"""The data sets the pipeline knows by name, and the sets a config describes itself.

A data set in MNIST's layout is four gzipped IDX files (:mod:`bmm.idx`): training images and
labels, test images and labels. :data:`REGISTRY` holds the ones known by name, each with its
files, label names, image shape, public mirrors and two SHA-256s per file: that of the
``.gz`` as published, and that of the IDX bytes inside it. A file is accepted when either
matches (:meth:`IDXFile.accepts`): a repackager that recompresses the archives (Debian's
``dataset-fashion-mnist`` does) changes the first and keeps the second.

Adding a data set to the pipeline means adding an :class:`IDXSet` to :data:`REGISTRY`, and
nothing else. A config can also describe a set the registry does not hold
(:func:`from_config`): another IDX set (``datasets.<name>.files``, with mirrors and
checksums), or the user's own binary data (``datasets.<name>.path``, see :mod:`bmm.own_data`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

#: The four files of a set in MNIST's layout, in the order they are listed and read.
ROLES = ("train_images", "train_labels", "test_images", "test_labels")


class DataSetError(ValueError):
    """A data set named in the config is unknown or described wrongly; the message says
    which set, what is wrong and how to fix it, in one line."""


@dataclass(frozen=True)
class IDXFile:
    """One file of an IDX set: its name and the SHA-256s it may have (None: not known)."""

    name: str
    gz_sha256: str | None  # of the .gz file as published
    idx_sha256: str | None  # of the IDX bytes inside it (after gunzip)

    def accepts(self, gz_sha256: str | None, idx_sha256: str | None) -> bool:
        """Whether a file with these SHA-256s (of its bytes, of its IDX content) is this one."""
        return (self.gz_sha256 is not None and gz_sha256 == self.gz_sha256) or (
            self.idx_sha256 is not None and idx_sha256 == self.idx_sha256
        )

    def describe(self) -> str:
        """``sha256 <gz> (decompressed <idx>)``, for messages."""
        return f"sha256 {self.gz_sha256 or 'unknown'} (decompressed {self.idx_sha256 or 'unknown'})"


@dataclass(frozen=True)
class IDXSet:
    """A data set in MNIST's layout: four gzipped IDX files fetched from mirrors."""

    name: str
    title: str  # how the report names it
    files: Mapping[str, IDXFile]  # by role (ROLES)
    mirrors: tuple[str, ...]
    label_names: tuple[str, ...] | None = None
    image_shape: tuple[int, ...] | None = None  # None: whatever the files hold
    about: str = ""  # one line: what it is, where it comes from

    def __post_init__(self):
        if tuple(self.files) != ROLES:
            raise ValueError(f"{self.name}: files must be given for {ROLES}, in that order")

    @property
    def file_names(self) -> list[str]:
        return [f.name for f in self.files.values()]

    def file(self, name: str) -> IDXFile:
        """The file called ``name`` (a KeyError otherwise)."""
        return next(f for f in self.files.values() if f.name == name)


@dataclass(frozen=True)
class OwnSet:
    """The user's own binary data: one N×D file of 0/1 values (``.npy`` or Parquet), optional
    labels, an optional image shape; split into training and test images by the pipeline."""

    name: str
    path: str
    labels: str | None = None
    image_shape: tuple[int, ...] | None = None
    test_fraction: float = 0.2

    @property
    def title(self) -> str:
        return self.name


def _files(*files: tuple[str, str, str]) -> dict[str, IDXFile]:
    """IDXFiles by role from (file name, .gz SHA-256, decompressed SHA-256), in ROLES' order."""
    return {role: IDXFile(*f) for role, f in zip(ROLES, files, strict=True)}


MNIST = IDXSet(
    name="mnist",
    title="MNIST",
    about="Handwritten digits, by Yann LeCun, Corinna Cortes and Christopher J. C. Burges",
    # (file, SHA-256 of the .gz as published, SHA-256 of the IDX bytes inside it)
    files=_files(
        (
            "train-images-idx3-ubyte.gz",
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        ),
        (
            "train-labels-idx1-ubyte.gz",
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        ),
        (
            "t10k-images-idx3-ubyte.gz",
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        ),
        (
            "t10k-labels-idx1-ubyte.gz",
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        ),
    ),
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist",  # torchvision's
        "https://storage.googleapis.com/cvdf-datasets/mnist",  # TensorFlow's
        "http://yann.lecun.com/exdb/mnist",  # the original address
    ),
    label_names=tuple("0123456789"),
    image_shape=(28, 28),
)

FASHION_MNIST = IDXSet(
    name="fashion-mnist",
    title="Fashion-MNIST",
    about="Zalando's article images (Xiao, Rasul and Vollgraf, 2017), in MNIST's layout",
    # .gz SHA-256s: the published ones (two independent lists agree); decompressed: of the
    # upstream IDX bytes (Debian's dataset-fashion-mnist recompresses the .gz files, so only
    # these match its copy; their MD5s are torchvision's raw MD5s)
    files=_files(
        (
            "train-images-idx3-ubyte.gz",
            "08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc",
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        ),
        (
            "train-labels-idx1-ubyte.gz",
            "b0197879cbda89f3dc7b894f9fd52b858e68ea4182b6947c9d8c2b67e5f18dcc",
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        ),
        (
            "t10k-images-idx3-ubyte.gz",
            "78dcbbfb5a27efaf1b6c1d616caca68560be8766c5bffcb2791df9273a534229",
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        ),
        (
            "t10k-labels-idx1-ubyte.gz",
            "42bd18137a62d5998cdeae52bf3a0676ac6b706f5cf8439b47bb5b151ae3dccf",
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        ),
    ),
    mirrors=(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com",  # the authors', torchvision's
        "https://storage.googleapis.com/tensorflow/tf-keras-datasets",  # Keras'
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion",
    ),
    label_names=(
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
    image_shape=(28, 28),
)

#: The data sets known by name.
REGISTRY: dict[str, IDXSet] = {s.name: s for s in (MNIST, FASHION_MNIST)}

DataSet = IDXSet | OwnSet

#: Keys of ``datasets.<name>`` by the kind of set they describe (the schema checks types).
_REGISTRY_KEYS = {"mirrors", "threshold"}
_IDX_KEYS = {"mirrors", "files", "label_names", "threshold"}
_OWN_KEYS = {"path", "labels", "image_shape", "test_fraction"}


def from_config(name: str, config: Mapping[str, Any]) -> DataSet:
    """The data set ``name`` as the config describes it: the registry's (with
    ``datasets.<name>.mirrors`` in place of its own, if given), an IDX set with ``files``, or
    the user's own data with ``path``. Raises :class:`DataSetError` (one line: the set, the
    problem, the fix) when the config names a set it does not describe, or describes it with
    keys of the wrong kind."""
    entry = dict((config.get("datasets") or {}).get(name) or {})
    where = f"datasets.{name}"
    if name in REGISTRY:
        extra = sorted(set(entry) - _REGISTRY_KEYS)
        if extra:
            raise DataSetError(
                f"{where}: {name!r} is in the registry (bmm/datasets.py), which pins its files; "
                f"{', '.join(extra)} cannot be set for it (only mirrors and threshold): to use "
                "other files, describe them under another name"
            )
        known = REGISTRY[name]
        if entry.get("mirrors"):
            return replace(known, mirrors=tuple(entry["mirrors"]))
        return known
    if "path" in entry:
        extra = sorted(set(entry) - _OWN_KEYS)
        if extra:
            raise DataSetError(
                f"{where}: {', '.join(extra)} cannot be set for the user's own data (path: "
                f"{entry['path']}); own data are already 0/1: remove {', '.join(extra)}"
            )
        shape = entry.get("image_shape")
        return OwnSet(
            name,
            os.fspath(entry["path"]),
            entry.get("labels"),
            tuple(shape) if shape else None,
            entry.get("test_fraction", 0.2),
        )
    if "files" in entry:
        extra = sorted(set(entry) - _IDX_KEYS)
        if extra:
            raise DataSetError(
                f"{where}: {', '.join(extra)} cannot be set for an IDX set (files); remove "
                f"{', '.join(extra)}, or give path instead of files for your own data"
            )
        if not entry.get("mirrors"):
            raise DataSetError(
                f"{where}: an IDX set needs mirrors: add mirrors: [<URL or directory>] there"
            )
        files = {}
        for role in ROLES:
            spec = entry["files"][role]
            files[role] = IDXFile(spec["name"], spec.get("gz_sha256"), spec.get("idx_sha256"))
        labels = entry.get("label_names")
        return IDXSet(
            name,
            name,
            files,
            tuple(entry["mirrors"]),
            tuple(map(str, labels)) if labels else None,
        )
    known = ", ".join(sorted(REGISTRY))
    raise DataSetError(
        f"data.sets: {name!r} is neither in the registry ({known}) nor described under "
        f"datasets.{name}; fix the name, or add datasets.{name} with files and mirrors (an "
        "IDX set) or path (your own 0/1 data), see config/README.md"
    )


def configured(config: Mapping[str, Any]) -> dict[str, DataSet]:
    """Every set the run uses (``data.sets``), by name, in the config's order."""
    return {name: from_config(name, config) for name in config["data"]["sets"]}


def known_sets(config: Mapping[str, Any]) -> list[IDXSet]:
    """Every IDX set the registry or the config describes: those a file may turn out to be."""
    out = dict(REGISTRY)
    for name in config.get("datasets") or {}:
        try:
            found = from_config(name, config)
        except DataSetError:
            continue
        if isinstance(found, IDXSet):
            out[name] = found
    return list(out.values())


def identify(gz_sha256: str | None, idx_sha256: str | None, sets: Iterable[IDXSet]) -> str | None:
    """``"mnist's train-images-idx3-ubyte.gz"`` for the file with these SHA-256s, if one of
    ``sets`` holds it; None otherwise."""
    for s in sets:
        for f in s.files.values():
            if f.accepts(gz_sha256, idx_sha256):
                return f"{s.name}'s {f.name}"
    return None


def threshold(config: Mapping[str, Any], name: str) -> float | str:
    """The binarisation threshold of set ``name``: its own (``datasets.<name>.threshold``),
    else ``data.threshold``."""
    entry = (config.get("datasets") or {}).get(name) or {}
    return entry.get("threshold", config["data"]["threshold"])
