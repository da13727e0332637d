"""The report's figures: each a function from the pipeline's tables to one saved PNG.

:data:`FIGURES` lists them, in the report's order, with the report category each belongs to
and its scope: drawn for each data set from that set's tables, or once for the run (the
article's speedup on the first set, the agreement of the variants, the comparison of the
sets). The Snakemake rules, the figure script and the HTML page all read that one list, and
each figure's caption is ``workflow/report/<name>.rst``. The functions never recompute a result:
they draw what the tables hold. Figures are 10 inches wide at most (1100 px at 110 dpi, the
report page's width), so they are shown at full size.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import pandas as pd

from ..estep import ARTICLE_FINAL, ARTICLE_FIRST, VARIANTS
from ..timing import BARE_PRODUCT, summarise

#: The article's published timings (N = 1000, K = 10, D = 784), by our name for its code.
ARTICLE_SECONDS = {ARTICLE_FIRST: 11.688, ARTICLE_FINAL: 0.012}
#: The article's point: the N and K of its published timings.
ARTICLE_N, ARTICLE_K = 1000, 10

DPI = 110
WIDTH = 10.0  # inches: the report page's width at DPI


@dataclass
class Tables:
    """Everything a figure may draw from, as the pipeline wrote it: one data set's tables
    (a figure of scope "set"), or every set's timings with the agreement (scope "run")."""

    timings: pd.DataFrame
    peaks: dict[str, float]  # same-run GEMM peak GFLOP/s by dtype name
    metrics: pd.DataFrame | None
    traces: pd.DataFrame | None
    agreement: pd.DataFrame | None
    baseline: str  # the variant speedups are measured against
    #: data set -> its ink (bmm.storage.ink) and title, in the run's order (scope "run")
    sets: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: one EM iteration's cost and memory against N (bmm.scale; scope "run")
    scale: pd.DataFrame | None = None
    summary: pd.DataFrame = field(init=False)  # timings summarised per (variant, N, K)

    def __post_init__(self):
        self.summary = summarise(self.timings)

    @property
    def first(self) -> pd.DataFrame:
        """The first data set's timings (all of them, when the table holds one set)."""
        if not self.sets or "dataset" not in self.timings:
            return self.timings
        return self.timings[self.timings["dataset"] == next(iter(self.sets))]


# ---------------------------------------------------------------------------------------
# Shared drawing helpers


def _style(variant: str) -> dict[str, Any]:
    if variant == BARE_PRODUCT:  # the yardstick, not an E-step
        return {"color": "k", "marker": "", "linestyle": ":", "markersize": 4}
    order = list(VARIANTS)
    i = order.index(variant) if variant in order else len(order)
    unstable = variant in VARIANTS and not VARIANTS[variant].stable
    return {
        "color": plt.get_cmap("tab20")(i % 20),
        "marker": "osD^vP*Xhp<>"[i % 12],
        "linestyle": "--" if unstable else "-",
        "markersize": 4,
    }


def _ordered(variants) -> list[str]:
    order = [*VARIANTS, BARE_PRODUCT]
    return sorted(set(variants), key=lambda v: order.index(v) if v in order else 99)


def _log_axes(ax, xlabel: str, ylabel: str, title: str, y: bool = True) -> None:
    ax.set_xscale("log")
    if y:
        ax.set_yscale("log")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(True, which="both", alpha=0.3)


def _legend_below(fig, axes, ncol: int = 4) -> None:
    """One legend for the figure, below the panels, so it never covers a line."""
    handles, labels = {}, []
    for ax in np.ravel(axes):
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in handles:
                handles[label] = h
                labels.append(label)
    if labels:
        fig.legend(
            [handles[k] for k in labels],
            labels,
            loc="lower center",
            ncol=ncol,
            fontsize=8,
            frameon=False,
        )


