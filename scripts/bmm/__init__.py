"""Bernoulli mixture models by EM, with the E-step written from Python loops to one product.

>>> from bmm import BernoulliMixture, VARIANTS
>>> model = BernoulliMixture(10, estep="matmul_fused", random_state=0).fit(X)  # doctest: +SKIP
"""

import importlib.metadata
import tomllib
from pathlib import Path

from .estep import VARIANTS
from .estimator import BernoulliMixture

__all__ = ["VARIANTS", "BernoulliMixture"]

_PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def _version(pyproject: Path = _PYPROJECT) -> str:
    """The version written in pyproject.toml, its only source.

    Installed (``pip install -e .``), it comes from the package metadata. Imported straight
    from ``scripts/`` without installing (as Snakemake's ``script:`` jobs do in the conda
    environment of ``workflow/envs``), it is read from the checkout's pyproject.toml; with
    neither, it is ``0+unknown``.
    """
    try:
        return importlib.metadata.version("bmm")
    except importlib.metadata.PackageNotFoundError:
        pass
    try:
        project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
        if project["name"] == "bmm":
            return str(project["version"])
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError):
        pass
    return "0+unknown"


__version__ = _version()
