"""Rules fit and fit_shared: EM with one E-step variant; params and trace as Parquet."""

from bmm import fit_job, io, params_table, provenance, storage
from bmm.pipeline import job, sources_of

with job(snakemake) as log:
    settings = snakemake.params.fit
    X, y = storage.load_binarized(snakemake.input.train, packed=True)  # bits: 98 bytes an image
    log(f"fitting {settings} on up to {len(y)} images")
    # every EM iteration goes to the log: a long fit shows its progress as it runs
    model = fit_job.fit(X, y, settings, log=log)
    meta = provenance.collect(settings, sources_of(snakemake.input.train))
    params_table.write_params(snakemake.output.params, model, meta)
    trace = model.trace_.assign(variant=settings["variant"], K=settings["K"], seed=settings["seed"])
    io.write_parquet(trace, snakemake.output.trace, meta)
    t = model.trace_
    log(
        f"{model.n_iter_} iterations, converged={model.converged_}, "
        f"objective per image {model.lower_bound_:.4f}, "
        f"{int(t['reseeded'].sum())} component(s) re-seeded; "
        f"E-step {t['estep_s'].median():.4g} s median, M-step {t['mstep_s'].median():.4g} s"
    )
