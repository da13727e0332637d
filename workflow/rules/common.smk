# Helpers shared by every stage: config validation, the data sets, the lists of outputs,
# per-job params. Everything a job depends on reaches it through params: or its inputs, so a
# config edit reruns exactly the jobs it touches: adding a data set reruns none of the
# others' jobs, changing one set's threshold reruns only that set's.

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "scripts"))

import bmm.config  # noqa: E402
import bmm.datasets  # noqa: E402
import bmm.io  # noqa: E402
import bmm.pipeline  # noqa: E402
import bmm.scale  # noqa: E402
import bmm.timing  # noqa: E402
from bmm.report.figures import FIGURES  # noqa: E402

# Stop before any job starts if a value is out of range, or a data set is unknown or its own
# files do not fit together: each problem names its key.
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

#: The data sets of the run, by name, in the config's order (bmm.datasets.IDXSet or OwnSet).
SETS = bmm.datasets.configured(config)
#: The first data set: timed with every variant; its shared subset measures the agreement.
FIRST = next(iter(SETS))
#: Every file of the IDX sets (those downloaded).
IDX_FILES = sorted(
    {
        f
        for s in SETS.values()
        if isinstance(s, bmm.datasets.IDXSet)
        for f in s.file_names
    }
)


onstart:
    # Before any job: an output directory that cannot be written stops the run with one
    # line naming it, instead of an error in the first job that writes there.
    try:
        bmm.pipeline.check_writable()
    except bmm.io.OutputError as e:
        raise WorkflowError(str(e)) from None


wildcard_constraints:
    dataset="|".join(map(re.escape, SETS)),
    variant="|".join(map(re.escape, config["fit"]["variants"])),
    K=r"\d+",
    seed=r"\d+",
    # no IDX set (own data only): a pattern that matches nothing
    file="|".join(map(re.escape, IDX_FILES)) or "(?!)",


def fit_dir(dataset, variant, K, seed):
    return f"results/{dataset}/fits/{variant}/K{K}/seed{seed}"


def fit_outputs(name, datasets=None):
    """One file `name` per (data set, variant, K, seed) fit the config asks for: of every
    data set, or of those listed."""
    return [
        f"{fit_dir(d, v, K, s)}/{name}"
        for d in datasets or SETS
        for v in config["fit"]["variants"]
        for K in config["fit"]["K"]
        for s in config["fit"]["seeds"]
    ]


def set_fit_outputs(name):
    """fit_outputs of the job's own data set (an input function)."""
    return lambda wildcards: fit_outputs(name, [wildcards.dataset])


def figure_outputs(scope):
    """The outputs of the figures of ``scope`` ("set": one job per data set, "run": one): each
    figure of bmm.report.figures.FIGURES of that scope, flagged for `snakemake --report`
    with its caption, workflow/report/<name>.rst."""
    return {
        name: report(
            figure_path(name, "{dataset}" if scope == "set" else None),
            caption=f"../report/{name}.rst",
            category="{dataset}" if scope == "set" else "All data sets",
            subcategory=figure.category,
        )
        for name, figure in FIGURES.items()
        if figure.scope == scope
    }


def figure_path(name, dataset=None):
    """Where a figure is drawn: per data set, or once for the run."""
    return (
        f"results/report/figures/{dataset}/{name}.png"
        if dataset
        else (f"results/report/figures/{name}.png")
    )


def means_outputs():
    """plot_means' outputs: the cluster means of each K of the job's data set."""
    return {
        f"K{K}": report(
            f"results/report/figures/{{dataset}}/means_K{K}.png",
            caption="../report/means.rst",
            category="{dataset}",
            subcategory="Cluster means",
        )
        for K in config["fit"]["K"]
    }


def means_params(wildcards):
    """The params tables whose cluster means plot_means draws: report.variant, report.seed."""
    show = config["report"]
    return {
        f"K{K}": f"{fit_dir(wildcards.dataset, show['variant'], K, show['seed'])}/params.parquet"
        for K in config["fit"]["K"]
    }


def report_figures():
    """render_report's figure inputs: fig_<name> (run scope), fig<i>_<name> (the i-th data
    set's), and means<i>_K<K> (its cluster means)."""
    out = {}
    for name, figure in FIGURES.items():
        if figure.scope == "run":
            out[f"fig_{name}"] = figure_path(name)
    for i, d in enumerate(SETS):
        for name, figure in FIGURES.items():
            if figure.scope == "set":
                out[f"fig{i}_{name}"] = figure_path(name, d)
        for K in config["fit"]["K"]:
            out[f"means{i}_K{K}"] = f"results/report/figures/{d}/means_K{K}.png"
    return out


def report_captions():
    """render_report's caption inputs, caption_<name> (and the cluster means')."""
    captions = Path(workflow.basedir) / "workflow" / "report"
    return {
        f"caption_{name}": str(captions / f"{name}.rst") for name in [*FIGURES, "means"]
    }


def per_set(pattern):
    """``pattern`` (with {d}) for every data set, in the config's order."""
    return [pattern.format(d=d) for d in SETS]


