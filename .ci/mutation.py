"""Mutation testing of the core with cosmic-ray, configured in pyproject.toml ([tool.cosmic-ray]).

    python .ci/mutation.py run [MODULE ...]     # make every mutant of each module and test it
    python .ci/mutation.py run --sample 0.25 bits  # a seeded random quarter of them
    python .ci/mutation.py grow --sample 0.5 bits  # the half that holds that quarter
    python .ci/mutation.py rerun [MODULE ...]   # test the survivors again (after new tests)
    python .ci/mutation.py report [MODULE ...]  # the score, and every survivor with its diff

MODULE is a key of [tool.cosmic-ray.modules] (bits, estep, engine, rows); none: all of them.
Sessions are kept in mutation/ (one cosmic-ray SQLite file a module, which cr-report and
cr-html read too). Each mutant is written to the module's file on disk, its module's test
command runs, and the file is put back: so the numba kernels are compiled from the mutated
source, as a user's would be (numba's cache is keyed on the file's content). The runs go at
the lowest CPU priority (nice 19), one mutant at a time, with numba's bounds checks on
(NUMBA_BOUNDSCHECK=1): a kernel mutated to index past an array raises IndexError instead of
reading or writing memory that is not its own. docs/testing.md has the results.

cosmic-ray's own CLI reads a file with a top-level [cosmic-ray] table, which pyproject.toml
cannot hold; this script reads [tool.cosmic-ray] instead and drives cosmic-ray's library:
its mutation operators and its mutate-and-test step, unchanged.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import re
import shlex
import signal
import sqlite3
import sys
import time
import tomllib
from pathlib import Path

from cosmic_ray.commands.init import init as cr_init
from cosmic_ray.mutating import mutate_and_test
from cosmic_ray.work_db import WorkDB, use_db
from cosmic_ray.work_item import TestOutcome, WorkerOutcome, WorkResult

ROOT = Path(__file__).resolve().parents[1]
#: Killed by numba refusing to compile the mutant (a typing or lowering error in a kernel).
REFUSED = re.compile(r"numba\.core\.errors\.(TypingError|LoweringError|UnsupportedError)")


def config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["cosmic-ray"]


def session(name: str) -> Path:
    return ROOT / config()["session-dir"] / f"{name}.sqlite"


def inside_fstrings(path: Path) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """(start, end) of every f-string: the text of messages, which no test need pin."""
    spans = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.JoinedStr):
            spans.append(((node.lineno, node.col_offset), (node.end_lineno, node.end_col_offset)))
    return spans


def _where(mutation) -> tuple:
    return (tuple(mutation.start_pos), mutation.operator_name, mutation.occurrence)


def skip_reason(mutation, keep: re.Pattern, fstrings) -> str | None:
    """Why a mutant cosmic-ray makes is not tested, or None: it is."""
    if not keep.fullmatch(mutation.operator_name):
        return "operator not in [tool.cosmic-ray] operators"
    if mutation.operator_name == "core/NumberReplacer" and mutation.occurrence % 2:
        return "number - 1 (only number + 1 is made, as mutmut does)"
    start = tuple(mutation.start_pos)
    if any(a <= start < b for a, b in fstrings):
        return "inside an f-string (a message's text)"
    return None


def init(name: str, sample: float, seed: int) -> None:
    cfg, module = config(), config()["modules"][name]
    path = session(name)
    path.parent.mkdir(exist_ok=True)
    path.unlink(missing_ok=True)
    keep = re.compile("|".join(cfg["operators"]))
    fstrings = inside_fstrings(ROOT / module["module-path"])
    rng = random.Random(seed)
    with use_db(str(path)) as db:
        cr_init([Path(module["module-path"])], db, {})
        for item in sorted(db.pending_work_items, key=lambda item: _where(item.mutations[0])):
            reason = skip_reason(item.mutations[0], keep, fstrings)
            if reason is None and sample < 1 and rng.random() >= sample:
                reason = f"not in the sample ({sample:.0%}, seed {seed})"
            if reason:
                db.set_result(item.job_id, WorkResult(WorkerOutcome.SKIPPED, output=reason))
        print(f"{name}: {sum(1 for _ in db.pending_work_items)} mutants to test")


def grow(name: str, sample: float, seed: int) -> None:
    """Test the mutants a larger sample adds: the same draws as init's, so the sample of a
    smaller share is part of it."""
    cfg, module = config(), config()["modules"][name]
    keep = re.compile("|".join(cfg["operators"]))
    fstrings = inside_fstrings(ROOT / module["module-path"])
    rng = random.Random(seed)
    with use_db(str(session(name)), WorkDB.Mode.open) as db:
        results = dict(db.results)
        added = []
        for item in sorted(db.work_items, key=lambda item: _where(item.mutations[0])):
            if skip_reason(item.mutations[0], keep, fstrings) is None and rng.random() < sample:
                output = results[item.job_id].output if item.job_id in results else ""
                if (output or "").startswith("not in the sample"):
                    added.append(item.job_id)
    with sqlite3.connect(session(name)) as connection:
        connection.executemany("DELETE FROM work_results WHERE job_id = ?", [(j,) for j in added])
    print(f"{name}: {len(added)} mutants more to test")


def execute(name: str, items) -> None:
    cfg, module = config(), config()["modules"][name]
    command = module["test-command"].replace("python ", f"{shlex.quote(sys.executable)} ", 1)
    times_path = session(name).with_suffix(".times.json")
    times = json.loads(times_path.read_text()) if times_path.exists() else {}
    items = list(items)
    started = time.perf_counter()
    with use_db(str(session(name)), WorkDB.Mode.open) as db:
        for i, item in enumerate(items, 1):
            t0 = time.perf_counter()
            result = mutate_and_test(item.mutations, command, cfg["timeout"])
            db.set_result(item.job_id, result)
            times[item.job_id] = round(time.perf_counter() - t0, 1)
            times_path.write_text(json.dumps(times))
            m = item.mutations[0]
            print(
                f"[{i}/{len(items)} {time.perf_counter() - started:6.0f}s] {name} "
                f"{m.module_path}:{m.start_pos[0]} {m.operator_name}#{m.occurrence}: "
                f"{outcome(result)} ({times[item.job_id]}s)",
                flush=True,
            )


def outcome(result: WorkResult) -> str:
    if result.worker_outcome == WorkerOutcome.SKIPPED:
        return "skipped"
    if result.worker_outcome != WorkerOutcome.NORMAL:
        return f"error ({result.worker_outcome})"
    if result.test_outcome == TestOutcome.SURVIVED:
        return "survived"
    if result.output == "timeout":
        return "killed (timeout)"
    if REFUSED.search(result.output or ""):
        return "killed (numba refused it)"
    return "killed"


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper-Pearson) interval of a proportion, k successes in n draws."""
    from scipy.stats import beta

    tail = (1 - level) / 2
    low = beta.ppf(tail, k, n - k + 1) if k > 0 else 0.0
    high = beta.ppf(1 - tail, k + 1, n - k) if k < n else 1.0
    return float(low), float(high)


