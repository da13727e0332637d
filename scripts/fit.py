"""Rules fit and fit_shared: EM with one E-step variant; params and trace as Parquet, and
(rule fit) the fit's metrics on its training subset and the test images, evaluated here
where the data are loaded already."""

from bmm import fit_job, io, params_table, provenance, storage
from bmm.pipeline import job, sources_of

with job(snakemake) as log:
    i, o, settings = snakemake.input, snakemake.output, snakemake.params.fit
    X, y = storage.load_binarized(i.train, packed=True)  # bits: D/8 bytes an image
    log(f"fitting {settings} on up to {len(X)} images")
    # every EM iteration goes to the log: a long fit shows its progress as it runs
    model = fit_job.fit(X, y, settings, log=log)
    meta = provenance.collect(settings, sources_of(i.train))
    params_table.write_params(o.params, model, meta)
    trace = model.trace_.assign(
        dataset=settings["dataset"],
        variant=settings["variant"],
        K=settings["K"],
        seed=settings["seed"],
    )
    io.write_parquet(trace, o.trace, meta)
    t = model.trace_
    log(
        f"{model.n_iter_} iterations, converged={model.converged_}, "
        f"objective per image {model.lower_bound_:.4f}, "
        f"{int(t['reseeded'].sum())} component(s) re-seeded; "
        f"a pass (E-step and the M-step's sums) {t['pass_s'].median():.4g} s median, "
        f"the update {t['update_s'].median():.4g} s"
    )
    if "metrics" in o.keys():
        X_test, y_test = storage.load_binarized(i.test, packed=True)
        outcome = {"config": settings, "fit": params_table.fit_outcome(model)}
        row = fit_job.metrics_row(model, outcome, X, y, X_test, y_test)
        io.write_parquet(row, o.metrics, meta)
        log(row.iloc[0].to_string())
