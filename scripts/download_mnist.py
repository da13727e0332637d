"""Rule download_mnist: one MNIST file from the configured mirrors, SHA-256 verified."""

from pathlib import Path

from bmm.mnist import download
from bmm.pipeline import job

with job(snakemake) as log:
    mnist = snakemake.config["mnist"]  # where from; the bytes are pinned by params.sha256
    out = Path(snakemake.output[0])
    download(
        out.name,
        out,
        mnist["mirrors"],
        snakemake.params.sha256,
        timeout=mnist["timeout_s"],
        retries=mnist["retries"],
        log=log,
    )
