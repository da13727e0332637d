"""The pipeline end to end: Snakemake on the small test config, from download to report.

Each run happens once per session in a scratch copy of the workflow: on two small data sets
always (the synthetic MNIST, an IDX set the config describes, served by a local HTTP mirror;
and 0/1 data of one's own without labels), and on small slices of the real MNIST and
Fashion-MNIST when present (CI always has them), with exactly the issue's acceptance config
tests/config/two_sets.yaml. Each test then checks one kind of output, or how Snakemake plans
a rerun after a config edit.
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

import matplotlib.image
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import (
    OWN_FEATURES,
    OWN_PATH,
    OWN_ROWS,
    REPO,
    MirrorServer,
    Run,
    copy_workflow,
    run_snakemake,
    start_run,
    synthetic_set,
    write_yaml,
)

import bmm.config
from bmm import datasets, fit_job, idx, io, params_table, provenance, scale, storage, timing
from bmm.auto import CANDIDATES
from bmm.download import checksums
from bmm.estep import ARTICLE_FINAL, AUTO, VARIANTS
from bmm.report import html as report_html
from bmm.report.figures import FIGURES

pytestmark = pytest.mark.slow

SMALL = yaml.safe_load((REPO / "tests/config/config.yaml").read_text())
DEFAULT = bmm.config.validate(  # as the Snakefile sees it: "all" spelled out
    yaml.safe_load((REPO / "config/config.yaml").read_text()),
    bmm.config.load_schema(REPO / "workflow/schemas/config.schema.yaml"),
)
FIT_VARIANTS = DEFAULT["fit"]["variants"]
FLOAT32 = [name for name, v in VARIANTS.items() if v.dtype == np.float32]
# The commit the pipeline's code came from (the jobs import bmm from this checkout), or
# "unknown" when it is not a git checkout: what every table must record.
HEAD = provenance.git_commit().removesuffix("-dirty")


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


def idx_sets(run):
    """The run's IDX sets (downloaded), with the directory each one's files came from."""
    return run.sources.items()


def test_downloads_are_the_served_files(run):
    for name, source in idx_sets(run):
        s = datasets.from_config(name, run.config)
        for f in s.file_names:
            got = run.path(f"resources/{name}/{f}").read_bytes()
            assert got == (source / f).read_bytes()
            assert "sha256 ok" in run.path(f"logs/download/{name}/{f}.log").read_text()


def test_binarised_data_are_compact_and_carry_their_provenance(run):
    for name in run.sets:
        s = datasets.from_config(name, run.config)
        for split in ("train", "test"):
            path = run.path(f"results/{name}/data/{split}.parquet")
            X, y = storage.load_binarized(path, dtype=np.uint8)
            meta = io.read_metadata(path)
            assert set(np.unique(X)) <= {0, 1}
            assert pq.ParquetFile(path).metadata.num_row_groups == 1  # small: one group
            if isinstance(s, datasets.OwnSet):  # the user's own 0/1 data, split by the run
                n = round(OWN_ROWS * s.test_fraction) if split == "test" else None
                n = n or OWN_ROWS - round(OWN_ROWS * s.test_fraction)
                assert X.shape == (n, OWN_FEATURES) and y is None
                assert meta["image_shape"] is None and not meta["has_labels"]
                assert meta["config"]["path"] == OWN_PATH
                assert set(meta["sources"]) == {OWN_PATH}
                continue
            # n_train / n_test images, or every one the source has when it has fewer
            labels_file = run.sources[name] / s.files[f"{split}_labels"].name
            n = min(run.config["data"][f"n_{split}"], len(idx.read_idx(labels_file)))
            assert X.shape == (n, 784) and y.shape == (n,)
            assert set(np.unique(y)) <= set(range(10))
            assert len(np.unique(y)) == 10  # stratified: every label kept
            schema = pq.read_schema(path)
            assert str(schema.field("pixels").type) == "fixed_size_binary[98]"
            assert meta["config"]["threshold"] == 0.5 and meta["image_shape"] == [28, 28]
            assert meta["label_names"] == list(map(str, s.label_names))
            names = {s.files[f"{split}_images"], s.files[f"{split}_labels"]}
            assert set(meta["sources"]) == {f.name for f in names}
            for f in names:  # the SHA-256 of the file served, which one of f's matches
                assert meta["sources"][f.name] == checksums(run.sources[name] / f.name)[0]
                assert f.accepts(*checksums(run.sources[name] / f.name))


def fit_dir(d: str, v: str, K: int = 10, seed: int = 0) -> str:
    return f"results/{d}/fits/{v}/K{K}/seed{seed}"


def fits(run):
    for d in run.sets:
        for v in FIT_VARIANTS:
            for K in run.config["fit"]["K"]:
                yield d, v, K, run.path(f"results/{d}/fits/{v}/K{K}/seed0")


def test_params_are_valid_mixtures(run):
    for d, v, K, path in fits(run):
        pi, mu, meta = params_table.read_params(path / "params.parquet")
        D = io.read_metadata(run.path(f"results/{d}/data/train.parquet"))["n_pixels"]
        assert pi.shape == (K,) and mu.shape == (K, D), (d, v)
        # π of a float32 variant comes from float32 responsibilities: it sums to 1 within
        # their rounding (measured up to 3.3e-9 on the own set), a float64 one's to 1e-9
        tol = 1e-7 if meta["fit"]["estep"] in FLOAT32 else 1e-9  # the variant that ran
        assert np.all((pi >= 0) & (pi <= 1)) and abs(pi.sum() - 1) < tol, (d, v, K)
        assert meta["fit"]["estep"] == v or (v == AUTO and meta["fit"]["estep"] in CANDIDATES)
        assert np.all((mu >= 0) & (mu <= 1))
        assert meta["config"]["variant"] == v and meta["config"]["K"] == K
        assert meta["config"]["dataset"] == d
        cap = bmm.config.cap(run.config, v)
        assert meta["config"]["max_iter"] == cap["max_iter"]
        assert meta["config"]["n_train"] == cap["n_train"]


def test_traces_never_decrease(run):
    for d, v, K, path in fits(run):
        t = pd.read_parquet(path / "trace.parquet")
        assert list(t["iteration"]) == list(range(len(t)))
        assert {"loglik", "objective", "pass_s", "update_s"} <= set(t.columns)
        assert (t["dataset"] == d).all()
        ll = t["loglik"].to_numpy()
        assert np.all(np.diff(ll) >= -1e-6 * np.abs(ll[:-1])), (d, v, K, ll)


# The clustering scores of the fits on every training image at K = 10 must reach these (on
# the test images). Synthetic (300 training images, 10 classes of strokes): measured purity
# 0.900, NMI 0.969, ARI 0.889. The real sets at the acceptance config's 400 training and 200
# test images, measured with the package over fit seeds 0-4 (packed_lut and matmul, the
# run's settings otherwise; seed 0, the run's, is MNIST's lowest): MNIST purity 0.29-0.58,
# NMI 0.25-0.53, ARI 0.12-0.37; Fashion-MNIST purity 0.43-0.51, NMI 0.45-0.52, ARI
# 0.24-0.30. Chance, a random assignment of the 200 test images to 10 clusters, gives (200
# draws) a purity of 0.21 (at most 0.26), an NMI of 0.11 (at most 0.16) and an ARI of 0.00
# (at most 0.03): a broken E-step, M-step or evaluation falls below these, on NMI and ARI
# far below. The own set has no labels: no scores.
FULL_FIT_K10 = {
    "synthetic": {"test_purity": 0.8, "test_nmi": 0.9, "test_ari": 0.8},
    "mnist": {"test_purity": 0.27, "test_nmi": 0.2, "test_ari": 0.1},
    "fashion-mnist": {"test_purity": 0.4, "test_nmi": 0.4, "test_ari": 0.2},
}


def test_metrics_table_has_one_row_per_fit(run):
    m = pd.read_parquet(run.path("results/tables/metrics.parquet"))
    assert len(m) == len(run.sets) * len(FIT_VARIANTS) * len(run.config["fit"]["K"])
    assert list(m["dataset"].unique()) == run.sets
    for d in run.sets:
        md = m[m["dataset"] == d].copy()
        assert set(md["variant"]) == set(FIT_VARIANTS)
        assert np.isfinite(md["bic"]).all() and np.isfinite(md["test_loglik"]).all()
        n_train = len(storage.load_binarized(run.path(f"results/{d}/data/train.parquet"))[0])
        full = md[(md["n_train"] == n_train) & (md["K"] == 10)]
        assert set(full["variant"]) == {  # every variant whose cap takes every image
            v for v in FIT_VARIANTS if bmm.config.cap(run.config, v)["n_train"] in (None, n_train)
        }
        # re-seeding's promise: no full fit keeps a component of fewer than two images (N·π < 2),
        # up to rounding: one at exactly two (N·π = 2.000) counts as degenerate or not by 1e-15
        for v, K in md[md["n_train"] == n_train][["variant", "K"]].itertuples(index=False):
            pi, _, _ = params_table.read_params(run.path(f"{fit_dir(d, v, K)}/params.parquet"))
            assert (pi * n_train).min() > 2 - 1e-9, (d, v, K, np.sort(pi * n_train)[:3])
        if d == "own":  # no labels: purity, NMI and ARI are left out, not 0
            assert md[["train_purity", "test_purity", "test_nmi", "test_ari"]].isna().all().all()
            continue
        for col, bound in FULL_FIT_K10[d].items():
            assert (full[col] >= bound).all(), full[["variant", col]]
        # Every fit, however capped (the loops fit 40 images twice), clusters better than
        # chance: ARI is 0 for a random assignment (lowest measured: 0.033, loops_n at K = 5
        # on MNIST)
        assert (md["test_ari"] > 0).all(), md[["variant", "K", "test_ari"]]
        # Fits with the same settings (the uncapped variants; numba_ndk and loops_n with the
        # same cap) find the same clusters: their test purity is the same to 2 of the 200 test
        # images (measured: equal in every run)
        md["max_iter"] = [bmm.config.cap(run.config, v)["max_iter"] for v in md["variant"]]
        same = md.groupby(["K", "n_train", "max_iter"])["test_purity"]
        assert (same.max() - same.min()).max() <= 0.01, md[["variant", "K", "test_purity"]]


def test_the_scale_table_measures_an_iteration_at_every_N_in_each_mode(run):
    """Rows drawn from the first set's largest-K auto fit, at the sizes of scale.max_n's
    grid, in memory and out of core; the E-step alone is timed in memory only."""
    t = pd.read_parquet(run.path("results/tables/scale.parquet"))
    cfg = run.config["scale"]
    assert list(t["mode"].unique()) == cfg["modes"] == ["memory", "parquet"]
    for _, rows in t.groupby("mode"):
        assert list(rows["N"]) == scale.grid(cfg["max_n"]) == [10_000, 30_000]
    assert (t["K"] == max(run.config["fit"]["K"])).all() and (t["dataset"] == run.sets[0]).all()
    assert np.isfinite(t[["iteration_s", "peak_rss_mib"]]).all().all()
    assert t[t["mode"] == "memory"]["estep_s"].notna().all()
    assert t[t["mode"] == "parquet"]["estep_s"].isna().all()
    meta = io.read_metadata(run.path("results/tables/scale.parquet"))
    K = max(run.config["fit"]["K"])
    drawn_from = run.path(f"results/{run.sets[0]}/fits/auto/K{K}/seed0/params.parquet")
    assert meta["config"]["N"] == [10_000, 30_000]
    assert meta["sources"] == io.read_metadata(drawn_from)["sources"]  # the set's raw files


def test_variants_agree_on_the_shared_subset_of_the_first_set(run):
    a = pd.read_parquet(run.path("results/tables/agreement.parquet")).set_index("variant")
    assert set(a.index) == set(FIT_VARIANTS) and (a["dataset"] == run.sets[0]).all()
    for v, row in a.iterrows():
        tol = 1e-4 if v in FLOAT32 or v == AUTO else 1e-9  # auto's choice may be float32
        assert row["max_abs_diff_mu"] <= tol and row["max_abs_diff_pi"] <= tol, (v, row)
        assert row["n_iter"] == SMALL["fit"]["shared"]["iterations"]
    assert not any(run.path(f"results/{d}/agreement").exists() for d in run.sets[1:])


def test_timings_cover_the_grid_with_every_variant_on_the_first_set_only(run):
    variants = DEFAULT["timing"]["variants"]
    dependent = {v for v in variants if VARIANTS[v].data_dependent}
    assert dependent == {"numba_ndk", "packed_lut"}
    for i, d in enumerate(run.sets):
        path = run.path(f"results/{d}/timings/estep.parquet")
        t = pd.read_parquet(path)
        meta = io.read_metadata(path)
        timed = set(variants) if i == 0 else dependent | {ARTICLE_FINAL}
        assert set(t["variant"]) == timed | {timing.BARE_PRODUCT}, d
        assert meta["why_timed"] == timing.why_timed(i == 0)
        points = t.groupby(["variant", "N", "K"]).size()
        grid = len(SMALL["timing"]["N"]) * len(SMALL["timing"]["K"])
        assert len(points) == (len(timed) + 1) * grid
        ok = t[t["status"] == "ok"]
        assert ok["seconds"].notna().all() and (t["dataset"] == d).all()
        assert set(ok["variant"]) == timed | {timing.BARE_PRODUCT}  # each timed somewhere
        estep = ok[ok["variant"] != timing.BARE_PRODUCT]
        assert estep[estep["dtype"] == "float64"]["max_abs_diff"].max() < 1e-9
        assert estep[estep["dtype"] == "float32"]["max_abs_diff"].max() < 1e-4
        assert ok[ok["variant"] == timing.BARE_PRODUCT]["max_abs_diff"].isna().all()
        assert t["blas_threads"].notna().all()
        assert meta["gemm_peak_gflops"]["float64"] > 0 and meta["threads"]["blas_threads"] >= 1


def test_every_table_records_its_provenance(run):
    d = run.sets[0]
    tables = [
        f"results/{d}/data/train.parquet",
        f"results/{d}/timings/estep.parquet",
        "results/tables/metrics.parquet",
        "results/tables/agreement.parquet",
        f"results/{d}/fits/matmul/K5/seed0/params.parquet",
        f"results/{d}/fits/matmul/K5/seed0/trace.parquet",
        f"results/{d}/fits/matmul/K5/seed0/metrics.parquet",
    ]
    first_file = datasets.from_config(d, run.config).files["train_images"].name
    for table in tables:
        meta = io.read_metadata(run.path(table))
        assert meta["config"], table
        assert meta["versions"]["numpy"] and meta["versions"]["snakemake"], table
        assert meta["git"] == HEAD or meta["git"] == f"{HEAD}-dirty", (table, meta["git"])
        assert meta["machine"]["cpu"] and meta["machine"]["blas"], table
        assert set(meta["sources"]) >= {first_file}, table


def test_report_embeds_every_figure_with_a_section_per_data_set(run):
    html = run.path("results/report/report.html").read_text()
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([^"]+)"', html)
    names = collections.Counter(name for name, _ in images)
    for name, figure in FIGURES.items():
        assert names[name] == (len(run.sets) if figure.scope == "set" else 1), name
    for K in SMALL["fit"]["K"]:
        assert names[f"means_K{K}"] == len(run.sets)
    for _, data in images:
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
    # a section per data set, in the run's order
    titles = [datasets.from_config(d, run.config).title for d in run.sets]
    heads = re.findall(r"<h2 id='set-[^']*'>([^<]+)</h2>", html)
    assert heads == titles
    # The summary and the comparison are the ones this run's own tables give
    sections, metrics = report_sections(run)
    numbers = {
        sec.title: report_html.headline_numbers(
            sec.timings,
            sec.timing_meta["gemm_peak_gflops"],
            metrics[metrics["dataset"] == sec.name],
        )
        for sec in sections
    }
    ink = {sec.title: sec.data for sec in sections}
    first = sections[0].timing_meta
    summary = report_html.summary_html(numbers, ink, first["machine"], first["threads"])
    assert summary in html
    assert unescape(report_html._table(report_html.comparison(sections, metrics))) in unescape(html)
    for title in titles:
        assert f"on {title} (" in summary  # the finding, for each set
    # the small runs' timing grid stops short of the article's N = 1000: the report says so
    # rather than showing a table filled from another point
    assert 1000 not in run.config["timing"]["N"]
    assert "N = 1000 is not in this run's timing grid" in html
    assert "Provenance" in html and "matmul_fused" in html
    assert 'src="http' not in html  # readable offline: nothing fetched


def report_sections(run):
    """The report's sections of a finished run, read from its tables as render_report does."""
    sections = [
        report_html.DataSetSection(
            name=d,
            title=datasets.from_config(d, run.config).title,
            about="",
            data=io.read_metadata(run.path(f"results/{d}/data/train.parquet")),
            timings=io.read_parquet(run.path(f"results/{d}/timings/estep.parquet")),
            timing_meta=io.read_metadata(run.path(f"results/{d}/timings/estep.parquet")),
        )
        for d in run.sets
    ]
    return sections, io.read_parquet(run.path("results/tables/metrics.parquet"))


