"""The report's figures, each a function from tables to a saved image.

Every function takes the pipeline's tables (pandas DataFrames as written to Parquet) and a
path, draws one figure and saves it (PNG at 110 dpi). They never recompute results.
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..estep import VARIANTS
from ..timing import summarise

#: The article's two published timings (N=1000, K=10, D=784).
ARTICLE = {"loops_ndk": 11.688, "matmul": 0.012}

DPI = 110


def _style(variant: str) -> dict:
    order = list(VARIANTS)
    i = order.index(variant) if variant in order else len(order)
    cmap = plt.get_cmap("tab10")
    return {
        "color": cmap(i % 10),
        "marker": "osD^vP*Xh"[i % 9],
        "linestyle": "--" if not VARIANTS.get(variant, VARIANTS["matmul"]).stable else "-",
    }


def _ordered(variants) -> list[str]:
    order = list(VARIANTS)
    return sorted(set(variants), key=lambda v: order.index(v) if v in order else 99)


def _save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def focus_K(timings: pd.DataFrame) -> int:
    """The K the single-K figures show: the article's 10 if timed, else the smallest."""
    Ks = sorted(timings["K"].unique())
    return 10 if 10 in Ks else int(Ks[0])


def time_vs_N(timings: pd.DataFrame, path, K: int | None = None) -> None:
    """E-step seconds against N (log–log), median with min–max band, one line per variant."""
    K = K or focus_K(timings)
    s = summarise(timings)
    s = s[s["K"] == K]
    skipped = timings[(timings["status"] == "skipped") & (timings["K"] == K)]
    fig, ax = plt.subplots(figsize=(8, 5.2))
    for v in _ordered(timings["variant"]):
        d = s[s["variant"] == v].sort_values("N")
        st = _style(v)
        if len(d):
            ax.plot(d["N"], d["median_s"], label=v, color=st["color"], marker=st["marker"],
                    linestyle=st["linestyle"], markersize=4)  # fmt: skip
            ax.fill_between(d["N"], d["min_s"], d["max_s"], color=st["color"], alpha=0.2)
        p = skipped[(skipped["variant"] == v) & skipped["predicted_s"].notna()]
        if len(p):
            ax.scatter(p["N"], p["predicted_s"], marker="x", color=st["color"], alpha=0.6, s=18)
    if K == 10:
        for v, t in ARTICLE.items():
            ax.scatter([1000], [t], s=120, facecolors="none", edgecolors="k", linewidths=1.5)
            ax.annotate(f"article: {v} {t:g} s", (1000, t), textcoords="offset points",
                        xytext=(8, 4), fontsize=8)  # fmt: skip
    ax.set(xscale="log", yscale="log", xlabel="N (images)", ylabel="E-step time (s)",
           title=f"E-step time against N (K={K}, D=784); × = skipped, predicted time")  # fmt: skip
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    _save(fig, path)


def speedup(timings: pd.DataFrame, path, baseline: str, K: int | None = None) -> None:
    """Speedup over the baseline variant against N, measured side by side in one run."""
    K = K or focus_K(timings)
    s = summarise(timings)
    s = s[s["K"] == K]
    base = s[s["variant"] == baseline].set_index("N")["median_s"]
    fig, ax = plt.subplots(figsize=(8, 5.2))
    for v in _ordered(s["variant"]):
        if v == baseline:
            continue
        d = s[s["variant"] == v].set_index("N")["median_s"]
        common = d.index.intersection(base.index).sort_values()
        if len(common):
            st = _style(v)
            ax.plot(common, base[common] / d[common], label=v, color=st["color"],
                    marker=st["marker"], linestyle=st["linestyle"], markersize=4)  # fmt: skip
    if K == 10 and baseline == "loops_ndk":
        ratio = ARTICLE["loops_ndk"] / ARTICLE["matmul"]
        ax.axhline(ratio, color="k", lw=0.8, ls=":")
        ax.text(0.01, ratio, f" article: ×{ratio:.0f} at N=1000", va="bottom", fontsize=8,
                transform=ax.get_yaxis_transform())  # fmt: skip
    ax.set(xscale="log", yscale="log", xlabel="N (images)",
           ylabel=f"speedup over {baseline} (×)",
           title=f"Speedup over {baseline} (K={K}); only where {baseline} was timed")  # fmt: skip
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    _save(fig, path)


def time_vs_K(timings: pd.DataFrame, path) -> None:
    """E-step seconds against K at a few N, one line per variant."""
    s = summarise(timings)
    Ns = sorted(s["N"].unique())
    picks = [n for n in (1000, max(Ns)) if n in Ns] or Ns[-1:]
    picks = sorted(set(picks))
    fig, axes = plt.subplots(1, len(picks), figsize=(6 * len(picks), 4.6), squeeze=False)
    for ax, N in zip(axes[0], picks, strict=True):
        d = s[s["N"] == N]
        for v in _ordered(d["variant"]):
            e = d[d["variant"] == v].sort_values("K")
            st = _style(v)
            ax.plot(e["K"], e["median_s"], label=v, color=st["color"], marker=st["marker"],
                    linestyle=st["linestyle"], markersize=4)  # fmt: skip
        ax.set(xscale="log", yscale="log", xlabel="K (components)", ylabel="E-step time (s)",
               title=f"E-step time against K (N={N})")  # fmt: skip
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    _save(fig, path)


