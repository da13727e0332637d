"""Fetching a data set's files from mirrors, each checked against its SHA-256s.

A mirror is an http(s):// URL, a file:// URL or a local directory, tried in order. A file is
accepted when the SHA-256 of its bytes is the published ``.gz``'s, or the SHA-256 of the IDX
bytes inside it is the decompressed one's (:meth:`bmm.datasets.IDXFile.accepts`): a mirror
may recompress the archives, never change what is in them. A file that is neither, but is
another known set's file (MNIST's train images offered as Fashion-MNIST's), is refused with a
message that says which set it actually is.

pooch's HTTPDownloader does the transfer (requests, with the timeout). Ours is the rest: the
mirror list, the retry policy (network errors and HTTP 5xx are retried with exponential
backoff; a 4xx or a checksum mismatch moves on to the next mirror at once), file:// and
directory mirrors, the progress in the job's log, the temporary file beside the destination
(renamed into place only once a checksum matches, deleted whatever happens), and one error
naming every mirror's failure.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import shutil
import time
import urllib.request
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pooch
from tqdm import tqdm

from .datasets import IDXFile

_CHUNK = 1 << 16  # bytes per read of a download
_PROGRESS_LINES = 10  # progress lines logged per download of known size
_LOG_EVERY = 1 << 20  # bytes between progress lines when the size is unknown
#: Temporary files of :func:`download` are named ``.<name><TMP_INFIX><pid>``.
TMP_INFIX = ".part-"


class DownloadError(RuntimeError):
    """No mirror served the file with an expected SHA-256."""


def settings(config: Mapping[str, Any], mirrors: Sequence[str]) -> dict[str, Any]:
    """Where and how the pipeline's download job fetches: ``mirrors`` (the set's), with the
    config's download.timeout_s and download.retries, as :func:`download`'s arguments. The
    job reads them from the config, not from params, so that changing them reruns nothing:
    the bytes are pinned by the checksums, and where they come from changes nothing."""
    d = config["download"]
    return {"mirrors": list(mirrors), "timeout": d["timeout_s"], "retries": d["retries"]}


def fix_hint(dataset: str) -> str:
    """How to point a set at a local copy of its files."""
    return (
        f"To use a local copy instead, point the config key `datasets.{dataset}.mirrors` at the "
        "directory holding the four .gz files: write a YAML file containing\n"
        f'    datasets: {{{dataset}: {{mirrors: ["/path/to/{dataset}"]}}}}\n'
        "and run `snakemake --cores 4 --configfile that.yaml`."
    )


def checksums(path: str | os.PathLike) -> tuple[str, str | None]:
    """SHA-256 of a file's bytes, and of the IDX bytes inside it: gunzipped when it is gzip
    (None when that fails: a truncated or corrupt archive), else the bytes themselves."""
    raw = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            raw.update(chunk)
        f.seek(0)
        if f.read(2) != b"\x1f\x8b":
            return raw.hexdigest(), raw.hexdigest()
    inner = hashlib.sha256()
    try:
        with gzip.open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                inner.update(chunk)
    except (EOFError, OSError, zlib.error):
        return raw.hexdigest(), None
    return raw.hexdigest(), inner.hexdigest()


def download(
    file: IDXFile,
    dest: str | os.PathLike,
    mirrors: Sequence[str | os.PathLike],
    *,
    dataset: str = "the data set",
    identify: Callable[[str, str | None], str | None] | None = None,
    timeout: float = 30,
    retries: int = 3,
    backoff: float = 1.0,
    log: Callable[[str], Any] = print,
) -> str:
    """Fetch ``file`` of ``dataset`` from the first mirror that serves it with one of its
    SHA-256s (:meth:`IDXFile.accepts`).

    URL mirrors get up to ``retries`` attempts, ``backoff * 2**i`` seconds apart, on network
    errors and HTTP 5xx; an HTTP 4xx or a checksum mismatch moves on to the next mirror at
    once. The bytes land in a temporary file next to ``dest``, renamed to ``dest`` only once
    a checksum matches. ``identify(sha256, idx_sha256)`` names the known file a mismatching
    one actually is (``"mnist's train-images-idx3-ubyte.gz"``), or None. Progress goes to
    ``log``. Returns the mirror that served the file; raises :class:`DownloadError`, with
    every mirror's failure and how to fix it, when none did (``dest`` then does not exist).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Always fetched afresh; a stale file, or a killed job's temporary file, must not survive
    dest.unlink(missing_ok=True)
    for stale in dest.parent.glob(f".{dest.name}{TMP_INFIX}*"):
        stale.unlink(missing_ok=True)
    failures: list[str] = []
    for mirror in map(os.fspath, mirrors):
        failure = _try_mirror(mirror, file, dest, dataset, identify, timeout, retries, backoff, log)
        if failure is None:
            return mirror
        failures.append(failure)
    tried = "\n".join(f"  - {f}" for f in failures) or "  (no mirrors were given)"
    raise DownloadError(
        f"could not download {dataset}'s {file.name} ({file.describe()}) from any mirror:\n"
        f"{tried}\n{fix_hint(dataset)}"
    )


def _try_mirror(
    mirror: str,
    file: IDXFile,
    dest: Path,
    dataset: str,
    identify: Callable[[str, str | None], str | None] | None,
    timeout: float,
    retries: int,
    backoff: float,
    log: Callable[[str], Any],
) -> str | None:
    """Fetch ``file`` from ``mirror`` into ``dest``: None when it checks out, else why not."""
    name = file.name
    source, remote = _locate(mirror, name)
    if source is None:
        return f"{mirror}: unsupported mirror (neither http(s)://, file:// nor a directory)"
    attempts = max(1, retries) if remote else 1
    tmp = dest.with_name(f".{dest.name}{TMP_INFIX}{os.getpid()}")
    try:
        for attempt in range(attempts):
            if attempt:
                time.sleep(backoff * 2 ** (attempt - 1))
            log(f"{name}: trying {source} (attempt {attempt + 1}/{attempts})")
            try:
                if remote:
                    pooch.HTTPDownloader(
                        progressbar=_LogProgress(name, log),
                        chunk_size=_CHUNK,
                        timeout=timeout,
                        headers={"User-Agent": "bmm-datasets"},
                    )(source, str(tmp), None)
                else:
                    shutil.copyfile(source, tmp)
            except OSError as e:  # requests' errors are OSErrors too
                failure = f"{source}: {_why(e, timeout)}"
                log(f"{name}: {failure}")
                if _is_client_error(e):
                    return failure
                continue
            got, got_idx = checksums(tmp)
            if not file.accepts(got, got_idx):
                failure = _mismatch(source, file, dataset, got, got_idx, identify)
                log(f"{name}: {failure}")
                return failure
            os.replace(tmp, dest)
            log(f"{name}: served by {mirror}: {dest.stat().st_size} bytes, sha256 ok")
            return None
        return failure + (f" (after {attempts} attempts)" if attempts > 1 else "")
    finally:
        tmp.unlink(missing_ok=True)


def _mismatch(source, file: IDXFile, dataset, got, got_idx, identify) -> str:
    """Why a served file is refused: its checksums against the expected ones, and which known
    file it is, when it is one."""
    found = f"sha256 {got} (decompressed {got_idx or 'not a readable gzip file'})"
    actually = identify(got, got_idx) if identify else None
    if actually:
        return f"{source}: this is {actually}, not {dataset}'s: {found}; expected {file.describe()}"
    return f"{source}: checksum mismatch: got {found}, expected {file.describe()}"


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