def test_a_set_without_labels_is_reported_without_scores_and_with_a_heat_map(synthetic_run):
    html = unescape(synthetic_run.path("results/report/report.html").read_text())
    section = html[html.index("<h2 id='set-own'>") :]
    section = section[: section.index("<h2", 1)]
    assert "This data set has no labels, so purity, NMI and ARI are not measured" in section
    assert "Best test purity" not in section and "no labels" in section
    sections, metrics = report_sections(synthetic_run)
    table = report_html.comparison(sections, metrics).set_index("")
    assert (table.loc[table.index.str.startswith("best test purity"), "own"] == "no labels").all()
    # the cluster means as a K×D heat map: one panel, K rows of D = 60 columns
    means = synthetic_run.path("results/report/figures/own/means_K10.png")
    height, width = matplotlib.image.imread(means).shape[:2]
    assert width > 2 * height  # a wide heat map, not a grid of 28×28 images
    log = synthetic_run.path("logs/plot_means/own.log").read_text()
    assert "majority test label per cluster: None" in log


def test_every_rule_wrote_its_log(run):
    logs = run.path("logs")
    for name in (
        *(f"binarize/{d}.log" for d in run.sets),
        *(f"time_estep/{d}.log" for d in run.sets),
        *(f"plot_figures/{d}.log" for d in run.sets),
        *(f"plot_means/{d}.log" for d in run.sets),
        "agreement.log",
        "aggregate_metrics.log",
        "plot_run_figures.log",
        "render_report.log",
    ):
        assert "done" in (logs / name).read_text(), name


