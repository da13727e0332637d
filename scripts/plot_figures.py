"""Rules plot_figures and plot_run_figures: the figures of bmm.report.figures.FIGURES of one
scope, from the pipeline's tables: one data set's (scope "set"), or the run's (scope "run":
every set's timings and ink, the agreement of the variants)."""

import pandas as pd

from bmm import datasets, io
from bmm.pipeline import job
from bmm.report.figures import FIGURES, Tables

with job(snakemake) as log:
    i, p = snakemake.input, snakemake.params
    if snakemake.rule == "plot_figures":
        scope = "set"
        tables = Tables(
            timings=io.read_parquet(i.timings),
            peaks=io.read_metadata(i.timings)["gemm_peak_gflops"],
            metrics=pd.concat(map(io.read_parquet, i.metrics), ignore_index=True),
            traces=pd.concat(map(io.read_parquet, i.traces), ignore_index=True),
            agreement=None,
            baseline=p.baseline,
        )
    else:
        scope = "run"
        sets = {
            name: {
                **io.read_metadata(data),
                "title": datasets.from_config(name, snakemake.config).title,
            }
            for name, data in zip(p.sets, i.data, strict=True)
        }
        tables = Tables(
            timings=pd.concat(map(io.read_parquet, i.timings), ignore_index=True),
            peaks=io.read_metadata(i.timings[0])["gemm_peak_gflops"],
            metrics=None,
            traces=None,
            agreement=io.read_parquet(i.agreement),
            baseline=p.baseline,
            sets=sets,
            scale=io.read_parquet(i.scale),
        )
    for name, figure in FIGURES.items():
        if figure.scope == scope:
            figure.draw(tables, snakemake.output[name])
            log(f"drew {name}")
