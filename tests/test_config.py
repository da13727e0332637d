"""The config is checked before any job runs, and every problem names its key and range; its
values are written once, in config/config.yaml; the data sets it names exist."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import yaml
from conftest import REPO, copy_workflow, run_snakemake, write_yaml

from bmm import config as C
from bmm import datasets, estep

SCHEMA = C.load_schema(REPO / "workflow/schemas/config.schema.yaml")
DEFAULT = yaml.safe_load((REPO / "config/config.yaml").read_text())
SMALL = yaml.safe_load((REPO / "tests/config/config.yaml").read_text())


def merged(*layers):
    """Layer configs the way Snakemake does: dicts merge recursively, other values replace."""

    def merge(a, b):
        out = copy.deepcopy(a)
        for k, v in b.items():
            out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
        return out

    out = {}
    for layer in layers:
        out = merge(out, layer)
    return out


def check(config):
    config = copy.deepcopy(config)
    C.validate(config, SCHEMA)
    C.check(config)
    return config


def error_of(config) -> str:
    with pytest.raises(C.ConfigError) as info:
        check(config)
    return str(info.value)


def with_(path: str, value, base=DEFAULT):
    config = copy.deepcopy(base)
    *parents, last = path.split(".")
    node = config
    for p in parents:
        node = node.setdefault(p, {})
    node[last] = value
    return config


def test_default_and_small_configs_are_valid():
    check(DEFAULT)
    check(merged(DEFAULT, SMALL))


def test_a_config_that_replaces_the_default_is_told_each_missing_key():
    """The values live in config/config.yaml alone; a config that replaces it instead of
    layering over it is told what it lacks, key by key."""
    message = error_of({})
    for key in ("data", "datasets", "download", "fit", "timing", "report"):
        assert f"  - {key}: missing; config/config.yaml sets it" in message
    partial = copy.deepcopy(DEFAULT)
    del partial["fit"]["tol"], partial["timing"]["seed"]
    message = error_of(partial)
    assert "fit.tol: missing" in message and "timing.seed: missing" in message
    assert "layer your file over it (--configfile)" in message


def schema_nodes(schema, path=""):
    """Every (path, sub-schema) of the schema, through properties and $defs."""
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from schema_nodes(sub, f"{path}.{name}" if path else name)
    for name, sub in schema.get("$defs", {}).items():
        yield from schema_nodes(sub, f"$defs.{name}")
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        yield from schema_nodes(extra, f"{path}.<name>")


def test_the_values_are_written_once_in_the_config_file_not_in_the_schema():
    """config/config.yaml states every value; the schema states types and ranges only, and
    requires each key of the default experiment, so the two cannot drift apart."""
    raw = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    with_default = [path for path, node in schema_nodes(raw) if "default" in node]
    assert not with_default, f"the schema holds values: {with_default}"
    for path, node in schema_nodes(raw):
        fixed = set(node.get("properties", {}))
        if fixed and not path.startswith(("datasets", "$defs")):  # per-set keys are optional
            assert set(node.get("required", [])) == fixed, path
    check(DEFAULT)  # and the file satisfies it


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("data.threshold", 1.5, "data.threshold = 1.5: must be a number in [0, 1) or 'article'"),
        ("data.threshold", -0.1, "data.threshold = -0.1"),
        ("data.threshold", 1, "data.threshold = 1:"),
        ("data.threshold", "half", "data.threshold = 'half'"),
        ("data.n_train", 0, "data.n_train = 0: must be ≥ 1"),
        ("data.n_test", -5, "data.n_test = -5: must be ≥ 1"),
        ("fit.K", [0, 10], "fit.K[0] = 0: must be ≥ 1"),
        ("fit.K", [], "fit.K = []: must list at least 1"),
        ("fit.K", [10, 10], "fit.K = [10, 10]: each item may appear only once"),
        ("fit.K", [2.5], "fit.K[0] = 2.5: must be of type integer"),
        ("fit.variants", ["fastest"], "fit.variants[0] = 'fastest': must be one of loops_ndk"),
        ("fit.variants", ["matmul_as_published"], "fit.variants[0] = 'matmul_as_published'"),
        ("fit.variants", [], "fit.variants = []: must list at least 1"),
        ("fit.seeds", [-1], "fit.seeds[0] = -1: must be ≥ 0"),
        ("fit.tol", -1e-3, "fit.tol = -0.001: must be ≥ 0"),
        ("fit.mu_prior", 0.5, "fit.mu_prior = 0.5: must be ≥ 1"),
        ("fit.init", "kmeans", "fit.init = 'kmeans': must be one of random, k-means++"),
        ("fit.caps", {"loops_ndk": {"n_train": 0}}, "fit.caps.loops_ndk.n_train = 0: must be ≥ 1"),
        ("fit.caps", {"loops_ndk": {"max_iter": 0}}, "fit.caps.loops_ndk.max_iter = 0"),
        ("fit.caps", {"fast": {"max_iter": 3}}, "fit.caps: unknown key 'fast'"),
        ("timing.budget_s", 0, "timing.budget_s = 0: must be > 0"),
        ("timing.budget_s", -2, "timing.budget_s = -2: must be > 0"),
        ("timing.N", [], "timing.N = []: must list at least 1"),
        ("timing.N", [0], "timing.N[0] = 0: must be ≥ 1"),
        ("timing.repeats", 0, "timing.repeats = 0: must be ≥ 1"),
        ("download.timeout_s", 0, "download.timeout_s = 0: must be > 0"),
        ("download.retries", 0, "download.retries = 0: must be ≥ 1"),
        ("data.sets", [], "data.sets = []: must list at least 1"),
        ("data.sets", ["mnist", "mnist"], "data.sets = ['mnist', 'mnist']: each item may appear"),
        ("data.sets", ["my set"], "data.sets[0] = 'my set': must match the pattern"),
        ("datasets", {"mnist": {"mirrors": []}}, "datasets.mnist.mirrors = []: must list at least"),
        ("datasets", {"mnist": {"threshold": 2}}, "datasets.mnist.threshold = 2: must be a number"),
        ("datasets", {"x": {"image_shape": [0]}}, "datasets.x.image_shape[0] = 0: must be ≥ 1"),
        ("datasets", {"x": {"test_fraction": 1}}, "datasets.x.test_fraction = 1: must be < 1"),
        ("datasets", {"x": {"mirror": ["m"]}}, "datasets.x: unknown key(s) ['mirror']"),
        ("fit.shared.K", 0, "fit.shared.K = 0: must be ≥ 1"),
    ],
)
def test_out_of_range_values_name_key_value_and_range(key, value, expected):
    message = error_of(with_(key, value))
    assert expected in message
    assert "config/README.md" in message  # where to read what is allowed


def test_unknown_keys_are_named_with_the_allowed_ones():
    message = error_of(with_("fit.Ks", [10]))
    assert "fit: unknown key(s) ['Ks']" in message
    assert "variants" in message and "K" in message


def test_every_problem_is_reported_at_once():
    config = with_("data.threshold", 2.0, with_("fit.K", [0]))
    message = error_of(config)
    assert "data.threshold" in message and "fit.K[0]" in message


def test_K_larger_than_a_variants_training_size_is_rejected_with_the_key_to_change():
    message = error_of(with_("fit.K", [10, 500]))
    assert "K=500 is larger than the 100 training images 'loops_ndk' fits on" in message
    assert "fit.caps.loops_ndk.n_train" in message


def test_K_larger_than_the_data_subset_is_rejected():
    config = with_("data.n_train", 50, with_("fit.K", [60], with_("fit.shared.n_train", 40)))
    message = error_of(config)
    assert "K=60" in message and "data.n_train" in message


def test_shared_subset_must_fit_its_K_and_the_data():
    assert "fit.shared.K: 150 is larger than fit.shared.n_train (100)" in error_of(
        with_("fit.shared.K", 150)
    )
    config = with_("data.n_train", 50, with_("fit.K", [10], with_("fit.shared.n_train", 80)))
    assert "fit.shared.n_train: 80 is larger than data.n_train (50)" in error_of(config)


def test_cross_references_must_name_configured_variants():
    config = with_("fit.variants", ["matmul_fused", "auto"])
    check(config)  # the reference (matmul_fused) and the report's variant (auto) are among them
    assert "fit.shared.reference" in error_of(with_("fit.variants", ["auto"]))
    assert "report.variant" in error_of(with_("fit.variants", ["matmul_fused", "packed_lut"]))
    assert "report.baseline" in error_of(with_("timing.variants", ["matmul"]))
    assert "report.seed" in error_of(with_("report.seed", 7))


def test_an_unavailable_variant_is_rejected_with_the_fix(monkeypatch):
    from bmm import estep

    numba = estep.VARIANTS["numba_ndk"]
    gone = estep.Variant(**{**numba.__dict__, "unavailable": "numba is not installed (pip ...)"})
    monkeypatch.setitem(estep.VARIANTS, "numba_ndk", gone)
    message = error_of(DEFAULT)
    assert "fit.variants: 'numba_ndk' cannot run on this machine: numba is not installed" in message
    assert "or remove it from fit.variants" in message


def test_config_readme_explains_every_key():
    """config/README.md names every key of the schema, so no setting is undocumented (a
    data set's keys as datasets.<name>.<key>)."""
    readme = (REPO / "config/README.md").read_text()
    keys = [path for path, _ in schema_nodes(SCHEMA) if path and not path.startswith("$defs")]
    missing = [k for k in keys if f"`{k}`" not in readme]
    assert "datasets.<name>.files" in keys and not missing, (
        f"config/README.md does not explain: {missing}"
    )


def test_the_old_mnist_key_stops_with_one_line_naming_the_new_keys():
    old = with_("mnist", {"mirrors": ["/data/mnist"]})
    message = error_of(old)
    lines = message.splitlines()
    assert lines[1] == "  - " + (
        "the top-level key 'mnist' is gone: list data sets in data.sets and give each "
        "one's settings under datasets.<name> (MNIST's mirrors: datasets.mnist.mirrors; "
        "timeout_s and retries: download.timeout_s, download.retries); see config/README.md"
    )
    assert len(lines) == 3  # that line alone, not the schema's complaints besides


def test_a_data_set_is_named_by_the_registry_or_described_under_datasets():
    message = error_of(with_("data.sets", ["mnist", "kmnist"]))
    assert (
        "data.sets: 'kmnist' is neither in the registry (fashion-mnist, mnist) nor described"
        in message
    )
    files = {role: {"name": f"{role}.gz", "idx_sha256": "a" * 64} for role in datasets.ROLES}
    described = with_("datasets", {"kmnist": {"mirrors": ["http://h"], "files": files}})
    check(with_("data.sets", ["mnist", "kmnist"], described))
    own = with_("datasets", {"mnist": {"path": "x.npy"}})
    assert "datasets.mnist: 'mnist' is in the registry" in error_of(own)


def test_adding_a_data_set_to_the_registry_is_all_it_takes(monkeypatch):
    """A set added to bmm.datasets.REGISTRY is accepted by name, with nothing else to edit:
    the schema and the config name no set."""
    kmnist = datasets.IDXSet(
        "kmnist",
        "Kuzushiji-MNIST",
        {role: datasets.IDXFile(f"k-{role}.gz", "b" * 64, None) for role in datasets.ROLES},
        ("http://codh.rois.ac.jp/kmnist/dataset/kmnist",),
    )
    monkeypatch.setitem(datasets.REGISTRY, "kmnist", kmnist)
    config = check(with_("data.sets", ["mnist", "kmnist"]))
    assert datasets.configured(config)["kmnist"] is kmnist
    schema = (REPO / "workflow/schemas/config.schema.yaml").read_text()
    assert "mnist" not in schema  # no set is written there


def own_config(tmp_path, data=None, labels=None, **entry):
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((20, 6), bool) if data is None else data)
    entry = {"path": str(path), **entry}
    if labels is not None:
        np.save(tmp_path / "y.npy", labels)
        entry["labels"] = str(tmp_path / "y.npy")
    own = with_("datasets", {"mine": entry})
    return with_("fit.K", [2, 3], with_("data.sets", ["mine"], own))


