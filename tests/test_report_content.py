"""What the report says and draws, from hand-made tables whose every number is known.

The pipeline tests check that a real run renders; these check that the summary states
the right ratios, says so when a point was not measured, counts only full-data fits for
the best purity, and that the figures draw skipped points as predictions and label
capped fits with their size.
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from bmm.estep import ARTICLE_FINAL, ARTICLE_FIRST
from bmm.report import figures, html
from bmm.report.figures import FIGURES, Tables
from bmm.timing import BARE_PRODUCT, COLUMNS

REPO = Path(__file__).resolve().parents[1]
PEAKS = {"float64": 50.0, "float32": 100.0}
MACHINE = {"cpu": "Test CPU 9000", "cores": 2}
THREADS = {"blas_threads": 2, "numba_threads": 2}


def timing_rows(points: dict[tuple[str, int, int], float | str]) -> pd.DataFrame:
    """A timings table: (variant, N, K) -> seconds (three equal repeats), or 'skip:<s>'."""
    rows = []
    for (variant, N, K), value in points.items():
        dtype = (
            "float32" if variant in ("packed_lut", "matmul_fused_f32", BARE_PRODUCT) else "float64"
        )
        if isinstance(value, str):
            predicted = float(value.split(":")[1])
            rows.append(
                (
                    variant,
                    N,
                    K,
                    784,
                    dtype,
                    "skipped",
                    -1,
                    np.nan,
                    predicted,
                    np.nan,
                    f"predicted {predicted} s > budget",
                )
            )
        else:
            for r in range(3):
                rows.append((variant, N, K, 784, dtype, "ok", r, value, 0.0, 0.0, ""))
    return pd.DataFrame(rows, columns=COLUMNS)


def grid(first_at_article_point: float | str = 8.0) -> pd.DataFrame:
    return timing_rows(
        {
            (ARTICLE_FIRST, 100, 10): 0.8,
            (ARTICLE_FIRST, 1000, 10): first_at_article_point,
            (ARTICLE_FINAL, 100, 10): 0.002,
            (ARTICLE_FINAL, 1000, 10): 0.01,
            (ARTICLE_FINAL, 60000, 10): 0.3,
            (ARTICLE_FINAL, 60000, 100): 0.9,
            ("matmul_fused", 1000, 10): 0.004,
            ("matmul_fused", 60000, 10): 0.05,
            ("matmul_fused", 60000, 100): 0.2,
            ("packed_lut", 100, 10): 0.0002,
            ("packed_lut", 1000, 10): 0.001,
            ("packed_lut", 60000, 10): 0.01,
            ("packed_lut", 60000, 100): 0.05,
            (BARE_PRODUCT, 60000, 10): 0.02,
            (BARE_PRODUCT, 60000, 100): 0.1,
        }
    )


def dense_grid(packed_over_bare: float = 1.0) -> pd.DataFrame:
    """A second data set's timings, as the timing job makes them on any set but the first:
    the data-dependent variants, the article's three lines and the bare product only."""
    return timing_rows(
        {
            (ARTICLE_FINAL, 60000, 10): 0.3,
            (ARTICLE_FINAL, 60000, 100): 0.9,
            ("packed_lut", 60000, 10): 0.02,
            ("packed_lut", 60000, 100): 0.1 * packed_over_bare,
            ("numba_ndk", 60000, 10): 0.5,
            ("numba_ndk", 60000, 100): 4.0,
            (BARE_PRODUCT, 60000, 10): 0.02,
            (BARE_PRODUCT, 60000, 100): 0.1,
        }
    )


#: The ink of the two hand-made data sets, as their binarised tables record it.
INK = {
    "sparse": {"pixels_on": 0.13, "nonzero_nibbles": 45.0, "title": "Sparse"},
    "dense": {"pixels_on": 0.31, "nonzero_nibbles": 85.0, "title": "Dense"},
}


def metrics_rows() -> pd.DataFrame:
    rows = []
    for variant, n_train, n_iter, purity in (
        ("loops_ndk", 100, 3, 0.9),  # capped: a high purity on 100 images means little
        ("packed_lut", 60000, 80, 0.6),
    ):
        for K in (10, 100):
            rows.append(
                {
                    "variant": variant,
                    "K": K,
                    "seed": 0,
                    "n_train": n_train,
                    "n_iter": n_iter,
                    "test_purity": purity + K / 1000,
                    "test_nmi": 0.5,
                    "test_ari": 0.4,
                    "test_loglik": -100.0 - K / 10,
                    "train_loglik": -99.0,
                    "n_degenerate": 0,
                }
            )
    return pd.DataFrame(rows)


