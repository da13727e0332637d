# Helpers shared by every stage: config validation, the lists of outputs, per-job params.
# Everything a job depends on reaches it through params: or its inputs, so a config edit
# reruns exactly the jobs it touches.

import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "scripts"))

import bmm.config  # noqa: E402
import bmm.io  # noqa: E402
import bmm.pipeline  # noqa: E402
from bmm.datasets import MNIST  # noqa: E402
from bmm.report.figures import FIGURES  # noqa: E402

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

MNIST_FILES = MNIST.file_names
FILES = {role: f.name for role, f in MNIST.files.items()}
SHA256 = {f.name: f.gz_sha256 for f in MNIST.files.values()}


onstart:
    # Before any job: an output directory that cannot be written stops the run with one
    # line naming it, instead of an error in the first job that writes there.
    try:
        bmm.pipeline.check_writable()
    except bmm.io.OutputError as e:
        raise WorkflowError(str(e)) from None


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


def figure_outputs():
    """plot_figures' outputs: every figure of bmm.report.figures.FIGURES, flagged for
    `snakemake --report` with its caption, workflow/report/<name>.rst."""
    return {
        name: report(
            f"results/report/figures/{name}.png",
            caption=f"../report/{name}.rst",
            category=figure.category,
        )
        for name, figure in FIGURES.items()
    }


def report_figures():
    """render_report's figure inputs, fig_<name>."""
    return {f"fig_{name}": f"results/report/figures/{name}.png" for name in FIGURES}


def report_captions():
    """render_report's caption inputs, caption_<name> (and the cluster means')."""
    captions = Path(workflow.basedir) / "workflow" / "report"
    return {
        f"caption_{name}": str(captions / f"{name}.rst") for name in [*FIGURES, "means"]
    }


def means_params(wildcards):
    """The params table whose cluster means plot_means draws for K: report.variant, report.seed."""
    show = config["report"]
    return f"results/fits/{show['variant']}/K{wildcards.K}/seed{show['seed']}/params.parquet"


def all_outputs():
    return [
        "results/tables/metrics.parquet",
        "results/tables/agreement.parquet",
        "results/timings/estep.parquet",
        "results/report/report.html",
    ]


def canonical(value):
    """``value`` with the keys of every mapping in it sorted, recursively; a function's result
    likewise. Snakemake reruns a job when the repr of its params changes, and a dict's repr
    follows its key order: without this, the same settings written in another order in a
    config file would rerun every job that takes a mapping. Every rule's params go through it.
    """
    if callable(value):
        return lambda wildcards: canonical(value(wildcards))
    if isinstance(value, dict):
        return {key: canonical(value[key]) for key in sorted(value)}
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    return value


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


def all_cores():
    """The timing job's threads: every core Snakemake may use (--cores), so nothing runs
    beside it. On a cluster the profile's set-threads decides (and --exclusive gives the job
    its node). The one knob: the job runs its BLAS and numba pools with these threads.
    """
    return workflow.cores


def mnist_sha256(wildcards):
    """The SHA-256s a downloaded MNIST file may have (of the .gz, of its IDX bytes): the
    registry's, unless the config's mnist.sha256 gives another."""
    if config["mnist"]["sha256"]:
        return [config["mnist"]["sha256"][wildcards.file], None]
    f = MNIST.file(wildcards.file)
    return [f.gz_sha256, f.idx_sha256]


def report_config():
    """The config the report prints: everything that shapes results, not where MNIST came from."""
    return {k: v for k, v in config.items() if k != "mnist"} | {
        "mnist": {"sha256": config["mnist"]["sha256"] or SHA256}
    }
