"""MNIST: download with checksums, strict IDX parsing, binarisation, compact storage.

IDX format
----------
Each of the four MNIST files is a gzipped IDX file: a 4-byte magic number, then one
big-endian uint32 per dimension, then the data in C order. The magic number's first two
bytes are zero, the third is the element type (0x08 = unsigned byte, the only one MNIST
uses) and the fourth is the number of dimensions; hence 2051 (0x00000803) for images
(N x 28 x 28) and 2049 (0x00000801) for labels (N). :func:`read_idx` checks all of this and
that the data length is exactly the product of the dimensions.

Threshold semantics
-------------------
A pixel is "on" when ``pixel / 255 > threshold`` (strict), for a threshold in [0, 1).
``"article"`` means 0.0: the article's notebook thresholded the raw 0-255 values, so in
effect every non-zero pixel is on. 0.5 makes pixels 128..255 on and 0..127 off.

Binarised images are stored packed, 784 bits in 98 bytes per image (:func:`pack`), in a
Parquet table with columns ``label`` (uint8) and ``pixels`` (fixed_size_binary(98)).
"""

from __future__ import annotations

import contextlib
import gzip
import http.client
import logging
import numbers
import os
import re
import shutil
import struct
import time
import urllib.request
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt
import pooch
import pyarrow as pa
from tqdm import tqdm

from bmm.bits import BitMatrix
from bmm.io import read_metadata, read_table, write_parquet
from bmm.rows import BLOCK_ROWS

FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
# the SHA-256 of the original .gz files, as `sha256sum` prints them
_SHA256SUMS = """\
440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609  train-images-idx3-ubyte.gz
3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c  train-labels-idx1-ubyte.gz
8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6  t10k-images-idx3-ubyte.gz
f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6  t10k-labels-idx1-ubyte.gz
"""
SHA256: dict[str, str] = {name: sha for sha, name in map(str.split, _SHA256SUMS.splitlines())}
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049
SIDE = 28
N_PIXELS = SIDE * SIDE
N_BYTES = N_PIXELS // 8
THRESHOLD_ARTICLE = "article"
PACKING = "numpy.packbits, big bit order, 784 pixels -> 98 bytes"

_CHUNK = 1 << 16  # bytes per read of a download
_PROGRESS_LINES = 10  # progress lines logged per download of known size
_LOG_EVERY = 1 << 20  # bytes between progress lines when the size is unknown
_FIX_HINT = (
    "To use a local copy instead, point the config key `mnist.mirrors` at the directory "
    "holding the four .gz files: write a YAML file containing\n"
    '    mnist: {mirrors: ["/path/to/mnist"]}\n'
    "and run `snakemake --cores 4 --configfile that.yaml`."
)


def download_settings(config: dict[str, Any]) -> dict[str, Any]:
    """Where the pipeline's download_mnist job fetches from: the config's mnist.mirrors,
    timeout_s and retries, as :func:`download`'s arguments. The job reads them from the
    config, not from params, so that changing them reruns nothing: the bytes are pinned by
    the checksum, and where they come from changes nothing downstream."""
    m = config["mnist"]
    return {"mirrors": m["mirrors"], "timeout": m["timeout_s"], "retries": m["retries"]}


class DownloadError(RuntimeError):
    """No mirror served the file with the expected SHA-256."""


class IDXError(ValueError):
    """A file is not a valid IDX file of unsigned bytes (or not the one expected)."""


# --------------------------------------------------------------------------- download
#
# pooch does the transfer: its HTTPDownloader (requests, with the timeout), a temporary file
# beside ``dest``, the SHA-256 check and the rename into place, deleting the temporary file
# whatever happens. Ours is what pooch does differently or not at all: the mirror list, the
# retry policy (pooch retries 4xx answers and checksum mismatches too, with a fixed linear
# wait), file:// and directory mirrors, the progress in the job's log, and one error naming
# every mirror's failure.


