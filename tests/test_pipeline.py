"""The pipeline end to end: Snakemake on the small test config, from download to report.

The run happens once per data source in a scratch copy of the workflow, with MNIST served
by a local HTTP mirror so the real download code runs: tiny synthetic IDX files always,
and the real MNIST copy when present (CI always has it). Each test then checks one kind of
output, or how Snakemake plans a rerun after a config edit.
"""

from __future__ import annotations

import base64
import collections
import re
import subprocess
import sys
import warnings
from html import unescape
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import (
    FILES,
    REPO,
    MirrorServer,
    Run,
    copy_workflow,
    run_snakemake,
    start_run,
    write_yaml,
)

import bmm.config
from bmm import fit_job, idx, io, params_table, provenance, storage
from bmm.estep import VARIANTS
from bmm.report import html as report_html

pytestmark = pytest.mark.slow

SMALL = yaml.safe_load((REPO / "tests/config/config.yaml").read_text())
DEFAULT = bmm.config.validate(  # as the Snakefile sees it: defaults filled, "all" spelled out
    yaml.safe_load((REPO / "config/config.yaml").read_text()),
    bmm.config.load_schema(REPO / "workflow/schemas/config.schema.yaml"),
)
FIT_VARIANTS = DEFAULT["fit"]["variants"]
FLOAT32 = [name for name in FIT_VARIANTS if VARIANTS[name].dtype == np.float32]
# The commit the pipeline's code came from (the jobs import bmm from this checkout), or
# "unknown" when it is not a git checkout: what every table must record.
HEAD = provenance.git_commit().removesuffix("-dirty")
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
    """The job counts from the 'Job stats' table of a dry run; empty only when Snakemake
    says there is nothing to be done. Output with neither fails the test (a dry run that
    failed, or a format this parser does not know), so "nothing reruns" cannot pass on
    output it did not understand."""
    table = re.search(r"Job stats:\n(.*?)\ntotal\s+(\d+)\n", output, re.S)
    if table is None:
        assert "Nothing to be done" in output, (
            "the dry run printed neither a 'Job stats' table nor 'Nothing to be done':\n"
            + output[-3000:]
        )
        return collections.Counter()
    counts = collections.Counter()
    for line in table.group(1).splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    assert counts and counts.total() == int(table.group(2)), table.group(0)
    return counts


def dry_run(run: Run, *extra: Path) -> collections.Counter:
    proc = run.snakemake("-n", extra=extra)
    return planned_jobs(proc.stdout + proc.stderr)


# ---------------------------------------------------------------------------------------
# Outputs


def test_downloads_are_the_served_files(run):
    for name in FILES.values():
        got = run.path(f"resources/mnist/{name}").read_bytes()
        assert got == (run.source_dir / name).read_bytes()
        assert "sha256 ok" in run.path(f"logs/download_mnist/{name}.log").read_text()


def test_binarised_data_are_compact_and_carry_their_provenance(run):
    for split in ("train", "test"):
        path = run.path(f"results/data/{split}.parquet")
        X, y = storage.load_binarized(path, dtype=np.uint8)
        # n_train / n_test images, or every one the source has when it has fewer
        source = idx.read_idx(run.source_dir / FILES[f"{split}_labels"])
        n = min(run.config["data"][f"n_{split}"], len(source))
        assert X.shape == (n, 784) and y.shape == (n,)
        assert set(np.unique(X)) <= {0, 1} and set(np.unique(y)) <= set(range(10))
        assert len(np.unique(y)) == 10  # stratified: every digit kept
        schema = pq.read_schema(path)
        assert str(schema.field("pixels").type) == "fixed_size_binary[98]"
        meta = io.read_metadata(path)
        assert meta["config"]["threshold"] == 0.5
        names = {FILES[f"{split}_images"], FILES[f"{split}_labels"]}
        assert set(meta["sources"]) == names
        for name in names:
            assert meta["sources"][name] == run.sha256[name]


def fits(run):
    for v in FIT_VARIANTS:
        for K in run.config["fit"]["K"]:
            yield v, K, run.path(f"results/fits/{v}/K{K}/seed0")


def test_params_are_valid_mixtures(run):
    for v, K, d in fits(run):
        pi, mu, meta = params_table.read_params(d / "params.parquet")
        assert pi.shape == (K,) and mu.shape == (K, 784), v
        assert np.all((pi >= 0) & (pi <= 1)) and abs(pi.sum() - 1) < 1e-9
        assert np.all((mu >= 0) & (mu <= 1))
        assert meta["config"]["variant"] == v and meta["config"]["K"] == K
        cap = bmm.config.cap(run.config, v)
        assert meta["config"]["max_iter"] == cap["max_iter"]
        assert meta["config"]["n_train"] == cap["n_train"]


