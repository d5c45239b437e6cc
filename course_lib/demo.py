"""The main job: release weeks 1-2, grade three kinds of submissions, print grades and milestones."""

from __future__ import annotations

import copy
import importlib
import shutil
import sys
import types
from pathlib import Path

import nbformat

from course_lib.notebooks import grade_id, is_solution_cell, read_notebook, reference_source, strip_solution_markers
from course_lib.paths import REPO_ROOT

DEMO_WEEKS = ("week01", "week02")

# Student id -> kind of submission.
DEMO_STUDENTS = {
    "ada-reference": "reference",
    "ben-untouched": "untouched",
    "cy-mistakes": "mistakes",
}

# A file in every demo folder, so a later demo run may delete the folder without risking other files.
DEMO_MARKER = ".course-demo"

DEMO_DEADLINE = "2027-01-15T23:59:00+00:00"
# nbgrader's timestamp format. cy submits week 2 after the deadline, so the late column shows something.
ON_TIME = "2027-01-15 10:00:00.000000 UTC"
LATE = "2027-01-16 08:30:00.000000 UTC"


def demo_mistakes(week: str) -> list[tuple[str, str, str]]:
    """Return the week's `DEMO_MISTAKES` from its hidden-check module."""
    module = importlib.import_module(f"autograder.{week}")
    return list(getattr(module, "DEMO_MISTAKES", []))


def build_submission(source_nb, release_nb, kind: str, mistakes=()) -> nbformat.NotebookNode:
    """Return the released notebook as a student of KIND would submit it.

    `untouched` is the release as is. `reference` fills every solution cell with the reference code, and
    `mistakes` does the same, then applies the (grade_id, old, new) replacements.
    """
    if kind not in ("reference", "untouched", "mistakes"):
        raise ValueError(f"unknown submission kind {kind!r}: expected reference, untouched or mistakes")
    notebook = copy.deepcopy(release_nb)
    if kind == "untouched":
        return notebook

    solutions = {grade_id(c): strip_solution_markers(c.source) for c in source_nb.cells if is_solution_cell(c)}
    applied = set()
    for cell in notebook.cells:
        name = grade_id(cell)
        if not is_solution_cell(cell) or name not in solutions:
            continue
        code = solutions[name]
        if kind == "mistakes":
            for index, (target, old, new) in enumerate(mistakes):
                if target != name:
                    continue
                if old not in code:
                    raise ValueError(f"demo mistake {index} for cell {target!r}: text {old!r} not found in the reference code")
                code = code.replace(old, new)
                applied.add(index)
        cell.source = code
    if kind == "mistakes":
        unknown = [mistakes[i][0] for i in range(len(mistakes)) if i not in applied]
        if unknown:
            raise ValueError(f"demo mistakes name solution cells that do not exist: {', '.join(unknown)}")
    return notebook


def prepare_course(course_dir: Path, weeks=DEMO_WEEKS) -> None:
    """Create a fresh course folder with the weeks' sources, a deadline, and one submission per demo student."""
    from course_lib.grading import release

    weeks = list(weeks)
    if course_dir.exists() and any(course_dir.iterdir()):
        if not (course_dir / DEMO_MARKER).is_file():
            raise ValueError(f"{course_dir} is not empty and was not made by `course demo`; "
                             "choose a new folder with --dir")
        shutil.rmtree(course_dir)
    course_dir.mkdir(parents=True, exist_ok=True)
    (course_dir / DEMO_MARKER).write_text("Made by `course demo`; the next demo run replaces this folder.\n",
                                          encoding="utf-8")
    for week in weeks:
        shutil.copytree(REPO_ROOT / "source" / week, course_dir / "source" / week)
    deadlines = "\n".join(f'{week} = "{DEMO_DEADLINE}"' for week in weeks)
    (course_dir / "course.toml").write_text(
        '[course]\ncourse_id = "llm-agents-demo"\npass_threshold = 0.70\ncell_timeout_seconds = 120\n\n'
        f"[deadlines]\n{deadlines}\n",
        encoding="utf-8",
    )
    release(course_dir, weeks)

    for week in weeks:
        source_nb = read_notebook(course_dir / "source" / week / f"{week}.ipynb")
        release_nb = read_notebook(course_dir / "release" / week / f"{week}.ipynb")
        mistakes = demo_mistakes(week)
        for student, kind in DEMO_STUDENTS.items():
            folder = course_dir / "submitted" / student / week
            folder.mkdir(parents=True)
            nbformat.write(build_submission(source_nb, release_nb, kind, mistakes), str(folder / f"{week}.ipynb"))
            late = kind == "mistakes" and week == weeks[-1]
            (folder / "timestamp.txt").write_text(LATE if late else ON_TIME, encoding="utf-8")


def check_expectations(grades) -> list[str]:
    """Return what differs from the expected demo outcome: full marks, zero, and partial credit."""
    problems = []
    for row in grades.itertuples():
        kind = DEMO_STUDENTS.get(row.student_id)
        label = f"{row.student_id} {row.assignment}: {row.score:g} / {row.max_score:g}"
        if kind == "reference" and row.score != row.max_score:
            problems.append(f"{label}, expected full marks")
        elif kind == "untouched" and row.score != 0:
            problems.append(f"{label}, expected 0")
        elif kind == "mistakes" and not 0 < row.score < row.max_score:
            problems.append(f"{label}, expected partial credit")
        if row.status != "graded":
            problems.append(f"{row.student_id} {row.assignment}: status {row.status}, expected graded")
    return problems


def mistakes_module(week: str, root: Path = REPO_ROOT) -> types.ModuleType:
    """Build a module from the week's reference code with its DEMO_MISTAKES applied, as `course demo` does.

    Tests use it to check that the demo's third submission earns partial credit. Each mistake's text must
    occur exactly once in its cell, so a change to the reference code cannot silently disable a mistake.
    """
    notebook = copy.deepcopy(read_notebook(root / "source" / week / f"{week}.ipynb"))
    mistakes = demo_mistakes(week)
    solution_ids = {grade_id(cell) for cell in notebook.cells if is_solution_cell(cell)}
    unknown = sorted({target for target, _, _ in mistakes} - solution_ids)
    if unknown:
        raise ValueError(f"DEMO_MISTAKES of {week} name solution cells that do not exist: {', '.join(unknown)}")
    for cell in notebook.cells:
        if not is_solution_cell(cell):
            continue
        code = strip_solution_markers(cell.source)
        for target, old, new in mistakes:
            if target == grade_id(cell):
                if code.count(old) != 1:
                    raise ValueError(f"demo mistake text {old!r} for {target!r} must occur exactly once in the cell")
                code = code.replace(old, new)
        cell.source = code
    module = types.ModuleType(f"{week}_demo_mistakes")
    sys.modules[module.__name__] = module  # dataclasses and NamedTuple look up their defining module
    try:
        exec(compile(reference_source(notebook), f"<{week} demo mistakes>", "exec"), module.__dict__)
    finally:
        del sys.modules[module.__name__]
    return module