def download(
    filename: str,
    dest: str | os.PathLike,
    mirrors: Sequence[str | os.PathLike],
    sha256: str,
    *,
    timeout: float = 30,
    retries: int = 3,
    backoff: float = 1.0,
    log: Callable[[str], Any] = print,
) -> str:
    """Fetch ``filename`` from the first mirror that serves it with SHA-256 ``sha256``.

    A mirror is an http(s):// URL, a file:// URL or a local directory. URL mirrors get up
    to ``retries`` attempts, ``backoff * 2**i`` seconds apart, on network errors and HTTP
    5xx; an HTTP 4xx or a checksum mismatch moves on to the next mirror at once. Each
    attempt is a :func:`pooch.retrieve`: the bytes land in a temporary file next to
    ``dest``, renamed to ``dest`` only once the checksum matches. Progress, and what pooch
    reports, go to ``log``. Returns the mirror that served the file; raises
    :class:`DownloadError`, with every mirror's failure and how to fix it, when none did
    (``dest`` then does not exist).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Always fetched afresh (pooch would keep a file already there whose hash matches, and
    # none would have "served" it); a stale one must not survive a failure either.
    dest.unlink(missing_ok=True)
    failures: list[str] = []
    with _pooch_logs_to(log):
        for mirror in map(os.fspath, mirrors):
            failure = _try_mirror(
                mirror, filename, dest, sha256.lower(), timeout, retries, backoff, log
            )
            if failure is None:
                return mirror
            failures.append(failure)
    tried = "\n".join(f"  - {f}" for f in failures) or "  (no mirrors were given)"
    raise DownloadError(
        f"could not download {filename} (sha256 {sha256}) from any mirror:\n{tried}\n{_FIX_HINT}"
    )


def _try_mirror(
    mirror: str,
    filename: str,
    dest: Path,
    sha256: str,
    timeout: float,
    retries: int,
    backoff: float,
    log: Callable[[str], Any],
) -> str | None:
    """Fetch ``filename`` from ``mirror`` into ``dest``: None when it checks out, else why not."""
    source, remote = _locate(mirror, filename)
    if source is None:
        return f"{mirror}: unsupported mirror (neither http(s)://, file:// nor a directory)"
    attempts = max(1, retries) if remote else 1
    for attempt in range(attempts):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        log(f"{filename}: trying {source} (attempt {attempt + 1}/{attempts})")
        if remote:
            downloader = pooch.HTTPDownloader(
                progressbar=_LogProgress(filename, log),
                chunk_size=_CHUNK,
                timeout=timeout,
                headers={"User-Agent": "bmm-mnist"},
            )
        else:
            downloader = _copy_local
        try:
            pooch.retrieve(
                source,
                known_hash=f"sha256:{sha256}",
                fname=dest.name,
                path=dest.parent,
                downloader=downloader,
            )
        except OSError as e:  # requests' errors are OSErrors too
            failure = f"{source}: {_why(e, timeout)}"
            log(f"{filename}: {failure}")
            if _is_client_error(e):
                return failure
            continue
        except ValueError as e:  # pooch: the hash does not match (the bytes are deleted)
            got = re.search(r"but got ([0-9a-f]+)", str(e))
            if got is None:
                raise
            log(f"{filename}: checksum mismatch from {source}: got {got[1]}, expected {sha256}")
            return f"{source}: checksum mismatch (got {got[1]}, expected {sha256})"
        # pooch's temporary file is created 0600; give the file the mode open() would have
        dest.chmod(0o666 & ~_umask())
        log(f"{filename}: served by {mirror}: {dest.stat().st_size} bytes, sha256 ok")
        return None
    return failure + (f" (after {attempts} attempts)" if attempts > 1 else "")


def _locate(mirror: str, filename: str) -> tuple[str | None, bool]:
    """(URL or path of ``filename`` on ``mirror``, whether it is remote)."""
    if "://" not in mirror:
        return os.path.join(mirror, filename), False
    parts = urlsplit(mirror)
    if parts.scheme.lower() == "file":
        return os.path.join(urllib.request.url2pathname(parts.path), filename), False
    if parts.scheme.lower() in ("http", "https"):
        return mirror.rstrip("/") + "/" + filename, True
    return None, False


def _copy_local(source: str, output_file: str, _pooch: Any) -> None:
    """A pooch downloader for a file on a local (or mounted) file system."""
    shutil.copyfile(source, output_file)


class _LogProgress:
    """Download progress as a few log lines: one per tenth of the file (or per MiB when the
    server does not send its size), each drawn by tqdm's formatter with the rate and ETA.

    It is the progress-bar object :class:`pooch.HTTPDownloader` drives: pooch sets ``total``
    from Content-Length (0 if absent), calls ``update(chunk_size)`` per chunk, then
    ``reset()``, ``update(total)`` to fill a terminal bar, and ``close()``.
    """

    def __init__(self, label: str, log: Callable[[str], Any]) -> None:
        self.label, self.log = label, log
        self.total, self.n, self._shown = 0, 0, 0
        self._t0 = time.perf_counter()

    def update(self, nbytes: int) -> None:
        # pooch counts whole chunks, so the last one may overshoot the size
        self.n = min(self.n + nbytes, self.total) if self.total else self.n + nbytes
        step = self.n * _PROGRESS_LINES // self.total if self.total else self.n // _LOG_EVERY
        if step > self._shown:
            self._shown = step
            elapsed = time.perf_counter() - self._t0
            meter = tqdm.format_meter(
                self.n, self.total or None, elapsed, ascii=True, unit="B", unit_scale=True
            )
            self.log(f"{self.label}: {meter}")

    def reset(self) -> None:
        """Nothing to do: the count is complete when pooch resets to fill the bar."""

    def close(self) -> None:
        """Nothing to release."""


class _ForwardTo(logging.Handler):
    """A logging handler that hands each record's message to a ``log(message)`` function."""

    def __init__(self, log: Callable[[str], Any]) -> None:
        super().__init__()
        self.log = log

    def emit(self, record: logging.LogRecord) -> None:
        self.log(f"pooch: {record.getMessage()}")


