"""bmm.io and bmm.pipeline.job: the faults a job meets in its files, each turned into one line
that names the file and the fix; no half-written table where an output belongs."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pyarrow as pa
import pytest
from conftest import unprivileged

from bmm import io, params_table, pipeline, storage

TABLE = pd.DataFrame({"a": range(1000), "b": [0.5] * 1000})


@pytest.fixture
def table(tmp_path) -> Path:
    path = tmp_path / "t.parquet"
    io.write_parquet(TABLE, path, {"config": {"x": 1}})
    return path


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


# ---------------------------------------------------------------------------------------
# A corrupt input: one line, naming the file and the fix


@pytest.mark.parametrize("keep", [0.0, 0.5, 0.99], ids=["empty", "half", "last-bytes-lost"])
@pytest.mark.parametrize(
    "reader",
    [
        io.read_parquet,
        io.read_metadata,
        io.read_table,
        storage.load_binarized,
        params_table.read_params,
    ],
    ids=lambda f: f.__name__,
)
def test_a_truncated_table_is_named_with_the_fix(table, reader, keep):
    truncate(table, keep)
    with pytest.raises(io.CorruptFileError) as info:
        reader(table)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{table} is corrupt or truncated (")
    assert message.endswith("delete it and rerun snakemake, which rebuilds it")


def test_a_damaged_column_chunk_is_named_with_the_fix(tmp_path):
    """Bytes overwritten inside the data (the footer intact): pyarrow's OSError, not its
    ArrowInvalid, and the same one line."""
    path = tmp_path / "t.parquet"
    io.write_parquet(pd.DataFrame({"a": [f"row {i}" for i in range(5000)]}), path, {})
    data = bytearray(path.read_bytes())
    data[100:400] = b"\xff" * 300
    path.write_bytes(bytes(data))
    with pytest.raises(io.CorruptFileError, match="is corrupt or truncated"):
        io.read_parquet(path)


def test_a_missing_file_is_not_called_corrupt(tmp_path):
    with pytest.raises(FileNotFoundError):
        io.read_parquet(tmp_path / "absent.parquet")
    with pytest.raises(FileNotFoundError):
        io.read_metadata(tmp_path / "absent.parquet")


# ---------------------------------------------------------------------------------------
# Writes: atomic, and a killed writer's temporary file does not outlive the rerun


def test_a_write_killed_midway_leaves_no_table_and_the_rerun_removes_its_debris(tmp_path):
    """A child process is SIGKILLed while pyarrow writes (half the bytes out): the table
    itself never appears, half-written or otherwise. Its temporary file does stay (a killed
    process runs no cleanup); the next write of the same table removes it."""
    path = tmp_path / "out" / "t.parquet"
    child = textwrap.dedent(
        f"""
        import os, signal
        import pyarrow.parquet as pq
        import pandas as pd
        from bmm import io

        def write_half_then_die(table, where, **options):
            real(table, where, **options)
            data = open(where, "rb").read()
            open(where, "wb").write(data[: len(data) // 2])
            os.kill(os.getpid(), signal.SIGKILL)

        real = pq.write_table
        io.pq.write_table = write_half_then_die
        io.write_parquet(pd.DataFrame({{"a": range(1000)}}), {str(path)!r}, {{}})
        """
    )
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not path.exists()
    debris = list(path.parent.glob(f".t.parquet{io.TMP_INFIX}*"))
    assert len(debris) == 1  # what a SIGKILL leaves
    io.write_parquet(TABLE, path, {"config": {}})  # the job again
    assert sorted(p.name for p in path.parent.iterdir()) == ["t.parquet"]
    pd.testing.assert_frame_equal(io.read_parquet(path), TABLE)


def test_a_rewrite_replaces_the_table_whole(table):
    io.write_parquet(TABLE.head(3), table, {"config": {"x": 2}})
    assert len(io.read_parquet(table)) == 3 and io.read_metadata(table)["config"] == {"x": 2}
    assert [p.name for p in table.parent.iterdir()] == [table.name]


# ---------------------------------------------------------------------------------------
# A read-only directory: named, with the fix


def run_unprivileged(code: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*unprivileged(), sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_writing_into_a_read_only_directory_names_the_path(tmp_path):
    out = tmp_path / "results"
    out.mkdir()
    out.chmod(0o555)
    try:
        proc = run_unprivileged(
            """
            import pandas as pd
            from bmm import io
            try:
                io.write_parquet(pd.DataFrame({"a": [1]}), "results/data/t.parquet", {})
            except io.OutputError as e:
                print(e)
            """,
            tmp_path,
        )
    finally:
        out.chmod(0o755)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == (
        "cannot write results/data/t.parquet: Permission denied (in results); make results "
        "writable, or run snakemake in a directory you can write (--directory), and rerun"
    )
    assert list(out.iterdir()) == []


def test_check_writable_names_every_read_only_output_directory(tmp_path):
    for d in ("results/data", "results/fits/a", "logs", "resources"):
        (tmp_path / d).mkdir(parents=True)
    for d in ("results/fits", "logs"):
        (tmp_path / d).chmod(0o555)
    try:
        proc = run_unprivileged(
            """
            from bmm import io, pipeline
            print(sorted(map(str, pipeline.unwritable_dirs())))
            try:
                pipeline.check_writable()
            except io.OutputError as e:
                print(e)
            """,
            tmp_path,
        )
    finally:
        for d in ("results/fits", "logs"):
            (tmp_path / d).chmod(0o755)
    assert proc.returncode == 0, proc.stderr
    listed, message = proc.stdout.strip().splitlines()
    assert listed == "['logs', 'results/fits']"  # not results/fits/a, below it
    assert message.startswith("cannot write to results/fits/, logs/ (read-only); make it")
    assert "chmod -R u+w results/fits" in message


def test_check_writable_passes_where_everything_can_be_written(tmp_path, monkeypatch):
    (tmp_path / "results/data").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    pipeline.check_writable()  # and directories that do not exist yet are no problem
    assert pipeline.unwritable_dirs() == []


# ---------------------------------------------------------------------------------------
# pipeline.job: the first line of a failed job says what went wrong


def fake_snakemake(tmp_path) -> SimpleNamespace:
    return SimpleNamespace(
        log=[str(tmp_path / "logs" / "job.log")],
        threads=1,
        rule="evaluate",
        wildcards=SimpleNamespace(items=lambda: [("K", "5")]),
    )


def test_a_failed_job_says_first_what_went_wrong_then_exits_1(tmp_path, table, capsys):
    truncate(table)
    smk = fake_snakemake(tmp_path)
    with pytest.raises(SystemExit) as info, pipeline.job(smk):
        io.read_parquet(table)
    assert info.value.code == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].endswith("rule evaluate: {'K': '5'} threads=1")
    error = err[1].split("] ", 1)[1]  # the line after the job's first
    assert error.startswith(f"ERROR: CorruptFileError: {table} is corrupt or truncated (")
    assert error.endswith("; delete it and rerun snakemake, which rebuilds it")
    assert "Traceback" not in "\n".join(err)  # the traceback goes to the log only
    log = Path(smk.log[0]).read_text()
    assert log.index("ERROR: CorruptFileError:") < log.index("Traceback")
    assert "done" not in log


def test_an_interrupted_job_propagates_the_interrupt(tmp_path):
    with pytest.raises(KeyboardInterrupt), pipeline.job(fake_snakemake(tmp_path)):
        raise KeyboardInterrupt
    assert "interrupted" in (tmp_path / "logs" / "job.log").read_text()


def test_a_job_that_succeeds_logs_done(tmp_path):
    smk = fake_snakemake(tmp_path)
    with pipeline.job(smk) as log:
        log("working")
    lines = Path(smk.log[0]).read_text().splitlines()
    assert lines[0].endswith("rule evaluate: {'K': '5'} threads=1") and lines[-1].endswith("done")


def test_error_line_is_the_type_and_the_message():
    assert pipeline.error_line(KeyError("x")) == "KeyError: 'x'"
    assert pipeline.error_line(ValueError()) == "ValueError"
    assert pipeline.error_line(pa.ArrowInvalid("a\nb")) == "ArrowInvalid: a\nb"
