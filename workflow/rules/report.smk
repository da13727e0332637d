# Figures from the tables, then one self-contained HTML page. The figures are also flagged
# for `snakemake --report report.zip`, with captions from workflow/report/.


rule plot_figures:
    input:
        timings="results/timings/estep.parquet",
        metrics="results/tables/metrics.parquet",
        traces="results/tables/traces.parquet",
        agreement="results/tables/agreement.parquet",
    output:
        **figure_outputs(),
    log:
        "logs/plot_figures.log",
    benchmark:
        "benchmarks/plot_figures.tsv"
    conda:
        "../envs/bmm.yaml"
    params:
        baseline=config["report"]["baseline"],
    script:
        "../../scripts/plot_figures.py"


rule plot_means:
    input:
        params=means_params,
        test="results/data/test.parquet",
    output:
        figure=report(
            "results/report/figures/means_K{K}.png",
            caption="../report/means.rst",
            category="Clusters",
            subcategory="Cluster means",
        ),
    log:
        "logs/plot_means/K{K}.log",
    benchmark:
        "benchmarks/plot_means/K{K}.tsv"
    conda:
        "../envs/bmm.yaml"
    script:
        "../../scripts/plot_means.py"


rule render_report:
    input:
        **report_figures(),
        **report_captions(),
        means=expand("results/report/figures/means_K{K}.png", K=config["fit"]["K"]),
        timings="results/timings/estep.parquet",
        metrics="results/tables/metrics.parquet",
        agreement="results/tables/agreement.parquet",
    output:
        html="results/report/report.html",
    log:
        "logs/render_report.log",
    benchmark:
        "benchmarks/render_report.tsv"
    conda:
        "../envs/bmm.yaml"
    params:
        baseline=config["report"]["baseline"],
        config=canonical(report_config()),
    script:
        "../../scripts/render_report.py"
