"""The main job end to end on the real weeks: `course demo`, the report commands, then all of phase 1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from course_lib.demo import DEMO_STUDENTS, DEMO_WEEKS, build_submission, demo_mistakes
from course_lib.notebooks import read_notebook
from course_lib.paths import REPO_ROOT

pytestmark = pytest.mark.slow

COURSE = [sys.executable, "-m", "course_lib.cli"]


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo") / "course"
    run = subprocess.run(COURSE + ["demo", "--dir", str(folder)], capture_output=True, text=True, check=False)
    assert run.returncode == 0, f"demo failed:\n{run.stdout}\n{run.stderr}"
    assert "demo passed" in run.stderr
    return folder


def _course(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(COURSE + ["--root", str(folder), *args], capture_output=True, text=True, check=False)


def test_demo_scores(demo_dir):
    grades = pd.read_csv(demo_dir / "grades.csv")
    assert len(grades) == len(DEMO_STUDENTS) * len(DEMO_WEEKS)
    for row in grades.itertuples():
        kind = DEMO_STUDENTS[row.student_id]
        assert row.max_score > 0
        if kind == "reference":
            assert row.score == row.max_score, row
        elif kind == "untouched":
            assert row.score == 0, row
        else:
            assert 0 < row.score < row.max_score, row


def test_untouched_release_zero_on_every_graded_cell(demo_dir):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{demo_dir / 'gradebook.db'}") as gradebook:
        for week in DEMO_WEEKS:
            notebook = gradebook.find_submission_notebook(week, week, "ben-untouched")
            scores = {grade.name: grade.score for grade in notebook.grades}
            assert scores, f"no grades stored for {week}"
            assert all(score == 0 for score in scores.values()), scores


def test_late_submission_marked(demo_dir):
    grades = pd.read_csv(demo_dir / "grades.csv").set_index(["student_id", "assignment"])
    assert bool(grades.loc[("cy-mistakes", DEMO_WEEKS[-1]), "late"])
    assert not bool(grades.loc[("ada-reference", DEMO_WEEKS[-1]), "late"])


def test_submitted_files_unchanged(demo_dir):
    # Submissions are rebuilt from the same inputs and compared with what grading left in submitted/.
    for week in DEMO_WEEKS:
        source_nb = read_notebook(demo_dir / "source" / week / f"{week}.ipynb")
        release_nb = read_notebook(demo_dir / "release" / week / f"{week}.ipynb")
        for student, kind in DEMO_STUDENTS.items():
            expected = nbformat.writes(build_submission(source_nb, release_nb, kind, demo_mistakes(week)))
            path = demo_dir / "submitted" / student / week / f"{week}.ipynb"
            assert path.read_text(encoding="utf-8").rstrip("\n") == expected.rstrip("\n"), path


def test_demo_release_equals_committed_release(demo_dir):
    for week in DEMO_WEEKS:
        made = (demo_dir / "release" / week / f"{week}.ipynb").read_bytes()
        assert made == (REPO_ROOT / "release" / week / f"{week}.ipynb").read_bytes()


def test_feedback_without_hidden_tests(demo_dir):
    run = _course(demo_dir, "feedback")
    assert run.returncode == 0, run.stderr
    pages = sorted((demo_dir / "feedback").rglob("*.html"))
    assert len(pages) == len(DEMO_STUDENTS) * len(DEMO_WEEKS)
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert "BEGIN HIDDEN TESTS" not in text, page
        assert "autograder" not in text, page
        assert "check_" not in text, page


def test_feedback_shows_failure_reason(demo_dir):
    pages = sorted((demo_dir / "feedback" / "cy-mistakes").rglob("*.html"))
    text = "\n".join(page.read_text(encoding="utf-8") for page in pages)
    assert "AssertionError" in text


def test_grades_command(demo_dir, tmp_path):
    output = tmp_path / "grades.csv"
    run = _course(demo_dir, "grades", "--output", str(output))
    assert run.returncode == 0, run.stderr
    assert pd.read_csv(output).equals(pd.read_csv(demo_dir / "grades.csv"))


def test_milestones_command(demo_dir, tmp_path):
    output = tmp_path / "milestones.csv"
    run = _course(demo_dir, "milestones", "--output", str(output))
    assert run.returncode == 0, run.stderr
    table = pd.read_csv(output).set_index("student_id")
    assert set(table.index) == set(DEMO_STUDENTS)
    assert table.loc["ada-reference", "n_completed"] == len(DEMO_WEEKS)
    assert table.loc["ben-untouched", "n_completed"] == 0
    assert not table["foundation_master"].any()  # weeks 3-6 are not graded in the demo


LATER_WEEKS = ["week03", "week04", "week05", "week06"]


@pytest.fixture(scope="module")
def phase1_dir(demo_dir, tmp_path_factory):
    """The demo course with weeks 3-6 added and graded for the same three students."""
    import shutil

    folder = tmp_path_factory.mktemp("phase1") / "course"
    shutil.copytree(demo_dir, folder)
    for week in LATER_WEEKS:
        shutil.copytree(REPO_ROOT / "source" / week, folder / "source" / week)
    run = _course(folder, "release", *LATER_WEEKS)
    assert run.returncode == 0, run.stderr
    for week in LATER_WEEKS:
        source_nb = read_notebook(folder / "source" / week / f"{week}.ipynb")
        release_nb = read_notebook(folder / "release" / week / f"{week}.ipynb")
        for student, kind in DEMO_STUDENTS.items():
            target = folder / "submitted" / student / week
            target.mkdir(parents=True)
            submission = build_submission(source_nb, release_nb, kind, demo_mistakes(week))
            nbformat.write(submission, str(target / f"{week}.ipynb"))
    for args in (["autograde", *LATER_WEEKS], ["grades"], ["milestones"]):
        run = _course(folder, *args)
        assert run.returncode == 0, f"{args}: {run.stdout}\n{run.stderr}"
    return folder


def test_phase1_scores(phase1_dir):
    grades = pd.read_csv(phase1_dir / "grades.csv")
    assert sorted(set(grades["week"])) == list(range(1, 7))
    assert (grades["status"] == "graded").all()
    for row in grades.itertuples():
        kind = DEMO_STUDENTS[row.student_id]
        if kind == "reference":
            assert row.score == row.max_score, row
        elif kind == "untouched":
            assert row.score == 0, row
        else:
            assert 0 < row.score < row.max_score, row


def test_foundation_master_for_reference_student(phase1_dir):
    milestones = pd.read_csv(phase1_dir / "milestones.csv", dtype={"weeks_completed": str}).set_index("student_id")
    assert bool(milestones.loc["ada-reference", "foundation_master"])
    assert milestones.loc["ada-reference", "weeks_completed"] == "1-6"
    assert "Foundation Master" in milestones.loc["ada-reference", "milestones"]
    assert not bool(milestones.loc["ben-untouched", "foundation_master"])
    assert not bool(milestones.loc["cy-mistakes", "foundation_master"])
