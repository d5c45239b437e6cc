"""A two-question course built in a temporary folder, so pipeline tests run in seconds, not minutes."""

from __future__ import annotations

import copy
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ADD_SOLUTION = '''def add(a, b):
    """Return a + b."""
    ### BEGIN SOLUTION
    return a + b
    ### END SOLUTION'''

SCALE_SOLUTION = '''def scale(values, factor):
    """Return each value multiplied by factor, as a list."""
    ### BEGIN SOLUTION
    return [v * factor for v in values]
    ### END SOLUTION'''

ADD_TESTS = '''assert add(1, 1) == 2
### BEGIN HIDDEN TESTS
assert add(2, 3) == 5, "add(2, 3) should be 5"
assert add(-1, 1) == 0
### END HIDDEN TESTS'''

SCALE_TESTS = '''assert scale([1], 2) == [2]
### BEGIN HIDDEN TESTS
assert scale([1, 2, 3], 3) == [3, 6, 9], "hidden check: scale([1, 2, 3], 3)"
### END HIDDEN TESTS'''


def _meta(kind: str, grade_id: str, points: int = 0) -> dict:
    if kind == "solution":
        return {"nbgrader": {"solution": True, "grade": False, "locked": False, "grade_id": grade_id, "schema_version": 3}}
    return {"nbgrader": {"solution": False, "grade": True, "locked": True, "points": points, "grade_id": grade_id,
                         "schema_version": 3}}


def toy_notebook() -> nbformat.NotebookNode:
    cells = [
        new_markdown_cell("# Toy week\nTwo small functions.", id="intro"),
        new_code_cell(ADD_SOLUTION, id="add", metadata=_meta("solution", "add")),
        new_code_cell(ADD_TESTS, id="test-add", metadata=_meta("grade", "test_add", 2)),
        new_code_cell(SCALE_SOLUTION, id="scale", metadata=_meta("solution", "scale")),
        new_code_cell(SCALE_TESTS, id="test-scale", metadata=_meta("grade", "test_scale", 3)),
    ]
    notebook = new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return notebook


def make_toy_course(root: Path, week: str = "week01", timeout: int = 10, deadline: str | None = None) -> Path:
    """Create ROOT/source/WEEK/WEEK.ipynb and ROOT/course.toml; return ROOT."""
    folder = root / "source" / week
    folder.mkdir(parents=True)
    nbformat.write(toy_notebook(), str(folder / f"{week}.ipynb"))
    deadlines = f'{week} = "{deadline}"\n' if deadline else ""
    (root / "course.toml").write_text(
        f'[course]\ncourse_id = "toy"\ncell_timeout_seconds = {timeout}\n\n[deadlines]\n{deadlines}', encoding="utf-8"
    )
    return root


def fill_solutions(release_nb, answers: dict[str, str]) -> nbformat.NotebookNode:
    """Return a copy of the release with the code of the named solution cells replaced."""
    notebook = copy.deepcopy(release_nb)
    for cell in notebook.cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            cell.source = answers[grade_id]
    return notebook


CORRECT = {
    "add": "def add(a, b):\n    return a + b",
    "scale": "def scale(values, factor):\n    return [v * factor for v in values]",
}
