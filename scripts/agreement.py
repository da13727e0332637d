"""Rule agreement: how far each variant's shared-subset fit lies from the reference's."""

from bmm import io, provenance
from bmm.agreement import agreement_table
from bmm.params_table import read_params
from bmm.pipeline import job, sources_of

with job(snakemake) as log:
    fits = {}
    for path in snakemake.input.params:
        pi, mu, meta = read_params(path)
        fits[meta["config"]["variant"]] = (pi, mu, meta)
    table = agreement_table(fits, snakemake.params.reference)
    table.insert(0, "dataset", snakemake.params.dataset)
    meta = provenance.collect(
        {"reference": snakemake.params.reference, "shared": next(iter(fits.values()))[2]["config"]},
        sources_of(snakemake.input.params[0]),
    )
    io.write_parquet(table, snakemake.output.table, meta)
    log("\n" + table.to_string())