@contextlib.contextmanager
def _pooch_logs_to(log: Callable[[str], Any]) -> Iterator[None]:
    """Send pooch's log records to ``log`` (instead of its own stderr handler) for a while."""
    logger = pooch.get_logger()
    saved = logger.handlers[:]
    logger.handlers[:] = [_ForwardTo(log)]
    try:
        yield
    finally:
        logger.handlers[:] = saved


def _is_client_error(e: BaseException) -> bool:
    """An HTTP 4xx: the mirror answered, and asking again will not change its answer."""
    import requests  # here, as pooch does: 0.1 s to import, needed only by a download

    response = getattr(e, "response", None)
    return isinstance(e, requests.HTTPError) and response is not None and response.status_code < 500


def _why(e: BaseException, timeout: float) -> str:
    """A short human reason for a failed attempt (the first cause in the chain we recognise)."""
    import requests

    if isinstance(e, requests.HTTPError) and e.response is not None:
        return f"HTTP {e.response.status_code} {e.response.reason}"
    cause: BaseException | None = e
    seen: set[int] = set()
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, TimeoutError | requests.Timeout):
            return f"timeout (no answer within {timeout} s)"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, FileNotFoundError):
            return "missing file"
        if isinstance(cause, http.client.IncompleteRead):
            got = cause.partial if isinstance(cause.partial, int) else len(cause.partial)
            more = f", {cause.expected} more expected" if cause.expected else ""
            return f"incomplete transfer: connection closed after {got} bytes{more}"
        cause = cause.__cause__ or cause.__context__
    return f"{type(e).__name__}: {e}"


def _umask() -> int:
    """The process's umask (reading it means setting it, so it is set back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# --------------------------------------------------------------------------- IDX files


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
    images_path: str | os.PathLike, labels_path: str | os.PathLike
) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) uint8 and labels (N,) uint8 of one split, checked against each other."""
    images = read_idx(images_path, expect_magic=IMAGES_MAGIC)
    labels = read_idx(labels_path, expect_magic=LABELS_MAGIC)
    problems = _split_problems(images, labels, images_path, labels_path)
    if problems:
        raise IDXError(problems[0])
    return images, labels


