"""Rule plot_figures: every figure of bmm.report.figures.FIGURES from the pipeline's tables."""

from bmm import io
from bmm.pipeline import job
from bmm.report.figures import FIGURES, Tables

with job(snakemake) as log:
    i = snakemake.input
    tables = Tables(
        timings=io.read_parquet(i.timings),
        peaks=io.read_metadata(i.timings)["gemm_peak_gflops"],
        metrics=io.read_parquet(i.metrics),
        traces=io.read_parquet(i.traces),
        agreement=io.read_parquet(i.agreement),
        baseline=snakemake.params.baseline,
    )
    for name, figure in FIGURES.items():
        figure.draw(tables, snakemake.output[name])
        log(f"drew {name}")
