"""The pipeline end to end: Snakemake on the small test config, from download to report.

The run happens once per data source in a scratch copy of the workflow, with MNIST served
by a local HTTP mirror so the real download code runs: tiny synthetic IDX files always,
and the real MNIST copy when present (CI always has it). Each test then checks one kind of
output, or how Snakemake plans a rerun after a config edit.
"""

from __future__ import annotations

import base64
import collections
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import REPO, MirrorServer, Run, copy_workflow, run_snakemake, write_yaml

import bmm.config
from bmm import io, mnist, params_table
from bmm.estep import VARIANTS

pytestmark = pytest.mark.slow

SMALL = yaml.safe_load((REPO / "tests/config/config.yaml").read_text())
DEFAULT = bmm.config.validate(  # as the Snakefile sees it: defaults filled, "all" spelled out
    yaml.safe_load((REPO / "config/config.yaml").read_text()),
    bmm.config.load_schema(REPO / "workflow/schemas/config.schema.yaml"),
)
FIT_VARIANTS = DEFAULT["fit"]["variants"]
FLOAT32 = [name for name in FIT_VARIANTS if VARIANTS[name].dtype == np.float32]
FIGURES = [
    "time_vs_N",
    "speedup",
    "time_vs_K",
    "efficiency",
    "clustering_vs_K",
    "traces",
    "agreement",
]


def planned_jobs(output: str) -> collections.Counter:
    """The job counts from the 'Job stats' table of a dry run (empty if nothing to do)."""
    counts = collections.Counter()
    table = re.search(r"Job stats:\n(.*?)\ntotal", output, re.S)
    if table:
        for line in table.group(1).splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                counts[parts[0]] = int(parts[1])
    return counts


def dry_run(run: Run, *extra: Path) -> collections.Counter:
    proc = run.snakemake("-n", extra=extra)
    return planned_jobs(proc.stdout + proc.stderr)


# ---------------------------------------------------------------------------------------
# Outputs


def test_downloads_are_the_served_files(run):
    for name in mnist.FILES.values():
        got = run.path(f"resources/mnist/{name}").read_bytes()
        assert got == (run.source_dir / name).read_bytes()
        assert "sha256 ok" in run.path(f"logs/download_mnist/{name}.log").read_text()


def test_binarised_data_are_compact_and_carry_their_provenance(run):
    for split, n_max in (("train", SMALL["data"]["n_train"]), ("test", SMALL["data"]["n_test"])):
        path = run.path(f"results/data/{split}.parquet")
        X, y = mnist.load_binarized(path, dtype=np.uint8)
        assert X.shape[1] == 784 and 0 < len(X) <= n_max and X.shape[0] == y.shape[0]
        assert set(np.unique(X)) <= {0, 1} and set(np.unique(y)) <= set(range(10))
        assert len(np.unique(y)) == 10  # stratified: every digit kept
        schema = pq.read_schema(path)
        assert str(schema.field("pixels").type) == "fixed_size_binary[98]"
        meta = io.read_metadata(path)
        assert meta["config"]["threshold"] == 0.5
        names = {mnist.FILES[f"{split}_images"], mnist.FILES[f"{split}_labels"]}
        assert set(meta["sources"]) == names
        for name in names:
            assert meta["sources"][name] == run.sha256[name]


def fits(run):
    for v in FIT_VARIANTS:
        for K in SMALL["fit"]["K"]:
            yield v, K, run.path(f"results/fits/{v}/K{K}/seed0")


def test_params_are_valid_mixtures(run):
    for v, K, d in fits(run):
        pi, mu, meta = params_table.read_params(d / "params.parquet")
        assert pi.shape == (K,) and mu.shape == (K, 784), v
        assert np.all((pi >= 0) & (pi <= 1)) and abs(pi.sum() - 1) < 1e-9
        assert np.all((mu >= 0) & (mu <= 1))
        assert meta["config"]["variant"] == v and meta["config"]["K"] == K
        cap = SMALL["fit"]["caps"].get(v, SMALL["fit"]["default_cap"])
        assert meta["config"]["max_iter"] == cap["max_iter"]


def test_traces_never_decrease(run):
    for v, K, d in fits(run):
        t = pd.read_parquet(d / "trace.parquet")
        assert list(t["iteration"]) == list(range(len(t)))
        assert {"loglik", "objective", "estep_s", "mstep_s"} <= set(t.columns)
        ll = t["loglik"].to_numpy()
        assert np.all(np.diff(ll) >= -1e-6 * np.abs(ll[:-1])), (v, K, ll)
        assert (t["estep_s"] > 0).all()


