# The cost of one EM iteration against N, far past the data sets' sizes: rows drawn from a
# fitted model (packed as they are drawn), each size measured in a fresh process, with the
# machine to itself (it claims every core, as the timing jobs do).


rule scale:
    input:
        params=scale_model(),
    output:
        table="results/tables/scale.parquet",
    log:
        "logs/scale.log",
    benchmark:
        "benchmarks/scale.tsv"
    conda:
        "../envs/bmm.yaml"
    threads: all_cores()
    resources:
        mem_mb=scale_mem_mb(),
        runtime=120,
    params:
        scale=canonical(scale_params()),
    script:
        "../../scripts/scale.py"
