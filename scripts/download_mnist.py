"""Rule download_mnist: one MNIST file from the configured mirrors, SHA-256 verified."""

from pathlib import Path

from bmm import datasets
from bmm.download import download
from bmm.pipeline import job

with job(snakemake) as log:
    out = Path(snakemake.output[0])
    m = snakemake.config["mnist"]  # not params: see the rule download_mnist
    file = datasets.IDXFile(out.name, *snakemake.params.sha256)
    identify = lambda gz, idx: datasets.identify(gz, idx, datasets.REGISTRY.values())  # noqa: E731
    download(
        file,
        out,
        m["mirrors"],
        dataset="mnist",
        identify=identify,
        timeout=m["timeout_s"],
        retries=m["retries"],
        log=log,
    )
