# The E-step of every variant over a grid of N and K, in one job that has the machine to
# itself (it claims every core), so the speedups compare like with like.


rule time_estep:
    input:
        train="results/data/train.parquet",
    output:
        timings="results/timings/estep.parquet",
    log:
        "logs/time_estep.log",
    benchmark:
        "benchmarks/time_estep.tsv"
    conda:
        "../envs/bmm.yaml"
    threads: all_cores()
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        timing=canonical(config["timing"]),
    script:
        "../../scripts/time_estep.py"