def _save(fig, path) -> None:
    """Lay the panels out above the figure's legend (if any), exactly as tall as it is."""
    bottom = 0.0
    if fig.legends:
        fig.canvas.draw()
        bottom = fig.legends[0].get_window_extent().height / fig.bbox.height + 0.01
    fig.tight_layout(rect=(0, bottom, 1, 1))
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def _K_axis(ax, Ks) -> None:
    """A log-scaled K axis ticked at the K values themselves (10, 20, 50, 100), not 10^x."""
    ax.set_xscale("log")
    ax.set_xticks(sorted(Ks), [str(k) for k in sorted(Ks)])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())


def focus_K(timings: pd.DataFrame) -> int:
    """The K the single-K figures show: the article's 10 if timed, else the smallest."""
    Ks = sorted(timings["K"].unique())
    return ARTICLE_K if ARTICLE_K in Ks else int(Ks[0])


def _predicted(t: Tables, K: int) -> pd.DataFrame:
    """Points skipped for the budget, with their predicted seconds, at K."""
    s = t.timings
    return s[(s["status"] == "skipped") & (s["K"] == K) & s["predicted_s"].notna()]


# ---------------------------------------------------------------------------------------
# Speed


def time_vs_N(t: Tables, path) -> None:
    """E-step seconds against N (log–log), median with min–max band, one line per variant;
    points skipped for the budget as hollow markers at their predicted time; the article's
    two published timings as black stars."""
    K = focus_K(t.timings)
    s = t.summary[t.summary["K"] == K]
    pred = _predicted(t, K)
    fig, ax = plt.subplots(figsize=(WIDTH, 6.2))
    for v in _ordered(t.timings["variant"]):
        d = s[s["variant"] == v].sort_values("N")
        st = _style(v)
        if len(d):
            ax.plot(d["N"], d["median_s"], label=v, **st)
            ax.fill_between(d["N"], d["min_s"], d["max_s"], color=st["color"], alpha=0.2)
        p = pred[pred["variant"] == v]
        if len(p):
            ax.scatter(
                p["N"],
                p["predicted_s"],
                marker=st["marker"],
                facecolors="none",
                edgecolors=st["color"],
                s=22,
                linewidths=0.8,
            )
    if K == ARTICLE_K and ARTICLE_FIRST in set(t.timings["variant"]):  # the article's data
        for v, sec in ARTICLE_SECONDS.items():
            ax.scatter(
                [ARTICLE_N],
                [sec],
                marker="*",
                s=140,
                color="k",
                zorder=5,
                label=f"article, published: {v} {sec:g} s",
            )
    ax.scatter(
        [],
        [],
        marker="o",
        facecolors="none",
        edgecolors="gray",
        label="not timed (over budget): predicted time",
    )
    _log_axes(
        ax,
        "N (images, log scale)",
        "E-step time (s, log scale)",
        f"E-step time against N (K = {K}, D = {int(t.timings['D'].iloc[0])})",
    )
    _legend_below(fig, ax, ncol=3)
    _save(fig, path)


def _speedup_lines(ax, s: pd.DataFrame, over: str, xcol: str) -> None:
    base = s[s["variant"] == over].set_index(xcol)["median_s"]
    for v in _ordered(s["variant"]):
        if v == over:
            continue
        d = s[s["variant"] == v].set_index(xcol)["median_s"]
        common = d.index.intersection(base.index).sort_values()
        if len(common):
            ax.plot(common, base[common] / d[common], label=v, **_style(v))
    ax.axhline(1.0, color="k", lw=0.8)


def speedup(t: Tables, path) -> None:
    """Speedup over the baseline (the article's attempt 1 as published, by default) against N,
    where both were timed in the same run, on the first data set (the only one every variant
    is timed on); the article's own ratio as a dotted line."""
    first = t.first
    K = focus_K(first)
    s = summarise(first)
    s = s[s["K"] == K]
    fig, ax = plt.subplots(figsize=(WIDTH, 5.8))
    _speedup_lines(ax, s, t.baseline, "N")
    if K == ARTICLE_K and t.baseline == ARTICLE_FIRST:
        ratio = ARTICLE_SECONDS[ARTICLE_FIRST] / ARTICLE_SECONDS[ARTICLE_FINAL]
        ax.axhline(
            ratio,
            color="k",
            lw=1,
            ls=":",
            label=f"article: ×{ratio:.0f} (attempt 4 over 1, N = 1000)",
        )
    where = f" on {next(iter(t.sets.values()))['title']}" if t.sets else ""
    _log_axes(
        ax,
        "N (images, log scale)",
        f"speedup over {t.baseline} (×, log scale)",
        f"Speedup over {t.baseline} (K = {K}){where}, where both were timed",
    )
    _legend_below(fig, ax, ncol=3)
    _save(fig, path)