def test_own_data_are_checked_before_any_job(tmp_path):
    check(own_config(tmp_path, labels=np.arange(20) % 2, image_shape=[2, 3]))
    for bad, expected in [
        ({"data": np.zeros((20, 2, 3))}, "datasets.mine.path: "),
        ({"labels": np.arange(19)}, "datasets.mine.labels: "),
        ({"image_shape": [4, 4]}, "datasets.mine.image_shape: [4, 4] holds 16 pixels"),
        ({"path": str(tmp_path / "nothere.npy")}, "nothere.npy does not exist"),
    ]:
        assert expected in error_of(own_config(tmp_path, **bad))


def test_K_larger_than_the_training_rows_of_own_data_is_rejected(tmp_path):
    message = error_of(with_("fit.K", [16, 17], own_config(tmp_path)))
    assert "K=17 is larger than the 16 training images" in message
    assert "(the training rows of mine); lower K or give mine more rows" in message


@pytest.mark.slow
@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ({"data": {"threshold": 1.5}}, "data.threshold = 1.5: must be a number in [0, 1) or"),
        (
            {"mnist": {"mirrors": ["../shared/data/mnist"]}},
            "the top-level key 'mnist' is gone: list data sets in data.sets and give each one's "
            "settings under datasets.<name> (MNIST's mirrors: datasets.mnist.mirrors;",
        ),
        (
            {"data": {"sets": ["mnist", "fashion"]}},
            "data.sets: 'fashion' is neither in the registry (fashion-mnist, mnist) nor "
            "described under datasets.fashion; fix the name, or add datasets.fashion",
        ),
    ],
    ids=["bad-value", "old-mnist-key", "unknown-set"],
)
def test_snakemake_stops_before_any_job_on_a_bad_value(tmp_path, bad, expected):
    work = copy_workflow(tmp_path)
    proc = run_snakemake(
        work, "--configfile", str(write_yaml(tmp_path / "bad.yaml", bad)), check=False
    )
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert expected in output, output[-3000:]
    assert [line for line in output.splitlines() if line.startswith("  - ")] == [
        line
        for line in output.splitlines()
        if expected.split(":")[0] in line and line.startswith("  - ")
    ]  # that problem alone, on one line
    for nothing in ("results", "resources", "logs"):
        assert not (work / nothing).exists(), nothing


