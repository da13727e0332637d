"""The self-contained HTML report: figures embedded as data URIs, readable offline.

One page for the whole run. It opens with a summary generated from the tables
(:func:`summary_html`) and a comparison of the data sets (:func:`comparison`): every number
in them is measured in this run, on this machine. Then a section per data set (its speed, its
clusters, its cluster means), the agreement of the variants, every fit, and the provenance.
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..estep import ARTICLE_FINAL, ARTICLE_FIRST, VARIANTS
from ..timing import BARE_PRODUCT, summarise
from .figures import ARTICLE_K, ARTICLE_N, ARTICLE_SECONDS, FIGURES, full_data

CSS = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; }
h1 { font-size: 1.7em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.92em; }
.summary { background: #f4f8fb; border-left: 4px solid #3b7dd8; padding: 0.8em 1.2em; }
.wide { overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.88em; margin: 1em 0; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.82em; }
.note { color: #555; }
"""

#: The bit-packed variant whose cost the comparison weighs against the bare product.
PACKED = "packed_lut"


@dataclass
class DataSetSection:
    """What the report shows of one data set, as the pipeline wrote it."""

    name: str
    title: str
    about: str
    data: dict[str, Any]  # the metadata of its binarised training table (bmm.storage)
    timings: pd.DataFrame
    timing_meta: dict[str, Any]
    figures: dict[str, tuple[Path, str]] = field(default_factory=dict)  # name -> (png, caption)
    means: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def labelled(self) -> bool:
        return self.data.get("has_labels", True)


