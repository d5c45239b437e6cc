"""A cohort through nbgrader's own exchange: release, fetch, submit (twice, and late), collect, grade, feedback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from course_lib.paths import REPO_ROOT
from toy_course import CORRECT, fill_solutions, make_toy_course

pytestmark = pytest.mark.slow

NBGRADER = str(Path(sys.executable).parent / "nbgrader")
COURSE = [sys.executable, "-m", "course_lib.cli"]
COURSE_ID = "toy"


def _run(command: list[str], cwd: Path, home: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    if home is not None:
        env["HOME"] = str(home)  # each student has their own nbgrader cache
    run = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert run.returncode == 0, f"{' '.join(command)} failed:\n{run.stdout}\n{run.stderr}"
    return run


def _student(tmp: Path, exchange: Path, name: str, *args: str) -> subprocess.CompletedProcess:
    home = tmp / "students" / name
    home.mkdir(parents=True, exist_ok=True)
    command = [NBGRADER, *args, "--course", COURSE_ID, f"--Exchange.root={exchange}", "--student", name]
    return _run(command, cwd=home, home=home)


def _answer(tmp: Path, name: str, answers: dict[str, str]) -> None:
    path = tmp / "students" / name / "week01" / "week01.ipynb"
    notebook = nbformat.read(str(path), as_version=4)
    nbformat.write(fill_solutions(notebook, answers), str(path))


def _write_settings(root: Path, exchange: Path, deadline: str | None) -> None:
    deadlines = f'week01 = "{deadline}"\n' if deadline else ""
    (root / "course.toml").write_text(
        f'[course]\ncourse_id = "{COURSE_ID}"\ncell_timeout_seconds = 10\n\n[deadlines]\n{deadlines}\n'
        f'[exchange]\nroot = "{exchange}"\n',
        encoding="utf-8",
    )


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cohort")
    exchange = tmp / "exchange"
    exchange.mkdir()
    exchange.chmod(0o777)
    root = make_toy_course(tmp / "course")
    _write_settings(root, exchange, None)
    shutil.copy(REPO_ROOT / "nbgrader_config.py", root / "nbgrader_config.py")

    _run(COURSE + ["release", "1"], cwd=root)
    _run([NBGRADER, "release_assignment", "week01"], cwd=root)

    for name in ("alice", "bob", "carol"):
        _student(tmp, exchange, name, "fetch_assignment", "week01")
    _answer(tmp, "alice", CORRECT)
    _student(tmp, exchange, "alice", "submit", "week01")
    _answer(tmp, "bob", {"add": "def add(a, b):\n    return a - b"})
    _student(tmp, exchange, "bob", "submit", "week01")
    time.sleep(1.1)  # nbgrader keeps the latest submission by timestamp
    _answer(tmp, "bob", CORRECT)
    _student(tmp, exchange, "bob", "submit", "week01")

    # The deadline falls between bob's second submission and carol's, stated in New York time (UTC-5).
    time.sleep(1.1)
    deadline = datetime.now(timezone.utc).astimezone(timezone(timedelta(hours=-5)))
    time.sleep(1.1)
    _answer(tmp, "carol", {"add": CORRECT["add"]})
    _student(tmp, exchange, "carol", "submit", "week01")
    _write_settings(root, exchange, deadline.isoformat())

    _run([NBGRADER, "collect", "week01"], cwd=root)
    _run(COURSE + ["autograde", "1"], cwd=root)
    _run(COURSE + ["feedback", "1"], cwd=root)
    _run([NBGRADER, "release_feedback", "week01"], cwd=root)
    for name in ("alice", "bob", "carol"):
        _student(tmp, exchange, name, "fetch_feedback", "week01")
    _run(COURSE + ["grades"], cwd=root)
    _run(COURSE + ["milestones"], cwd=root)
    return {"tmp": tmp, "root": root}


def test_collected_every_student(cohort):
    submitted = sorted(p.name for p in (cohort["root"] / "submitted").iterdir())
    assert submitted == ["alice", "bob", "carol"]


def test_scores_after_exchange(cohort):
    grades = pd.read_csv(cohort["root"] / "grades.csv").set_index("student_id")
    assert grades.loc["alice", "score"] == 5
    assert grades.loc["bob", "score"] == 5  # the second, correct submission is graded
    assert grades.loc["carol", "score"] == 2


def test_late_submission_against_zoned_deadline(cohort):
    grades = pd.read_csv(cohort["root"] / "grades.csv").set_index("student_id")
    assert bool(grades.loc["carol", "late"])
    assert not bool(grades.loc["alice", "late"])
    assert not bool(grades.loc["bob", "late"])


def test_students_fetch_feedback_without_hidden_tests(cohort):
    for name in ("alice", "bob", "carol"):
        pages = list((cohort["tmp"] / "students" / name / "week01" / "feedback").rglob("*.html"))
        assert len(pages) == 1, name
        text = pages[0].read_text(encoding="utf-8")
        assert "BEGIN HIDDEN TESTS" not in text
        assert "add(-1, 1) == 0" not in text


def test_milestones_written(cohort):
    milestones = pd.read_csv(cohort["root"] / "milestones.csv", dtype={"weeks_completed": str})
    assert sorted(milestones["student_id"]) == ["alice", "bob", "carol"]
    assert list(milestones.loc[milestones["student_id"] == "alice", "weeks_completed"]) == ["1"]


@pytest.fixture(scope="module")
def lms_course(tmp_path_factory):
    """A course whose students uploaded to Canvas: one zip of files named in Canvas's style."""
    import zipfile

    tmp = tmp_path_factory.mktemp("lms")
    root = make_toy_course(tmp / "course")
    shutil.copy(REPO_ROOT / "nbgrader_config.py", root / "nbgrader_config.py")
    _run(COURSE + ["release", "1"], cwd=root)
    released = nbformat.read(str(root / "release" / "week01" / "week01.ipynb"), as_version=4)

    archive = root / "downloaded" / "week01" / "archive"
    archive.mkdir(parents=True)
    uploads = {
        "alice_12345_678901_week01.ipynb": fill_solutions(released, CORRECT),
        "bob_LATE_23456_789012_week01-1.ipynb": fill_solutions(released, {"add": CORRECT["add"]}),
        "carol_34567_890123_week01.ipynb": released,
    }
    with zipfile.ZipFile(archive / "submissions.zip", "w") as bundle:
        for name, notebook in uploads.items():
            bundle.writestr(name, nbformat.writes(notebook))
        bundle.writestr("dave_45678_901234_notes.txt", "my answers are in my head")
    _run([NBGRADER, "zip_collect", "week01"], cwd=root)
    _run(COURSE + ["autograde", "1"], cwd=root)
    _run(COURSE + ["grades"], cwd=root)
    return root


def test_zip_collect_layout(lms_course):
    for student in ("alice", "bob", "carol"):
        assert (lms_course / "submitted" / student / "week01" / "week01.ipynb").is_file(), student
    assert not (lms_course / "submitted" / "dave").exists()


def test_zip_collect_scores(lms_course):
    grades = pd.read_csv(lms_course / "grades.csv").set_index("student_id")
    assert grades.loc["alice", "score"] == 5
    assert grades.loc["bob", "score"] == 2
    assert grades.loc["carol", "score"] == 0