def speedup_vs_article(t: Tables, path) -> None:
    """Speedup over the article's final three lines as published, against N (at K = 10) and
    against K (at the largest N), over the whole grid: the gain beyond the article."""
    K = focus_K(t.timings)
    s = t.summary
    N_max = int(s["N"].max())
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 5.2))
    _speedup_lines(axes[0], s[s["K"] == K], ARTICLE_FINAL, "N")
    _log_axes(
        axes[0],
        "N (images, log scale)",
        f"speedup over {ARTICLE_FINAL} (×, log scale)",
        f"against N (K = {K})",
    )
    _speedup_lines(axes[1], s[s["N"] == N_max], ARTICLE_FINAL, "K")
    _log_axes(
        axes[1],
        "K (components, log scale)",
        f"speedup over {ARTICLE_FINAL} (×, log)",
        f"against K (N = {N_max})",
    )
    fig.suptitle("Speedup over the article's final three lines, as published", fontsize=11)
    _legend_below(fig, axes, ncol=4)
    _save(fig, path)


def time_vs_K(t: Tables, path) -> None:
    """E-step seconds against K at the article's N and at the largest N."""
    s = t.summary
    Ns = sorted(s["N"].unique())
    picks = sorted({n for n in (ARTICLE_N, max(Ns)) if n in Ns}) or Ns[-1:]
    fig, axes = plt.subplots(1, len(picks), figsize=(WIDTH, 5.2), squeeze=False)
    for ax, N in zip(axes[0], picks, strict=True):
        d = s[s["N"] == N]
        for v in _ordered(d["variant"]):
            e = d[d["variant"] == v].sort_values("K")
            ax.plot(e["K"], e["median_s"], label=v, **_style(v))
        _log_axes(ax, "K (components, log scale)", "E-step time (s, log scale)", f"N = {N}")
        _K_axis(ax, s["K"].unique())
    fig.suptitle("E-step time against K", fontsize=11)
    _legend_below(fig, axes, ncol=4)
    _save(fig, path)


def efficiency(t: Tables, path) -> None:
    """Effective GFLOP/s (2·N·K·D a call) over the same run's GEMM peak in the same precision,
    at the smallest and the largest K."""
    s = t.summary
    Ks = sorted(s["K"].unique())
    picks = sorted({Ks[0], Ks[-1]})
    fig, axes = plt.subplots(1, len(picks), figsize=(WIDTH, 5.2), squeeze=False, sharey=True)
    for ax, K in zip(axes[0], picks, strict=True):
        d = s[s["K"] == K]
        for v in _ordered(d["variant"]):
            e = d[d["variant"] == v].sort_values("N")
            peak = t.peaks.get(str(e["dtype"].iloc[0]), t.peaks.get("float64"))
            ax.plot(e["N"], e["effective_gflops"] / peak, label=v, **_style(v))
        ax.axhline(1.0, color="k", lw=0.8, ls=":")
        _log_axes(ax, "N (images, log scale)", "fraction of GEMM peak (log scale)", f"K = {K}")
    peaks = ", ".join(f"{dt} {t.peaks[dt]:.0f}" for dt in sorted(t.peaks))
    fig.suptitle(f"Effective speed over the same run's GEMM peak ({peaks} GFLOP/s)", fontsize=11)
    _legend_below(fig, axes, ncol=4)
    _save(fig, path)


# ---------------------------------------------------------------------------------------
# Clusters