def test_traces_never_decrease(run):
    for v, K, d in fits(run):
        t = pd.read_parquet(d / "trace.parquet")
        assert list(t["iteration"]) == list(range(len(t)))
        assert {"loglik", "objective", "estep_s", "mstep_s"} <= set(t.columns)
        ll = t["loglik"].to_numpy()
        assert np.all(np.diff(ll) >= -1e-6 * np.abs(ll[:-1])), (v, K, ll)
        assert (t["estep_s"] > 0).all()


# The clustering scores of the fits on every training image at K = 10 must reach these (on
# the test images). Measured in these runs (synthetic: 300 images; MNIST: 4000, see
# tests/config/mnist.yaml): purity 0.900 / 0.615, NMI 0.969 / 0.624, ARI 0.889 / 0.439; on
# MNIST the purity ranged 0.565-0.615 over seeds 0-4 (by hand, same settings). Chance is a
# purity of 0.1-0.2 and an NMI and ARI near 0: a broken E-step, M-step or evaluation falls
# far below these.
FULL_FIT_K10 = {
    "synthetic": {"test_purity": 0.8, "test_nmi": 0.9, "test_ari": 0.8},
    "mnist": {"test_purity": 0.5, "test_nmi": 0.5, "test_ari": 0.3},
}


def test_metrics_table_has_one_row_per_fit(run):
    m = pd.read_parquet(run.path("results/tables/metrics.parquet"))
    assert len(m) == len(FIT_VARIANTS) * len(run.config["fit"]["K"])
    assert set(m["variant"]) == set(FIT_VARIANTS)
    assert m["test_loglik"].lt(0).all() and np.isfinite(m["bic"]).all()
    n_train = len(storage.load_binarized(run.path("results/data/train.parquet"), np.uint8)[1])
    full = m[(m["n_train"] == n_train) & (m["K"] == 10)]
    assert set(full["variant"]) == {  # every variant whose cap takes every image
        v for v in FIT_VARIANTS if bmm.config.cap(run.config, v)["n_train"] in (None, n_train)
    }
    for col, bound in FULL_FIT_K10[run.kind].items():
        assert (full[col] >= bound).all(), full[["variant", col]]
    assert (m[m["n_train"] == n_train]["n_degenerate"] == 0).all()  # re-seeding's promise
    # Every fit, however capped (the loops fit 40 images twice), clusters better than chance:
    # ARI is 0 for a random assignment (lowest measured: 0.029, loops_ndk at K = 5 on MNIST)
    assert (m["test_ari"] > 0).all(), m[["variant", "K", "test_ari"]]
    # Fits with the same settings (the uncapped variants; numba_ndk and loops_n with the same
    # cap) find the same clusters: their test purity is the same to 2 of the 200 test images
    # (measured: equal in both runs)
    m["max_iter"] = [bmm.config.cap(run.config, v)["max_iter"] for v in m["variant"]]
    same = m.groupby(["K", "n_train", "max_iter"])["test_purity"]
    assert (same.max() - same.min()).max() <= 0.01, m[["variant", "K", "n_train", "test_purity"]]


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
        assert meta["git"] == HEAD or meta["git"] == f"{HEAD}-dirty", (table, meta["git"])
        assert meta["machine"]["cpu"] and meta["machine"]["blas"], table
        assert set(meta["sources"]) >= {FILES["train_images"]}, table


