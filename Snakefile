# How much faster does the E-step of EM for a Bernoulli mixture get as Python loops give
# way to array code, and what do the fitted clusters look like?  Read top-down:
# config -> data -> fits -> timings -> report.  See README.md.

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/fit.smk"
include: "workflow/rules/timing.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        all_outputs(),