def test_metrics_table_has_one_row_per_fit(run):
    m = pd.read_parquet(run.path("results/tables/metrics.parquet"))
    assert len(m) == len(FIT_VARIANTS) * len(SMALL["fit"]["K"])
    assert set(m["variant"]) == set(FIT_VARIANTS)
    for col in ("train_purity", "test_purity", "test_nmi", "test_ari"):
        assert m[col].between(-1, 1).all(), col
    assert (m["test_purity"] >= 0.1).all()
    assert m["test_loglik"].lt(0).all() and np.isfinite(m["bic"]).all()
    fast = m[(m["variant"] == "matmul_fused") & (m["K"] == 10)].iloc[0]
    # far above chance (0.1): the synthetic digits are easy; 400 real ones from a random start
    # leave several clusters holding a single image (maximum likelihood does that)
    assert fast["test_purity"] > (0.5 if run.kind == "synthetic" else 0.25), fast


def test_variants_agree_on_the_shared_subset(run):
    a = pd.read_parquet(run.path("results/tables/agreement.parquet")).set_index("variant")
    assert set(a.index) == set(FIT_VARIANTS)
    for v, row in a.iterrows():
        tol = 1e-4 if v in FLOAT32 else 1e-9
        assert row["max_abs_diff_mu"] <= tol and row["max_abs_diff_pi"] <= tol, (v, row)
        assert row["n_iter"] == SMALL["fit"]["shared"]["iterations"]


def test_timings_cover_the_grid(run):
    t = pd.read_parquet(run.path("results/timings/estep.parquet"))
    variants = DEFAULT["timing"]["variants"]
    assert set(t["variant"]) == set(variants)
    points = t.groupby(["variant", "N", "K"]).size()
    assert len(points) == len(variants) * len(SMALL["timing"]["N"]) * len(SMALL["timing"]["K"])
    ok = t[t["status"] == "ok"]
    assert (ok["seconds"] > 0).all()
    assert set(ok["variant"]) == set(variants)  # every variant timed somewhere
    assert ok[ok["dtype"] == "float64"]["max_abs_diff"].max() < 1e-9
    assert ok[ok["dtype"] == "float32"]["max_abs_diff"].max() < 1e-4
    assert t["blas_threads"].notna().all()
    meta = io.read_metadata(run.path("results/timings/estep.parquet"))
    assert meta["gemm_peak_gflops"]["float64"] > 0 and meta["threads"]["blas_threads"] >= 1


def test_every_table_records_its_provenance(run):
    tables = [
        "results/data/train.parquet",
        "results/timings/estep.parquet",
        "results/tables/metrics.parquet",
        "results/tables/agreement.parquet",
        "results/fits/matmul/K5/seed0/params.parquet",
        "results/fits/matmul/K5/seed0/trace.parquet",
        "results/fits/matmul/K5/seed0/metrics.parquet",
    ]
    for table in tables:
        meta = io.read_metadata(run.path(table))
        assert meta["config"], table
        assert meta["versions"]["numpy"] and meta["versions"]["snakemake"], table
        assert meta["git"], table
        assert meta["machine"]["cpu"] and meta["machine"]["blas"], table
        assert set(meta["sources"]) >= {mnist.FILES["train_images"]}, table


