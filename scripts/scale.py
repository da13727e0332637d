"""Rule scale: one EM iteration's cost and peak memory against N, on rows drawn from a
fitted model, each size measured in a fresh process (bmm.scale)."""

from bmm import io, provenance, scale, threads
from bmm.pipeline import job, sources_of

# the rule's threads (all cores), but never more than the CPUs this process may run on
used = min(snakemake.threads, threads.cpu_count())
with job(snakemake, threads=used) as log:
    cfg = snakemake.params.scale
    log(f"drawing from {snakemake.input.params}; N = {cfg['N']}, modes {cfg['modes']}")
    table = scale.experiment(
        snakemake.input.params,
        cfg["N"],
        cfg["modes"],
        cfg["repeats"],
        cfg["seed"],
        threads=used,
        log=log,
    )
    table.insert(0, "dataset", cfg["dataset"])
    table["threads"] = used
    for mode, rows in table.groupby("mode", sort=False):
        if len(rows) >= 2:
            log(f"{mode}: {scale.describe(rows)}")
    meta = provenance.collect(cfg, sources_of(snakemake.input.params))
    io.write_parquet(table, snakemake.output.table, meta)