# ---------------------------------------------------------------------------------------
# Each fact in one place: variant names come from the registry, checksums from bmm.datasets


def test_variant_names_in_the_schema_come_from_the_registry():
    raw = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    for name in ("variant", "timing_variant"):  # the file lists no names to keep in step
        assert "enum" not in raw["$defs"][name] and "x-variants" in raw["$defs"][name]
    stable = [n for n, v in estep.VARIANTS.items() if v.stable]
    assert SCHEMA["$defs"]["variant"]["enum"] == [*stable, estep.AUTO]  # auto: a fit's choice
    assert SCHEMA["$defs"]["timing_variant"]["enum"] == list(estep.VARIANTS)
    assert set(estep.VARIANTS) - set(stable) == {estep.ARTICLE_FIRST, estep.ARTICLE_FINAL}


def test_all_stands_for_every_variant_that_can_do_the_job(monkeypatch):
    config = check(DEFAULT)
    assert DEFAULT["fit"]["variants"] == DEFAULT["timing"]["variants"] == "all"
    assert config["fit"]["variants"] == [
        *(n for n, v in estep.VARIANTS.items() if v.stable),
        estep.AUTO,
    ]
    assert config["timing"]["variants"] == list(estep.VARIANTS)
    # a variant added to the registry is fitted and timed with no other edit
    monkeypatch.setitem(estep.VARIANTS, "new_one", estep.VARIANTS["matmul"])
    schema = C.load_schema(REPO / "workflow/schemas/config.schema.yaml")
    config = copy.deepcopy(DEFAULT)
    C.validate(config, schema)
    assert config["fit"]["variants"][-2:] == ["new_one", estep.AUTO]
    assert config["timing"]["variants"][-1] == "new_one"


def test_a_list_of_variants_is_checked_name_by_name():
    config = check(with_("fit.variants", ["auto", "matmul_fused"]))
    assert config["fit"]["variants"] == ["auto", "matmul_fused"]
    assert "timing.variants = 'some': must be 'all' or a list" in error_of(
        with_("timing.variants", "some")
    )


def test_the_readme_names_every_variant():
    readme = (REPO / "README.md").read_text()
    table = {
        line.split("|")[1].strip(" `") for line in readme.splitlines() if line.startswith("| `")
    }
    assert set(estep.VARIANTS) <= table


def test_checksums_are_written_once():
    """In the registry (bmm/datasets.py) alone: not in the config, its schema or its docs."""
    hashes = [
        h
        for s in datasets.REGISTRY.values()
        for f in s.files.values()
        for h in (f.gz_sha256, f.idx_sha256)
    ]
    for name in ("config/config.yaml", "workflow/schemas/config.schema.yaml", "config/README.md"):
        text = (REPO / name).read_text()
        assert not any(h in text for h in hashes), name
