"""docs/faults.md, the table of bad inputs and faults: every row names a test that exists and
checks what the row says you see; every test named was seen to fail with its handling broken.
"""

from __future__ import annotations

import ast
import re
from functools import cache

from conftest import REPO

TABLE = REPO / "docs" / "faults.md"
CHECKED = "## How the tests were checked"
TEST = re.compile(r"`(tests/test_\w+\.py)::(test_\w+)`(?: \(([^)]*)\))?")
# What docs/faults.md says of itself: "... the tables hold all 27 rows ..."
CLAIM = re.compile(r"the tables hold all (\d+) rows")
# The exception's name that opens a message ("ERROR: IDXError: "), shared by many rows: a test
# must check more of the message than that.
GENERIC = re.compile(r"^(ERROR: )?\w+Error( …)?: ")
# A test checks a quoted message when it holds a string at least this long found in the
# quote (shorter quotes, such as `--unlock`, must appear whole).
PIECE = 12


def table_rows(text: str, header: str) -> list[list[str]]:
    """The rows of the Markdown tables in ``text`` (header and separator rows left out)."""
    out = []
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith(f"| {header}"):
            out.append([cell.strip() for cell in line.strip().strip("|").split(" | ")])
    return out


def rows() -> list[list[str]]:
    """The rows of the faults tables (input, what you see, left behind, test), as cells."""
    return table_rows(TABLE.read_text().split(CHECKED)[0], "input or fault")


def checked_rows() -> list[list[str]]:
    """The rows of "How the tests were checked" (what was broken, the tests that failed)."""
    text = TABLE.read_text()
    assert CHECKED in text, f"docs/faults.md has no '{CHECKED}' section"
    return table_rows(text.split(CHECKED)[1], "removed or broken")


@cache
def module(path: str) -> tuple[dict[str, ast.AST], ast.Module]:
    """A test module's top-level functions, classes and assignments by name, and its tree."""
    tree = ast.parse((REPO / path).read_text())
    top: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            top[node.name] = node
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                if isinstance(target, ast.Name):
                    top[target.id] = node
    return top, tree


def reached(path: str, test: str) -> list[ast.AST]:
    """The test function (with its decorators) and every top-level function, fixture and
    constant of its module that it uses, directly or through them."""
    top, _ = module(path)
    todo, seen, nodes = [test], set(), []
    while todo:
        name = todo.pop()
        if name in seen or name not in top:
            continue
        seen.add(name)
        nodes.append(top[name])
        if isinstance(top[name], ast.FunctionDef):  # fixtures of the module, by argument
            todo += [a.arg for a in top[name].args.args]
        todo += [n.id for n in ast.walk(top[name]) if isinstance(n, ast.Name)]
    return nodes


def strings(nodes: list[ast.AST]) -> set[str]:
    """The string constants in ``nodes`` (f-strings' literal parts included), docstrings and
    other bare strings left out: a string nothing uses cannot fail."""
    bare = {
        id(n.value)
        for node in nodes
        for n in ast.walk(node)
        if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)
    }
    return {
        n.value.strip()
        for node in nodes
        for n in ast.walk(node)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in bare
    }


def checks_something(nodes: list[ast.AST]) -> bool:
    """An assert statement, pytest.raises/fail, or a numpy/pandas testing assertion."""
    for node in nodes:
        for n in ast.walk(node):
            if isinstance(n, ast.Assert):
                return True
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute):
                if n.func.attr in ("raises", "fail") or n.func.attr.startswith("assert_"):
                    return True
    return False


def covers(quote: str, found: set[str]) -> bool:
    """Whether a test holding the strings ``found`` checks the message ``quote``: a phrase of
    it (two words or more, PIECE characters or more: not a bare path or key, which many
    messages share) other than the exception's name, or the whole of a one-word quote."""
    text = GENERIC.sub("", quote)
    if " " not in text:
        return any(text in s for s in found)
    return any(len(s) >= PIECE and " " in s and s in text for s in found)


def test_the_faults_table_has_all_its_rows():
    table = rows()
    claim = CLAIM.search(" ".join(TABLE.read_text().split()))
    assert claim, f"docs/faults.md does not say how many rows it holds ({CLAIM.pattern})"
    assert len(table) == int(claim[1]), f"docs/faults.md claims {claim[1]} rows, holds {len(table)}"
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
        "Ctrl-C",
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
    for row in rows():
        named = TEST.findall(row[3])
        assert named, f"no test named for {row[0]!r}"
        for path, name, _ in named:
            assert name in module(path)[0], f"{path}::{name} named in docs/faults.md does not exist"


def test_every_row_is_checked_by_the_tests_it_names():
    """Each message the row quotes under "what you see" is checked by a string its tests hold
    (the message less its placeholders, or a piece of it at least PIECE characters long, other
    than the exception's name); a row that quotes nothing names tests that assert something;
    the cases named in brackets (parametrize ids or values) are in the test."""
    unchecked = []
    for row in rows():
        nodes = [n for path, name, _ in TEST.findall(row[3]) for n in reached(path, name)]
        found = strings(nodes)
        quotes = re.findall(r"`([^`]+)`", row[1])
        unchecked += [f"{row[0]}: {q}" for q in quotes if not covers(q, found)]
        if not checks_something(nodes):
            unchecked.append(f"{row[0]}: its tests assert nothing")
        for path, name, cases in TEST.findall(row[3]):
            source = "\n".join(ast.unparse(n) for n in reached(path, name))
            for case in re.findall(r"`([^`]+)`", cases):
                pattern = re.escape(case).replace(r"\*", "[^'\"]*")
                if not re.search(pattern, source):
                    unchecked.append(f"{row[0]}: {path}::{name} has no case {case!r}")
    assert not unchecked, "\n".join(unchecked)


def test_how_the_tests_were_checked_names_tests_that_exist_and_every_tested_row():
    """Every row of "How the tests were checked" names a failing test that exists, and every
    test the faults table names is among them (the doc says each was seen to fail)."""
    defined = {
        name
        for path in REPO.glob("tests/test_*.py")
        for name, node in module(str(path.relative_to(REPO)))[0].items()
        if isinstance(node, ast.FunctionDef) and name.startswith("test_")
    }
    failing = set()
    table = checked_rows()
    assert table
    for broken, tests in table:
        named = re.findall(r"`(test_\w+)`", tests)
        assert named, f"no failing test named for {broken!r}"
        missing = [name for name in named if name not in defined]
        assert not missing, f"{missing} (docs/faults.md, {CHECKED[3:]}) do not exist"
        failing.update(named)
    in_table = {name for row in rows() for _, name, _ in TEST.findall(row[3])}
    assert not in_table - failing, f"never seen to fail: {sorted(in_table - failing)}"


def test_a_quote_is_covered_only_by_a_piece_of_it():
    """The rule above on made-up strings: it can fail."""
    quote = "ERROR: IDXError: resources/mnist/<file>: truncated or corrupt gzip file (…)"
    assert covers(quote, {"truncated or corrupt gzip file"})
    assert not covers(quote, {"ERROR: IDXError:"})  # the exception's name alone
    assert not covers(quote, {"gzip file"})  # too short to be this message's
    assert not covers(quote, {"resources/mnist/"})  # a path, in many messages
    assert covers("--unlock", {"--unlock"}) and not covers("--unlock", {"--rerun-incomplete"})