def test_every_rule_wrote_its_jobs_wall_time_and_memory(run):
    """The README's results table: benchmarks/ holds each job's wall time and memory. Every
    rule of workflow/rules/ declares a benchmark file, the run wrote it, and it holds
    Snakemake's measurements (seconds, peak resident memory in MB)."""
    text = "".join(p.read_text() for p in sorted(REPO.glob("workflow/rules/*.smk")))
    for block in re.split(r"^rule ", text, flags=re.M)[1:]:
        rule = block.split(":", 1)[0]
        declared = re.search(r'^    benchmark:\n\s+f?"([^"]+)"', block, re.M)
        assert declared, f"rule {rule} has no benchmark: file"
        files = sorted(run.workdir.glob(re.sub(r"\{[^}]*\}", "*", declared[1])))
        assert files, f"rule {rule}: nothing written to {declared[1]}"
        for path in files:
            header, values = path.read_text().splitlines()[:2]
            row = dict(zip(header.split("\t"), values.split("\t"), strict=True))
            measured = (row["s"], row["max_rss"])
            assert all(re.fullmatch(r"\d+(\.\d+)?", v) for v in measured), (path, row)


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
    proc = run_snakemake(run.workdir, "-n", "--configfile", str(path), *run.extra_files())
    assert planned_jobs(proc.stdout + proc.stderr) == collections.Counter()


