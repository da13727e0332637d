"""Rule render_report: one self-contained HTML page with every figure and table."""

from pathlib import Path

from bmm import io
from bmm.pipeline import job
from bmm.report import html

CAPTIONS = Path(snakemake.scriptdir).parent / "workflow" / "report"
FIGURES = ("time_vs_N", "speedup", "time_vs_K", "efficiency", "clustering_vs_K", "traces",
           "agreement")  # fmt: skip

with job(snakemake) as log:
    i = snakemake.input
    captions = {name: (CAPTIONS / f"{name}.rst").read_text().strip() for name in FIGURES}
    means = [(Path(p), f"Cluster means of {Path(p).stem.split('_')[-1]}.") for p in i.means]
    html.render(
        snakemake.output.html,
        figures={name: (Path(i[f"fig_{name}"]), captions[name]) for name in FIGURES},
        means=means,
        timings=io.read_parquet(i.timings),
        timing_meta=io.read_metadata(i.timings),
        metrics=io.read_parquet(i.metrics),
        agreement=io.read_parquet(i.agreement),
        baseline=snakemake.params.baseline,
        config=snakemake.params.config,
    )
    log(f"report: {Path(snakemake.output.html).stat().st_size / 1e6:.1f} MB")
