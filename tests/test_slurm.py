"""The whole pipeline, small config, through a real Slurm (snakemake-executor-plugin-slurm).

Needs a Slurm controller with an idle node, e.g. the single-node test cluster:

    bash .ci/slurm-up.sh
    python -m pytest -m slurm tests/test_slurm.py
    bash .ci/slurm-down.sh

Skipped (with the reason) when the slurm executor plugin is not installed, ``sbatch`` is not
on PATH or ``sinfo`` shows no idle node.
The run uses workflow/profiles/slurm-ci (squeue status checks, no accounting needed).
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import copy_workflow, require, run_snakemake, write_data_yaml, write_yaml

from bmm import params_table

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

RUN_TIMEOUT_S = 600  # the run takes about 2.5 minutes on a 2-core node
# Each Slurm job costs about 7 CPU seconds (two Snakemake starts, the script's imports), so on a
# 2-core node the test config's 45 jobs take over 6 minutes. Two fit variants instead of seven
# (matmul_fused: the agreement reference and the report's variant; loops_n: a loop variant)
# still run every rule, in 18 jobs.
FIT_VARIANTS = ["loops_n", "matmul_fused"]
ACTIVE_STATES = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED"}


def _slurm_unavailable() -> str | None:
    """Why Slurm cannot run the test, or None when it can."""
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return "snakemake-executor-plugin-slurm not installed (pip install -e '.[slurm]')"
    if shutil.which("sbatch") is None:
        return "sbatch not on PATH (start a test cluster with: bash .ci/slurm-up.sh)"
    try:
        out = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"sinfo failed or did not answer in 5 s: {e}"
    states = out.stdout.split()
    if out.returncode != 0 or not ({"idle", "mixed"} & set(states)):
        detail = out.stderr.strip() or ", ".join(states) or "no nodes"
        return f"sinfo reports no idle node ({detail}); start one with: bash .ci/slurm-up.sh"
    return None


def _jobs_in(workdir: Path) -> dict[str, tuple[str, str]]:
    """Slurm jobs that ran in ``workdir`` and squeue still knows: id -> (state, comment)."""
    out = subprocess.run(
        ["squeue", "--states=all", "-h", "-o", "%i|%T|%k|%Z"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    jobs = {}
    for line in out.stdout.splitlines():
        job_id, state, comment, dir_ = line.strip().split("|", 3)
        if Path(dir_).resolve() == workdir.resolve():
            jobs[job_id] = (state, comment)
    return jobs


def _cancel_leftovers(workdir: Path) -> None:
    """scancel the jobs of ``workdir`` still queued or running (after a failed or killed run)."""
    try:
        left = [i for i, (state, _) in _jobs_in(workdir).items() if state in ACTIVE_STATES]
        if left:
            subprocess.run(["scancel", *left], timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        pass


def _sbatch_line(log: str, rule: str) -> str:
    """The first ``sbatch`` call Snakemake logged (--verbose) for a job of ``rule``."""
    comment = re.compile(rf"--comment '?rule_{rule}(_wildcards_\S*)?'? ")
    for line in log.splitlines():
        if "sbatch call:" in line and comment.search(line):
            return line[line.index("sbatch call:") + len("sbatch call:") :].strip()
    raise AssertionError(f"no sbatch call for rule {rule} in the log")


@pytest.mark.timeout(RUN_TIMEOUT_S + 120)
def test_pipeline_runs_through_slurm(tmp_path: Path, synthetic_mnist, request) -> None:
    reason = _slurm_unavailable()
    if reason:
        require("slurm", reason)
    local = request.getfixturevalue("synthetic_run")  # the same config, run locally

    work = copy_workflow(tmp_path / "work")
    data = write_data_yaml(work, str(synthetic_mnist.dir), synthetic_mnist.sha256)
    overlay = write_yaml(
        work / "slurm-test.yaml",
        {
            "fit": {"variants": FIT_VARIANTS},
            "report": {"variant": "matmul_fused"},  # one of them
        },
    )
    profile = work / "workflow" / "profiles" / "slurm-ci"
    assert (profile / "config.yaml").is_file()

    start = time.monotonic()
    try:
        # run_snakemake kills (SIGKILL) a run that passes the timeout: a run whose status
        # checks hang ignores SIGTERM. Its --cores 2 matches the test node's CPUs.
        proc = run_snakemake(
            work,
            "--workflow-profile",
            str(profile),
            "--configfile",
            "tests/config/config.yaml",
            str(data),
            str(overlay),
            "--verbose",
            timeout=RUN_TIMEOUT_S,
        )
    finally:
        _cancel_leftovers(work)
    elapsed = time.monotonic() - start
    log = proc.stdout + proc.stderr

    # The outputs, the report included.
    assert (work / "results/report/report.html").stat().st_size > 0
    assert (work / "results/synthetic/timings/estep.parquet").is_file()
    n_fits = len(list((work / "results/synthetic/fits").glob("*/K*/seed*/params.parquet")))
    assert sorted(p.name for p in (work / "results/synthetic/fits").iterdir()) == FIT_VARIANTS
    assert n_fits > 0

    # Every non-local rule ran as a Slurm job with its own log; the downloads ran locally.
    logs = sorted((work / ".snakemake/slurm_logs").glob("rule_*/**/*.log"))
    by_rule: dict[str, list[Path]] = {}
    for path in logs:
        rule = path.relative_to(work / ".snakemake/slurm_logs").parts[0].removeprefix("rule_")
        by_rule.setdefault(rule, []).append(path)
    for rule in ("binarize", "fit", "fit_shared", "time_estep", "render_report"):
        assert rule in by_rule, f"no Slurm log for rule {rule}: {sorted(by_rule)}"
    assert "download" not in by_rule, "download is a localrule"
    assert "all" not in by_rule
    assert len(by_rule["fit"]) == n_fits

    # squeue still lists them (MinJobAge keeps finished jobs 300 s): all COMPLETED, all ours.
    log_ids = {path.stem for path in logs}
    jobs = _jobs_in(work)
    assert jobs, "squeue lists no job that ran in the work directory"
    assert set(jobs) <= log_ids, f"jobs without a Slurm log: {set(jobs) - log_ids}"
    assert {state for state, _ in jobs.values()} == {"COMPLETED"}, jobs
    assert any(comment == "rule_render_report" for _, comment in jobs.values())

    # The timing job got the threads of the profile (set-threads, capped by --cores 2).
    estep, fit = _sbatch_line(log, "time_estep"), _sbatch_line(log, "fit")
    assert "--cpus-per-task=2" in estep, estep
    assert "--cpus-per-task=1" in fit, fit

    # The fits equal those of the local run of the same small config (the session's
    # synthetic run, which fits every variant; these are two of them): π and μ bit for bit,
    # and the params files byte for byte, since they record only the fit, its settings and
    # its provenance (the same code, data, packages and machine), no time or host name.
    tables = sorted(work.glob("results/*/**/params.parquet"))
    assert len(tables) == n_fits + len(FIT_VARIANTS)  # and the shared-subset fits
    for table in tables:
        relative = table.relative_to(work)
        pi, mu, meta = params_table.read_params(table)
        pi0, mu0, meta0 = params_table.read_params(local.workdir / relative)
        np.testing.assert_array_equal(pi, pi0, err_msg=str(relative))
        np.testing.assert_array_equal(mu, mu0, err_msg=str(relative))
        assert meta == meta0, relative
        assert table.read_bytes() == (local.workdir / relative).read_bytes(), relative

    print(f"\nslurm run: {elapsed:.0f} s, {len(logs)} Slurm jobs ({len(jobs)} still in squeue)")
    print(f"sbatch time_estep: {estep}\nsbatch fit: {fit}")
