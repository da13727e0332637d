"""Checking a pipeline config before any job runs.

:func:`validate` reports every problem the JSON schema finds at once, each naming the key,
the value and what is allowed; :func:`check` adds the rules a schema cannot express (the data
sets exist and are described by the right keys, K against training sizes, optional
dependencies). The Snakefile calls both through ``workflow/rules/common.smk``.

The values themselves, defaults included, are written in one place: config/config.yaml, which
every run loads before any ``--configfile`` layered over it. The schema holds types and
ranges, and requires every key, so that a config which replaces config/config.yaml instead of
layering over it is told what it lacks.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from . import datasets, estep, own_data


class ConfigError(ValueError):
    """The config is invalid; the message lists each problem and how to fix it."""


#: Top-level keys of earlier versions, and where their settings went.
RENAMED = {
    "mnist": (
        "the top-level key 'mnist' is gone: list data sets in data.sets and give each one's "
        "settings under datasets.<name> (MNIST's mirrors: datasets.mnist.mirrors; timeout_s "
        "and retries: download.timeout_s, download.retries); see config/README.md"
    ),
}


def variant_names(which: str) -> list[str]:
    """The registry's variant names, in its order: ``stable`` ones (that can fit), ``fit``
    (those and :data:`bmm.estep.AUTO`, the fastest of them for the data and K: what
    fit.variants may name) or ``all``."""
    if which not in ("stable", "fit", "all"):
        raise ValueError(f"x-variants must be 'stable', 'fit' or 'all', not {which!r}")
    names = [n for n, v in estep.VARIANTS.items() if which == "all" or v.stable]
    return [*names, estep.AUTO] if which == "fit" else names


def load_schema(path: str | Path) -> dict[str, Any]:
    """The config's JSON schema, each ``x-variants`` schema given the registry's names as enum."""
    with open(path) as f:
        schema = yaml.safe_load(f)
    for definition in schema["$defs"].values():
        if "x-variants" in definition:
            definition["enum"] = variant_names(definition["x-variants"])
    return schema


def validate(config: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Raise ConfigError listing every violation of ``schema``, or naming the new key of an
    old one (before anything else); then spell out ``variants: all`` (in place) as the list of
    names it stands for."""
    old = [message for key, message in RENAMED.items() if key in config]
    if old:
        raise ConfigError(_message(old))
    validator = Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [_describe(e) for e in errors]
        raise ConfigError(_message(lines))
    for section, which in (("fit", "fit"), ("timing", "all")):
        if config[section]["variants"] == "all":
            config[section]["variants"] = variant_names(which)
    return config


def check(config: dict[str, Any]) -> None:
    """What a schema cannot say: every data set is known and well described (own data: its
    files exist and agree, from their headers), K fits every training size, variants can run
    here."""
    problems = []
    fit, data = config["fit"], config["data"]
    sizes = {}  # training rows of the user's own sets, which may be few
    for name in data["sets"]:
        try:
            found = datasets.from_config(name, config)
            if isinstance(found, datasets.OwnSet):
                N, _ = own_data.inspect(found)
                sizes[name] = N - round(N * found.test_fraction)
        except datasets.DataSetError as e:
            problems.append(str(e))
    for variant in fit["variants"]:
        n_train = cap(config, variant)["n_train"]
        # (training images, where that limit is set, how to raise it)
        limits = [(n, key, f"raise {key}") for n, key in [(n_train, f"fit.caps.{variant}.n_train")]]
        limits += [(data["n_train"], "data.n_train", "raise data.n_train")]
        limits += [
            (n, f"the training rows of {s}", f"give {s} more rows") for s, n in sizes.items()
        ]
        limits = [limit for limit in limits if limit[0] is not None]
        if not limits:
            continue
        limit, where, fix = min(limits, key=lambda lim: lim[0])
        for K in fit["K"]:
            if K > limit:
                problems.append(
                    f"fit.K: K={K} is larger than the {limit} training images {variant!r} fits "
                    f"on ({where}); lower K or {fix}"
                )
    shared = fit["shared"]
    if data["n_train"] is not None and shared["n_train"] > data["n_train"]:
        problems.append(
            f"fit.shared.n_train: {shared['n_train']} is larger than data.n_train "
            f"({data['n_train']}); lower it to at most {data['n_train']}"
        )
    if shared["K"] > shared["n_train"]:
        problems.append(
            f"fit.shared.K: {shared['K']} is larger than fit.shared.n_train "
            f"({shared['n_train']}); lower K or raise n_train"
        )
    if shared["reference"] not in fit["variants"]:
        problems.append(
            f"fit.shared.reference: {shared['reference']!r} is not one of fit.variants "
            f"{fit['variants']}; add it there or choose one of them"
        )
    if config["report"]["variant"] not in fit["variants"]:
        problems.append(
            f"report.variant: {config['report']['variant']!r} is not one of fit.variants; "
            "choose one of them"
        )
    if config["report"]["seed"] not in fit["seeds"]:
        problems.append(
            f"report.seed: {config['report']['seed']} is not one of fit.seeds {fit['seeds']}"
        )
    scale = config["scale"]
    if scale["dataset"] is not None and scale["dataset"] not in data["sets"]:
        problems.append(
            f"scale.dataset: {scale['dataset']!r} is not one of data.sets {data['sets']}; "
            "choose one of them, or null for the first"
        )
    if scale["K"] is not None and scale["K"] not in fit["K"]:
        problems.append(
            f"scale.K: {scale['K']} is not one of fit.K {fit['K']}: the rows are drawn from "
            "that fit; choose one of fit.K or add it there"
        )
    if "dask" in scale["modes"] and importlib.util.find_spec("distributed") is None:
        problems.append(
            "scale.modes: 'dask' needs dask.distributed, which is not installed: "
            "pip install 'bmm[dask]', or remove dask from scale.modes"
        )
    if config["report"]["baseline"] not in config["timing"]["variants"]:
        problems.append(
            f"report.baseline: {config['report']['baseline']!r} is not one of timing.variants"
        )
    for key in ("fit.variants", "timing.variants"):
        section, _ = key.split(".")
        for name in config[section]["variants"]:
            if name == estep.AUTO:  # chooses among the variants available here
                continue
            reason = estep.get(name).unavailable
            if reason:
                problems.append(
                    f"{key}: {name!r} cannot run on this machine: {reason}; or remove it from {key}"
                )
    if problems:
        raise ConfigError(_message(problems))


