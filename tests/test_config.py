"""The config is checked before any job runs, and every problem names its key and range."""

from __future__ import annotations

import copy

import pytest
import yaml
from conftest import FILES, REPO, SHA256, copy_workflow, run_snakemake, write_yaml

from bmm import config as C
from bmm import estep

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


def test_an_empty_config_gets_every_default_from_the_schema():
    filled = check({})
    assert filled["data"]["threshold"] == 0.5
    assert filled["fit"]["K"] == [10, 20, 50, 100]
    assert (
        filled["fit"]["caps"]["loops_ndk"]["n_train"]
        == DEFAULT["fit"]["caps"]["loops_ndk"]["n_train"]
    )
    assert filled["mnist"]["mirrors"] == DEFAULT["mnist"]["mirrors"]
    assert filled["timing"]["N"] == DEFAULT["timing"]["N"]


def test_the_default_config_file_states_every_schema_default():
    """config/config.yaml and the schema's defaults describe the same experiment."""
    assert check({}) == check(DEFAULT)


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
        ("fit.init", "kmeans", "fit.init = 'kmeans': must be one of random, kmeans++"),
        ("fit.caps", {"loops_ndk": {"n_train": 0}}, "fit.caps.loops_ndk.n_train = 0: must be ≥ 1"),
        ("fit.caps", {"loops_ndk": {"max_iter": 0}}, "fit.caps.loops_ndk.max_iter = 0"),
        ("fit.caps", {"fast": {"max_iter": 3}}, "fit.caps: unknown key 'fast'"),
        ("timing.budget_s", 0, "timing.budget_s = 0: must be > 0"),
        ("timing.budget_s", -2, "timing.budget_s = -2: must be > 0"),
        ("timing.N", [], "timing.N = []: must list at least 1"),
        ("timing.N", [0], "timing.N[0] = 0: must be ≥ 1"),
        ("timing.repeats", 0, "timing.repeats = 0: must be ≥ 1"),
        ("mnist.mirrors", [], "mnist.mirrors = []: must list at least 1"),
        ("mnist.timeout_s", 0, "mnist.timeout_s = 0: must be > 0"),
        ("mnist.sha256", {"train-images-idx3-ubyte.gz": "abc"}, "mnist.sha256"),
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
    assert "K=500" in message
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
    config = with_("fit.variants", ["matmul_fused", "packed_lut"])
    check(config)  # the reference (matmul_fused) and the report's variant are among them
    assert "fit.shared.reference" in error_of(with_("fit.variants", ["packed_lut"]))
    assert "report.variant" in error_of(with_("fit.variants", ["matmul_fused"]))
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
    """config/README.md names every key of the schema, so no setting is undocumented."""
    readme = (REPO / "config/README.md").read_text()

    def keys(schema, prefix=""):
        for name, sub in schema.get("properties", {}).items():
            path = f"{prefix}.{name}" if prefix else name
            yield path
            if path != "mnist.sha256":  # its keys are the four file names
                yield from keys(sub, path)

    missing = [k for k in keys(SCHEMA) if f"`{k}`" not in readme]
    assert not missing, f"config/README.md does not explain: {missing}"


@pytest.mark.slow
def test_snakemake_stops_before_any_job_on_a_bad_value(tmp_path):
    work = copy_workflow(tmp_path)
    bad = write_yaml(tmp_path / "bad.yaml", {"data": {"threshold": 1.5}})
    proc = run_snakemake(work, "--configfile", str(bad), check=False)
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert "data.threshold = 1.5: must be a number in [0, 1) or 'article'" in output
    assert not (work / "results").exists() and not (work / "resources").exists()


# ---------------------------------------------------------------------------------------
# Each fact in one place: variant names come from the registry, checksums from bmm.mnist


def test_variant_names_in_the_schema_come_from_the_registry():
    raw = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    for name in ("variant", "timing_variant"):  # the file lists no names to keep in step
        assert "enum" not in raw["$defs"][name] and "x-variants" in raw["$defs"][name]
    stable = [n for n, v in estep.VARIANTS.items() if v.stable]
    assert SCHEMA["$defs"]["variant"]["enum"] == stable
    assert SCHEMA["$defs"]["timing_variant"]["enum"] == list(estep.VARIANTS)
    assert set(estep.VARIANTS) - set(stable) == {estep.ARTICLE_FIRST, estep.ARTICLE_FINAL}


def test_all_stands_for_every_variant_that_can_do_the_job(monkeypatch):
    config = check(DEFAULT)
    assert DEFAULT["fit"]["variants"] == DEFAULT["timing"]["variants"] == "all"
    assert config["fit"]["variants"] == [n for n, v in estep.VARIANTS.items() if v.stable]
    assert config["timing"]["variants"] == list(estep.VARIANTS)
    # a variant added to the registry is fitted and timed with no other edit
    monkeypatch.setitem(estep.VARIANTS, "new_one", estep.VARIANTS["matmul"])
    schema = C.load_schema(REPO / "workflow/schemas/config.schema.yaml")
    config = copy.deepcopy(DEFAULT)
    C.validate(config, schema)
    assert config["fit"]["variants"][-1] == config["timing"]["variants"][-1] == "new_one"


def test_a_list_of_variants_is_checked_name_by_name():
    config = check(with_("fit.variants", ["packed_lut", "matmul_fused"]))
    assert config["fit"]["variants"] == ["packed_lut", "matmul_fused"]
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
    assert check(DEFAULT)["mnist"]["sha256"] is None  # the pinned ones, from bmm.mnist
    for name in ("config/config.yaml", "workflow/schemas/config.schema.yaml"):
        text = (REPO / name).read_text()
        assert not any(sha in text for sha in SHA256.values()), name
    override = {name: "0" * 64 for name in FILES.values()}
    assert check(with_("mnist.sha256", override))["mnist"]["sha256"] == override