def fit_label(row) -> str:
    """A fit's name in a legend: its variant, and its training size and iterations if capped."""
    return f"{row['variant']} ({row['n_train']} images, {row['n_iter']} it.)"


def full_data(metrics: pd.DataFrame) -> pd.Series:
    """True for the fits that trained on every training image the run has."""
    return metrics["n_train"] == metrics["n_train"].max()


def clustering_vs_K(t: Tables, path) -> None:
    """Test purity, NMI, ARI and log-likelihood per image against K. Fits on every training
    image are solid lines; fits capped to fewer images (and iterations) are dashed and
    labelled with their training size, so a reader does not mistake a cap for a variant's
    quality. Variants whose fits gave the same numbers at every K (same data and iterations:
    they agree, see the agreement figure) are one line, named together. The held-out
    log-likelihood puts fits of every size on one scale; a value far below the others is
    drawn at the bottom edge with its value, so it does not squash the rest."""
    cols = {
        "test_purity": "Test purity",
        "test_nmi": "Test NMI",
        "test_ari": "Test ARI",
        "test_loglik": "Test log-likelihood per image (nats)",
    }
    m = t.metrics.groupby(["variant", "K"], as_index=False).agg(
        **{c: (c, "mean") for c in cols}, n_train=("n_train", "max"), n_iter=("n_iter", "max")
    )
    m["full"] = full_data(m)
    groups: dict[tuple, list[str]] = {}
    for v in _ordered(m["variant"]):
        d = m[m["variant"] == v].sort_values("K")
        key = (tuple(d["K"]), tuple(d["n_train"]), tuple(np.round(d[list(cols)], 6).values.ravel()))
        groups.setdefault(key, []).append(v)
    fig, axes = plt.subplots(2, 2, figsize=(WIDTH, 8.0))
    for ax, (col, title) in zip(axes.ravel(), cols.items(), strict=True):
        for names in groups.values():
            d = m[m["variant"] == names[0]].sort_values("K")
            full = bool(d["full"].all())
            label = ", ".join(names)
            if not full:
                label += f" ({d['n_train'].max()} images, ≤{d['n_iter'].max()} it.), capped"
            st = _style(names[0])
            ax.plot(
                d["K"],
                d[col],
                label=label,
                color=st["color"],
                marker=st["marker"],
                markersize=4,
                linestyle="-" if full else "--",
            )
        _K_axis(ax, m["K"].unique())
        ax.set(xlabel="K (components, log scale)", ylabel=title.split(" per ")[0], title=title)
        ax.grid(True, alpha=0.3)
        if m[col].isna().all():  # data without labels: nothing to compare clusters with
            ax.text(
                0.5,
                0.5,
                "not measured:\nthis data set has no labels",
                transform=ax.transAxes,
                ha="center",
                va="center",
                color="0.4",
            )
    _clip_outliers(axes[1][1], m["test_loglik"], m.loc[m["n_train"] >= 1000, "test_loglik"])
    fig.suptitle("Clustering quality on the test images against K", fontsize=11)
    _legend_below(fig, axes, ncol=2)
    _save(fig, path)


def _clip_outliers(ax, values: pd.Series, typical: pd.Series) -> None:
    """Limit the y axis to the typical values' range (with a margin); mark the values below
    it at the bottom edge, with their value, instead of letting one squash the others."""
    typical = typical if len(typical) else values
    lo, hi = typical.min(), typical.max()
    floor = lo - 0.5 * max(hi - lo, 1.0)
    if values.min() >= floor:
        return
    ax.set_ylim(floor, hi + 0.1 * (hi - lo + 1.0))
    marked: dict[float, int] = {}  # x -> values marked there, stacked so none overlap
    for line in ax.get_lines():
        x, y = line.get_xdata(), line.get_ydata()
        for xi, yi in zip(x, y, strict=True):
            if yi < floor:
                above = marked.get(xi, 0)
                marked[xi] = above + 1
                ax.annotate(
                    f"{yi:.0f} ↓",
                    (xi, floor),
                    xytext=(0, 4 + 9 * above),
                    textcoords="offset points",
                    ha="center",
                    fontsize=7,
                    color=line.get_color(),
                )