def efficiency(timings: pd.DataFrame, peaks: dict[str, float], path) -> None:
    """Effective GFLOP/s (2·N·K·D per E-step) as a fraction of the same-run GEMM peak."""
    s = summarise(timings)
    Ks = sorted(s["K"].unique())
    picks = sorted({Ks[0], Ks[-1]})
    fig, axes = plt.subplots(1, len(picks), figsize=(6 * len(picks), 4.6), squeeze=False)
    for ax, K in zip(axes[0], picks, strict=True):
        d = s[s["K"] == K]
        for v in _ordered(d["variant"]):
            e = d[d["variant"] == v].sort_values("N")
            peak = peaks.get(str(e["dtype"].iloc[0]), peaks.get("float64"))
            st = _style(v)
            ax.plot(e["N"], e["effective_gflops"] / peak, label=v, color=st["color"],
                    marker=st["marker"], linestyle=st["linestyle"], markersize=4)  # fmt: skip
        ax.set(xscale="log", yscale="log", xlabel="N (images)",
               ylabel="fraction of GEMM peak (same dtype)",
               title=f"Efficiency (K={K}); peak float64 {peaks.get('float64', math.nan):.0f}, "
                     f"float32 {peaks.get('float32', math.nan):.0f} GFLOP/s")  # fmt: skip
        ax.axhline(1.0, color="k", lw=0.8, ls=":")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    _save(fig, path)


def clustering_vs_K(metrics: pd.DataFrame, path) -> None:
    """Test purity, NMI and ARI against K, one line per variant (mean over seeds)."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    g = metrics.groupby(["variant", "K"], as_index=False)[["test_purity", "test_nmi", "test_ari"]]
    m = g.mean()
    for ax, col, name in zip(axes, ("test_purity", "test_nmi", "test_ari"),
                             ("purity", "NMI", "ARI"), strict=True):  # fmt: skip
        for v in _ordered(m["variant"]):
            d = m[m["variant"] == v].sort_values("K")
            st = _style(v)
            ax.plot(d["K"], d[col], label=v, color=st["color"], marker=st["marker"], markersize=4)
        ax.set(xlabel="K (components)", ylabel=f"test {name}", title=f"Test {name} against K",
               xscale="log")  # fmt: skip
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8)
    _save(fig, path)


def traces(traces: pd.DataFrame, path) -> None:
    """Log-likelihood per image against EM iteration (log scale, from the first M-step), one
    panel per K, a line per fit."""
    Ks = sorted(traces["K"].unique())
    cols = min(4, len(Ks))
    rows = math.ceil(len(Ks) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.6 * rows), squeeze=False)
    for ax, K in zip(axes.ravel(), Ks, strict=False):
        d = traces[traces["K"] == K]
        for (v, seed), e in d.groupby(["variant", "seed"]):
            st = _style(v)
            e = e[e["iteration"] >= 1]  # the random start sits far below; leave it out
            ax.plot(e["iteration"], e["loglik"], color=st["color"], marker=".", markersize=3,
                    label=f"{v}" + (f" s{seed}" if seed else ""))  # fmt: skip
        ax.set(title=f"K={K}", xlabel="EM iteration (from 1)", ylabel="log-likelihood per image",
               xscale="log")  # fmt: skip
        ax.grid(True, alpha=0.3)
    for ax in axes.ravel()[len(Ks) :]:
        ax.axis("off")
    axes[0][0].legend(fontsize=7)
    _save(fig, path)


def agreement(table: pd.DataFrame, path) -> None:
    """Max |Δμ| and |Δπ| of each variant's fit against the reference's, log scale."""
    t = table.set_index("variant").loc[_ordered(table["variant"])]
    ref = t["reference"].iloc[0]
    t = t.drop(index=ref)
    floor = 1e-17  # identical results (0) are drawn at this floor
    fig, ax = plt.subplots(figsize=(8, 4))
    y = np.arange(len(t))
    ax.barh(y - 0.2, np.maximum(t["max_abs_diff_mu"], floor), height=0.4, label="max |Δμ|")
    ax.barh(y + 0.2, np.maximum(t["max_abs_diff_pi"], floor), height=0.4, label="max |Δπ|")
    ax.set_yticks(y, t.index)
    ax.set(xscale="log", xlabel=f"difference from {ref} (0 drawn at {floor:g})",
           title=f"Agreement of the fits on the shared subset, against {ref}")  # fmt: skip
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)


def cluster_means(
    pi: np.ndarray,
    mu: np.ndarray,
    path,
    labels: dict[int, int] | None = None,
    title: str = "",
    degenerate: np.ndarray | None = None,
) -> None:
    """Each component's mean image, ordered by weight, with π_k (and majority label).

    ``degenerate`` (a bool per component) marks the components that explain next to no
    image: a red frame and "degenerate" in red in their title.
    """
    K = len(pi)
    order = np.argsort(-pi)
    cols = min(10, K)
    rows = math.ceil(K / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.25 * cols, 1.45 * rows + 0.5), squeeze=False)
    side = math.isqrt(mu.shape[1])
    for ax, k in zip(axes.ravel(), order, strict=False):
        ax.imshow(mu[k].reshape(side, side), cmap="gray_r", vmin=0, vmax=1)
        label = f" '{labels[k]}'" if labels and k in labels else ""
        if degenerate is not None and degenerate[k]:
            ax.set_title(f"degenerate\nπ={pi[k]:.2g}{label}", fontsize=7, color="red")
            for spine in ax.spines.values():
                spine.set(color="red", linewidth=2.5)
        else:
            ax.set_title(f"π={pi[k]:.3f}{label}", fontsize=7)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes.ravel()[K:]:
        ax.axis("off")
    fig.suptitle(title or f"Cluster means, K={K}", fontsize=10)
    _save(fig, path)