def test_report_embeds_every_figure(run):
    html = run.path("results/report/report.html").read_text()
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([^"]+)"', html)
    names = [name for name, _ in images]
    assert set(FIGURES) <= set(names)
    assert {f"means_K{K}" for K in SMALL["fit"]["K"]} <= set(names)
    for _, data in images:
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
    # The summary and the article's-point table are the ones this run's own tables give
    timings = io.read_parquet(run.path("results/timings/estep.parquet"))
    meta = io.read_metadata(run.path("results/timings/estep.parquet"))
    metrics = io.read_parquet(run.path("results/tables/metrics.parquet"))
    numbers = report_html.headline_numbers(timings, meta["gemm_peak_gflops"], metrics)
    assert report_html.summary_html(numbers, meta["machine"], meta["threads"]) in html
    timed = timings[timings["status"] == "ok"]
    assert numbers["N_max"] == timed["N"].max() and numbers["large"]
    # the small runs' timing grid stops short of the article's N = 1000: the report says so
    # rather than showing a table filled from another point
    assert 1000 not in run.config["timing"]["N"]
    assert report_html.headline(timings, run.config["report"]["baseline"], 1000, 10).empty
    assert "N = 1000 is not in this run's timing grid" in html
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


def reordered(value, reverse: bool):
    """``value`` with the keys of every mapping in it sorted (or reverse-sorted)."""
    if isinstance(value, dict):
        return {k: reordered(value[k], reverse) for k in sorted(value, reverse=reverse)}
    return value


@pytest.mark.parametrize("reverse", [False, True], ids=["sorted", "reverse-sorted"])
def test_the_same_settings_in_another_order_rerun_nothing(run, tmp_path, reverse):
    """The small config with its keys in another order (as yaml.safe_dump(sort_keys=True)
    writes it): the same settings, so nothing reruns (every job's params are canonical)."""
    config = reordered(run.settings, reverse)
    text = yaml.safe_dump(config, sort_keys=False)
    assert config == run.settings  # the same settings
    assert text != yaml.safe_dump(run.settings, sort_keys=False)  # in another order
    path = tmp_path / "reordered.yaml"
    path.write_text(text)
    proc = run_snakemake(run.workdir, "-n", "--configfile", str(path), str(run.mirror_yaml))
    assert planned_jobs(proc.stdout + proc.stderr) == collections.Counter()


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
# Faults (more in tests/test_faults.py)


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


# ---------------------------------------------------------------------------------------
# A second config, end to end: the article's threshold, k-means++ starts, two seeds


@pytest.fixture(scope="module")
def article_run(tmp_path_factory, synthetic_mnist) -> Run:
    """The pipeline on tests/config/article.yaml over the small config, synthetic MNIST."""
    return start_run(
        tmp_path_factory,
        "article",
        synthetic_mnist.dir,
        synthetic_mnist.sha256,
        (REPO / "tests/config/article.yaml",),
    )


def test_the_article_config_binarises_any_ink_as_on(article_run, synthetic_mnist):
    config = article_run.config["data"]
    assert config["threshold"] == "article"
    for split, (images, labels) in (
        ("train", synthetic_mnist.train),
        ("test", synthetic_mnist.test),
    ):
        path = article_run.path(f"results/data/{split}.parquet")
        meta = io.read_metadata(path)
        assert meta["config"]["threshold"] == "article" and meta["threshold"] == 0.0
        X, y = storage.load_binarized(path, dtype=bool)
        keep = storage.stratified_subset(labels, config.get(f"n_{split}"), config.get("seed", 0))
        np.testing.assert_array_equal(X, images[keep].reshape(len(keep), -1) > 0)
        np.testing.assert_array_equal(y, labels[keep])


def test_the_article_config_fits_every_seed_from_kmeans_plus_plus(article_run):
    """Two seeds' fits of every variant and K, each started by k-means++ (the params record
    it, and refitting from the recorded settings gives the same params, which a random start
    does not), and the seeds give different fits."""
    fit = article_run.config["fit"]
    m = io.read_parquet(article_run.path("results/tables/metrics.parquet"))
    assert len(m) == len(fit["variants"]) * len(fit["K"]) * len(fit["seeds"])
    assert sorted(set(m["seed"])) == [0, 1]
    X, y = storage.load_binarized(article_run.path("results/data/train.parquet"), packed=True)
    for v in fit["variants"]:
        for K in fit["K"]:
            means = {}
            for seed in fit["seeds"]:
                path = article_run.path(f"results/fits/{v}/K{K}/seed{seed}/params.parquet")
                _, means[seed], meta = params_table.read_params(path)
                assert meta["config"]["init"] == "kmeans++" and meta["config"]["seed"] == seed
            assert not np.array_equal(means[0], means[1]), (v, K)
    path = article_run.path("results/fits/matmul_fused/K10/seed1/params.parquet")
    _, mu, meta = params_table.read_params(path)
    settings = meta["config"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = fit_job.fit(X, y, settings)
        random = fit_job.fit(X, y, {**settings, "init": "random"})
    np.testing.assert_array_equal(again.means_, mu)
    assert not np.array_equal(random.means_, mu)
    for v in fit["variants"]:  # the shared-subset fits start from k-means++ too
        meta = io.read_metadata(article_run.path(f"results/agreement/{v}/params.parquet"))
        assert meta["config"]["init"] == "kmeans++"


def test_the_article_config_reports_and_reruns_nothing(article_run):
    html = unescape(article_run.path("results/report/report.html").read_text())
    assert '"threshold": "article"' in html and '"init": "kmeans++"' in html
    assert dry_run(article_run) == collections.Counter()
