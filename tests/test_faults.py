"""Faults a real run meets, each through the pipeline as a user meets it: a run killed while a
fit iterates, bad IDX files, two runs at once in one directory, a corrupt table between two
rules, a read-only results directory. After each, nothing is lost and nothing half-written
sits where an output belongs. docs/faults.md lists every fault with the test that proves it.

Every run here is small (synthetic MNIST from a local directory mirror) and waits on what the
pipeline writes (its logs, its lock), never on a fixed sleep, so a busy machine only makes it
slower.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import (
    FILES,
    Run,
    copy_workflow,
    make_idx,
    processes_in,
    run_snakemake,
    start_snakemake,
    unprivileged,
    wait_until,
    write_data_yaml,
    write_yaml,
)

from bmm import idx, io, params_table, provenance

pytestmark = pytest.mark.slow

# A small config whose loop fit takes long enough to be caught iterating: loops_ndk on 100
# images for 25 EM iterations (tol 0: no early stop) takes 10-30 s here; two variants keep
# the run short (loops_ndk, and matmul_fused that the agreement table and report need).
SLOW = {
    "fit": {
        "variants": ["loops_ndk", "matmul_fused"],
        "caps": {"loops_ndk": {"n_train": 100, "max_iter": 25}},
        "tol": 0.0,
    },
    "timing": {"variants": ["loops_ndk_as_published", "matmul_fused"]},
    "report": {"variant": "matmul_fused"},
}
TEMPORARY = re.compile(r"(\.tmp|\.part|^tmp)")  # ours (.name.tmp-PID), pooch's (tmpXXXX)


def new_run(workdir: Path, source: Path, sha256: dict, overlay: dict | None = None) -> Run:
    """A fresh copy of the workflow in ``workdir`` that reads the synthetic MNIST (the set
    "synthetic") from the directory ``source`` (a local mirror), on the small test config and
    ``overlay``; not yet run."""
    copy_workflow(workdir)
    data = write_data_yaml(workdir, str(source), sha256)
    overlays = (write_yaml(workdir / "overlay.yaml", overlay),) if overlay else ()
    return Run(workdir, data, {"synthetic": source}, "synthetic", overlays)


def files_under(workdir: Path, *roots: str) -> dict[str, int]:
    """Every file under ``roots``, relative path -> modification time (ns)."""
    return {
        str(p.relative_to(workdir)): p.stat().st_mtime_ns
        for root in roots
        for p in sorted((workdir / root).rglob("*"))
        if p.is_file()
    }


def assert_same_params(run: Run, reference: Run, pattern: str = "results/*/**/params.parquet"):
    """Every params table of ``reference`` (those ``pattern`` matches) is in ``run`` with the
    same π and μ, bit for bit, and the same settings and outcome."""
    tables = sorted(reference.workdir.glob(pattern))
    assert tables
    for table in tables:
        relative = table.relative_to(reference.workdir)
        pi, mu, meta = params_table.read_params(run.workdir / relative)
        pi_ref, mu_ref, meta_ref = params_table.read_params(table)
        np.testing.assert_array_equal(pi, pi_ref, err_msg=str(relative))
        np.testing.assert_array_equal(mu, mu_ref, err_msg=str(relative))
        assert meta["config"] == meta_ref["config"] and meta["fit"] == meta_ref["fit"]


def nothing_to_do(run: Run) -> bool:
    proc = run.snakemake("-n")
    return "Nothing to be done" in proc.stdout + proc.stderr


def incomplete_files(output: str) -> set[str]:
    """The files Snakemake's message names under "Incomplete files:" (none if it has no such
    list)."""
    _, found, rest = output.partition("Incomplete files:\n")
    return set(rest.split("\n\n")[0].split()) if found else set()


def rerun_as_snakemake_asks(run: Run) -> tuple[list[str], set[str]]:
    """Rerun after an interruption, following Snakemake's own messages as a user would: after
    "Directory cannot be locked" run --unlock, after a list of incomplete files add
    --rerun-incomplete, then run again, until a run succeeds. Snakemake checks for incomplete
    files before it takes the lock, so after SIGKILL it may ask for them in either order.
    Returns the flags it asked for, in order, and the files it named incomplete; any other
    failure, or a message met twice, fails the test."""
    asked, incomplete = [], set()
    for _ in range(3):
        proc = run.snakemake(*(flag for flag in asked if flag != "--unlock"), check=False)
        if proc.returncode == 0:
            return asked, incomplete
        output = proc.stdout + proc.stderr
        if "cannot be locked" in output and "--unlock" in output and "--unlock" not in asked:
            asked.append("--unlock")
            run.snakemake("--unlock")
        elif "Incomplete files:" in output and "--rerun-incomplete" not in asked:
            assert "--rerun-incomplete" in output, output[-3000:]
            incomplete = incomplete_files(output)
            assert incomplete, output[-3000:]
            asked.append("--rerun-incomplete")
        else:
            pytest.fail(f"a rerun failed after {asked}:\n{output[-3000:]}")
    pytest.fail(f"no rerun succeeded after {asked}")


@pytest.fixture(scope="module")
def slow_reference(tmp_path_factory, synthetic_mnist) -> Run:
    """The SLOW config run once, uninterrupted: what an interrupted run must end up with."""
    run = new_run(
        tmp_path_factory.mktemp("slow_reference"), synthetic_mnist.dir, synthetic_mnist.sha256, SLOW
    )
    run.snakemake()
    return run


def iterating_fit(run: Run):
    """The log of a loops_ndk fit that has logged an EM iteration, or None."""
    for log in sorted(run.workdir.glob("logs/fit/synthetic/loops_ndk/K*/seed0.log")):
        if re.search(r"^\[.*\]   iteration \d+:", log.read_text(), re.M):
            return log
    return None


# ---------------------------------------------------------------------------------------
# Killed while a fit iterates


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill-9"])
def test_a_run_killed_while_a_fit_iterates_completes_on_rerun(
    tmp_path, synthetic_mnist, slow_reference, sig
):
    """Ctrl-C (SIGINT) or SIGKILL to Snakemake and all its jobs once a fit's log shows EM
    iterations: the rerun Snakemake asks for completes, the jobs that had finished are not
    run again, no temporary file is left under results/ or resources/, and every fit's
    params equal those of the uninterrupted run."""
    run = new_run(tmp_path / "work", synthetic_mnist.dir, synthetic_mnist.sha256, SLOW)
    proc = start_snakemake(run.workdir, *run.configfiles(), output=tmp_path / "first.out")
    try:
        log = wait_until(lambda: iterating_fit(run), proc, "a loops_ndk fit logging iterations")
        os.killpg(proc.pid, sig)
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    # nothing of the run survives it (a job that outlived Snakemake would finish on its own)
    wait_until(lambda: not processes_in(run.workdir), None, "every process of the run ending", 60)
    fit = run.workdir / "results/synthetic/fits/loops_ndk" / log.parent.name / "seed0"
    assert not (fit / "params.parquet").exists()  # it was killed mid-fit
    assert not run.path("results/report/report.html").exists()

    # what had finished, as Snakemake records it (status ok), and when it was written
    summary = run.snakemake("--summary").stdout.splitlines()
    finished = {cols[0] for cols in (line.split("\t") for line in summary[1:]) if cols[4] == "ok"}
    assert f"resources/synthetic/{FILES['train_images']}" in finished
    assert "results/synthetic/data/train.parquet" in finished
    before = files_under(run.workdir, "results", "resources")

    asked, incomplete = rerun_as_snakemake_asks(run)
    if sig == signal.SIGINT:
        # Snakemake released its lock on the way out. It may still ask for
        # --rerun-incomplete: a job whose script had just finished when the signal came is
        # reported failed, its outputs kept but marked incomplete (seen in CI twice: a fast
        # fit that logged "done" 0.4 s before the signal), and the rerun makes them again.
        # --summary still calls such files "ok" (it does not read the incomplete markers), so
        # they are not counted as finished here; Snakemake's own list names them.
        assert "--unlock" not in asked
        first = (tmp_path / "first.out").read_text()
        assert "Terminating processes on user request, this might take some time." in first
    else:  # SIGKILL leaves Snakemake no time to release its lock
        assert "--unlock" in asked

    after = files_under(run.workdir, "results", "resources")
    rerun = {f for f in finished - incomplete if after[f] != before[f]}
    assert not rerun, f"finished jobs ran again: {sorted(rerun)}"
    kept = {f for f in incomplete if f in before and after.get(f) == before[f]}
    assert not kept, f"files Snakemake named incomplete were not made again: {sorted(kept)}"
    assert "done" in (run.workdir / log.relative_to(run.workdir)).read_text()  # the killed fit
    temporary = [f for f in after if TEMPORARY.search(Path(f).name)]
    assert not temporary, temporary
    assert set(after) == set(files_under(slow_reference.workdir, "results", "resources"))
    assert_same_params(run, slow_reference)
    assert nothing_to_do(run)


# ---------------------------------------------------------------------------------------
# Two runs at once


def test_a_second_run_in_the_same_directory_is_refused_while_the_first_finishes(
    tmp_path, synthetic_mnist, slow_reference
):
    """While the first run holds the directory (paused mid-fit with SIGSTOP, so the second
    surely meets it running), a second snakemake there is refused by Snakemake's lock with
    its message and changes nothing; the first, resumed, finishes with the outputs of an
    uninterrupted run. One core for the first run: the fit caught iterating is its only job,
    so no other job is half-way through writing its outputs."""
    run = new_run(tmp_path / "work", synthetic_mnist.dir, synthetic_mnist.sha256, SLOW)
    target = "results/tables/metrics.parquet"
    first = start_snakemake(
        run.workdir, target, *run.configfiles(), output=tmp_path / "first.out", cores=1
    )
    try:
        wait_until(lambda: iterating_fit(run), first, "a loops_ndk fit logging iterations")
        assert list(run.workdir.glob(".snakemake/locks/*"))  # the first run holds the lock
        os.killpg(first.pid, signal.SIGSTOP)
        try:
            before = files_under(run.workdir, "results", "resources", "logs")
            second = run_snakemake(run.workdir, target, *run.configfiles(), check=False)
            assert files_under(run.workdir, "results", "resources", "logs") == before
        finally:
            os.killpg(first.pid, signal.SIGCONT)
        assert first.wait(timeout=900) == 0, (tmp_path / "first.out").read_text()[-3000:]
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
    output = second.stdout + second.stderr
    assert second.returncode != 0
    assert "Error: Directory cannot be locked." in output, output[-3000:]
    assert "--unlock" in output  # Snakemake's message says how to clear a stale lock
    assert_same_params(run, slow_reference, "results/synthetic/fits/**/params.parquet")
    fits = slow_reference.workdir / "results/synthetic/fits"
    for metrics in sorted(fits.glob("*/K*/seed0/metrics.parquet")):
        mine = io.read_parquet(run.workdir / metrics.relative_to(slow_reference.workdir))
        assert mine.equals(io.read_parquet(metrics)), metrics
    assert not list(run.workdir.glob(".snakemake/locks/*"))  # released


# ---------------------------------------------------------------------------------------
# Bad IDX files reach binarize


def corrupt(kind: str, key: str, good: Path, arrays: dict[str, np.ndarray], dest: Path) -> str:
    """Write ``dest``: the file ``key`` of the synthetic MNIST damaged as ``kind`` says;
    returns what the error must say about it."""
    array = arrays[key]
    if kind == "truncated gzip":
        raw = good.read_bytes()
        dest.write_bytes(raw[: len(raw) // 2])
        return "truncated or corrupt gzip file"
    if kind == "wrong IDX magic":  # images where labels belong, or the other way round
        magic = idx.LABELS_MAGIC if key.endswith("images") else idx.IMAGES_MAGIC
        make_idx(dest, array, magic=magic)
        return f"magic number {magic}"
    if kind == "count mismatch":  # one image or label fewer than its partner file holds
        make_idx(dest, array[:-1])
        n_images = len(array) - 1 if key.endswith("images") else len(array)
        return f"holds {n_images} images but resources/synthetic/"
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["truncated gzip", "wrong IDX magic", "count mismatch"])
@pytest.mark.parametrize("key", list(FILES))
def test_a_bad_idx_file_leaves_neither_binarised_table(tmp_path, synthetic_mnist, key, kind):
    """Any of the four files bad: binarize stops with an error naming it, and writes neither
    train.parquet nor test.parquet, even when Snakemake is told to keep a failed job's
    outputs (--keep-incomplete): it reads and checks all four before writing anything."""
    source = tmp_path / "mirror"
    source.mkdir()
    arrays = {
        "train_images": synthetic_mnist.train[0],
        "train_labels": synthetic_mnist.train[1],
        "test_images": synthetic_mnist.test[0],
        "test_labels": synthetic_mnist.test[1],
    }
    name = FILES[key]
    for other in FILES.values():
        (source / other).write_bytes((synthetic_mnist.dir / other).read_bytes())
    expected = corrupt(kind, key, synthetic_mnist.dir / name, arrays, source / name)
    sha256 = {n: provenance.sha256_file(source / n) for n in FILES.values()}
    run = new_run(tmp_path / "work", source, sha256)
    outputs = ["results/synthetic/data/train.parquet", "results/synthetic/data/test.parquet"]
    proc = run_snakemake(
        run.workdir, "--keep-incomplete", *outputs, *run.configfiles(), check=False
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert not any(run.path(o).exists() for o in outputs), sorted(
        os.listdir(run.path("results/synthetic/data"))
    )
    error = [line for line in output.splitlines() if "ERROR: IDXError:" in line]
    assert error, output[-3000:]
    assert f"resources/synthetic/{name}" in error[0] and expected in error[0], error[0]
    log = run.path("logs/binarize/synthetic.log").read_text().splitlines()
    assert "ERROR: IDXError:" in log[1]  # the job's first line after its start says it
    assert not [f for f in files_under(run.workdir, "results") if TEMPORARY.search(f)]


# ---------------------------------------------------------------------------------------
# A corrupt table between two rules


@pytest.mark.parametrize(
    ("table", "reader", "target"),
    [
        (
            "results/synthetic/data/train.parquet",
            "fit",
            "results/synthetic/fits/matmul_fused/K5/seed0/params.parquet",
        ),
        (
            "results/synthetic/fits/auto/K5/seed0/params.parquet",  # report.variant's
            "plot_means",
            "results/report/figures/synthetic/means_K5.png",
        ),
    ],
    ids=["train-to-fit", "params-to-plot_means"],
)
def test_a_truncated_table_stops_the_next_rule_with_one_line_naming_it(
    tmp_path, synthetic_mnist, table, reader, target
):
    """A table a later rule reads, truncated after it was written: that rule stops with one
    line naming the file and saying to delete it and rerun; doing so completes the run."""
    run = new_run(tmp_path / "work", synthetic_mnist.dir, synthetic_mnist.sha256)
    run.snakemake(table)
    before = pd.read_parquet(run.path(table))
    data = run.path(table).read_bytes()
    run.path(table).write_bytes(data[: len(data) // 2])
    proc = run.snakemake(target, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0 and not run.path(target).exists()
    errors = [line for line in output.splitlines() if "ERROR:" in line]
    assert len(errors) == 1, output[-3000:]
    expected = (
        f"ERROR: CorruptFileError: {table} is corrupt or truncated (Parquet magic bytes not "
        "found in footer."
    )
    assert errors[0].split("] ", 1)[1].startswith(expected), errors[0]
    assert errors[0].endswith("; delete it and rerun snakemake, which rebuilds it")
    assert "Traceback" not in output.split(errors[0])[0]  # nothing louder comes before it
    assert f"Error in rule {reader}" in output
    # following the advice
    run.path(table).unlink()
    run.snakemake(target)
    pd.testing.assert_frame_equal(pd.read_parquet(run.path(table)), before)  # "rebuilds it"
    assert run.path(target).is_file() and run.path(table).is_file()  # both made again


# ---------------------------------------------------------------------------------------
# A read-only results directory


@pytest.mark.parametrize("read_only", ["results", "results/synthetic/data"])
def test_a_read_only_results_directory_stops_the_run_before_any_job(
    tmp_path, synthetic_mnist, read_only
):
    prefix = unprivileged()
    run = new_run(tmp_path / "work", synthetic_mnist.dir, synthetic_mnist.sha256)
    run.path(read_only).mkdir(parents=True)
    run.path(read_only).chmod(0o555)
    try:
        cmd = [*prefix, *run_snakemake_cmd(), *run.configfiles()]
        proc = subprocess.run(
            cmd, cwd=run.workdir, capture_output=True, text=True, timeout=600, check=False
        )
    finally:
        run.path(read_only).chmod(0o755)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    expected = (
        f"cannot write to {read_only}/ (read-only); make it writable (chmod -R u+w "
        f"{read_only}), or run snakemake in a directory you can write (--directory), and rerun"
    )
    assert expected in output, output[-3000:]
    assert not run.path("resources").exists() and not run.path("logs").exists()  # no job ran
    assert files_under(run.workdir, "results") == {}


def run_snakemake_cmd() -> list[str]:
    import sys

    return [sys.executable, "-m", "snakemake", "--cores", "2"]


# ---------------------------------------------------------------------------------------
# The user's own data, wrong


def own_fault(workdir: Path, fault: str) -> tuple[dict, str]:
    """Write a data set of one's own, ``mine``, into ``workdir`` with ``fault``; return its
    settings (datasets.mine) and what the one line about it must say."""
    rng = np.random.default_rng(3)
    X = rng.random((60, 12)) < 0.3
    np.save(workdir / "mine.npy", X)
    entry = {"path": "mine.npy"}
    if fault == "missing file":
        entry["path"] = "data/mine.npy"
        return entry, (
            "datasets.mine.path: data/mine.npy does not exist (relative to "
            f"{workdir.resolve()}); give the path of an existing file"
        )
    if fault == "not 0/1":
        np.save(workdir / "mine.npy", np.where(X, 255, 0).astype(np.uint8))
        row, column = map(int, np.argwhere(X)[0])
        return entry, (
            f"datasets.mine.path: mine.npy holds values other than 0 and 1 (255 at row {row}, "
            f"column {column}, and {int(X.sum()) - 1} more); binarise the data first"
        )
    if fault == "wrong shape":
        np.save(workdir / "mine.npy", X.reshape(60, 3, 4))
        return (
            entry,
            "datasets.mine.path: mine.npy holds an array of shape (60, 3, 4); expected N×D",
        )
    if fault == "label count":
        np.save(workdir / "labels.npy", np.arange(59) % 3)
        entry["labels"] = "labels.npy"
        return entry, (
            "datasets.mine.labels: labels.npy holds 59 labels but mine.npy holds 60 rows; give "
            "one label per row, in the same order"
        )
    if fault == "image shape":
        entry["image_shape"] = [3, 3]
        return entry, (
            "datasets.mine.image_shape: [3, 3] holds 9 pixels but mine.npy has D = 12 columns; "
            "give a shape whose product is 12, or leave image_shape out"
        )
    raise ValueError(fault)


@pytest.mark.parametrize(
    "fault", ["missing file", "not 0/1", "wrong shape", "label count", "image shape"]
)
def test_bad_own_data_stops_with_one_line_naming_the_set_the_file_and_the_fix(tmp_path, fault):
    """One's own data set, wrong: the run stops before any job (what the files' headers show)
    or in the first job (values other than 0/1, which only reading them shows), with one line
    naming the set's key, the file and the fix; nothing is left under an output name."""
    work = copy_workflow(tmp_path / "work")
    entry, expected = own_fault(work, fault)
    data = write_yaml(work / "data.yaml", {"data": {"sets": ["mine"]}, "datasets": {"mine": entry}})
    proc = run_snakemake(
        work,
        "--keep-incomplete",
        "--configfile",
        "tests/config/config.yaml",
        str(data),
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    said = [line for line in output.splitlines() if "datasets.mine." in line]
    assert len(said) == 1 and expected in said[0], output[-3000:]
    assert files_under(work, "results") == {}  # nothing under an output name
    if fault == "not 0/1":  # the first job, binarize, said it first in its log
        assert said[0].split("] ", 1)[1].startswith("ERROR: DataSetError: datasets.mine.path")
        assert (
            "ERROR: DataSetError:" in (work / "logs/binarize/mine.log").read_text().splitlines()[1]
        )
    else:  # before any job
        assert said[0].startswith("  - datasets.mine.")
        assert not (work / "logs").exists()
