"""Rule render_report: one self-contained HTML page with every figure and table."""

from pathlib import Path

from bmm import io
from bmm.pipeline import job
from bmm.report import html
from bmm.report.figures import FIGURES

with job(snakemake) as log:
    i = snakemake.input
    figures = {
        name: (Path(i[f"fig_{name}"]), Path(i[f"caption_{name}"]).read_text().strip())
        for name in FIGURES
    }
    means_caption = Path(i.caption_means).read_text().strip()
    means = [(Path(p), f"K = {Path(p).stem.split('_K')[-1]}. {means_caption}") for p in i.means]
    html.render(
        snakemake.output.html,
        figures=figures,
        means=means,
        timings=io.read_parquet(i.timings),
        timing_meta=io.read_metadata(i.timings),
        metrics=io.read_parquet(i.metrics),
        agreement=io.read_parquet(i.agreement),
        baseline=snakemake.params.baseline,
        config=snakemake.params.config,
    )
    log(f"report: {Path(snakemake.output.html).stat().st_size / 1e6:.1f} MB")
