"""One version, written once in pyproject.toml: bmm.__version__ and the provenance agree."""

from __future__ import annotations

import importlib.metadata
import tomllib

import pytest
from conftest import REPO, copy_workflow, run_snakemake

import bmm
from bmm import provenance


def declared() -> str:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


@pytest.fixture
def not_installed(monkeypatch):
    def version(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", version)


def test_the_package_version_is_pyprojects():
    # Fails when pyproject.toml's version changes and bmm says another one: a hand-written
    # __version__, or stale metadata (then reinstall: pip install -e .).
    assert bmm.__version__ == declared()
    assert provenance.package_versions()["bmm"] == declared()


def test_not_installed_the_version_is_read_from_pyproject(not_installed):
    assert bmm._version() == declared()


def test_without_metadata_or_our_pyproject_the_version_is_unknown(not_installed, tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    assert bmm._version(pyproject) == "0+unknown"  # no file
    pyproject.write_text('[project]\nname = "other"\nversion = "9.9"\n')
    assert bmm._version(pyproject) == "0+unknown"  # another project's
    pyproject.write_text("[project\n")
    assert bmm._version(pyproject) == "0+unknown"  # not TOML


def test_the_snakefile_requires_pyprojects_snakemake(tmp_path):
    """The Snakefile's min_version is pyproject.toml's lower bound for snakemake, read from
    there: raise the bound in a copy and Snakemake refuses to run the workflow."""
    workdir = copy_workflow(tmp_path)
    pyproject = workdir / "pyproject.toml"
    text = pyproject.read_text()
    assert '"snakemake[reports]>=9.27,<10"' in text
    pyproject.write_text(text.replace(">=9.27,<10", ">=99.1"))
    proc = run_snakemake(workdir, "-n", "--quiet", "rules", check=False)
    assert proc.returncode != 0
    assert "Expecting Snakemake version 99.1 or higher" in proc.stdout + proc.stderr