def load_splits(
    paths: dict[str, str | os.PathLike],
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Both splits, ``{"train": (images, labels), "test": (...)}``, from the four files
    ``paths`` names by the keys of :data:`FILES`.

    All four files are read and checked (:func:`read_idx`, then images against labels)
    before anything is returned, so a caller that writes only afterwards writes nothing
    when any of them is bad. Raises :class:`IDXError` naming every bad file, in one line.
    """
    arrays: dict[str, np.ndarray] = {}
    problems: list[str] = []
    for key in FILES:
        magic = IMAGES_MAGIC if key.endswith("_images") else LABELS_MAGIC
        try:
            arrays[key] = read_idx(paths[key], expect_magic=magic)
        except IDXError as e:
            problems.append(str(e))
    for split in ("train", "test"):
        images, labels = f"{split}_images", f"{split}_labels"
        if images in arrays and labels in arrays:
            problems += _split_problems(
                arrays[images], arrays[labels], paths[images], paths[labels]
            )
    if len(problems) == 1:
        raise IDXError(problems[0])
    if problems:
        raise IDXError(f"{len(problems)} problems in the MNIST files: " + "; ".join(problems))
    return {
        split: (arrays[f"{split}_images"], arrays[f"{split}_labels"]) for split in ("train", "test")
    }


def _split_problems(images, labels, images_path, labels_path) -> list[str]:
    """What is wrong with one split's images and labels taken together (nothing: [])."""
    problems = []
    if images.shape[1:] != (SIDE, SIDE):
        problems.append(f"{images_path}: images of {images.shape[1:]} pixels, expected 28 x 28")
    if len(images) != len(labels):
        problems.append(
            f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels"
        )
    if labels.size and labels.max() > 9:
        problems.append(f"{labels_path}: label {labels.max()} outside 0..9")
    return problems


# --------------------------------------------------------------------------- binarisation


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
    """Bool (N, 784): ``pixel / 255 > threshold`` for uint8 images (N, 28, 28) or (N, 784)."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.shape[1:] not in ((SIDE, SIDE), (N_PIXELS,)):
        raise ValueError(f"expected uint8 images of 784 pixels, got {images.dtype} {images.shape}")
    on = np.arange(256) / 255 > resolve_threshold(threshold)  # exact per-value lookup table
    return on[images.reshape(len(images), N_PIXELS)]


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


# --------------------------------------------------------------------------- storage


def pack(X_bool: np.ndarray) -> np.ndarray:
    """(N, 784) bool -> (N, 98) uint8, 8 pixels per byte, first pixel in the high bit."""
    X_bool = np.asarray(X_bool)
    if X_bool.ndim != 2 or X_bool.shape[1] != N_PIXELS:
        raise ValueError(f"expected shape (N, 784), got {X_bool.shape}")
    return np.packbits(X_bool.astype(bool, copy=False), axis=1)


def unpack(packed: np.ndarray, dtype: npt.DTypeLike = np.uint8) -> np.ndarray:
    """(N, 98) uint8 -> (N, 784) of 0/1 values in ``dtype``."""
    packed = np.asarray(packed)
    if packed.dtype != np.uint8 or packed.ndim != 2 or packed.shape[1] != N_BYTES:
        raise ValueError(f"expected uint8 of shape (N, 98), got {packed.dtype} {packed.shape}")
    return np.unpackbits(packed, axis=1, count=N_PIXELS).astype(dtype, copy=False)


def write_binarized(
    path: str | os.PathLike, X_bool: np.ndarray, labels: np.ndarray, meta: dict[str, Any]
) -> None:
    """Store binarised images packed in a Parquet table (``label``, ``pixels``) with ``meta``."""
    packed = np.ascontiguousarray(pack(X_bool))
    labels = np.asarray(labels)
    if labels.shape != (len(packed),) or np.any((labels < 0) | (labels > 9)):
        raise ValueError(f"expected {len(packed)} labels in 0..9, got {labels.shape} {labels}")
    pixels = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(N_BYTES), len(packed), [None, pa.py_buffer(packed.tobytes())]
    )
    table = pa.table({"label": pa.array(labels.astype(np.uint8)), "pixels": pixels})
    meta = {**meta, "n_images": len(packed), "shape": [SIDE, SIDE], "packing": PACKING}
    write_parquet(table, path, meta, **BITS_LAYOUT)


#: How a table of bits is written: row groups of the EM engine's blocks (read out of core, a
#: file gives the in-memory sums, and no row is read twice), and the bits neither
#: dictionary-encoded nor compressed: every row differs, they compress little, and decoding
#: them would take longer than a pass of EM over them (docs/scaling.md, with the figures).
BITS_LAYOUT = {
    "row_group_size": BLOCK_ROWS,
    "use_dictionary": ["label"],
    "compression": {"label": "snappy", "pixels": "none"},
}


def load_binarized(
    path: str | os.PathLike, dtype: npt.DTypeLike = np.float64, *, packed: bool = False
) -> tuple[np.ndarray | BitMatrix, np.ndarray]:
    """X and labels y (N,) int64 from :func:`write_binarized`.

    X is (N, 784) of 0/1 in ``dtype``, or with ``packed=True`` a :class:`bmm.bits.BitMatrix`
    over the stored bytes as they are (98 an image, nothing unpacked).
    """
    table = read_table(path)  # an unreadable file: CorruptFileError, naming it and the fix
    found = {field.name: field.type for field in table.schema}
    if found.get("label") != pa.uint8() or found.get("pixels") != pa.binary(N_BYTES):
        raise ValueError(
            f"{path}: not a binarised MNIST table (expected label: uint8, "
            f"pixels: fixed_size_binary[98]; found {', '.join(map(str, table.schema))})"
        )
    pixels = table.column("pixels").combine_chunks()
    if pixels.null_count or table.column("label").null_count:
        raise ValueError(f"{path}: null labels or pixels")
    stored = np.frombuffer(
        pixels.buffers()[1],
        dtype=np.uint8,
        count=len(pixels) * N_BYTES,
        offset=pixels.offset * N_BYTES,
    ).reshape(-1, N_BYTES)
    y = table.column("label").to_numpy().astype(np.int64)
    if packed:
        return BitMatrix(stored.copy(), N_PIXELS), y  # a copy owns its memory, not Arrow's
    return unpack(stored, dtype), y


def binarized_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The provenance document stored with a binarised table."""
    return read_metadata(path)
