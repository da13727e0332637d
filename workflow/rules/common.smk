# Helpers shared by every stage: config validation, the lists of outputs, per-job params.
# Everything a job depends on reaches it through params: or its inputs, so a config edit
# reruns exactly the jobs it touches.

import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "scripts"))

import bmm.config  # noqa: E402
from bmm.mnist import FILES  # noqa: E402

# Stop before any job starts if a value is out of range: each problem names its key.
try:
    bmm.config.validate(
        config,
        bmm.config.load_schema(
            Path(workflow.basedir) / "workflow/schemas/config.schema.yaml"
        ),
    )
    bmm.config.check(config)
except bmm.config.ConfigError as e:
    raise WorkflowError(str(e)) from None

MNIST_FILES = list(FILES.values())


wildcard_constraints:
    variant="|".join(config["fit"]["variants"]),
    K=r"\d+",
    seed=r"\d+",
    file="|".join(f.replace(".", r"\.") for f in MNIST_FILES),


def fit_dir(variant, K, seed):
    return f"results/fits/{variant}/K{K}/seed{seed}"


def fit_outputs(name):
    """One file `name` per (variant, K, seed) fit the config asks for."""
    return [
        f"{fit_dir(v, K, s)}/{name}"
        for v in config["fit"]["variants"]
        for K in config["fit"]["K"]
        for s in config["fit"]["seeds"]
    ]


def mean_figures():
    return expand("results/report/figures/means_K{K}.png", K=config["fit"]["K"])


def all_outputs():
    return [
        "results/tables/metrics.parquet",
        "results/tables/agreement.parquet",
        "results/timings/estep.parquet",
        "results/report/report.html",
    ]


# The fit settings that shape EM's objective and its remedy for degenerate components.
REMEDY_KEYS = ("mu_prior", "pi_prior", "reseed_degenerate")


def fit_params(wildcards):
    """The EM settings of one fit: the variant's caps plus the shared settings."""
    fit = config["fit"]
    return {
        "variant": wildcards.variant,
        "K": int(wildcards.K),
        "seed": int(wildcards.seed),
        **bmm.config.cap(config, wildcards.variant),
        **{k: fit[k] for k in ("init", "n_init", "tol", *REMEDY_KEYS)},
    }


def shared_fit_params(wildcards):
    """Every variant on the same subset, from the same start, for the same iterations."""
    fit, shared = config["fit"], config["fit"]["shared"]
    return {
        "variant": wildcards.variant,
        "K": shared["K"],
        "seed": shared["seed"],
        "n_train": shared["n_train"],
        "max_iter": shared["iterations"],
        "tol": 0.0,
        "n_init": 1,
        **{k: fit[k] for k in ("init", *REMEDY_KEYS)},
    }


def timing_threads():
    """The timing job claims every core Snakemake may use, so nothing runs beside it.

    On a cluster there is no --cores: it asks for timing.threads, else 1, and the cluster
    profile sets the real number (set-threads) and gives the job its node (--exclusive).
    """
    return config["timing"]["threads"] or workflow.resource_settings.cores or 1


def report_config():
    """The config the report prints: everything that shapes results, not where MNIST came from."""
    return {k: v for k, v in config.items() if k != "mnist"} | {
        "mnist": {"sha256": config["mnist"]["sha256"]}
    }
