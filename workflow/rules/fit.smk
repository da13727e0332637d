# EM fits: one job per (data set, variant, K, seed), each variant on its own capped training
# size, evaluated in the same job (the data are loaded already); every variant again on one
# shared subset of the first data set from one start, to measure their agreement.


rule fit:
    input:
        train="results/{dataset}/data/train.parquet",
        test="results/{dataset}/data/test.parquet",
    output:
        params=f"{fit_dir('{dataset}', '{variant}', '{K}', '{seed}')}/params.parquet",
        trace=f"{fit_dir('{dataset}', '{variant}', '{K}', '{seed}')}/trace.parquet",
        metrics=f"{fit_dir('{dataset}', '{variant}', '{K}', '{seed}')}/metrics.parquet",
    log:
        "logs/fit/{dataset}/{variant}/K{K}/seed{seed}.log",
    benchmark:
        "benchmarks/fit/{dataset}/{variant}/K{K}/seed{seed}.tsv"
    conda:
        "../envs/bmm.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=60,
    params:
        fit=canonical(fit_params),
    script:
        "../../scripts/fit.py"


rule aggregate_metrics:
    input:
        metrics=fit_outputs("metrics.parquet"),
        traces=fit_outputs("trace.parquet"),
    output:
        metrics="results/tables/metrics.parquet",
        traces="results/tables/traces.parquet",
    log:
        "logs/aggregate_metrics.log",
    benchmark:
        "benchmarks/aggregate_metrics.tsv"
    conda:
        "../envs/bmm.yaml"
    script:
        "../../scripts/aggregate_metrics.py"


rule fit_shared:
    input:
        train="results/{dataset}/data/train.parquet",
    output:
        params="results/{dataset}/agreement/{variant}/params.parquet",
        trace="results/{dataset}/agreement/{variant}/trace.parquet",
    log:
        "logs/fit_shared/{dataset}/{variant}.log",
    benchmark:
        "benchmarks/fit_shared/{dataset}/{variant}.tsv"
    conda:
        "../envs/bmm.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        fit=canonical(shared_fit_params),
    script:
        "../../scripts/fit.py"


rule agreement:
    input:
        params=expand(
            "results/{dataset}/agreement/{variant}/params.parquet",
            dataset=FIRST,
            variant=config["fit"]["variants"],
        ),
    output:
        table="results/tables/agreement.parquet",
    log:
        "logs/agreement.log",
    benchmark:
        "benchmarks/agreement.tsv"
    conda:
        "../envs/bmm.yaml"
    params:
        reference=config["fit"]["shared"]["reference"],
        dataset=FIRST,
    script:
        "../../scripts/agreement.py"
