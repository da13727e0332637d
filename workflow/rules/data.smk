# MNIST: fetch the four original files (SHA-256 verified), then binarise them into Parquet.


rule download_mnist:
    output:
        "resources/mnist/{file}",
    log:
        "logs/download_mnist/{file}.log",
    benchmark:
        "benchmarks/download_mnist/{file}.tsv"
    localrule: True
    conda:
        "../envs/bmm.yaml"
    # The job also reads mnist.mirrors, timeout_s and retries (scripts/download_mnist.py),
    # on purpose not as params: a params change reruns a job, and where the pinned bytes come
    # from changes nothing, so pointing the mirrors elsewhere reruns nothing.
    params:
        sha256=mnist_sha256,
    script:
        "../../scripts/download_mnist.py"


rule binarize:
    input:
        train_images=f"resources/mnist/{FILES['train_images']}",
        train_labels=f"resources/mnist/{FILES['train_labels']}",
        test_images=f"resources/mnist/{FILES['test_images']}",
        test_labels=f"resources/mnist/{FILES['test_labels']}",
    output:
        train="results/data/train.parquet",
        test="results/data/test.parquet",
    log:
        "logs/binarize.log",
    benchmark:
        "benchmarks/binarize.tsv"
    conda:
        "../envs/bmm.yaml"
    resources:
        mem_mb=2000,
    params:
        threshold=config["data"]["threshold"],
        n_train=config["data"]["n_train"],
        n_test=config["data"]["n_test"],
        seed=config["data"]["seed"],
    script:
        "../../scripts/binarize.py"