def traces_rows(metrics: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for m in metrics.itertuples():
        for it in range(m.n_iter + 1):
            rows.append(
                {
                    "variant": m.variant,
                    "K": m.K,
                    "seed": m.seed,
                    "iteration": it,
                    "loglik": -200 + 100 * (1 - 0.5**it),
                }
            )
    return pd.DataFrame(rows)


def section(name, timings, labelled=True, **kw) -> html.DataSetSection:
    data = {**INK[name], "n_images": 60000, "n_pixels": 784, "image_shape": [28, 28]}
    data |= {"has_labels": labelled, "label_names": None}
    meta = {"gemm_peak_gflops": PEAKS, "machine": MACHINE, "threads": THREADS, "why_timed": "x"}
    return html.DataSetSection(name, INK[name]["title"], "", data, timings, meta, **kw)


def run_tables() -> Tables:
    """The run's tables (figures of scope "run"): both sets' timings and their ink."""
    both = pd.concat(
        [grid().assign(dataset="sparse"), dense_grid().assign(dataset="dense")],
        ignore_index=True,
    )
    t = tables()
    return Tables(both, PEAKS, None, None, t.agreement, ARTICLE_FIRST, sets=INK, scale=SCALE)


#: A scale table as bmm.scale writes it: in memory, time ∝ N (slope 1) and 200 bytes an
#: image on top of 300 MiB; out of core, time ∝ N^0.9 and memory flat.
SCALE = pd.DataFrame(
    [
        {"dataset": "sparse", "mode": mode, "N": N, "K": 100, "D": 784, "threads": 2,
         "iteration_s": 1e-6 * N ** (1.0 if mode == "memory" else 0.9),
         "estep_s": 5e-7 * N if mode == "memory" else np.nan,
         "peak_rss_mib": 300 + (200 * N / 2**20 if mode == "memory" else 0)}
        for mode in ("memory", "parquet")
        for N in (10_000, 30_000, 100_000, 300_000, 1_000_000)
    ]
)  # fmt: skip


def tables(timings=None) -> Tables:
    metrics = metrics_rows()
    agreement = pd.DataFrame(
        {
            "variant": ["matmul_fused", "packed_lut"],
            "reference": "matmul_fused",
            "max_abs_diff_mu": [0.0, 2e-6],
            "max_abs_diff_pi": [0.0, 1e-7],
        }
    )
    return Tables(
        timings if timings is not None else grid(),
        PEAKS,
        metrics,
        traces_rows(metrics),
        agreement,
        ARTICLE_FIRST,
    )


# ---------------------------------------------------------------------------------------
# The summary


def test_summary_numbers_are_read_off_the_tables():
    t = tables()
    numbers = html.headline_numbers(t.timings, PEAKS, t.metrics)
    a = numbers["article_point"]
    assert a["fastest"] == "packed_lut" and a["speedup"] == pytest.approx(8.0 / 0.001)
    assert numbers["N_max"] == 60000
    assert numbers["large"][10]["speedup"] == pytest.approx(0.3 / 0.01)
    assert numbers["large"][100]["fastest"] == "packed_lut"
    assert numbers["large"][100]["speedup"] == pytest.approx(0.9 / 0.05)
    assert numbers["large"][100]["packed_over_bare"] == pytest.approx(0.05 / 0.1)
    # 2·N·K·D / t over the float32 peak
    fraction = 2 * 60000 * 100 * 784 / 0.05 / 1e9 / PEAKS["float32"]
    assert numbers["large"][100]["peak_fraction"] == pytest.approx(fraction)
    # the capped loops_ndk fits have the higher purity, but only full-data fits count
    assert numbers["best_purity"]["variant"] == "packed_lut"
    assert numbers["best_purity"]["K"] == 100 and numbers["best_purity"]["n_train"] == 60000


def summary(*sets) -> str:
    """The summary's text for the hand-made data sets given as (name, timings)."""
    t = tables()
    numbers = {INK[n]["title"]: html.headline_numbers(g, PEAKS, t.metrics) for n, g in sets}
    ink = {INK[n]["title"]: INK[n] for n, _ in sets}
    return re.sub(r"<[^>]+>", "", html.summary_html(numbers, ink, MACHINE, THREADS))


def test_summary_paragraph_states_them_with_the_machine():
    plain = summary(("sparse", grid()))
    assert "Test CPU 9000" in plain and "2 cores" in plain
    assert "8,000× faster than the article's own attempt 1 as published" in plain
    assert "the article reported 974×" in plain
    assert "30.0× the article's three lines" in plain and "18.0×" in plain
    assert "more than the peak" in plain  # 188 % of the float32 peak at K = 100
    assert "0.700" in plain and "K = 100" in plain
    assert "nan" not in plain.lower()


@pytest.mark.parametrize(
    ("ratio", "words"),
    [
        (0.5, "the bits win: packed_lut takes 0.50× the product's time"),
        (1.02, "the bits only tie with it (1.02×)"),
        (1.5, "the dense product wins: packed_lut takes 1.50× its time"),
    ],
)
def test_the_summary_names_where_the_bits_win_on_each_set(ratio, words):
    """The finding in words: on the sparse set the bits take half the bare product's time;
    on the second set, whatever its ratio says."""
    plain = summary(("sparse", grid()), ("dense", dense_grid(ratio)))
    assert (
        "on Sparse (13% of pixels on, 45 non-zero nibbles an image) the bits win: packed_lut "
        "takes 0.50× the product's time (K = 100, N = 60000)"
    ) in plain
    assert f"on Dense (31% of pixels on, 85 non-zero nibbles an image) {words}" in plain
    assert "on Sparse the fastest E-step" in plain  # the article's story: the first set's


def test_summary_says_when_the_articles_three_lines_were_not_timed_at_a_large_point():
    g = grid()
    g = g[~((g["variant"] == ARTICLE_FINAL) & (g["K"] == 100))]
    plain = summary(("sparse", g))
    assert "30.0× the article's three lines" in plain  # K = 10, timed
    assert "(packed_lut, the article's three lines were not timed there)" in plain
    assert "nan" not in plain.lower()


def test_summary_says_when_attempt_1_was_not_timed():
    plain = summary(("sparse", grid(first_at_article_point="skip:12.5")))
    assert "was not timed there (predicted 12.5 s, over the budget), so no ratio" in plain
    assert "faster than the article's own attempt 1" not in plain


def test_the_comparison_table_reads_each_number_off_its_sets_tables():
    metrics = pd.concat(
        [
            metrics_rows().assign(dataset="sparse"),
            metrics_rows().assign(dataset="dense", test_purity=np.nan),
        ],
        ignore_index=True,
    )
    sections = [section("sparse", grid()), section("dense", dense_grid(1.2), labelled=False)]
    table = html.comparison(sections, metrics).set_index("")
    assert list(table.columns) == ["Sparse", "Dense"]
    assert table.loc["pixels on"].tolist() == ["13.0%", "31.0%"]
    assert table.loc["non-zero nibbles an image"].tolist() == ["45.0", "85.0"]
    assert table.loc["images timed (N, the largest of the grid)"].tolist() == ["60000"] * 2
    # the fastest stable variant timed: on the dense set only packed_lut and numba_ndk were
    assert table.loc["fastest E-step timed, K = 100"].tolist() == [
        "packed_lut, 50 ms",
        "packed_lut, 120 ms",
    ]
    assert table.loc["its speedup over the article's three lines, K = 100"].tolist() == [
        "18.0×",
        "7.5×",
    ]
    assert table.loc["packed_lut ÷ bare float32 product X @ W, K = 10"].tolist() == [
        "0.50",
        "1.00",
    ]
    assert table.loc["packed_lut ÷ bare float32 product X @ W, K = 100"].tolist() == [
        "0.50",
        "1.20",
    ]
    # only fits on every training image count; a set without labels says so, never 0
    assert table.loc["best test purity, K = 100"].tolist() == ["0.700", "no labels"]


def test_the_page_says_which_variants_were_timed_on_which_set():
    table = html.timed_where([section("sparse", grid()), section("dense", dense_grid())])
    rows = table.set_index("variant")
    assert rows.loc["matmul_fused"].tolist() == ["yes", ""]
    assert rows.loc["packed_lut"].tolist() == ["yes", "yes"]
    assert rows.loc[BARE_PRODUCT].tolist() == ["yes", "yes"]
    assert list(rows.index)[-1] == BARE_PRODUCT


# ---------------------------------------------------------------------------------------
# The figures


def test_every_figure_has_a_caption_file():
    captions = {p.stem for p in (REPO / "workflow/report").glob("*.rst")}
    assert set(FIGURES) <= captions
    assert captions - set(FIGURES) == {"means", "workflow"}


@pytest.mark.parametrize("name", list(FIGURES))
def test_every_figure_draws_and_fits_the_page(name, tmp_path):
    path = tmp_path / f"{name}.png"
    FIGURES[name].draw(tables() if FIGURES[name].scope == "set" else run_tables(), path)
    height, width = matplotlib.image.imread(path).shape[:2]
    assert width <= 1100, f"{name} is {width} px wide: wider than the report page"
    assert height > 200


@pytest.fixture
def drawn(monkeypatch):
    """Draw a figure and keep its matplotlib Figure instead of only saving it."""
    kept = []
    monkeypatch.setattr(figures, "_save", lambda fig, path: kept.append(fig))

    def draw(name):
        FIGURES[name].draw(tables(grid(first_at_article_point="skip:12.5")), None)
        return kept[-1]

    return draw


def test_the_scale_figure_gives_each_modes_slope_and_bytes_an_image(monkeypatch):
    kept = []
    monkeypatch.setattr(figures, "_save", lambda fig, path: kept.append(fig))
    FIGURES["scale"].draw(run_tables(), None)
    labels = [t.get_text() for t in kept[-1].legends[0].get_texts()]
    assert "memory: an EM iteration (slope 1.00 from N = 100,000)" in labels
    assert "parquet: an EM iteration (slope 0.90 from N = 100,000)" in labels
    assert "memory: the E-step alone" in labels and "parquet: the E-step alone" not in labels
    assert "memory: peak memory (200 bytes an image)" in labels
    assert "parquet: peak memory (flat)" in labels


def test_the_fits_table_names_the_variant_auto_ran():
    metrics = pd.DataFrame(
        {"variant": ["auto", "matmul"], "estep": ["packed_lut", "matmul"], "K": [10, 10]}
    )
    fits = html._fits_table(metrics, ["variant", "K"])
    assert list(fits["variant"]) == ["auto (packed_lut)", "matmul"]
    assert list(fits.columns) == ["variant", "K"]  # no column more: the table fits the page


def test_the_report_says_what_an_iteration_costs_as_N_grows():
    text = " ".join(html.scale_section(SCALE, "<img>"))
    assert "fitted K = 100 model of sparse" in text and "N = 1,000,000" in text
    assert "<b>memory</b>: log-log slope of the iteration" in text
    assert "from N = 100,000: 1.000; 200 bytes an image" in text and "<img>" in text
    assert html.scale_section(None, "") == []


def test_skipped_points_are_drawn_as_predictions_not_measurements(drawn):
    ax = drawn("time_vs_N").axes[0]
    first = [line for line in ax.get_lines() if line.get_label() == ARTICLE_FIRST]
    assert list(first[0].get_xdata()) == [100]  # the measured point only
    hollow = [c.get_offsets().tolist() for c in ax.collections if len(c.get_offsets())]
    assert [[1000.0, 12.5]] in hollow  # the skipped point, at its predicted time
    labels = [t.get_text() for t in drawn("time_vs_N").legends[0].get_texts()]
    assert "not timed (over budget): predicted time" in labels


def test_capped_fits_are_labelled_with_their_size(drawn):
    fig = drawn("clustering_vs_K")
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "loops_ndk (100 images, ≤3 it.), capped" in labels
    assert "packed_lut" in labels
    styles = {line.get_label(): line.get_linestyle() for line in fig.axes[0].get_lines()}
    assert styles["packed_lut"] == "-" and styles["loops_ndk (100 images, ≤3 it.), capped"] == "--"


def test_traces_keep_capped_fits_apart(drawn):
    fig = drawn("traces")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == [
        "K = 10, all images",
        "K = 100, all images",
        "K = 10, capped",
        "K = 100, capped",
    ]
    top = {line.get_label() for ax in fig.axes[:2] for line in ax.get_lines()}
    bottom = {line.get_label() for ax in fig.axes[2:] for line in ax.get_lines()}
    assert top == {"packed_lut"} and bottom == {"loops_ndk (100 images, 3 it.)"}


def test_variants_with_identical_fits_are_one_line_named_together(drawn, monkeypatch):
    same = metrics_rows()
    same = same[same["variant"] == "packed_lut"].assign(n_train=10000, n_iter=30)
    extra = pd.concat([same.assign(variant=v) for v in ("matmul", "matmul_fused")])
    metrics = pd.concat([metrics_rows(), extra], ignore_index=True)
    metrics.loc[metrics["variant"] == "loops_ndk", "test_loglik"] = [-120.0, -1400.0]
    base = tables()
    kept = []
    monkeypatch.setattr(figures, "_save", lambda fig, path: kept.append(fig))
    t = Tables(base.timings, PEAKS, metrics, traces_rows(metrics), base.agreement, ARTICLE_FIRST)
    figures.clustering_vs_K(t, None)
    fig = kept[-1]
    labels = [text.get_text() for text in fig.legends[0].get_texts()]
    assert "matmul, matmul_fused (10000 images, ≤30 it.), capped" in labels
    assert not any(label.startswith("matmul_fused") for label in labels)
    loglik = fig.axes[3]
    assert loglik.get_ylim()[0] > -1400  # the outlier does not set the scale...
    notes = [child.get_text() for child in loglik.texts]
    assert "-1400 ↓" in notes  # ...it is marked at the bottom edge with its value


def render_page(tmp_path, timings, second=None) -> str:
    """The whole page from hand-made tables, with a placeholder image for every figure: the
    sparse set with ``timings``, and the dense one (without labels) if ``second``."""
    import matplotlib.pyplot as plt

    png = tmp_path / "blank.png"
    plt.imsave(png, np.zeros((2, 2)))
    t = tables(timings)
    set_figures = {
        name: (png, f"caption of {name}") for name, f in FIGURES.items() if f.scope == "set"
    }
    sections = [section("sparse", t.timings, figures=set_figures, means=[(png, "means")])]
    metrics = t.metrics.assign(dataset="sparse")
    if second is not None:
        sections.append(section("dense", second, labelled=False, figures=set_figures))
        unlabelled = t.metrics.assign(dataset="dense", test_purity=np.nan)
        metrics = pd.concat([metrics, unlabelled], ignore_index=True)
    out = tmp_path / "report.html"
    html.render(
        out,
        sections=sections,
        run_figures={
            name: (png, f"caption of {name}") for name, f in FIGURES.items() if f.scope == "run"
        },
        metrics=metrics,
        agreement=t.agreement,
        baseline=ARTICLE_FIRST,
        config={"timing": {"budget_s": 10}},
    )
    return out.read_text()


def test_a_set_without_labels_says_why_it_has_no_purity(tmp_path):
    page = render_page(tmp_path, grid(), dense_grid())
    dense = page[page.index("<h2 id='set-dense'>") :]
    dense = dense[: dense.index("<h2", 1)]
    assert "This data set has no labels, so purity, NMI and ARI are not measured" in dense
    assert "Best test purity" not in dense and "Best held-out log-likelihood" in dense
    sparse = page[page.index("<h2 id='set-sparse'>") :]
    assert "Best test purity for each K" in sparse[: sparse.index("<h2", 5)]
    assert "speedup over loops_ndk_as_published" not in dense  # not timed there


def test_the_page_says_when_the_articles_point_was_not_timed(tmp_path):
    page = render_page(tmp_path, grid())
    assert "speedup over loops_ndk_as_published" in page  # the headline table is there
    small = grid()
    page = render_page(tmp_path, small[small["N"] != 1000])
    assert "N = 1000 is not in this run's timing grid" in page
    assert "speedup over loops_ndk_as_published" not in page


def test_points_not_timed_are_listed_with_their_reason(tmp_path):
    page = render_page(tmp_path, grid(first_at_article_point="skip:12.5"))
    assert "predicted 12.5 s &gt; budget" in page