def test_adding_a_K_runs_only_its_fits_and_what_aggregates_them(run, tmp_path):
    extra = write_yaml(tmp_path / "k.yaml", {"fit": {"K": [5, 10, 8]}})
    jobs = dry_run(run, extra)
    n, sets = len(FIT_VARIANTS), len(run.sets)
    assert jobs == collections.Counter(
        {
            "fit": n * sets,
            "aggregate_metrics": 1,
            "plot_means": sets,
            "plot_figures": sets,
            "render_report": 1,
            "all": 1,
        }
    )


def one_sets_jobs(run, d: str, fits: int) -> collections.Counter:
    """The jobs of data set ``d`` from its binarisation on (``fits`` fits), and those that
    gather every set's: what a change to ``d``'s data alone must rerun, and nothing more."""
    jobs = collections.Counter(
        {
            "binarize": 1,
            "fit": fits,
            "time_estep": 1,
            "plot_figures": 1,
            "plot_means": 1,
            "aggregate_metrics": 1,
            "plot_run_figures": 1,
            "render_report": 1,
            "all": 1,
        }
    )
    if d == run.sets[0]:  # the shared-subset fits are the first set's, and so is the model
        jobs.update({"fit_shared": len(FIT_VARIANTS), "agreement": 1, "scale": 1})  # drawn from
    return jobs


