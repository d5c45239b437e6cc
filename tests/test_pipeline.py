"""The course pipeline on a two-question toy course: release, autograde, grades, feedback, check."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from course_lib.feedback import feedback
from course_lib.grading import autograde, release
from course_lib.nbgrader_ext import HideGraderTracebacks, KeepStderrOutOfGrades
from course_lib.reports import grades_table
from toy_course import CORRECT, fill_solutions, make_toy_course

pytestmark = pytest.mark.slow

COURSE = [sys.executable, "-m", "course_lib.cli"]
ON_TIME = "2027-01-15 10:00:00.000000 UTC"
# 16:30 UTC is 11:30 in New York (UTC-5 in January), after the 09:00 deadline below.
LATE = "2027-01-15 16:30:00.000000 UTC"
DEADLINE = "2027-01-15T09:00:00-05:00"


def _submit(root: Path, student: str, notebook=None, raw: str | None = None, timestamp: str = ON_TIME,
            name: str = "week01.ipynb") -> Path:
    folder = root / "submitted" / student / "week01"
    folder.mkdir(parents=True, exist_ok=True)
    if raw is not None:
        (folder / name).write_text(raw, encoding="utf-8")
    elif notebook is not None:
        nbformat.write(notebook, str(folder / name))
    (folder / "timestamp.txt").write_text(timestamp, encoding="utf-8")
    return folder


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


# A correct answer that makes NumPy warn on stderr (the filter is reset, so the grader's PYTHONWARNINGS=ignore
# does not hide it) and prints a progress line to stderr, as tqdm would.
WARNING_ANSWER = '''import sys
import warnings

import numpy as np

def add(a, b):
    warnings.simplefilter("always")
    np.log(np.zeros(1))
    warnings.warn("this helper is deprecated", DeprecationWarning)
    print("progress 100%", file=sys.stderr)
    return a + b'''


@pytest.fixture(scope="module")
def graded_course(tmp_path_factory):
    """A toy course with one submission of every kind, released and autograded once for the module."""
    root = make_toy_course(tmp_path_factory.mktemp("course"), timeout=4, deadline=DEADLINE)
    release(root, ["week01"])
    released = nbformat.read(str(root / "release" / "week01" / "week01.ipynb"), as_version=4)

    _submit(root, "correct", fill_solutions(released, CORRECT))
    _submit(root, "untouched", released)
    _submit(root, "late", fill_solutions(released, CORRECT), timestamp=LATE)
    _submit(root, "warning", fill_solutions(released, {**CORRECT, "add": WARNING_ANSWER}))
    _submit(root, "syntax", fill_solutions(released, {**CORRECT, "add": "def add(a, b)\n    return a + b"}))
    _submit(root, "exception", fill_solutions(released, {**CORRECT, "add": "raise RuntimeError('boom')"}))
    _submit(root, "loop", fill_solutions(released, {**CORRECT, "scale": "while True:\n    pass"}))
    deleted = fill_solutions(released, CORRECT)
    deleted.cells = [c for c in deleted.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "scale"]
    _submit(root, "deleted", deleted)
    _submit(root, "notjson", raw="this is not a notebook")
    _submit(root, "truncated", raw=nbformat.writes(fill_solutions(released, CORRECT))[:200])
    _submit(root, "badtime", fill_solutions(released, CORRECT), timestamp="yesterday evening")
    folder = _submit(root, "nonotebook", raw="my answers", name="answers.txt")
    assert not list(folder.glob("*.ipynb"))

    before = _hashes(root / "submitted")
    results = autograde(root, ["week01"], progress=False)
    return {"root": root, "results": {r.student_id: r for r in results}, "before": before}


EXPECTED_SCORES = {
    "correct": 5, "untouched": 0, "late": 5, "warning": 5, "syntax": 3, "exception": 3, "loop": 2,
    "deleted": 2, "notjson": 0, "truncated": 0, "nonotebook": 0, "badtime": 0,
}


@pytest.mark.parametrize("student, expected", sorted(EXPECTED_SCORES.items()))
def test_grades_per_submission(graded_course, student, expected):
    table = grades_table(graded_course["root"]).set_index("student_id")
    assert table.loc[student, "score"] == expected
    assert table.loc[student, "max_score"] == 5


def test_submitted_files_unchanged(graded_course):
    assert _hashes(graded_course["root"] / "submitted") == graded_course["before"]


@pytest.mark.parametrize("student, fragment", [
    ("syntax", "answer cell add: SyntaxError"),
    ("exception", "answer cell add: RuntimeError: boom"),
    ("loop", "answer cell scale: timed out"),
    ("deleted", "answer cell scale is missing from the submission"),
    ("notjson", "not valid JSON"),
    ("truncated", "not valid JSON"),
    ("nonotebook", "no notebook submitted: expected week01.ipynb, found answers.txt"),
    ("untouched", "test_add: NotImplementedError"),
    ("badtime", "timestamp.txt contains 'yesterday evening', which is not a time"),
])
def test_problem_message(graded_course, student, fragment):
    problems = graded_course["results"][student].problems
    assert any(fragment in p for p in problems), problems


def test_unreadable_submissions_marked_failed(graded_course):
    table = grades_table(graded_course["root"]).set_index("student_id")
    for student in ("notjson", "truncated", "nonotebook", "badtime"):
        assert table.loc[student, "status"] == "failed"
        assert bool(table.loc[student, "submitted"])
    assert table.loc["correct", "status"] == "graded"


def test_late_against_deadline_with_time_zone(graded_course):
    table = grades_table(graded_course["root"]).set_index("student_id")
    assert bool(table.loc["late", "late"])
    assert table.loc["late", "seconds_late"] == pytest.approx(2.5 * 3600)
    assert not bool(table.loc["correct", "late"])


def test_grades_csv_from_command(graded_course, tmp_path):
    output = tmp_path / "grades.csv"
    run = subprocess.run(COURSE + ["--root", str(graded_course["root"]), "grades", "--output", str(output)],
                         capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    table = pd.read_csv(output)
    assert list(table.columns[:5]) == ["student_id", "week", "assignment", "score", "max_score"]
    assert len(table) == len(EXPECTED_SCORES)
    assert set(table["week"]) == {1}


def test_regrading_is_idempotent(graded_course):
    root = graded_course["root"]
    before = grades_table(root).drop(columns=["timestamp"])
    autograde(root, ["week01"], students=["correct", "syntax"], progress=False)
    after = grades_table(root).drop(columns=["timestamp"])
    pd.testing.assert_frame_equal(before, after)


def test_feedback_hides_hidden_tests(graded_course):
    root = graded_course["root"]
    written, problems = feedback(root, ["week01"])
    assert problems == []
    assert len(written) == 8  # every submission nbgrader could grade
    for html in written:
        text = html.read_text(encoding="utf-8")
        assert "BEGIN HIDDEN TESTS" not in text
        assert "add(-1, 1) == 0" not in text
        assert "assert scale([1, 2, 3], 3)" not in text


def test_release_is_reproducible_and_clean(tmp_path):
    root = make_toy_course(tmp_path)
    release(root, ["week01"])
    path = root / "release" / "week01" / "week01.ipynb"
    first = path.read_bytes()
    release(root, ["week01"])
    assert path.read_bytes() == first
    text = first.decode("utf-8")
    assert "BEGIN HIDDEN TESTS" not in text
    assert "return a + b" not in text
    assert "NotImplementedError" in text


def _course(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(COURSE + list(args), capture_output=True, text=True, check=False, cwd=cwd)


def test_command_rejects_unknown_week(tmp_path):
    root = make_toy_course(tmp_path)
    run = _course("--root", str(root), "release", "7")
    assert run.returncode == 2
    assert "week '7' not found" in run.stderr


def test_command_rejects_invalid_week_name(tmp_path):
    root = make_toy_course(tmp_path)
    run = _course("--root", str(root), "autograde", "weekX")
    assert run.returncode == 2
    assert "invalid week 'weekX'" in run.stderr


def test_command_reports_empty_submissions(tmp_path):
    root = make_toy_course(tmp_path)
    run = _course("--root", str(root), "autograde", "1")
    assert run.returncode == 2
    assert "no submissions found" in run.stderr


def test_command_rejects_invalid_source_notebook(tmp_path):
    root = make_toy_course(tmp_path)
    (root / "source" / "week01" / "week01.ipynb").write_text("{not json", encoding="utf-8")
    run = _course("--root", str(root), "release", "1")
    assert run.returncode == 2
    assert "not valid JSON" in run.stderr


def test_command_outside_course_folder(tmp_path):
    run = _course("grades", cwd=tmp_path)
    assert run.returncode != 0
    assert "not inside a course folder" in run.stderr


def test_check_reports_per_question(tmp_path):
    root = make_toy_course(tmp_path)
    release(root, ["week01"])
    released = nbformat.read(str(root / "release" / "week01" / "week01.ipynb"), as_version=4)
    mine = tmp_path / "mine.ipynb"
    nbformat.write(fill_solutions(released, {"add": CORRECT["add"]}), str(mine))
    before = mine.read_bytes()

    run = _course("check", str(mine))
    assert run.returncode == 1
    lines = {line.split()[0]: line for line in run.stdout.splitlines() if line.strip()}
    assert "2 / 2" in lines["test_add"]
    assert "0 / 3" in lines["test_scale"]
    assert "NotImplementedError" in lines["test_scale"]
    assert mine.read_bytes() == before

    nbformat.write(fill_solutions(released, CORRECT), str(mine))
    assert _course("check", str(mine)).returncode == 0


def test_check_missing_notebook(tmp_path):
    run = _course("check", str(tmp_path / "nope.ipynb"))
    assert run.returncode == 2
    assert "notebook not found" in run.stderr


def test_stderr_moved_out_of_grade_cells():
    cell = nbformat.v4.new_code_cell("x", metadata={"nbgrader": {"grade": True, "points": 1, "grade_id": "t"}})
    cell.outputs = [nbformat.v4.new_output("stream", name="stderr", text="UserWarning: something\n")]
    KeepStderrOutOfGrades().preprocess_cell(cell, {}, 0)
    assert cell.outputs[0]["name"] == "stdout"
    assert cell.outputs[0]["text"] == "UserWarning: something\n"


def test_grader_tracebacks_reduced():
    cell = nbformat.v4.new_code_cell("check(f)")
    cell.outputs = [nbformat.v4.new_output(
        "error", ename="AssertionError", evalue="weights do not sum to 1",
        traceback=["Traceback", 'File "/repo/autograder/week02.py", line 10, in check', "expected = reference(x)"],
    )]
    HideGraderTracebacks().preprocess_cell(cell, {}, 0)
    text = json.dumps(cell.outputs[0])
    assert "autograder" not in text
    assert "reference(x)" not in text
    assert cell.outputs[0]["traceback"][0] == "AssertionError: weights do not sum to 1"


def test_student_traceback_kept():
    cell = nbformat.v4.new_code_cell("f()")
    trace = ["Traceback", 'File "/tmp/ipykernel/123.py", line 2, in f', "ZeroDivisionError: division by zero"]
    cell.outputs = [nbformat.v4.new_output("error", ename="ZeroDivisionError", evalue="division by zero", traceback=trace)]
    HideGraderTracebacks().preprocess_cell(cell, {}, 0)
    assert cell.outputs[0]["traceback"] == trace


def test_warning_reached_grade_cell_output(graded_course):
    # The full marks above mean something only if the warning really reached the graded notebook.
    graded = graded_course["root"] / "autograded" / "warning" / "week01" / "week01.ipynb"
    text = graded.read_text(encoding="utf-8")
    assert "divide by zero" in text
    assert "progress 100%" in text


def test_demo_refuses_foreign_folder(tmp_path):
    from course_lib.demo import prepare_course

    (tmp_path / "thesis.tex").write_text("precious", encoding="utf-8")
    with pytest.raises(ValueError, match="not made by `course demo`"):
        prepare_course(tmp_path)
    assert (tmp_path / "thesis.tex").read_text(encoding="utf-8") == "precious"


def test_feedback_command_lists_skipped(graded_course):
    run = _course("--root", str(graded_course["root"]), "feedback", "1")
    assert run.returncode == 0, run.stderr
    assert "skipped week01/notjson: no feedback, week01.ipynb: not valid JSON" in run.stderr
    assert "skipped week01/nonotebook: no feedback, no notebook submitted" in run.stderr


def test_autograde_unknown_student(graded_course):
    run = _course("--root", str(graded_course["root"]), "autograde", "1", "--student", "nosuch")
    assert run.returncode == 2
    assert "no submission of week01 from 'nosuch'" in run.stderr


def test_check_endless_loop_times_out(tmp_path):
    root = make_toy_course(tmp_path)
    release(root, ["week01"])
    released = nbformat.read(str(root / "release" / "week01" / "week01.ipynb"), as_version=4)
    mine = tmp_path / "loop.ipynb"
    nbformat.write(fill_solutions(released, {**CORRECT, "scale": "while True:\n    pass"}), str(mine))
    run = _course("check", "--timeout", "3", str(mine))
    assert run.returncode == 1, run.stderr
    lines = {line.split()[0]: line for line in run.stdout.splitlines() if line.strip()}
    assert "2 / 2" in lines["test_add"]
    assert "timed out" in lines["test_scale"]
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize("name, fragment", [("answers.py", "not a Jupyter notebook (.ipynb file)"), ("folder", "is a folder")])
def test_check_rejects_non_notebooks(tmp_path, name, fragment):
    target = tmp_path / name
    if name == "folder":
        target.mkdir()
    else:
        target.write_text("print(1)", encoding="utf-8")
    run = _course("check", str(target))
    assert run.returncode == 2
    assert fragment in run.stderr


def test_autograde_before_release_with_bare_path(tmp_path):
    # The instructor skipped `course release` and runs the venv's `course` without activating the venv.
    import os

    root = make_toy_course(tmp_path / "course")
    scratch = make_toy_course(tmp_path / "scratch")
    release(scratch, ["week01"])
    released = nbformat.read(str(scratch / "release" / "week01" / "week01.ipynb"), as_version=4)
    _submit(root, "ana", fill_solutions(released, CORRECT))
    course = str(Path(sys.executable).parent / "course")
    run = subprocess.run([course, "--root", str(root), "autograde"], capture_output=True, text=True,
                         env=dict(os.environ, PATH="/usr/bin:/bin"), check=False)
    assert run.returncode == 0, run.stderr
    assert "5 / 5" in run.stdout
    assert (root / "release" / "week01" / "week01.ipynb").is_file()
