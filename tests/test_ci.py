"""What CI relies on: require() skips a test on a machine that lacks a piece, and fails it where
BMM_REQUIRE_<WHAT>=1 or BMM_REQUIRE_ALL=1 (.ci/run) says the piece must be there; no test
skips any other way, so CI's switch reaches every test that could skip."""

from __future__ import annotations

import ast
import os

import pytest
from conftest import REPO, REQUIREMENTS, require

# The one skip that is no missing piece: the determinism check means nothing under another
# Hypothesis profile (HYPOTHESIS_PROFILE=explore draws new examples on purpose).
OTHER_SKIPS = {("tests/test_engine.py", "test_property_tests_draw_the_same_examples_on_every_run")}


@pytest.fixture
def no_flags(monkeypatch):
    for flag in [name for name in os.environ if name.startswith("BMM_REQUIRE_")]:
        monkeypatch.delenv(flag)
    return monkeypatch


def outcome(what: str, reason: str) -> tuple[str, str]:
    """What require(what, reason) does: ("skip" or "fail", its message)."""
    try:
        require(what, reason)
    except pytest.skip.Exception as e:
        return "skip", str(e)
    except pytest.fail.Exception as e:
        return "fail", str(e)
    raise AssertionError("require() returned")


def test_require_skips_by_default_and_fails_where_required(no_flags):
    assert outcome("slurm", "no sbatch") == ("skip", "no sbatch")
    no_flags.setenv("BMM_REQUIRE_SLURM", "1")
    assert outcome("slurm", "no sbatch") == (
        "fail",
        "no sbatch; BMM_REQUIRE_SLURM=1 or BMM_REQUIRE_ALL=1 forbids skipping",
    )
    assert outcome("data", "no MNIST") == ("skip", "no MNIST")  # only Slurm is required
    no_flags.setenv("BMM_REQUIRE_ALL", "1")
    assert {what: outcome(what, "missing")[0] for what in REQUIREMENTS} == dict.fromkeys(
        REQUIREMENTS, "fail"
    )
    with pytest.raises(ValueError, match="unknown requirement 'gpu'"):
        require("gpu", "no GPU")


def skips(path) -> list[tuple[str, str]]:
    """(enclosing top-level name, what) of each call of pytest.skip() or
    pytest.importorskip(), and each skipif mark."""
    tree = ast.parse(path.read_text())
    found = []
    for top in tree.body:
        name = getattr(top, "name", "<module>")
        for node in ast.walk(top):
            if isinstance(node, ast.Attribute) and node.attr == "skipif":
                found.append((name, "skipif"))
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("skip", "importorskip")
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "pytest"
            ):
                found.append((name, f"pytest.{node.func.attr}"))
    return found


def test_every_skip_goes_through_require():
    found = {
        (str(path.relative_to(REPO)), name): call
        for path in sorted(REPO.glob("tests/*.py"))
        for name, call in skips(path)
    }
    assert found.pop(("tests/conftest.py", "require")) == "pytest.skip"  # its own
    stray = {key: call for key, call in found.items() if key not in OTHER_SKIPS}
    assert not stray, f"skips that CI cannot turn into failures (use conftest.require): {stray}"
