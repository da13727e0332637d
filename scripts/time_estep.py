"""Rule time_estep: the variants chosen for one data set over the N × K grid, one row per
timed repeat."""

import pandas as pd

from bmm import io, provenance, storage, threads, timing
from bmm.pipeline import job, sources_of

cfg = snakemake.params.timing
# the rule's threads (all cores), but never more than the CPUs this process may run on
with job(snakemake, threads=min(snakemake.threads, threads.cpu_count())) as log:
    X, _ = storage.load_binarized(snakemake.input.train, dtype=bool)
    used = threads.current()
    peaks = {dtype: timing.gemm_peak(dtype) for dtype in ("float64", "float32")}
    log(f"threads {used}; GEMM peak GFLOP/s {peaks}")
    log(f"timing {cfg['variants']}: {timing.why_timed(cfg['first'])}")
    # every point's float64 reference, computed before anything is timed and shared
    reference = timing.reference_responsibilities(X, cfg["seed"], cfg["N"], cfg["K"])
    log("reference responsibilities computed")
    frames = []
    for variant in cfg["variants"]:
        frames.append(
            timing.time_variant_grid(
                variant,
                X,
                cfg["N"],
                cfg["K"],
                repeats=cfg["repeats"],
                warmup=cfg["warmup"],
                budget_s=cfg["budget_s"],
                variant_budget_s=cfg["variant_budget_s"],
                seed=cfg["seed"],
                log=log,
                reference=reference,
            )
        )
    table = pd.concat(frames, ignore_index=True)
    table.insert(0, "dataset", cfg["dataset"])
    for key, value in used.items():
        table[key] = value
    meta = provenance.collect(
        cfg,
        sources_of(snakemake.input.train),
        gemm_peak_gflops=peaks,
        threads=used,
        why_timed=timing.why_timed(cfg["first"]),
    )
    io.write_parquet(table, snakemake.output.timings, meta)
    ok = table[table["status"] == "ok"]
    log(f"{len(ok)} timed repeats, {int((table['status'] != 'ok').sum())} points not timed")
