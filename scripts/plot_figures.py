"""Rule plot_figures: the report's figures from the timing, metrics and agreement tables."""

from bmm import io
from bmm.pipeline import job
from bmm.report import figures

with job(snakemake) as log:
    i, o = snakemake.input, snakemake.output
    timings = io.read_parquet(i.timings)
    peaks = io.read_metadata(i.timings)["gemm_peak_gflops"]
    metrics = io.read_parquet(i.metrics)
    figures.time_vs_N(timings, o.time_vs_N)
    figures.speedup(timings, o.speedup, snakemake.params.baseline)
    figures.time_vs_K(timings, o.time_vs_K)
    figures.efficiency(timings, peaks, o.efficiency)
    figures.clustering_vs_K(metrics, o.clustering_vs_K)
    figures.traces(io.read_parquet(i.traces), o.traces)
    figures.agreement(io.read_parquet(i.agreement), o.agreement)
    log(f"wrote {len(o)} figures")
