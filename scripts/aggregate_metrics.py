"""Rule aggregate_metrics: every fit's metrics and traces in two tables."""

import pandas as pd

from bmm import io, provenance
from bmm.pipeline import job, sources_of

with job(snakemake) as log:
    for key in ("metrics", "traces"):
        paths = list(snakemake.input[key])
        table = pd.concat([io.read_parquet(p) for p in paths], ignore_index=True)
        meta = provenance.collect({"files": paths}, sources_of(paths[0]))
        io.write_parquet(table, snakemake.output[key], meta)
        log(f"{key}: {len(table)} rows from {len(paths)} fits")
