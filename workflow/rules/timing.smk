# The E-step over a grid of N and K, one job per data set, each with the machine to itself
# (it claims every core), so the speedups compare like with like: every variant on the first
# set, the variants whose cost depends on the data on the others.


rule time_estep:
    input:
        train="results/{dataset}/data/train.parquet",
    output:
        timings="results/{dataset}/timings/estep.parquet",
    log:
        "logs/time_estep/{dataset}.log",
    benchmark:
        "benchmarks/time_estep/{dataset}.tsv"
    conda:
        "../envs/bmm.yaml"
    threads: all_cores()
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        timing=canonical(timing_params),
    script:
        "../../scripts/time_estep.py"
