"""Rule download_mnist: one MNIST file from the configured mirrors, SHA-256 verified."""

from pathlib import Path

from bmm.mnist import download, download_settings
from bmm.pipeline import job

with job(snakemake) as log:
    out = Path(snakemake.output[0])
    where = download_settings(snakemake.config)  # not params: see the rule download_mnist
    download(out.name, out, sha256=snakemake.params.sha256, log=log, **where)
