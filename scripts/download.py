"""Rule download: one file of an IDX data set from its mirrors, checked by its SHA-256s."""

from pathlib import Path

from bmm import datasets
from bmm.download import download, settings
from bmm.pipeline import job

with job(snakemake) as log:
    out, dataset, config = Path(snakemake.output[0]), snakemake.wildcards.dataset, snakemake.config
    # where from (the mirrors, timeout, retries) is read from the config, not params: see
    # the rule download
    where = settings(config, datasets.from_config(dataset, config).mirrors)
    known = datasets.known_sets(config)
    download(
        datasets.IDXFile(out.name, *snakemake.params.checksums),
        out,
        dataset=dataset,
        identify=lambda gz, idx: datasets.identify(gz, idx, known),
        log=log,
        **where,
    )