def report(names) -> None:
    all_counts = {"tested": 0, "killed": 0}
    for name in names:
        with use_db(str(session(name)), WorkDB.Mode.open) as db:
            results = dict(db.results)
            items = {item.job_id: item for item in db.work_items}
        counts: dict[str, int] = {}
        survivors = []
        for job_id, result in results.items():
            what = outcome(result)
            counts[what] = counts.get(what, 0) + 1
            if what == "survived":
                survivors.append((items[job_id].mutations[0], result))
        pending = len(items) - len(results)
        tested = sum(n for what, n in counts.items() if what != "skipped")
        killed = sum(n for what, n in counts.items() if what.startswith("killed"))
        unsampled = sum(1 for r in results.values() if (r.output or "").startswith("not in the"))
        all_counts["tested"] += tested
        all_counts["killed"] += killed
        score = f"{killed / tested:.1%}" if tested else "-"
        print(f"{name}: {killed}/{tested} killed ({score}); {counts}; pending {pending}")
        if unsampled and tested:
            low, high = clopper_pearson(killed, tested)
            made = tested + pending + unsampled
            print(f"  a sample of {tested + pending} of the {made} mutants made: the score of")
            print(f"  all of them is in [{low:.1%}, {high:.1%}] (95%, Clopper-Pearson)")
        for m, result in sorted(survivors, key=lambda s: (s[0].start_pos, s[0].operator_name)):
            changed = [
                line
                for line in (result.diff or "").splitlines()
                if line[:1] in "+-" and line[1:2] != line[:1]
            ]
            print(f"  SURVIVED {m.module_path}:{m.start_pos[0]} {m.operator_name}#{m.occurrence}")
            for line in changed:
                print(f"      {line.strip()}")
    tested, killed = all_counts["tested"], all_counts["killed"]
    if tested:
        print(f"all: {killed}/{tested} killed ({killed / tested:.1%})")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["run", "grow", "rerun", "report"])
    parser.add_argument("modules", nargs="*")
    parser.add_argument("--sample", type=float, default=1.0, help="test this share of the mutants")
    parser.add_argument("--seed", type=int, default=0, help="which ones (with --sample)")
    args = parser.parse_intermixed_args(argv)
    names = args.modules or list(config()["modules"])
    os.chdir(ROOT)
    # the mutated modules are imported from this checkout, whatever else is installed
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "scripts"), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    os.environ.setdefault("HYPOTHESIS_PROFILE", "mutation")  # no shrinking: a failure is enough
    os.environ["NUMBA_BOUNDSCHECK"] = "1"
    # a mutant that makes numba's variants unavailable fails their tests instead of skipping them
    os.environ["BMM_REQUIRE_NUMBA"] = "1"
    if args.command != "report":
        os.nice(19)
        # a stopped run puts the module back: the mutant is undone on the way out
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    for name in names:
        if args.command in ("run", "grow"):
            (init if args.command == "run" else grow)(name, args.sample, args.seed)
            with use_db(str(session(name)), WorkDB.Mode.open) as db:
                pending = list(db.pending_work_items)
            execute(name, pending)
        elif args.command == "rerun":
            with use_db(str(session(name)), WorkDB.Mode.open) as db:
                items = {item.job_id: item for item in db.work_items}
                again = [items[j] for j, r in db.results if outcome(r) == "survived"]
            execute(name, again)
    report(names)


if __name__ == "__main__":
    main()
