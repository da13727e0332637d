# Figures from the tables (each data set's own, then those of the whole run), then one
# self-contained HTML page. The figures are also flagged for `snakemake --report report.zip`,
# with captions from workflow/report/.


rule plot_figures:
    input:
        timings="results/{dataset}/timings/estep.parquet",
        metrics=set_fit_outputs("metrics.parquet"),
        traces=set_fit_outputs("trace.parquet"),
    output:
        **figure_outputs("set"),
    log:
        "logs/plot_figures/{dataset}.log",
    benchmark:
        "benchmarks/plot_figures/{dataset}.tsv"
    conda:
        "../envs/bmm.yaml"
    params:
        baseline=config["report"]["baseline"],
    script:
        "../../scripts/plot_figures.py"


rule plot_run_figures:
    input:
        timings=per_set("results/{d}/timings/estep.parquet"),
        agreement="results/tables/agreement.parquet",
        data=per_set("results/{d}/data/train.parquet"),
        scale="results/tables/scale.parquet",
    output:
        **figure_outputs("run"),
    log:
        "logs/plot_run_figures.log",
    benchmark:
        "benchmarks/plot_run_figures.tsv"
    conda:
        "../envs/bmm.yaml"
    params:
        baseline=config["report"]["baseline"],
        sets=list(SETS),
    script:
        "../../scripts/plot_figures.py"


rule plot_means:
    input:
        unpack(means_params),
        test="results/{dataset}/data/test.parquet",
    output:
        **means_outputs(),
    log:
        "logs/plot_means/{dataset}.log",
    benchmark:
        "benchmarks/plot_means/{dataset}.tsv"
    conda:
        "../envs/bmm.yaml"
    script:
        "../../scripts/plot_means.py"


rule render_report:
    input:
        **report_figures(),
        **report_captions(),
        timings=per_set("results/{d}/timings/estep.parquet"),
        data=per_set("results/{d}/data/train.parquet"),
        metrics="results/tables/metrics.parquet",
        agreement="results/tables/agreement.parquet",
        scale="results/tables/scale.parquet",
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
        sets=list(SETS),
        config=canonical(report_config()),
    script:
        "../../scripts/render_report.py"