def all_outputs():
    return [
        "results/tables/metrics.parquet",
        "results/tables/agreement.parquet",
        *per_set("results/{d}/timings/estep.parquet"),
        "results/tables/scale.parquet",
        "results/report/report.html",
    ]


def canonical(value):
    """``value`` with the keys of every mapping in it sorted, recursively; a function's result
    likewise. Snakemake reruns a job when the repr of its params changes, and a dict's repr
    follows its key order: without this, the same settings written in another order in a
    config file would rerun every job that takes a mapping. Every param that holds a mapping
    goes through it (a string or a list of names has one repr whatever the config's order).
    """
    if callable(value):
        return lambda wildcards: canonical(value(wildcards))
    if isinstance(value, dict):
        return {key: canonical(value[key]) for key in sorted(value)}
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    return value


def download_checksums(wildcards):
    """The SHA-256s a downloaded file may have (of the .gz, of its IDX bytes): the registry's,
    or those the config gives an IDX set of its own."""
    f = SETS[wildcards.dataset].file(wildcards.file)
    return [f.gz_sha256, f.idx_sha256]


def binarize_inputs(wildcards):
    """An IDX set's four downloaded files (by role), or the user's own files."""
    s = SETS[wildcards.dataset]
    if isinstance(s, bmm.datasets.IDXSet):
        return {role: f"resources/{s.name}/{f.name}" for role, f in s.files.items()}
    return {"data": s.path} | ({"labels": s.labels} if s.labels else {})


def binarize_params(wildcards):
    """What one set's binarised tables depend on: the subset sizes and seed; an IDX set's
    threshold (its own, or data.threshold) and label names; own data's shape and split.
    """
    data, s = config["data"], SETS[wildcards.dataset]
    out = {k: data[k] for k in ("n_train", "n_test", "seed")}
    if isinstance(s, bmm.datasets.IDXSet):
        out["threshold"] = bmm.datasets.threshold(config, s.name)
        out["label_names"] = s.label_names and list(s.label_names)
    else:
        out |= {
            "path": s.path,
            "labels": s.labels,
            "image_shape": s.image_shape and list(s.image_shape),
            "test_fraction": s.test_fraction,
        }
    return out


# The fit settings that shape EM's objective and its remedy for degenerate components.
REMEDY_KEYS = ("mu_prior", "pi_prior", "reseed_degenerate")


def fit_params(wildcards):
    """The EM settings of one fit: the variant's caps plus the shared settings."""
    fit = config["fit"]
    return {
        "dataset": wildcards.dataset,
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
        "dataset": wildcards.dataset,
        "variant": wildcards.variant,
        "K": shared["K"],
        "seed": shared["seed"],
        "n_train": shared["n_train"],
        "max_iter": shared["iterations"],
        "tol": 0.0,
        "n_init": 1,
        **{k: fit[k] for k in ("init", *REMEDY_KEYS)},
    }


def timing_params(wildcards):
    """The timing grid of one data set: every variant of timing.variants on the first set,
    those whose cost depends on the data on the others (bmm.timing.variants_for)."""
    first = wildcards.dataset == FIRST
    variants = bmm.timing.variants_for(config["timing"]["variants"], first)
    return config["timing"] | {
        "variants": variants,
        "dataset": wildcards.dataset,
        "first": first,
    }


def all_cores():
    """The timing job's threads: every core Snakemake may use (--cores), so nothing runs
    beside it. On a cluster the profile's set-threads decides (and --exclusive gives the job
    its node). The one knob: the job runs its BLAS and numba pools with these threads.
    """
    return workflow.cores


def scale_set():
    """The data set whose fitted model the scale experiment draws from (scale.dataset, or
    the first set)."""
    return config["scale"]["dataset"] or FIRST


def scale_model():
    """The params table the scale experiment draws from: report.variant's fit of scale.K
    (null: the largest of fit.K) on scale_set(), seed report.seed."""
    r, K = config["report"], config["scale"]["K"] or max(config["fit"]["K"])
    return f"{fit_dir(scale_set(), r['variant'], K, r['seed'])}/params.parquet"


def scale_params():
    """The scale experiment's sizes (bmm.scale.grid up to scale.max_n) and settings."""
    s = config["scale"]
    return {
        "dataset": scale_set(),
        "N": bmm.scale.grid(s["max_n"]),
        "modes": s["modes"],
        "repeats": s["repeats"],
        "seed": s["seed"],
    }


def scale_mem_mb():
    """Memory for the scale job: the bits of scale.max_n images (D/8 bytes each) three times
    over (the rows, their index, the draws), and 1 GB besides."""
    return 1000 + 3 * config["scale"]["max_n"] * 100 // 10**6


def report_config():
    """The config the report prints: everything that shapes results, not where the files
    came from (mirrors, download settings)."""
    sets = {
        name: {k: v for k, v in (entry or {}).items() if k != "mirrors"}
        for name, entry in config["datasets"].items()
    }
    return {k: v for k, v in config.items() if k != "download"} | {"datasets": sets}
