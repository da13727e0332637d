"""Shared fixtures: IDX writer, a tiny synthetic MNIST, local HTTP mirrors, the real MNIST.

Use them by name in any test under tests/:

- ``idx_writer(path, array, magic=None, gz=True) -> Path`` writes an IDX file.
- ``synthetic_mnist`` (session): ``.dir`` holds the four files named as in
  ``bmm.datasets.MNIST``; ``.sha256`` maps file name -> SHA-256; ``.train`` / ``.test`` are
  the (images, labels) arrays in them.
- ``http_mirror(directory, mode="ok") -> url`` serves ``directory`` over HTTP on
  127.0.0.1; the returned URL (a ``str``) also has ``.requests``, the paths requested.
- ``closed_port_url``: an http:// URL where nothing listens (a mirror that is down).
- ``real_mnist_dir``: the real MNIST files (BMM_MNIST_DIR or ../shared/data/mnist), or skip
  (``require("data", ...)``: a failure under BMM_REQUIRE_DATA=1 or BMM_REQUIRE_ALL=1).
- ``require(what, reason)``: skip a test that needs what this machine lacks, or fail it where
  ``BMM_REQUIRE_<WHAT>=1`` or ``BMM_REQUIRE_ALL=1`` (CI) says it must not be missing.
- ``synthetic_run`` / ``real_run`` (session): the whole pipeline, run once on the small test
  config with the synthetic MNIST, or on slices of the real MNIST and Fashion-MNIST, served by
  local mirrors (``Run``); the second skips when a real set is absent (fails under CI).
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import numpy as np
import pytest
from hypothesis import Phase, settings

from bmm.datasets import MNIST

REPO = Path(__file__).resolve().parents[1]
#: MNIST's four file names by role (from the registry).
FILES = {role: f.name for role, f in MNIST.files.items()}

# estep="auto" keeps its timed choices in a cache (bmm.auto); the tests, and the pipeline runs
# they start, keep theirs apart from the user's.
if "BMM_CACHE_DIR" not in os.environ:
    import tempfile

    os.environ["BMM_CACHE_DIR"] = tempfile.mkdtemp(prefix="bmm-test-cache-")

# Property tests draw the same examples on every run (derandomize: the seed comes from the
# test's name), so a failure in CI reproduces anywhere; `HYPOTHESIS_PROFILE=explore` draws new
# ones each run and prints the seed and a reproduction blob of any failure.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", print_blob=True)
# Mutation testing (.ci/mutation.py) needs only to know that a test fails: no shrinking.
settings.register_profile(
    "mutation",
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
MIRROR_MODES = ("ok", "404", "500", "corrupt", "truncate", "hang", "nolength")


# ---------------------------------------------------------------------------------------
# Tests that need something a machine may lack: skipped here, failed in CI

#: What a test may need and lack, as require()'s first argument; BMM_REQUIRE_<WHAT>=1 (say
#: BMM_REQUIRE_SLURM=1), or BMM_REQUIRE_ALL=1 for all of them (.ci/run sets it), turns the
#: skip into a failure: where the README promises it, a missing piece must not pass quietly.
REQUIREMENTS = {
    "data": "the real data sets (../shared/data/mnist or $BMM_MNIST_DIR)",
    "slurm": "a Slurm cluster and the executor plugin (.ci/slurm-up.sh starts one)",
    "browser": "Chromium and chromedriver (Debian: chromium chromium-driver)",
    "setpriv": "as root, setpriv able to drop CAP_DAC_OVERRIDE (read-only files)",
    "numba": "numba, for the compiled and bit-packed variants (the numba extra)",
    "cores": "two CPU cores (one thread against two)",
    "dask": "dask and distributed, for fits on a dask cluster (the dask extra)",
}


def required(what: str) -> bool:
    """Whether a missing ``what`` fails the test instead of skipping it."""
    if what not in REQUIREMENTS:
        raise ValueError(f"unknown requirement {what!r}; one of {', '.join(REQUIREMENTS)}")
    flags = (f"BMM_REQUIRE_{what.upper()}", "BMM_REQUIRE_ALL")
    return any(os.environ.get(flag) == "1" for flag in flags)


def require(what: str, reason: str) -> NoReturn:
    """Skip the test because ``what`` is missing (``reason`` says how), or fail it when
    :func:`required` says a missing ``what`` is an error here."""
    if required(what):
        flag = f"BMM_REQUIRE_{what.upper()}"
        pytest.fail(f"{reason}; {flag}=1 or BMM_REQUIRE_ALL=1 forbids skipping", pytrace=False)
    pytest.skip(reason)


def sample_bmm(rng: np.random.Generator, N: int, pi, mu) -> tuple[np.ndarray, np.ndarray]:
    """N binary images (bool) from the mixture (π, μ), and the component of each."""
    z = rng.choice(len(pi), size=N, p=pi)
    return rng.random((N, mu.shape[1])) < mu[z], z


def make_idx(path: Path, array: np.ndarray, magic: int | None = None, gz: bool = True) -> Path:
    """Write ``array`` (uint8) as an IDX file; ``magic`` overrides the computed magic number."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    magic = 0x0800 + array.ndim if magic is None else magic
    data = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    data += array.tobytes()
    path = Path(path)
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    return path