def test_report_embeds_every_figure(run):
    html = run.path("results/report/report.html").read_text()
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([^"]+)"', html)
    names = [name for name, _ in images]
    assert set(FIGURES) <= set(names)
    assert {f"means_K{K}" for K in SMALL["fit"]["K"]} <= set(names)
    for _, data in images:
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
    assert "N = 1000" not in html or "speedup over" in html
    assert "Provenance" in html and "matmul_fused" in html
    assert 'src="http' not in html  # readable offline: nothing fetched


def test_every_rule_wrote_its_log(run):
    logs = run.path("logs")
    for name in (
        "binarize.log",
        "time_estep.log",
        "agreement.log",
        "aggregate_metrics.log",
        "plot_figures.log",
        "render_report.log",
    ):
        assert "done" in (logs / name).read_text(), name


# ---------------------------------------------------------------------------------------
# Reruns after a config edit


def test_nothing_reruns_when_nothing_changed(run):
    assert dry_run(run) == collections.Counter()


def test_adding_a_K_runs_only_its_fits_and_what_aggregates_them(run, tmp_path):
    extra = write_yaml(tmp_path / "k.yaml", {"fit": {"K": [5, 10, 8]}})
    jobs = dry_run(run, extra)
    n = len(FIT_VARIANTS)
    assert jobs == collections.Counter(
        {
            "fit": n,
            "evaluate": n,
            "aggregate_metrics": 1,
            "plot_means": 1,
            "plot_figures": 1,
            "render_report": 1,
            "all": 1,
        }
    )


def test_changing_the_threshold_reruns_binarize_and_everything_after(run, tmp_path):
    extra = write_yaml(tmp_path / "t.yaml", {"data": {"threshold": "article"}})
    jobs = dry_run(run, extra)
    assert "download_mnist" not in jobs
    n = len(FIT_VARIANTS) * len(SMALL["fit"]["K"])
    assert jobs["binarize"] == 1 and jobs["fit"] == n and jobs["evaluate"] == n
    assert jobs["fit_shared"] == len(FIT_VARIANTS) and jobs["time_estep"] == 1
    assert jobs["render_report"] == 1


def test_changing_a_timing_setting_reruns_only_timing_and_the_report(run, tmp_path):
    extra = write_yaml(tmp_path / "b.yaml", {"timing": {"budget_s": 0.25}})
    assert dry_run(run, extra) == collections.Counter(
        {"time_estep": 1, "plot_figures": 1, "render_report": 1, "all": 1}
    )


def test_pointing_the_mirrors_elsewhere_reruns_nothing(run, tmp_path):
    extra = write_yaml(tmp_path / "m.yaml", {"mnist": {"mirrors": ["/nowhere"], "retries": 1}})
    assert dry_run(run, extra) == collections.Counter()


# ---------------------------------------------------------------------------------------
# Interrupted runs lose nothing


def _start(workdir: Path, configfiles: list[str]) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", *configfiles]
    return subprocess.Popen(
        cmd,
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, "snakemake ended before the point of interruption"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.2)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill-9"])
def test_an_interrupted_run_completes_on_rerun(tmp_path, synthetic_mnist, sig):
    workdir = copy_workflow(tmp_path)
    with MirrorServer(synthetic_mnist.dir) as url:
        mirror = write_yaml(
            workdir / "mirror.yaml",
            {"mnist": {"mirrors": [str(url)], "sha256": synthetic_mnist.sha256}},
        )
        configfiles = ["--configfile", str(REPO / "tests/config/config.yaml"), str(mirror)]
        proc = _start(workdir, configfiles)
        try:
            # interrupt while the fits are running
            _wait_for(workdir / "results/data/train.parquet", proc)
            time.sleep(1.0)
            os.killpg(proc.pid, sig)
            proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        assert not (workdir / "results/report/report.html").exists()
        # no half-written table is left where an output belongs
        for table in (workdir / "results").rglob("*.parquet"):
            pd.read_parquet(table)
        args = [*configfiles]
        if sig == signal.SIGKILL:
            # A hard kill leaves Snakemake's lock and incomplete markers; its own messages
            # name the fix, and following them completes the run.
            proc = run_snakemake(workdir, *args, check=False)
            output = proc.stdout + proc.stderr
            if "--unlock" in output:
                run_snakemake(workdir, *args, "--unlock")
                proc = run_snakemake(workdir, *args, check=False)
                output = proc.stdout + proc.stderr
            if proc.returncode != 0:
                assert "--rerun-incomplete" in output, output[-3000:]
                args.append("--rerun-incomplete")
        run_snakemake(workdir, *args)
    assert (workdir / "results/report/report.html").exists()
    assert dry_run(Run(workdir, mirror, synthetic_mnist.dir)) == collections.Counter()


def test_a_bad_download_stops_the_run_and_leaves_no_file(tmp_path, synthetic_mnist):
    workdir = copy_workflow(tmp_path)
    with MirrorServer(synthetic_mnist.dir, "corrupt") as url:
        mirror = write_yaml(
            workdir / "mirror.yaml",
            {"mnist": {"mirrors": [str(url)], "sha256": synthetic_mnist.sha256, "retries": 1}},
        )
        proc = run_snakemake(
            workdir,
            "--configfile",
            str(REPO / "tests/config/config.yaml"),
            str(mirror),
            check=False,
        )
    assert proc.returncode != 0
    logs = "".join(p.read_text() for p in (workdir / "logs/download_mnist").glob("*.log"))
    assert "checksum mismatch" in logs and "mnist.mirrors" in logs
    assert not list((workdir / "resources/mnist").glob("*.gz"))
    assert not (workdir / "results").exists()


def test_the_cluster_profile_plans_the_whole_dag_without_cores(tmp_path):
    """The SLURM profile needs no --cores (the timing rule's threads must not demand it)."""
    workdir = copy_workflow(tmp_path)
    cmd = [sys.executable, "-m", "snakemake", "-n", "--workflow-profile", "workflow/profiles/slurm"]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = planned_jobs(proc.stdout + proc.stderr)
    assert jobs["time_estep"] == 1 and jobs["fit"] == len(FIT_VARIANTS) * len(DEFAULT["fit"]["K"])
    block = re.search(r"rule time_estep:.*?resources: ([^\n]*)", proc.stdout + proc.stderr, re.S)
    assert "mem_mb=8000" in block.group(1) and "slurm_extra=--exclusive" in block.group(1)