def test_changing_one_sets_threshold_reruns_only_that_set(run, tmp_path):
    """datasets.<name>.threshold: the last IDX set's (Fashion-MNIST in the real run) changes;
    the other sets' jobs stay as they are."""
    d = list(run.sources)[-1]
    extra = write_yaml(tmp_path / "t.yaml", {"datasets": {d: {"threshold": "article"}}})
    n = len(FIT_VARIANTS) * len(SMALL["fit"]["K"])
    assert dry_run(run, extra) == one_sets_jobs(run, d, n)


def test_changing_the_shared_threshold_reruns_the_idx_sets_only(run, tmp_path):
    """data.threshold applies to every IDX set without its own; own 0/1 data have none, so
    the own set's jobs stay as they are."""
    extra = write_yaml(tmp_path / "t.yaml", {"data": {"threshold": "article"}})
    n = len(FIT_VARIANTS) * len(SMALL["fit"]["K"])
    expected = collections.Counter()
    for d in run.sources:
        expected |= one_sets_jobs(run, d, n)  # the gathering jobs once
        expected.update(
            {"binarize": 1, "fit": n, "time_estep": 1, "plot_figures": 1, "plot_means": 1}
        )
    expected.subtract(
        {"binarize": 1, "fit": n, "time_estep": 1, "plot_figures": 1, "plot_means": 1}
    )
    assert dry_run(run, extra) == +expected


