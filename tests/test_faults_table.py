"""docs/faults.md, the table of bad inputs and faults: every row names a test that exists."""

from __future__ import annotations

import ast
import re

from conftest import REPO

TABLE = REPO / "docs" / "faults.md"
TEST = re.compile(r"`(tests/test_\w+\.py)::(test_\w+)`")


def rows() -> list[list[str]]:
    """The table rows of docs/faults.md (header and separator rows left out), as cells."""
    out = []
    text = TABLE.read_text().split("## How the tests were checked")[0]
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("| input or fault"):
            out.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return out


def test_the_faults_table_has_a_row_for_each_fault_the_issue_lists():
    table = rows()
    assert len(table) >= 20
    assert all(len(row) == 4 and all(row) for row in table), [r for r in table if len(r) != 4]
    faults = " ".join(row[0] for row in table)
    for fault in (
        "unreachable",
        "in another order",
        "checksum mismatch",
        "cut short",
        "truncated gzip",
        "IDX magic",
        "do not match in number",
        "truncated (",
        "read-only",
        "second `snakemake`",
        "SIGKILL",
        "unknown variant",
        "K < 1",
        "K above",
        "threshold outside",
        "empty K list",
        "negative size or budget",
        "unknown key",
        "μ exactly 0 or 1",
        "empty cluster",
        "far from every cluster",
    ):
        assert fault in faults, fault


def test_every_test_the_faults_table_names_exists():
    named = [m.groups() for row in rows() for m in TEST.finditer(row[3])]
    assert all(TEST.search(row[3]) for row in rows())  # every row names at least one
    defined: dict[str, set[str]] = {}
    for path, name in named:
        if path not in defined:
            tree = ast.parse((REPO / path).read_text())
            defined[path] = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert name in defined[path], f"{path}::{name} named in docs/faults.md does not exist"
