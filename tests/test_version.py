"""One version, written once in pyproject.toml: bmm.__version__ and the provenance agree."""

from __future__ import annotations

import importlib.metadata
import tomllib

import pytest
from conftest import REPO

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