def cap(config: dict[str, Any], variant: str) -> dict[str, Any]:
    """The training size and iteration cap of one variant's fits."""
    out = dict(config["fit"]["default_cap"])
    out.update(config["fit"]["caps"].get(variant, {}))
    out.setdefault("n_train", None)
    out.setdefault("max_iter", 100)
    return out


def _message(lines):
    return (
        "invalid config (config/config.yaml and any --configfile / --config given):\n  - "
        + "\n  - ".join(lines)
        + "\nconfig/README.md explains every key, its range and its default."
    )


_WORDS = {
    "minimum": "must be ≥ {}",
    "maximum": "must be ≤ {}",
    "exclusiveMinimum": "must be > {}",
    "exclusiveMaximum": "must be < {}",
    "minItems": "must list at least {} item(s)",
    "minLength": "must not be empty",
    "pattern": "must match the pattern {}",
    "const": "must be {!r}",
}


def _describe(error) -> str:
    """'data.threshold = 1.5: must be a number in [0, 1) or "article"'-style text."""
    key = _key(error.absolute_path)
    value = error.instance
    kind = error.validator
    if kind == "additionalProperties":
        extra = sorted(set(value) - set(error.schema.get("properties", {})))
        allowed = ", ".join(error.schema.get("properties", {})) or "none"
        return f"{key or '(top level)'}: unknown key(s) {extra}; allowed keys: {allowed}"
    if "propertyNames" in error.absolute_schema_path:
        allowed = ", ".join(map(str, error.validator_value))
        return f"{key}: unknown key {value!r}; allowed: {allowed}"
    if kind == "enum":
        return f"{key} = {value!r}: must be one of {', '.join(map(str, error.validator_value))}"
    if kind == "type":
        hint = ""
        if isinstance(value, str) and value.replace(".", "", 1).lstrip("-").isdigit():
            hint = " (text: --config passes nested values as text; use --configfile)"
        return f"{key} = {value!r}: must be of type {error.validator_value}{hint}"
    if kind == "uniqueItems":
        return f"{key} = {value!r}: each item may appear only once"
    if kind == "required":
        missing = error.message.split("'")[1]  # "'K' is a required property"
        where = f"{key}." if key else ""
        return (
            f"{where}{missing}: missing; config/config.yaml sets it: layer your file over it "
            "(--configfile) rather than replacing it, or add the key"
        )
    if kind == "oneOf":
        branches = error.validator_value
        inner = [e for e in error.context if _same_kind(branches[e.relative_schema_path[0]], value)]
        if inner:  # the value has a branch's type: say what is wrong inside it
            return _describe(best_match(inner))
        options = [_option(s) for s in error.validator_value]
        return f"{key} = {value!r}: must be " + " or ".join(options)
    if kind in _WORDS:
        return f"{key} = {value!r}: " + _WORDS[kind].format(error.validator_value)
    return f"{key} = {value!r}: {error.message}"


def _same_kind(schema, value) -> bool:
    """Whether ``value`` is of the type a oneOf branch (with a declared type) asks for."""
    kind = schema.get("type")
    return (kind == "array" and isinstance(value, list)) or (
        kind == "object" and isinstance(value, dict)
    )


def _option(schema):
    if "const" in schema:
        return repr(schema["const"])
    if schema.get("type") == "array":
        return "a list"
    lo = schema.get("minimum", schema.get("exclusiveMinimum"))
    hi = schema.get("maximum", schema.get("exclusiveMaximum"))
    left = "[" if "minimum" in schema else "("
    right = "]" if "maximum" in schema else ")"
    return f"a {schema.get('type', 'value')} in {left}{lo}, {hi}{right}"


def _key(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
