"""Rule evaluate: purity, NMI, ARI, log-likelihood and BIC of one fit."""

from bmm import fit_job, io, params_table, provenance, storage
from bmm.pipeline import job

with job(snakemake) as log:
    model, meta = params_table.model_from_params(snakemake.input.params)
    X_train, y_train = storage.load_binarized(snakemake.input.train, packed=True)
    X_test, y_test = storage.load_binarized(snakemake.input.test, packed=True)
    row = fit_job.metrics_row(model, meta, X_train, y_train, X_test, y_test)
    out = provenance.collect(meta["config"], meta["sources"])
    io.write_parquet(row, snakemake.output.metrics, out)
    log(row.iloc[0].to_string())