def traces(t: Tables, path) -> None:
    """Training log-likelihood per image against EM iteration, one panel per K: fits on every
    training image in the top row; capped fits (each on its own smaller subset, so not
    comparable with the top row) below, labelled with their size."""
    m = t.metrics[["variant", "K", "seed", "n_train", "n_iter"]]
    tr = t.traces.merge(m, on=["variant", "K", "seed"], how="left")
    tr = tr[tr["iteration"] >= 1]  # the random start sits far below; leave it out
    full = tr["n_train"] == m["n_train"].max()
    Ks = sorted(tr["K"].unique())
    fig, axes = plt.subplots(2, len(Ks), figsize=(WIDTH, 6.6), squeeze=False)
    for row, (subset, title) in enumerate(((tr[full], "all images"), (tr[~full], "capped"))):
        for ax, K in zip(axes[row], Ks, strict=True):
            d = subset[subset["K"] == K]
            for (v, seed), e in d.groupby(["variant", "seed"], sort=False):
                label = v if row == 0 else fit_label(e.iloc[0])
                label += f", seed {seed}" if seed else ""
                ax.plot(
                    e["iteration"],
                    e["loglik"],
                    color=_style(v)["color"],
                    marker=".",
                    markersize=3,
                    label=label,
                )
            ax.set_xscale("log")
            ax.set(title=f"K = {K}, {title}", xlabel="EM iteration (log scale)")
            ax.grid(True, alpha=0.3)
            ax.tick_params(labelsize=7)
        axes[row][0].set_ylabel("log-likelihood per image")
    fig.suptitle("EM convergence: training log-likelihood per image", fontsize=11)
    _legend_below(fig, axes, ncol=3)
    _save(fig, path)


def bits_vs_ink(t: Tables, path) -> None:
    """Where the bits win: on each data set, at the largest N, the bit-packed E-step's time
    and the bare float32 product's against K (left), and their ratio (right); each set named
    with its ink, the pixels on and the non-zero nibbles an image (the packed E-step adds one
    table row per non-zero nibble, the product multiplies every pixel)."""
    s = t.summary
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 5.0))
    colors = plt.get_cmap("tab10")
    for i, (name, info) in enumerate(t.sets.items()):
        d = s[s["dataset"] == name] if "dataset" in s else s
        if d.empty:
            continue
        N = int(d["N"].max())
        d = d[d["N"] == N]
        lut = d[d["variant"] == "packed_lut"].set_index("K")["median_s"]
        bare = d[d["variant"] == BARE_PRODUCT].set_index("K")["median_s"]
        label = (
            f"{info['title']} ({100 * info['pixels_on']:.0f}% on, "
            f"{info['nonzero_nibbles']:.0f} nibbles an image; N = {N})"
        )
        c = colors(i % 10)
        axes[0].plot(lut.index, lut, color=c, marker="o", markersize=4, label=label)
        axes[0].plot(bare.index, bare, color=c, linestyle=":", marker="x", markersize=4)
        common = lut.index.intersection(bare.index).sort_values()
        axes[1].plot(common, lut[common] / bare[common], color=c, marker="o", markersize=4)
    axes[0].plot([], [], color="0.3", marker="o", markersize=4, label="packed_lut (solid)")
    axes[0].plot([], [], color="0.3", linestyle=":", marker="x", label="X @ W, float32 (dotted)")
    _log_axes(axes[0], "K (components, log scale)", "seconds (log scale)", "E-step time")
    axes[1].axhline(1.0, color="k", lw=0.8)
    _log_axes(
        axes[1],
        "K (components, log scale)",
        "packed_lut ÷ X @ W (log scale)",
        "below 1: the bits beat the bare product",
    )
    for which in (axes[1].yaxis.set_major_formatter, axes[1].yaxis.set_minor_formatter):
        which(matplotlib.ticker.FormatStrFormatter("%g"))  # 0.3, not 3×10⁻¹
    for ax in axes:
        _K_axis(ax, s["K"].unique())
    fig.suptitle(
        "The bit-packed E-step against the bare float32 product, per data set", fontsize=11
    )
    _legend_below(fig, axes[:1], ncol=2)
    _save(fig, path)