def test_adding_a_data_set_reruns_none_of_the_others_jobs(run, tmp_path, synthetic_mnist):
    """A set appended to data.sets of a finished run: its own jobs, and only the tables,
    figures and report that gather every set's; no other set's download, binarize, fit or
    timing job."""
    added = {"data": {"sets": [*run.sets, "added"]}}
    added["datasets"] = {"added": synthetic_set(str(synthetic_mnist.dir), synthetic_mnist.sha256)}
    jobs = dry_run(run, write_yaml(tmp_path / "added.yaml", added))
    expected = one_sets_jobs(run, "added", len(FIT_VARIANTS) * len(SMALL["fit"]["K"]))
    expected["download"] = 4
    assert jobs == expected
    proc = run.snakemake("-n", extra=(tmp_path / "added.yaml",))
    plan = proc.stdout + proc.stderr
    assert "dataset=added" in plan  # the wildcard is named dataset
    assert not re.search(r"dataset=(?!added\b)", plan), "another set's job would rerun"


def test_changing_a_timing_setting_reruns_only_timing_and_the_report(run, tmp_path):
    extra = write_yaml(tmp_path / "b.yaml", {"timing": {"budget_s": 0.25}})
    sets = len(run.sets)
    assert dry_run(run, extra) == collections.Counter(
        {
            "time_estep": sets,
            "plot_figures": sets,
            "plot_run_figures": 1,
            "render_report": 1,
            "all": 1,
        }
    )


def test_pointing_the_mirrors_elsewhere_reruns_nothing(run, tmp_path):
    elsewhere = {d: {"mirrors": ["/nowhere"]} for d in run.sources}
    extra = write_yaml(
        tmp_path / "m.yaml", {"datasets": elsewhere, "download": {"retries": 1, "timeout_s": 5}}
    )
    assert dry_run(run, extra) == collections.Counter()