@pytest.fixture
def idx_writer() -> Callable[..., Path]:
    return make_idx


@dataclass(frozen=True)
class SyntheticMNIST:
    dir: Path
    sha256: dict[str, str]
    train: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]


def synthetic_digits(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` noisy 28x28 images, 10 balanced classes, each class its own stroke pattern."""
    yy, xx = np.mgrid[:28, :28]
    prototypes = []
    for c in range(10):  # a bar whose angle and offset depend on the class, plus a blob
        angle = np.pi * c / 10
        dist = np.abs((xx - 13.5) * np.sin(angle) - (yy - 13.5) * np.cos(angle) - (c % 3 - 1) * 5)
        blob = (xx - 6 - 1.6 * c) ** 2 + (yy - 20 + c % 4 * 4) ** 2 < 12
        prototypes.append((dist < 2.2) | blob)
    labels = rng.permutation(np.arange(n) % 10).astype(np.uint8)
    on = np.array(prototypes)[labels]
    on ^= rng.random(on.shape) < 0.04  # flip 4% of the pixels
    # mostly saturated strokes with some grey edge pixels (1..254), as in MNIST
    ink = np.where(rng.random(on.shape) < 0.7, 255, rng.integers(1, 255, on.shape))
    return np.where(on, ink, 0).astype(np.uint8), labels


@pytest.fixture(scope="session")
def synthetic_mnist(tmp_path_factory: pytest.TempPathFactory) -> SyntheticMNIST:
    directory = tmp_path_factory.mktemp("synthetic_mnist")
    rng = np.random.default_rng(20240601)
    train, test = synthetic_digits(300, rng), synthetic_digits(100, rng)
    for split, (images, labels) in (("train", train), ("test", test)):
        make_idx(directory / FILES[f"{split}_images"], images)
        make_idx(directory / FILES[f"{split}_labels"], labels)
    sha256 = {
        name: hashlib.sha256((directory / name).read_bytes()).hexdigest() for name in FILES.values()
    }
    return SyntheticMNIST(directory, sha256, train, test)


class ServedMirror(str):
    """The base URL of a test mirror; ``.requests`` lists the paths it was asked for."""

    requests: list[str]


def _handler(directory: Path, mode: str, requests: list[str], stop: threading.Event) -> type:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            if mode == "hang":
                stop.wait(30)
                return
            if mode in ("404", "500"):
                self.send_error(int(mode))
                return
            file = directory / self.path.lstrip("/")
            if not file.is_file():
                self.send_error(404)
                return
            data = file.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            if mode != "nolength":  # without it, closing the connection ends the body
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if mode == "corrupt":
                data = bytes(b ^ 0xFF for b in data[:64]) + data[64:]
            elif mode == "truncate":
                data = data[: len(data) // 2]
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


class MirrorServer:
    """Serve ``directory`` over HTTP on 127.0.0.1 in a background thread until closed."""

    def __init__(self, directory: str | os.PathLike, mode: str = "ok") -> None:
        if mode not in MIRROR_MODES:
            raise ValueError(f"mode must be one of {MIRROR_MODES}, not {mode!r}")
        self._stop = threading.Event()
        requests: list[str] = []
        handler = _handler(Path(directory), mode, requests, self._stop)
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads, self._server.block_on_close = True, False
        self.url = ServedMirror(f"http://127.0.0.1:{self._server.server_port}")
        self.url.requests = requests
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> ServedMirror:
        return self.url

    def __exit__(self, *_exc: object) -> None:
        self.close()


@pytest.fixture
def http_mirror() -> Iterator[Callable[..., ServedMirror]]:
    """Factory: ``http_mirror(directory, mode="ok")`` starts a server and returns its URL.

    Modes: "ok" serves files (404 for missing ones), "404" and "500" always answer that
    status, "corrupt" serves the right length with the first 64 bytes flipped, "truncate"
    announces the full length but sends half and closes, "hang" never answers, "nolength"
    serves files without a Content-Length header (their size unknown until the end).
    """
    servers: list[MirrorServer] = []

    def start(directory: str | os.PathLike, mode: str = "ok") -> ServedMirror:
        servers.append(MirrorServer(directory, mode))
        return servers[-1].url

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def closed_port_url() -> str:
    """An http:// URL on 127.0.0.1 where nothing listens: connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


#: Where the tests look for each real data set: an environment variable naming a directory
#: of its four files, else the default (MNIST: ../shared/data/mnist next to the repository;
#: Fashion-MNIST: Debian's dataset-fashion-mnist package).
REAL_DATA = {
    "mnist": ("BMM_MNIST_DIR", REPO / ".." / "shared" / "data" / "mnist"),
    "fashion-mnist": ("BMM_FASHION_MNIST_DIR", Path("/usr/share/datasets/fashion-mnist")),
}


def find_real(name: str) -> tuple[Path, list[str]]:
    """Where the real copy of data set ``name`` should be, and which of its files it lacks."""
    from bmm.datasets import REGISTRY

    variable, default = REAL_DATA[name]
    directory = Path(os.environ.get(variable) or default).resolve()
    return directory, [f for f in REGISTRY[name].file_names if not (directory / f).is_file()]


def skip_without_data(reason: str) -> None:
    """Skip a test whose real data set is missing, saying why; under ``BMM_REQUIRE_DATA=1``
    or ``BMM_REQUIRE_ALL=1`` (set by .ci/run) fail it instead, so that CI cannot pass without
    testing on real data."""
    require("data", reason)


def real_dir(name: str) -> Path:
    """The directory of data set ``name``'s real files, or skip (fail under BMM_REQUIRE_DATA)."""
    directory, missing = find_real(name)
    if missing:
        variable = REAL_DATA[name][0]
        skip_without_data(
            f"real {name} not found: {directory} lacks {', '.join(missing)} (set {variable})"
        )
    return directory


@pytest.fixture(scope="session")
def real_mnist_dir() -> Path:
    """The real MNIST files: $BMM_MNIST_DIR, else ../shared/data/mnist next to the repo."""
    return real_dir("mnist")


@pytest.fixture(scope="session")
def real_fashion_mnist_dir() -> Path:
    """The real Fashion-MNIST files: $BMM_FASHION_MNIST_DIR, else Debian's package's."""
    return real_dir("fashion-mnist")


# ---------------------------------------------------------------------------------------
# Running the pipeline in a scratch directory

WORKFLOW_PARTS = ("Snakefile", "pyproject.toml", "workflow", "scripts", "config", "tests/config")


def copy_workflow(dest: Path) -> Path:
    """Copy the workflow (not results, not caches) into ``dest``, a fresh working directory."""
    import shutil

    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", ".snakemake")
    for part in WORKFLOW_PARTS:
        src = REPO / part
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=ignore)
        else:
            (dest / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / part)
    return dest


def write_yaml(path: Path, data: dict) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run_snakemake(workdir: Path, *args: str, timeout: float = 1500, check: bool = True):
    """``snakemake --cores 2 ARGS`` in ``workdir``; returns the CompletedProcess (text output)."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", *args]
    proc = subprocess.run(
        cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode} in {workdir}\n"
            f"--- stdout ---\n{proc.stdout[-6000:]}\n--- stderr ---\n{proc.stderr[-6000:]}"
        )
    return proc


def merged(base: dict, overlay: dict) -> dict:
    """``overlay`` layered over ``base`` as Snakemake layers config files: mappings merge key
    by key, anything else replaces."""
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            value = merged(out[key], value)
        out[key] = value
    return out


def full_config(*files: Path) -> dict:
    """The config a run with ``--configfile FILES`` sees: config/config.yaml with each file
    layered on, validated as the Snakefile does (defaults filled in, "all" spelled out)."""
    import yaml

    import bmm.config

    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    for path in files:
        config = merged(config, yaml.safe_load(Path(path).read_text()))
    schema = bmm.config.load_schema(REPO / "workflow/schemas/config.schema.yaml")
    return bmm.config.validate(config, schema)


def synthetic_set(mirror: str, sha256: dict[str, str]) -> dict:
    """The synthetic MNIST as the config describes a set the registry does not hold: its
    mirror, its four files with the SHA-256 of each .gz, its label names."""
    return {
        "mirrors": [mirror],
        "files": {role: {"name": name, "gz_sha256": sha256[name]} for role, name in FILES.items()},
        "label_names": [f"class {c}" for c in range(10)],
    }


#: The user's own data of the synthetic run: rows of 0/1 drawn from a 12-component mixture
#: (no labels, no image shape), as ``OWN_PATH`` in the run's directory (a relative path).
#: Twelve components, so that fits with K = 10 find no component of one row alone.
OWN_ROWS, OWN_FEATURES, OWN_PATH = 400, 60, "own.npy"


def write_own_data(workdir: Path) -> Path:
    """Write the synthetic run's own data set (``OWN_PATH``) into ``workdir``."""
    rng = np.random.default_rng(11)
    mu = rng.choice([0.05, 0.9], size=(12, OWN_FEATURES), p=[0.7, 0.3])
    X, _ = sample_bmm(rng, OWN_ROWS, np.full(12, 1 / 12), mu)
    path = workdir / OWN_PATH
    np.save(path, X)
    return path


def write_data_yaml(workdir: Path, mirror: str, sha256: dict[str, str], own: bool = False) -> Path:
    """``workdir/data.yaml``: the data sets of a run on the synthetic MNIST from ``mirror``
    (the set "synthetic"), with ``own`` also the user's own data (the set "own", written into
    ``workdir`` as ``OWN_PATH``)."""
    sets = {"synthetic": synthetic_set(mirror, sha256)}
    if own:
        write_own_data(workdir)
        sets["own"] = {"path": OWN_PATH}
    return write_yaml(workdir / "data.yaml", {"data": {"sets": list(sets)}, "datasets": sets})


class Run:
    """A finished pipeline run: its working directory and how to call Snakemake there.

    It ran on the small test config, then ``overlays`` (config files), then ``data_yaml``
    (the data sets and where they came from), then ``after``. ``settings``: the small config
    with the overlays layered on, as the files write it; ``config``: the whole config the
    run saw (:func:`full_config`); ``sets``: its data sets' names; ``sources``: the
    directory each IDX set's files came from.
    """

    def __init__(
        self,
        workdir: Path,
        data_yaml: Path,
        sources: dict[str, Path],
        kind: str = "",
        overlays: tuple[Path, ...] = (),
        after: tuple[Path, ...] = (),
    ):
        import yaml

        self.workdir, self.data_yaml, self.sources = workdir, data_yaml, sources
        self.kind, self.overlays, self.after = kind, tuple(overlays), tuple(after)
        self.settings = yaml.safe_load((REPO / "tests/config/config.yaml").read_text())
        for path in self.overlays:
            self.settings = merged(self.settings, yaml.safe_load(Path(path).read_text()))
        self.config = full_config(
            REPO / "tests/config/config.yaml", *self.overlays, data_yaml, *self.after
        )
        self.sets = self.config["data"]["sets"]

    def extra_files(self) -> list[str]:
        """The config files after the settings: the data sets', and any after them."""
        return [str(self.data_yaml), *map(str, self.after)]

    def configfiles(self, *extra: Path) -> list[str]:
        files = [REPO / "tests/config/config.yaml", *self.overlays, *self.extra_files(), *extra]
        return ["--configfile", *map(str, files)]

    def snakemake(self, *args: str, extra: tuple[Path, ...] = (), **kw):
        return run_snakemake(self.workdir, *args, *self.configfiles(*extra), **kw)

    def path(self, relative: str) -> Path:
        return self.workdir / relative


def start_run(
    tmp_path_factory,
    name: str,
    source_dir: Path,
    sha256: dict[str, str],
    overlays: tuple[Path, ...] = (),
    own: bool = False,
) -> Run:
    """Run the pipeline on the small test config (and ``overlays``) in a fresh copy of the
    workflow, on the synthetic MNIST in ``source_dir`` served by a local HTTP mirror (the set
    "synthetic"), and with ``own`` also on a set of one's own 0/1 data (the set "own")."""
    workdir = copy_workflow(tmp_path_factory.mktemp(name))
    with MirrorServer(source_dir) as url:
        data = write_data_yaml(workdir, str(url), sha256, own)
        run = Run(workdir, data, {"synthetic": source_dir}, name, overlays)
        run.snakemake()
    return run


@pytest.fixture(scope="session")
def synthetic_run(tmp_path_factory, synthetic_mnist) -> Run:
    """The pipeline run once per session on two small data sets: the synthetic MNIST as an
    IDX set of the config's own, and 0/1 data of one's own without labels (a few minutes)."""
    return start_run(
        tmp_path_factory, "synthetic", synthetic_mnist.dir, synthetic_mnist.sha256, own=True
    )


#: The issue's acceptance config, layered over tests/config/config.yaml as it is: MNIST and
#: Fashion-MNIST from local copies (../shared/data/mnist, Debian's dataset-fashion-mnist).
TWO_SETS = REPO / "tests/config/two_sets.yaml"


@pytest.fixture(scope="session")
def real_run(tmp_path_factory) -> Run:
    """The pipeline run once per session on small slices of the real MNIST and Fashion-MNIST,
    with exactly tests/config/two_sets.yaml over the small config; or skip (fail under
    BMM_REQUIRE_DATA=1) when either set's files are absent. The run's directory sits where
    the YAML's relative mirror ../shared/data/mnist finds the MNIST copy (a link to it)."""
    import yaml

    mnist, fashion = real_dir("mnist"), real_dir("fashion-mnist")
    root = tmp_path_factory.mktemp("real")
    (root / "shared" / "data").mkdir(parents=True)
    (root / "shared" / "data" / "mnist").symlink_to(mnist, target_is_directory=True)
    workdir = copy_workflow(root / "work")
    after: tuple[Path, ...] = ()
    listed = yaml.safe_load(TWO_SETS.read_text())["datasets"]["fashion-mnist"]["mirrors"]
    if Path(listed[0]).resolve() != fashion:  # BMM_FASHION_MNIST_DIR names another copy
        where = {"datasets": {"fashion-mnist": {"mirrors": [str(fashion)]}}}
        after = (write_yaml(root / "fashion.yaml", where),)
    run = Run(workdir, TWO_SETS, {"mnist": mnist, "fashion-mnist": fashion}, "real", after=after)
    run.snakemake()
    return run


@pytest.fixture(
    scope="module",
    params=[
        "synthetic",
        pytest.param("real", marks=[pytest.mark.mnist, pytest.mark.fashion_mnist]),
    ],
)
def run(request) -> Run:
    """The session's finished run on each kind of data in turn (``synthetic_run``, then
    ``real_run``), for the tests that only read a finished run. The real-data instances
    carry the ``mnist`` and ``fashion_mnist`` markers from collection on, so
    ``-m "not mnist"`` deselects them."""
    return request.getfixturevalue(f"{request.param}_run")


def report_figures(K: list[int], sets: list[str]) -> dict[str, Path]:
    """Every figure the workflow flags with ``report()`` for a run on the data ``sets`` with
    the components ``K``, as output path -> caption file: each of bmm.report.figures.FIGURES,
    once per data set or once for the run by its scope (workflow/rules/common.smk's
    figure_outputs and figure_path), and the cluster means of each set and K (means_outputs)."""
    from bmm.report.figures import FIGURES

    captions = REPO / "workflow" / "report"
    rules = (REPO / "workflow/rules/common.smk").read_text()
    for pattern in (
        'f"results/report/figures/{dataset}/{name}.png"',
        'f"results/report/figures/{name}.png"',
        'caption=f"../report/{name}.rst"',
        'f"results/report/figures/{{dataset}}/means_K{K}.png"',
        'caption="../report/means.rst"',
    ):
        assert pattern in rules, f"workflow/rules/common.smk no longer writes {pattern}"
    figures = {}
    for name, figure in FIGURES.items():
        for d in sets if figure.scope == "set" else [None]:
            where = f"{d}/{name}" if d else name
            figures[f"results/report/figures/{where}.png"] = captions / f"{name}.rst"
    for d in sets:
        for k in K:
            figures[f"results/report/figures/{d}/means_K{k}.png"] = captions / "means.rst"
    return figures


# ---------------------------------------------------------------------------------------
# Faults: runs in the background, waiting on what they write, permissions without root


def start_snakemake(workdir: Path, *args: str, output: Path, cores: int = 2):
    """``snakemake --cores CORES ARGS`` in the background, in its own process group (so one
    signal reaches Snakemake and every job it started), stdout and stderr into ``output``.
    SIGINT is handled as at a terminal whatever the tests inherited: a shell that starts them
    in the background (``cmd &`` without job control) leaves SIGINT ignored, and an ignored
    signal stays ignored across exec, so Ctrl-C would never reach Snakemake."""
    import signal
    import subprocess
    import sys

    def default_sigint():
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    cmd = [sys.executable, "-m", "snakemake", "--cores", str(cores), *args]
    with open(output, "w") as out:
        return subprocess.Popen(
            cmd,
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=default_sigint,
        )


def wait_until(condition: Callable[[], object], proc, what: str, timeout: float = 600):
    """Poll ``condition`` until it returns something true, and return that; fail if ``proc``
    (a Popen, or None) ends first or ``timeout`` seconds pass. Waits on an observable event,
    never on a fixed sleep, so a busy machine only makes it slower."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the process ended (exit {proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not seen within {timeout} s")
        time.sleep(0.1)


def processes_in(directory: Path) -> list[int]:
    """PIDs of the live processes whose working directory is ``directory`` or below it."""
    found = []
    root = directory.resolve()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cwd = (proc / "cwd").resolve(strict=True)
        except OSError:
            continue
        if cwd == root or root in cwd.parents:
            found.append(int(proc.name))
    return found


def unprivileged() -> list[str]:
    """A command prefix under which file permissions hold, or skip the test.

    Root ignores a read-only mode (CAP_DAC_OVERRIDE), so as root the command runs under
    ``setpriv`` without that capability (and CAP_DAC_READ_SEARCH): still uid 0, but read-only
    then means read-only, as for any user. Empty for any other user.
    """
    import shutil
    import subprocess

    if os.geteuid() != 0:
        return []
    prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    if shutil.which("setpriv") is None:
        require(
            "setpriv", "running as root without setpriv (util-linux): cannot make a file read-only"
        )
    probe = subprocess.run([*prefix, "true"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        require("setpriv", f"setpriv cannot drop CAP_DAC_OVERRIDE here: {probe.stderr.strip()}")
    return prefix
