# Figures from the tables, then one self-contained HTML page. The figures are also flagged
# for `snakemake --report report.html`, with captions from workflow/report/.


rule plot_figures:
    input:
        timings="results/timings/estep.parquet",
        metrics="results/tables/metrics.parquet",
        traces="results/tables/traces.parquet",
        agreement="results/tables/agreement.parquet",
    output:
        time_vs_N=report(
            "results/report/figures/time_vs_N.png",
            caption="../report/time_vs_N.rst",
            category="Speed",
        ),
        speedup=report(
            "results/report/figures/speedup.png",
            caption="../report/speedup.rst",
            category="Speed",
        ),
        time_vs_K=report(
            "results/report/figures/time_vs_K.png",
            caption="../report/time_vs_K.rst",
            category="Speed",
        ),
        efficiency=report(
            "results/report/figures/efficiency.png",
            caption="../report/efficiency.rst",
            category="Speed",
        ),
        clustering_vs_K=report(
            "results/report/figures/clustering_vs_K.png",
            caption="../report/clustering_vs_K.rst",
            category="Clusters",
        ),
        traces=report(
            "results/report/figures/traces.png",
            caption="../report/traces.rst",
            category="Clusters",
        ),
        agreement=report(
            "results/report/figures/agreement.png",
            caption="../report/agreement.rst",
            category="Agreement",
        ),
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
        params=lambda wildcards: f"{fit_dir(config['report']['variant'], wildcards.K, config['report']['seed'])}/params.parquet",
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
        unpack(
            lambda wildcards: {
                f"fig_{k}": v for k, v in rules.plot_figures.output.items()
            }
        ),
        means=mean_figures(),
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
        config=report_config(),
    script:
        "../../scripts/render_report.py"
