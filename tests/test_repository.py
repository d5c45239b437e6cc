"""The committed course material: generated folders in sync, no outputs, no leaked solutions or hidden tests."""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
import sys

import pytest

from course_lib.grading import release, source_weeks
from course_lib.notebooks import (
    BEGIN_HIDDEN,
    grade_id,
    is_grade_cell,
    is_solution_cell,
    read_notebook,
)
from course_lib.paths import REPO_ROOT
from course_lib.solutions import generate_solutions

WEEKS = source_weeks(REPO_ROOT)


def test_weeks_one_and_two_present():
    assert "week01" in WEEKS
    assert "week02" in WEEKS


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    """Release and solutions generated afresh from source/ in a scratch course folder."""
    root = tmp_path_factory.mktemp("regenerated")
    shutil.copy(REPO_ROOT / "course.toml", root / "course.toml")
    for week in WEEKS:
        shutil.copytree(REPO_ROOT / "source" / week, root / "source" / week)
    release(root, WEEKS)
    for week in WEEKS:
        generate_solutions(week, root)
    return root


@pytest.mark.parametrize("folder", ["release", "solutions"])
@pytest.mark.parametrize("week", WEEKS)
def test_generated_folder_in_sync(regenerated, folder, week):
    expected = {p.relative_to(regenerated / folder / week): p.read_bytes()
                for p in sorted((regenerated / folder / week).rglob("*")) if p.is_file()}
    committed = {p.relative_to(REPO_ROOT / folder / week): p.read_bytes()
                 for p in sorted((REPO_ROOT / folder / week).rglob("*")) if p.is_file() and "__pycache__" not in p.parts}
    assert sorted(committed) == sorted(expected), f"run `course {folder} {week}` and commit the result"
    for name, content in expected.items():
        assert committed[name] == content, f"{folder}/{week}/{name} is out of date: run `course {folder} {week}`"


def _committed_notebooks():
    for folder in ("source", "release", "solutions"):
        yield from sorted((REPO_ROOT / folder).rglob("*.ipynb"))


@pytest.mark.parametrize("path", list(_committed_notebooks()), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_committed_notebook_has_no_outputs(path):
    notebook = read_notebook(path)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"cell {index} of {path.name} has outputs: clear them before committing"
            assert cell.execution_count is None, f"cell {index} of {path.name} has an execution count"


def _solution_lines(week: str) -> list[str]:
    """Lines of reference code that only a solution contains.

    Short lines and lines the notebook also states outside the solution regions (an attribute name that a
    docstring prescribes, for example) are left out: they may appear in the release on purpose.
    """
    source = read_notebook(REPO_ROOT / "source" / week / f"{week}.ipynb")
    solution, given = [], []
    for cell in source.cells:
        inside = False
        for line in cell.source.split("\n"):
            if "### BEGIN SOLUTION" in line:
                inside = True
            elif "### END SOLUTION" in line:
                inside = False
            elif inside and is_solution_cell(cell):
                solution.append(line.strip())
            else:
                given.append(line)
    given_text = "\n".join(given)
    return [line for line in solution if len(line) >= 25 and not line.startswith("#") and line not in given_text]


@pytest.mark.parametrize("week", WEEKS)
def test_release_has_no_solution_or_hidden_test(week):
    text = (REPO_ROOT / "release" / week / f"{week}.ipynb").read_text(encoding="utf-8")
    assert "BEGIN SOLUTION" not in text
    assert "BEGIN HIDDEN TESTS" not in text
    assert "autograder" not in text
    notebook = read_notebook(REPO_ROOT / "release" / week / f"{week}.ipynb")
    code = "\n".join(c.source for c in notebook.cells if c.cell_type == "code")
    leaked = [line for line in _solution_lines(week) if line in code]
    assert leaked == [], f"solution lines found in the release: {leaked[:3]}"


@pytest.mark.parametrize("week", WEEKS)
def test_solution_notebook_has_no_hidden_test(week):
    text = (REPO_ROOT / "solutions" / week / f"{week}.ipynb").read_text(encoding="utf-8")
    assert "BEGIN HIDDEN TESTS" not in text
    assert "autograder" not in text


@pytest.mark.parametrize("week", WEEKS)
def test_grade_cells_call_existing_checks(week):
    module = importlib.import_module(f"autograder.{week}")
    notebook = read_notebook(REPO_ROOT / "source" / week / f"{week}.ipynb")
    grade_cells = [c for c in notebook.cells if c.cell_type == "code" and is_grade_cell(c)]
    assert grade_cells, f"{week} has no grade cells"
    for cell in grade_cells:
        assert cell.metadata["nbgrader"].get("points", 0) > 0, f"{grade_id(cell)} has no points"
        assert cell.metadata["nbgrader"].get("locked"), f"{grade_id(cell)} is not locked"
        assert BEGIN_HIDDEN in cell.source, f"{grade_id(cell)} has no hidden tests"
        for name in re.findall(rf"from autograder\.{week} import ([\w, ]+)", cell.source):
            for check in (n.strip() for n in name.split(",")):
                assert callable(getattr(module, check, None)), f"{grade_id(cell)} imports missing {check}"


@pytest.mark.parametrize("week", WEEKS)
def test_cell_ids_unique_and_fixed(week):
    notebook = read_notebook(REPO_ROOT / "source" / week / f"{week}.ipynb")
    ids = [cell.get("id") for cell in notebook.cells]
    assert all(ids), "every cell needs a fixed id so releases are reproducible"
    assert len(set(ids)) == len(ids)
    grade_ids = [grade_id(c) for c in notebook.cells if grade_id(c)]
    assert len(set(grade_ids)) == len(grade_ids)


@pytest.mark.parametrize("week", WEEKS)
def test_reference_module_imports_quickly(week):
    # Solution cells define functions and classes only; heavy work at import would slow every check test.
    code = (REPO_ROOT / "solutions" / week / "reference.py").read_text(encoding="utf-8")
    compile(code, f"{week}/reference.py", "exec")
    assert "### BEGIN SOLUTION" not in code


@pytest.mark.slow
@pytest.mark.parametrize("week", WEEKS)
def test_public_tests_pass_on_solution_notebook(week):
    path = REPO_ROOT / "solutions" / week / f"{week}.ipynb"
    before = path.read_bytes()
    run = subprocess.run([sys.executable, "-m", "course_lib.cli", "check", str(path)],
                         capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "passed" in run.stdout
    assert path.read_bytes() == before