def _img(path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img alt="{html.escape(Path(path).stem)}" src="data:image/png;base64,{data}">'


def _figure(path: Path, caption: str) -> str:
    return f"<figure>{_img(path)}<figcaption>{html.escape(caption)}</figcaption></figure>"


def _table(df: pd.DataFrame, floatfmt: str = "{:.4g}") -> str:
    def fmt(x):
        if isinstance(x, float | np.floating):
            return "" if np.isnan(x) else floatfmt.format(x)
        return html.escape(str(x))

    def header(c):  # one word may wrap after an underscore (n_<wbr>degenerate): more columns fit
        text = html.escape(str(c))
        return text if " " in text else text.replace("_", "_<wbr>")

    head = "".join(f"<th>{header(c)}</th>" for c in df.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{fmt(v)}</td>" for v in row) + "</tr>"
        for row in df.itertuples(index=False)
    )
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f"<div class='wide'>{table}</div>"  # a wide table scrolls, the page does not


def _anchor(name: str) -> str:
    return "set-" + "".join(c if c.isalnum() else "-" for c in name)


def headline(timings: pd.DataFrame, baseline: str, N: int = ARTICLE_N, K: int = ARTICLE_K):
    """Each variant's median E-step time at the article's point, and its speedup."""
    s = summarise(timings)
    s = s[(s["N"] == N) & (s["K"] == K)].set_index("variant")
    order = [v for v in VARIANTS if v in s.index]
    s = s.loc[order]
    base = s["median_s"].get(baseline, np.nan)
    return pd.DataFrame(
        {
            "variant": order,
            "article attempt": [VARIANTS[v].attempt for v in order],
            "median (s)": s["median_s"].to_numpy(),
            "min (s)": s["min_s"].to_numpy(),
            "max (s)": s["max_s"].to_numpy(),
            "repeats": s["repeats"].to_numpy(),
            f"speedup over {baseline}": base / s["median_s"].to_numpy(),
            "article (s)": [ARTICLE_SECONDS.get(v, np.nan) for v in order],
        }
    )


def _stable(variant: str) -> bool:
    """A variant that computes a usable E-step (not the article's unstable forms, not the
    bare product)."""
    return variant in VARIANTS and VARIANTS[variant].stable


def _fastest(s: pd.DataFrame, N: int, K: int) -> pd.Series | None:
    """The fastest stable variant's summary row at (N, K), or None if nothing ran there."""
    d = s[(s["N"] == N) & (s["K"] == K) & s["variant"].map(_stable)]
    return None if d.empty else d.loc[d["median_s"].idxmin()]


def _median(s: pd.DataFrame, variant: str, N: int, K: int) -> float:
    d = s[(s["variant"] == variant) & (s["N"] == N) & (s["K"] == K)]
    return float(d["median_s"].iloc[0]) if len(d) else np.nan


def headline_numbers(
    timings: pd.DataFrame, peaks: dict[str, float], metrics: pd.DataFrame
) -> dict[str, Any]:
    """The numbers the summary states of one data set, each read off this run's tables
    (NaN/None if absent): at the article's point, at the largest N for the smallest and the
    largest K (with the bit-packed E-step over the bare product), and the best purity."""
    s = summarise(timings)
    out: dict[str, Any] = {}
    best = _fastest(s, ARTICLE_N, ARTICLE_K)
    first = _median(s, ARTICLE_FIRST, ARTICLE_N, ARTICLE_K)
    out["article_point"] = {
        "fastest": None if best is None else best["variant"],
        "fastest_s": np.nan if best is None else float(best["median_s"]),
        "attempt_1_s": first,
        "speedup": np.nan if best is None else first / float(best["median_s"]),
        "attempt_1_predicted_s": _predicted(timings, ARTICLE_FIRST, ARTICLE_N, ARTICLE_K),
    }
    N = int(s["N"].max())
    out["N_max"] = N
    out["large"] = {}
    for K in sorted({int(s["K"].min()), int(s["K"].max())}):
        row = _fastest(s, N, K)
        if row is None:
            continue
        article = _median(s, ARTICLE_FINAL, N, K)
        out["large"][K] = {
            "fastest": row["variant"],
            "seconds": float(row["median_s"]),
            "article_s": article,
            "speedup": article / float(row["median_s"]),
            "peak_fraction": float(row["effective_gflops"]) / peaks[row["dtype"]],
            "dtype": row["dtype"],
            "packed_over_bare": _median(s, PACKED, N, K) / _median(s, BARE_PRODUCT, N, K),
        }
    full = metrics[full_data(metrics)].dropna(subset=["test_purity"])
    if len(full):
        top = full.loc[full["test_purity"].idxmax()]
        out["best_purity"] = {k: top[k] for k in ("test_purity", "K", "variant", "n_train")}
    return out


def _predicted(timings: pd.DataFrame, variant: str, N: int, K: int) -> float:
    d = timings[(timings["variant"] == variant) & (timings["N"] == N) & (timings["K"] == K)]
    d = d[d["status"] == "skipped"]["predicted_s"]
    return float(d.iloc[0]) if len(d) else np.nan


def best_purity(metrics: pd.DataFrame) -> pd.Series:
    """The best test purity of each K among the fits on every training image (NaN where the
    data have no labels)."""
    full = metrics[full_data(metrics)]
    return full.groupby("K")["test_purity"].max()


def comparison(sections: list[DataSetSection], metrics: pd.DataFrame) -> pd.DataFrame:
    """The data sets side by side, a column each: their ink, the fastest E-step and its
    speedup over the article's three lines at the smallest and largest K on the whole
    training set, the bit-packed E-step over the bare float32 product, and the best test
    purity of each K. Every number from the run's tables; blank where not measured."""
    rows: dict[str, dict[str, str]] = {}

    def put(measure: str, title: str, value: str) -> None:
        rows.setdefault(measure, {})[title] = value

    for sec in sections:
        t = sec.title
        put("pixels on", t, f"{100 * sec.data['pixels_on']:.1f}%")
        put("non-zero nibbles an image", t, f"{sec.data['nonzero_nibbles']:.1f}")
        s = summarise(sec.timings)
        N = int(s["N"].max())
        put("images timed (N, the largest of the grid)", t, str(N))
        for K in sorted({int(s["K"].min()), int(s["K"].max())}):
            row = _fastest(s, N, K)
            fastest = "" if row is None else f"{row['variant']}, {_ms(float(row['median_s']))}"
            put(f"fastest E-step timed, K = {K}", t, fastest)
            article = _median(s, ARTICLE_FINAL, N, K)
            speed = np.nan if row is None else article / float(row["median_s"])
            put(f"its speedup over the article's three lines, K = {K}", t, _times(speed))
            ratio = _median(s, PACKED, N, K) / _median(s, BARE_PRODUCT, N, K)
            put(f"{PACKED} ÷ bare float32 product X @ W, K = {K}", t, _ratio(ratio))
        ms = metrics[metrics["dataset"] == sec.name] if "dataset" in metrics else metrics
        for K, purity in best_purity(ms).items():
            value = (
                "no labels" if not sec.labelled else ("" if np.isnan(purity) else f"{purity:.3f}")
            )
            put(f"best test purity, K = {K}", t, value)
    titles = [sec.title for sec in sections]
    return pd.DataFrame(
        [[measure, *(values.get(t, "") for t in titles)] for measure, values in rows.items()],
        columns=["", *titles],
    )


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms" if seconds < 1 else f"{seconds:.3g} s"


def _times(x: float) -> str:
    return "" if not np.isfinite(x) else f"{x:,.1f}×"


def _ratio(x: float) -> str:
    return "" if not np.isfinite(x) else f"{x:.2f}"


def _count(n: Any, noun: str) -> str:
    """ "1 BLAS thread", "2 BLAS threads", "? BLAS threads" when n is unknown."""
    return f"{n} {noun}" if n == 1 else f"{'?' if n is None else n} {noun}s"


def verdict(ratio: float) -> str:
    """Whether the bits win against the bare product, in words, from their time ratio."""
    if ratio < 0.95:
        return f"the bits win: {PACKED} takes {ratio:.2f}× the product's time"
    if ratio <= 1.05:
        return f"the bits only tie with it ({ratio:.2f}×)"
    return f"the dense product wins: {PACKED} takes {ratio:.2f}× its time"


def summary_html(
    numbers: dict[str, dict[str, Any]],
    sets: dict[str, dict[str, Any]],
    machine: dict[str, Any],
    threads: dict,
) -> str:
    """One paragraph: what this run measured, in words, every number from ``numbers`` (a
    :func:`headline_numbers` per data set title, the first set first) and ``sets`` (each set's
    ink: pixels_on, nonzero_nibbles)."""
    cpu = html.escape(str(machine.get("cpu", "an unknown CPU")))
    blas = _count(threads.get("blas_threads"), "BLAS thread")
    jit = _count(threads.get("numba_threads"), "numba thread")
    parts = [
        f"Measured in this run on {cpu} ({machine.get('cores', '?')} cores; the timing jobs "
        f"used {blas} and {jit})."
    ]
    first_title, first = next(iter(numbers.items()))
    a = first["article_point"]
    article = ARTICLE_SECONDS[ARTICLE_FIRST] / ARTICLE_SECONDS[ARTICLE_FINAL]
    where = f"on {html.escape(first_title)} " if len(numbers) > 1 else ""
    if a["fastest"] and np.isfinite(a["speedup"]):
        parts.append(
            f"At the article's point (N = {ARTICLE_N}, K = {ARTICLE_K}) {where}the fastest "
            f"E-step, <code>{a['fastest']}</code>, takes {_ms(a['fastest_s'])}: "
            f"<strong>{a['speedup']:,.0f}×</strong> faster than the article's own attempt 1 as "
            f"published (<code>{ARTICLE_FIRST}</code>, {_ms(a['attempt_1_s'])} here); the "
            f"article reported {article:.0f}× ({ARTICLE_SECONDS[ARTICLE_FIRST]} s → "
            f"{ARTICLE_SECONDS[ARTICLE_FINAL]} s) on its machine."
        )
    elif a["fastest"]:
        pred = a["attempt_1_predicted_s"]
        why = f" (predicted {_ms(pred)}, over the budget)" if np.isfinite(pred) else ""
        parts.append(
            f"At the article's point (N = {ARTICLE_N}, K = {ARTICLE_K}) {where}the fastest "
            f"E-step, <code>{a['fastest']}</code>, takes {_ms(a['fastest_s'])}; the article's "
            f"attempt 1 was not timed there{why}, so no ratio is given."
        )
    large = first["large"]
    if large:
        N = first["N_max"]
        pieces = [
            f"{_ms(r['seconds'])} at K = {K} (<code>{r['fastest']}</code>, "
            + (
                f"<strong>{r['speedup']:.1f}×</strong> the article's three lines as published)"
                if np.isfinite(r["speedup"])
                else "the article's three lines were not timed there)"
            )
            for K, r in large.items()
        ]
        peak = [f"{100 * r['peak_fraction']:.0f}% at K = {K}" for K, r in large.items()]
        over = any(r["peak_fraction"] > 1 for r in large.values())
        parts.append(
            f"On {N} images {where}the fastest E-step takes " + " and ".join(pieces) + ". "
            f"Counting the 2·N·K·D operations of the product, that is {' and '.join(peak)} of "
            "the same run's matrix-multiply peak in the same precision"
            + (
                ": more than the peak, because the bit-packed kernel never does the work a "
                "zero pixel would cost."
                if over
                else "."
            )
        )
    findings = []
    for title, n in numbers.items():
        if not n["large"]:
            continue
        K = max(n["large"])
        r = n["large"][K]
        if not np.isfinite(r["packed_over_bare"]):
            continue
        ink = sets[title]
        findings.append(
            f"on {html.escape(title)} ({100 * ink['pixels_on']:.0f}% of pixels on, "
            f"{ink['nonzero_nibbles']:.0f} non-zero nibbles an image) "
            f"{verdict(r['packed_over_bare'])} (K = {K}, N = {n['N_max']})"
        )
    if findings:
        parts.append(
            "Against the bare float32 product <code>X @ W</code>, the core a dense E-step "
            "cannot avoid and whose cost does not depend on the pixels: "
            + "; ".join(findings)
            + ". The bit-packed E-step adds a table row per non-zero nibble, so it wins by more "
            "the less ink the images hold."
        )
    purities = [
        f"{b['test_purity']:.3f} on {html.escape(title)} (K = {b['K']}, "
        f"<code>{b['variant']}</code>, {b['n_train']} training images)"
        for title, n in numbers.items()
        if (b := n.get("best_purity"))
    ]
    if purities:
        parts.append(
            "The best test purity of a fit on every training image is " + "; ".join(purities) + "."
        )
    return "<p class='summary'>" + " ".join(parts) + "</p>"


def _fits_table(metrics: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Every fit's row; a fit that asked for ``auto`` names the variant it ran beside it, in
    the variant column ("auto (packed_lut)"), so the table stays as wide as the page."""
    fits = metrics[[c for c in columns if c in metrics]].copy()
    if "estep" in metrics:
        ran = metrics["estep"].fillna(metrics["variant"])
        fits["variant"] = [
            v if e == v else f"{v} ({e})" for v, e in zip(metrics["variant"], ran, strict=True)
        ]
    return fits


def scale_section(scale: pd.DataFrame | None, figure: str) -> list[str]:
    """The HTML of the cost-against-N experiment: its figure, each way of holding the rows in
    words (slope, bytes an image), and its table."""
    if scale is None or scale.empty:
        return []
    from ..scale import describe

    words = [
        f"<li><b>{html.escape(str(mode))}</b>: {html.escape(describe(rows))}</li>"
        for mode, rows in scale.groupby("mode", sort=False)
        if len(rows) >= 2
    ]
    first = scale.iloc[0]
    columns = ["mode", "N", "iteration_s", "estep_s", "peak_rss_mib", "threads"]
    return [
        "<h2>What an EM iteration costs as N grows</h2>",
        f"<p>Rows drawn from the fitted K = {int(first['K'])} model of "
        f"{html.escape(str(first.get('dataset', '')))}, packed as they are drawn, up to "
        f"N = {int(scale['N'].max()):,} (<code>scale.max_n</code>); each size measured in a "
        "fresh process, so its peak memory is its own.</p>",
        figure,
        f"<ul>{''.join(words)}</ul>" if words else "",
        _table(scale[[c for c in columns if c in scale]], "{:.4g}"),
    ]


def timed_where(sections: list[DataSetSection]) -> pd.DataFrame:
    """Which variants were timed on which data set: a row per variant, a column per set."""
    timed = {sec.title: set(sec.timings["variant"]) for sec in sections}
    variants = [v for v in [*VARIANTS, BARE_PRODUCT] if any(v in t for t in timed.values())]
    return pd.DataFrame(
        [[v, *("yes" if v in timed[t] else "" for t in timed)] for v in variants],
        columns=["variant", *timed],
    )


def _not_timed(timings: pd.DataFrame) -> pd.DataFrame:
    not_timed = timings[timings["status"] != "ok"]
    return (
        not_timed.groupby(["variant", "status"], sort=False)
        .agg(points=("N", "size"), first=("reason", "first"))
        .rename(columns={"first": "reason (first point)"})
        .reset_index()
    )


def _set_section(
    sec: DataSetSection,
    metrics: pd.DataFrame,
    baseline: str,
    budget_s: float,
    extra_speed: list[str],
) -> list[str]:
    """The HTML of one data set's section: what it is, its speed, its clusters."""
    d = sec.data
    shape = d.get("image_shape")
    shape_text = " × ".join(map(str, shape)) + " images" if shape else "no image shape"
    labels = d.get("label_names")
    label_text = (
        f"{len(labels)} labels ({html.escape(', '.join(map(str, labels)))})"
        if labels
        else ("numeric labels" if sec.labelled else "no labels")
    )
    parts = [
        f"<h2 id='{_anchor(sec.name)}'>{html.escape(sec.title)}</h2>",
        f"<p>{html.escape(sec.about) + '. ' if sec.about else ''}{d['n_images']} training "
        f"images of D = {d['n_pixels']} binary pixels ({shape_text}), {label_text}; "
        f"{100 * d['pixels_on']:.1f}% of pixels on, {d['nonzero_nibbles']:.1f} non-zero "
        "nibbles an image.</p>",
    ]
    s = summarise(sec.timings)
    K0 = ARTICLE_K if ARTICLE_K in set(s["K"]) else int(s["K"].min())
    head = headline(sec.timings, baseline, ARTICLE_N, K0)
    parts.append("<h3>Speed</h3>")
    parts.append(
        f"<p class='note'>Timed here: {html.escape(sec.timing_meta.get('why_timed', ''))}.</p>"
    )
    if baseline in set(s["variant"]):
        parts += [
            f"<h4>At the article's point: N = {ARTICLE_N}, K = {K0}</h4>",
            _table(head)
            if len(head)
            else f"<p class='note'>N = {ARTICLE_N} is not in this run's timing grid "
            "(<code>timing.N</code>), so nothing was timed at the article's point.</p>",
            f"<p class='note'>All times measured side by side in one job on this machine "
            f"(median of the repeats). The article reported {ARTICLE_SECONDS[ARTICLE_FIRST]} s "
            f"for attempt 1 and {ARTICLE_SECONDS[ARTICLE_FINAL]} s for attempt 4 on its own "
            "machine.</p>",
        ]
    parts += extra_speed
    parts += [
        _figure(*sec.figures[n])
        for n, f in FIGURES.items()
        if f.category == "Speed" and n in sec.figures
    ]
    skipped = _not_timed(sec.timings)
    parts += [
        "<h4>Points not timed</h4>",
        (
            _table(skipped) + "<p class='note'>A point is skipped when its predicted time "
            f"exceeds the budget per point ({budget_s} s); the figures show it as a hollow "
            "marker at its predicted time, never as a measurement.</p>"
            if len(skipped)
            else "<p>Every point of the grid was timed.</p>"
        ),
        "<h3>Clusters</h3>",
        *[
            _figure(*sec.figures[n])
            for n, f in FIGURES.items()
            if f.category == "Clusters" and n in sec.figures
        ],
    ]
    ms = metrics[metrics["dataset"] == sec.name] if "dataset" in metrics else metrics
    full = ms[full_data(ms)]
    if sec.labelled:
        best = (
            full.sort_values("test_purity", ascending=False)
            .groupby("K", as_index=False)
            .first()[
                ["K", "variant", "n_train", "test_purity", "test_nmi", "test_ari", "test_loglik"]
            ]
        )
        parts += [
            "<h4>Best test purity for each K (fits on every training image)</h4>",
            _table(best),
        ]
    else:
        best = (
            full.sort_values("test_loglik", ascending=False)
            .groupby("K", as_index=False)
            .first()[["K", "variant", "n_train", "test_loglik", "train_loglik"]]
        )
        parts += [
            "<h4>Best held-out log-likelihood for each K (fits on every training image)</h4>",
            "<p class='note'>This data set has no labels, so purity, NMI and ARI are not "
            "measured: each compares the clusters with the labels. They are left out, not "
            "shown as 0; the fits are judged by the log-likelihood per image of the test "
            "rows instead.</p>",
            _table(best),
        ]
    parts += [_figure(p, c) for p, c in sec.means]
    return parts


def render(
    path,
    *,
    sections: list[DataSetSection],
    run_figures: dict[str, tuple[Path, str]],
    metrics: pd.DataFrame,
    agreement: pd.DataFrame,
    baseline: str,
    config: dict[str, Any],
    scale: pd.DataFrame | None = None,
) -> None:
    """Write the report to ``path`` as one HTML file with everything embedded: ``sections``
    (one per data set, the first set first), the run's figures (``run_figures``: the
    comparison, the speedup over ``baseline`` on the first set, the agreement)."""
    first = sections[0]
    numbers = {
        sec.title: headline_numbers(
            sec.timings,
            sec.timing_meta["gemm_peak_gflops"],
            metrics[metrics["dataset"] == sec.name] if "dataset" in metrics else metrics,
        )
        for sec in sections
    }
    ink = {sec.title: sec.data for sec in sections}
    machine = first.timing_meta.get("machine", {})
    metric_cols = [
        "dataset",
        "variant",
        "K",
        "seed",
        "n_train",
        "n_iter",
        "converged",
        "n_degenerate",
        "train_loglik",
        "test_loglik",
        "test_purity",
        "test_nmi",
        "test_ari",
        "bic",
    ]
    prov = {
        "cpu": machine.get("cpu"),
        "cores": machine.get("cores"),
        "threads while timing": first.timing_meta.get("threads"),
        "GEMM peak GFLOP/s (same run)": {
            sec.title: sec.timing_meta.get("gemm_peak_gflops") for sec in sections
        },
        "BLAS": machine.get("blas"),
        "versions": first.timing_meta.get("versions"),
        "git commit": first.timing_meta.get("git"),
        "SHA-256 of the source files": {sec.title: sec.data.get("sources") for sec in sections},
    }
    names = ", ".join(f"<a href='#{_anchor(s.name)}'>{html.escape(s.title)}</a>" for s in sections)
    run = {n: _figure(*run_figures[n]) for n in run_figures}
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        "<title>BMM E-step vectorisation report</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>How much faster does the E-step get without Python loops?</h1>",
        summary_html(numbers, ink, machine, first.timing_meta.get("threads", {})),
        "<p>EM for a Bernoulli mixture on binary data (N images of D pixels). The E-step "
        "computes the responsibilities γ (N×K) from the weights π and means μ. Following the "
        "article <em>Vectorisation: how to speed up your ML algorithm by x78</em> (2019), it "
        "is written with loops over N, K and D (attempt 1), over N and K (2), over N (3), with "
        "no loop (4), each also exactly as published where the article's arithmetic differs "
        "from ours; then beyond: one fused product, float32, compiled loops, and the data kept "
        f"as bits. This run: {names}.</p>",
        "<h2>The data sets compared</h2>",
        _table(comparison(sections, metrics)),
        "<p class='note'>Times are medians on the whole training set of each data set (N "
        "above), each set timed in its own job with the machine to itself. The bare float32 "
        "product <code>X @ W</code> is the one product a dense E-step cannot avoid; a ratio "
        "below 1 means the bits beat it.</p>",
        run.get("bits_vs_ink", ""),
        "<h3>Which variants were timed on which data set</h3>",
        _table(timed_where(sections)),
        "<p class='note'>"
        + " ".join(
            f"{html.escape(sec.title)}: {html.escape(sec.timing_meta.get('why_timed', ''))}."
            for sec in sections
        )
        + "</p>",
    ]
    for i, sec in enumerate(sections):
        extra = [run["speedup"]] if i == 0 and "speedup" in run else []
        parts += _set_section(sec, metrics, baseline, config["timing"]["budget_s"], extra)
    parts += [
        f"<h2>Do the variants agree? (on {html.escape(first.title)})</h2>",
        run.get("agreement", ""),
        _table(agreement, "{:.3g}"),
        *scale_section(scale, run.get("scale", "")),
        "<h2>All fits</h2>",
        _table(_fits_table(metrics, metric_cols)),
        "<p class='note'>Blank purity, NMI and ARI: the data set has no labels (not 0).</p>",
        "<h2>Provenance</h2>",
        f"<pre>{html.escape(json.dumps(prov, indent=2, default=str))}</pre>",
        "<h3>Config</h3>",
        f"<pre>{html.escape(json.dumps(config, indent=2, default=str))}</pre>",
        "</body></html>",
    ]
    Path(path).write_text("\n".join(parts))