# ---------------------------------------------------------------------------------------
# Faults (more in tests/test_faults.py)


def test_a_bad_download_stops_the_run_and_leaves_no_file(tmp_path, synthetic_mnist):
    workdir = copy_workflow(tmp_path)
    with MirrorServer(synthetic_mnist.dir, "corrupt") as url:
        data = {"synthetic": synthetic_set(str(url), synthetic_mnist.sha256)}
        config = {"data": {"sets": ["synthetic"]}, "datasets": data, "download": {"retries": 1}}
        proc = run_snakemake(
            workdir,
            "--configfile",
            str(REPO / "tests/config/config.yaml"),
            str(write_yaml(workdir / "data.yaml", config)),
            check=False,
        )
    assert proc.returncode != 0
    error = [line for line in proc.stderr.splitlines() if "ERROR:" in line]
    assert error and "ERROR: DownloadError: could not download " in error[0], proc.stderr[-3000:]
    assert error[0].endswith(" from any mirror:"), error[0]
    logs = "".join(p.read_text() for p in (workdir / "logs/download/synthetic").glob("*.log"))
    assert "checksum mismatch" in logs and "datasets.synthetic.mirrors" in logs
    assert not list((workdir / "resources/synthetic").glob("*"))
    assert not (workdir / "results").exists()


def test_the_cluster_profile_plans_the_whole_dag_without_cores(tmp_path):
    """The SLURM profile needs no --cores (the timing rule's threads must not demand it)."""
    workdir = copy_workflow(tmp_path)
    cmd = [sys.executable, "-m", "snakemake", "-n", "--workflow-profile", "workflow/profiles/slurm"]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = planned_jobs(proc.stdout + proc.stderr)
    n_sets = len(DEFAULT["data"]["sets"])
    assert jobs["time_estep"] == n_sets
    assert jobs["fit"] == n_sets * len(FIT_VARIANTS) * len(DEFAULT["fit"]["K"])
    block = re.search(r"rule time_estep:.*?resources: ([^\n]*)", proc.stdout + proc.stderr, re.S)
    assert "mem_mb=8000" in block.group(1) and "slurm_extra=--exclusive" in block.group(1)


# ---------------------------------------------------------------------------------------
# A second config, end to end: the article's threshold, k-means++ starts, two seeds


@pytest.fixture(scope="module")
def article_run(tmp_path_factory, synthetic_mnist) -> Run:
    """The pipeline on tests/config/article.yaml over the small config, on the synthetic
    MNIST alone."""
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
        path = article_run.path(f"results/synthetic/data/{split}.parquet")
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
    X, y = storage.load_binarized(
        article_run.path("results/synthetic/data/train.parquet"), packed=True
    )
    for v in fit["variants"]:
        for K in fit["K"]:
            means = {}
            for seed in fit["seeds"]:
                path = article_run.path(
                    f"results/synthetic/fits/{v}/K{K}/seed{seed}/params.parquet"
                )
                _, means[seed], meta = params_table.read_params(path)
                assert meta["config"]["init"] == "k-means++" and meta["config"]["seed"] == seed
            assert not np.array_equal(means[0], means[1]), (v, K)
    path = article_run.path("results/synthetic/fits/matmul_fused/K10/seed1/params.parquet")
    _, mu, meta = params_table.read_params(path)
    settings = meta["config"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = fit_job.fit(X, y, settings)
        random = fit_job.fit(X, y, {**settings, "init": "random"})
    np.testing.assert_array_equal(again.means_, mu)
    assert not np.array_equal(random.means_, mu)
    for v in fit["variants"]:  # the shared-subset fits start from k-means++ too
        meta = io.read_metadata(article_run.path(f"results/synthetic/agreement/{v}/params.parquet"))
        assert meta["config"]["init"] == "k-means++"


def test_the_article_config_reports_and_reruns_nothing(article_run):
    html = unescape(article_run.path("results/report/report.html").read_text())
    assert '"threshold": "article"' in html and '"init": "k-means++"' in html
    assert dry_run(article_run) == collections.Counter()
