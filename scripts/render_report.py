"""Rule render_report: one self-contained HTML page, a section per data set, with every
figure and table."""

from pathlib import Path

from bmm import datasets, io
from bmm.pipeline import job
from bmm.report import html
from bmm.report.figures import FIGURES

with job(snakemake) as log:
    i, p = snakemake.input, snakemake.params

    def caption(name):
        return Path(i[f"caption_{name}"]).read_text().strip()

    sections = []
    for n, (name, timings, data) in enumerate(zip(p.sets, i.timings, i.data, strict=True)):
        s = datasets.from_config(name, snakemake.config)
        sections.append(
            html.DataSetSection(
                name=name,
                title=s.title,
                about=getattr(s, "about", ""),
                data=io.read_metadata(data),
                timings=io.read_parquet(timings),
                timing_meta=io.read_metadata(timings),
                figures={
                    f: (Path(i[f"fig{n}_{f}"]), caption(f))
                    for f, figure in FIGURES.items()
                    if figure.scope == "set"
                },
                means=[
                    (Path(i[key]), f"K = {key.split('_K')[-1]}. {caption('means')}")
                    for key in i.keys()
                    if key.startswith(f"means{n}_K")
                ],
            )
        )
    html.render(
        snakemake.output.html,
        sections=sections,
        run_figures={
            f: (Path(i[f"fig_{f}"]), caption(f)) for f, fig in FIGURES.items() if fig.scope == "run"
        },
        metrics=io.read_parquet(i.metrics),
        agreement=io.read_parquet(i.agreement),
        scale=io.read_parquet(i.scale),
        baseline=p.baseline,
        config=p.config,
    )
    log(f"report: {Path(snakemake.output.html).stat().st_size / 1e6:.1f} MB")