def scale(t: Tables, path) -> None:
    """One EM iteration's seconds (and the E-step's, dashed) and the peak resident memory
    against N, log-log, one colour per way of holding the rows; each line labelled with its
    fitted slope (time) or the bytes each image adds (memory)."""
    from ..scale import bytes_per_image, slope, slope_from

    table = t.scale.sort_values("N")
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 5.0))
    colors = plt.get_cmap("tab10")
    for i, (mode, d) in enumerate(table.groupby("mode", sort=False)):
        c = colors(i % 10)
        n_from = slope_from(d)
        fitted = slope(d, "iteration_s", n_from) if len(d) >= 2 else float("nan")
        axes[0].plot(
            d["N"],
            d["iteration_s"],
            color=c,
            marker="o",
            markersize=4,
            label=f"{mode}: an EM iteration (slope {fitted:.2f} from N = {n_from:,})",
        )
        estep = d.dropna(subset=["estep_s"])
        if len(estep):
            axes[0].plot(
                estep["N"],
                estep["estep_s"],
                color=c,
                linestyle="--",
                marker="x",
                markersize=4,
                label=f"{mode}: the E-step alone",
            )
        per_image = bytes_per_image(d) if len(d) >= 2 else float("nan")
        growth = "flat" if per_image < 0.5 else f"{per_image:.0f} bytes an image"
        axes[1].plot(
            d["N"],
            d["peak_rss_mib"],
            color=c,
            marker="o",
            markersize=4,
            label=f"{mode}: peak memory ({growth})",
        )
    K, D = int(table["K"].iloc[0]), int(table["D"].iloc[0])
    _log_axes(axes[0], "N (images, log scale)", "seconds (log scale)", "Time")
    _log_axes(axes[1], "N (images, log scale)", "peak resident MiB (log scale)", "Memory")
    for which in (axes[1].yaxis.set_major_formatter, axes[1].yaxis.set_minor_formatter):
        which(matplotlib.ticker.FormatStrFormatter("%g"))  # 300 MiB, not 3×10²
    fig.suptitle(
        f"One EM iteration against N: K = {K}, D = {D}, rows drawn from a fitted model",
        fontsize=11,
    )
    _legend_below(fig, axes, ncol=2)
    _save(fig, path)


def agreement(t: Tables, path) -> None:
    """Max |Δμ| and |Δπ| of each variant's fit against the reference's, log scale."""
    table = t.agreement.set_index("variant").loc[_ordered(t.agreement["variant"])]
    ref = table["reference"].iloc[0]
    table = table.drop(index=ref)
    floor = 1e-17  # identical results (0) are drawn at this floor
    fig, ax = plt.subplots(figsize=(WIDTH, 0.45 * len(table) + 1.6))
    y = np.arange(len(table))
    ax.barh(y - 0.2, np.maximum(table["max_abs_diff_mu"], floor), height=0.4, label="max |Δμ|")
    ax.barh(y + 0.2, np.maximum(table["max_abs_diff_pi"], floor), height=0.4, label="max |Δπ|")
    ax.set_yticks(y, table.index)
    ax.set_xscale("log")
    ax.set(
        xlabel=f"largest difference from {ref} (log scale; 0 drawn at {floor:g})",
        title=f"Agreement of the fits on the shared subset, against {ref}",
    )
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    _save(fig, path)


@dataclass(frozen=True)
class Figure:
    """One figure of the report: how to draw it, and where it goes."""

    name: str
    category: str  # the section of the report (and of `snakemake --report`)
    draw: Callable[[Tables, Any], None]
    scope: str = "set"  # "set": one per data set, from its tables; "run": one for the run


