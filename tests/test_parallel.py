"""Parallel grading on local workers and on a Dask cluster: one gradebook writer, the same results as in sequence."""

from __future__ import annotations

import shutil
import subprocess
import sys

import nbformat
import pandas as pd
import pytest

from course_lib.grading import autograde, release
from toy_course import CORRECT, fill_solutions, make_toy_course

pytestmark = pytest.mark.slow

STUDENTS = 6


def _cell_scores(root) -> dict:
    from nbgrader.api import Gradebook

    scores = {}
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gradebook:
        for submission in gradebook.find_assignment("week01").submissions:
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    scores[(submission.student.id, grade.name)] = grade.score
    return scores


@pytest.fixture(scope="module")
def courses(tmp_path_factory):
    base = tmp_path_factory.mktemp("parallel")
    sequential = make_toy_course(base / "sequential", timeout=4, deadline="2027-01-15T09:00:00+01:00")
    release(sequential, ["week01"])
    released = nbformat.read(str(sequential / "release" / "week01" / "week01.ipynb"), as_version=4)
    kinds = [
        CORRECT,
        {"add": CORRECT["add"]},
        {**CORRECT, "add": "def add(a, b)\n    return a + b"},
        {**CORRECT, "scale": "while True:\n    pass"},
        {},
    ]
    for index in range(STUDENTS):
        folder = sequential / "submitted" / f"student{index:02d}" / "week01"
        folder.mkdir(parents=True)
        nbformat.write(fill_solutions(released, kinds[index % len(kinds)]), str(folder / "week01.ipynb"))
        hour = 7 + index % 4  # some before and some after the 08:00 UTC deadline
        (folder / "timestamp.txt").write_text(f"2027-01-15 {hour:02d}:30:00.000000 UTC", encoding="utf-8")
    (sequential / "submitted" / "broken" / "week01").mkdir(parents=True)
    (sequential / "submitted" / "broken" / "week01" / "week01.ipynb").write_text("not json", encoding="utf-8")

    parallel = base / "parallel"
    shutil.copytree(sequential, parallel)
    cluster = base / "cluster"
    shutil.copytree(sequential, cluster)
    for name in ("interrupted-1", "interrupted-2"):
        shutil.copytree(sequential, base / name)
    autograde(sequential, ["week01"], progress=False)
    run = subprocess.run([sys.executable, "-m", "course_lib.cli", "--root", str(parallel), "autograde", "--jobs", "2"],
                         capture_output=True, text=True, check=False)
    assert run.returncode == 1, run.stderr  # the broken submission cannot be graded

    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as local_cluster:
        run = subprocess.run([sys.executable, "-m", "course_lib.cli", "--root", str(cluster), "autograde",
                              "--scheduler", local_cluster.scheduler_address],
                             capture_output=True, text=True, check=False)
    assert run.returncode == 1, run.stderr
    return sequential, parallel, cluster


@pytest.mark.parametrize("variant", [1, 2], ids=["local-workers", "dask-cluster"])
def test_same_grades_table(courses, variant):
    from course_lib.reports import grades_table

    pd.testing.assert_frame_equal(grades_table(courses[0]), grades_table(courses[variant]))


@pytest.mark.parametrize("variant", [1, 2], ids=["local-workers", "dask-cluster"])
def test_same_cell_scores(courses, variant):
    scores = _cell_scores(courses[variant])
    assert len(scores) == 2 * STUDENTS
    assert scores == _cell_scores(courses[0])


def test_late_flags_survive_merge(courses):
    from course_lib.reports import grades_table

    table = grades_table(courses[1]).set_index("student_id")
    assert bool(table.loc["student02", "late"])
    assert not bool(table.loc["student00", "late"])


@pytest.mark.parametrize("variant", [1, 2], ids=["local-workers", "dask-cluster"])
def test_autograded_files_and_no_scratch(courses, variant):
    assert len(list((courses[variant] / "autograded").glob("*/week01/week01.ipynb"))) == STUDENTS
    assert not (courses[variant] / ".grading").exists()


def test_jobs_must_be_positive(tmp_path):
    root = make_toy_course(tmp_path)
    run = subprocess.run([sys.executable, "-m", "course_lib.cli", "--root", str(root), "autograde", "--jobs", "0"],
                         capture_output=True, text=True, check=False)
    assert run.returncode == 2
    assert "at least 1" in run.stderr


def test_unreachable_scheduler(tmp_path):
    root = make_toy_course(tmp_path)
    release(root, ["week01"])
    (root / "submitted" / "ana" / "week01").mkdir(parents=True)
    shutil.copy(root / "release" / "week01" / "week01.ipynb", root / "submitted" / "ana" / "week01" / "week01.ipynb")
    run = subprocess.run([sys.executable, "-m", "course_lib.cli", "--root", str(root), "autograde",
                          "--scheduler", "tcp://127.0.0.1:9"], capture_output=True, text=True, check=False)
    assert run.returncode == 2
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in run.stderr


@pytest.mark.parametrize("jobs", [1, 2])
def test_ctrl_c_stops_and_rerun_completes(courses, jobs):
    import os
    import signal
    import time

    from course_lib.reports import grades_table

    root = courses[0].parent / f"interrupted-{jobs}"
    command = [sys.executable, "-m", "course_lib.cli", "--root", str(root), "autograde", "--jobs", str(jobs)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    deadline = time.monotonic() + 120
    while not list((root / "autograded").glob("*/week01")) and time.monotonic() < deadline:
        time.sleep(0.5)
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "interrupted after" in stderr
    assert not (root / ".grading").exists()

    rerun = subprocess.run(command, capture_output=True, text=True, check=False)
    assert rerun.returncode == 1, rerun.stderr  # only the broken submission fails
    pd.testing.assert_frame_equal(grades_table(courses[0]), grades_table(root))
