# The data sets: an IDX set's four files fetched from its mirrors (SHA-256 checked), then
# each set binarised into bit-packed Parquet (an IDX set thresholded, the user's own 0/1 data
# checked and split).


rule download:
    output:
        "resources/{dataset}/{file}",
    log:
        "logs/download/{dataset}/{file}.log",
    benchmark:
        "benchmarks/download/{dataset}/{file}.tsv"
    localrule: True
    conda:
        "../envs/bmm.yaml"
    # The job also reads the set's mirrors and the download settings (download.timeout_s,
    # retries), on purpose not as params: a params change reruns a job, and where the pinned
    # bytes come from changes nothing, so pointing the mirrors elsewhere reruns nothing.
    params:
        checksums=download_checksums,
    script:
        "../../scripts/download.py"


rule binarize:
    input:
        unpack(binarize_inputs),
    output:
        train="results/{dataset}/data/train.parquet",
        test="results/{dataset}/data/test.parquet",
    log:
        "logs/binarize/{dataset}.log",
    benchmark:
        "benchmarks/binarize/{dataset}.tsv"
    conda:
        "../envs/bmm.yaml"
    resources:
        mem_mb=2000,
    params:
        data=canonical(binarize_params),
    script:
        "../../scripts/binarize.py"