#: Every figure drawn from the tables, in the report's order.
FIGURES: dict[str, Figure] = {
    f.name: f
    for f in (
        Figure("bits_vs_ink", "Comparison", bits_vs_ink, "run"),
        Figure("speedup", "Speed", speedup, "run"),
        Figure("time_vs_N", "Speed", time_vs_N),
        Figure("speedup_vs_article", "Speed", speedup_vs_article),
        Figure("time_vs_K", "Speed", time_vs_K),
        Figure("efficiency", "Speed", efficiency),
        Figure("clustering_vs_K", "Clusters", clustering_vs_K),
        Figure("traces", "Clusters", traces),
        Figure("agreement", "Agreement", agreement, "run"),
        Figure("scale", "Scale", scale, "run"),
    )
}


def cluster_means(
    pi: np.ndarray,
    mu: np.ndarray,
    path,
    labels: dict[int, str] | None = None,
    title: str = "",
    degenerate: np.ndarray | None = None,
    image_shape: tuple[int, ...] | None = None,
) -> None:
    """Each component's mean image, ordered by weight, with π_k (and majority label).

    ``degenerate`` (a bool per component) marks the components that explain next to no
    image: a red frame and "degenerate" in red in their title. ``image_shape`` (rows,
    columns) is the shape of one image; without one (the features are not an image) the
    means are drawn as a K×D heat map instead (:func:`means_heat_map`).
    """
    if image_shape is None or len(image_shape) != 2:
        means_heat_map(pi, mu, path, labels, title, degenerate)
        return
    K = len(pi)
    order = np.argsort(-pi)
    cols = min(10, K)
    rows = math.ceil(K / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.0 * cols, 1.25 * rows + 0.5), squeeze=False)
    for ax, k in zip(axes.ravel(), order, strict=False):
        ax.imshow(mu[k].reshape(image_shape), cmap="gray_r", vmin=0, vmax=1)
        label = f" '{labels[k]}'" if labels and k in labels else ""
        if degenerate is not None and degenerate[k]:
            ax.set_title(f"degenerate\nπ={pi[k]:.2g}{label}", fontsize=7, color="red")
            for spine in ax.spines.values():
                spine.set(color="red", linewidth=2.5)
        else:
            ax.set_title(f"π={_weight(pi[k])}{label}", fontsize=7)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes.ravel()[K:]:
        ax.axis("off")
    fig.suptitle(title or f"Cluster means, K={K}", fontsize=10)
    _save(fig, path)


def _weight(p: float) -> str:
    """π_k as a title shows it: 0.185; a small one not as 0.000 but 4e-04."""
    return f"{p:.3f}" if p >= 0.001 or p == 0 else f"{p:.0e}"


def means_heat_map(
    pi: np.ndarray,
    mu: np.ndarray,
    path,
    labels: dict[int, str] | None = None,
    title: str = "",
    degenerate: np.ndarray | None = None,
) -> None:
    """The K×D means as one heat map, a row per component ordered by weight, labelled with
    π_k (and the majority label); degenerate components' labels in red."""
    K, D = mu.shape
    order = np.argsort(-pi)
    fig, ax = plt.subplots(figsize=(WIDTH, min(0.22 * K + 1.6, 14)))
    image = ax.imshow(
        mu[order], cmap="gray_r", vmin=0, vmax=1, aspect="auto", interpolation="nearest"
    )
    names = []
    for k in order:
        name = f"π={_weight(pi[k])}" + (f" '{labels[k]}'" if labels and k in labels else "")
        names.append(("degenerate " if degenerate is not None and degenerate[k] else "") + name)
    ax.set_yticks(np.arange(K), names, fontsize=max(4, min(8, 400 // K)))
    if degenerate is not None:
        for tick, k in zip(ax.get_yticklabels(), order, strict=True):
            if degenerate[k]:
                tick.set_color("red")
    ax.set_xlabel(f"feature (D = {D})")
    fig.colorbar(image, ax=ax, label="μ (probability the feature is 1)", fraction=0.03)
    ax.set_title(title or f"Cluster means, K={K}", fontsize=10)
    _save(fig, path)
