# How much faster does the E-step of EM for a Bernoulli mixture get as Python loops give
# way to array code, and what do the fitted clusters look like?  Read top-down:
# config -> data -> fits -> timings -> report.  See README.md.

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from snakemake.utils import min_version

# The oldest Snakemake the workflow runs on is written once, in pyproject.toml's dependencies.
with open(Path(workflow.basedir) / "pyproject.toml", "rb") as f:
    requirements = map(Requirement, tomllib.load(f)["project"]["dependencies"])
snakemake_requirement = next(r for r in requirements if r.name == "snakemake")
min_version(
    next(s.version for s in snakemake_requirement.specifier if s.operator == ">=")
)


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/fit.smk"
include: "workflow/rules/timing.smk"
include: "workflow/rules/scale.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        all_outputs(),
