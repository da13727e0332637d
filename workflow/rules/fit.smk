# EM fits: one job per (variant, K, seed), each variant on its own capped training size;
# every variant again on one shared subset from one start, to measure their agreement.


rule fit:
    input:
        train="results/data/train.parquet",
    output:
        params=f"{fit_dir('{variant}', '{K}', '{seed}')}/params.parquet",
        trace=f"{fit_dir('{variant}', '{K}', '{seed}')}/trace.parquet",
    log:
        "logs/fit/{variant}/K{K}/seed{seed}.log",
    benchmark:
        "benchmarks/fit/{variant}/K{K}/seed{seed}.tsv"
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


rule evaluate:
    input:
        params=f"{fit_dir('{variant}', '{K}', '{seed}')}/params.parquet",
        train="results/data/train.parquet",
        test="results/data/test.parquet",
    output:
        metrics=f"{fit_dir('{variant}', '{K}', '{seed}')}/metrics.parquet",
    log:
        "logs/evaluate/{variant}/K{K}/seed{seed}.log",
    benchmark:
        "benchmarks/evaluate/{variant}/K{K}/seed{seed}.tsv"
    conda:
        "../envs/bmm.yaml"
    threads: 1
    resources:
        mem_mb=3000,
    script:
        "../../scripts/evaluate.py"


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
        train="results/data/train.parquet",
    output:
        params="results/agreement/{variant}/params.parquet",
        trace="results/agreement/{variant}/trace.parquet",
    log:
        "logs/fit_shared/{variant}.log",
    benchmark:
        "benchmarks/fit_shared/{variant}.tsv"
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
            "results/agreement/{variant}/params.parquet",
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
    script:
        "../../scripts/agreement.py"
