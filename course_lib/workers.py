"""Grading in worker processes, local or on a Dask cluster, with the course process as the only gradebook writer."""

from __future__ import annotations

import contextlib
import logging
import shutil
from pathlib import Path

from course_lib.grading import (
    CourseError,
    SubmissionResult,
    _db_url,
    _grade_one,
    _quiet_gradebook,
    _remove_stale_grade,
    grading_environment,
    make_api,
)
from course_lib.settings import load_settings

logger = logging.getLogger(__name__)

SCRATCH_DIR = ".grading"


def grade_in_workers(root: Path, tasks: list[tuple[str, str]], jobs: int, bar,
                     scheduler: str | None = None, interrupt=None) -> list[SubmissionResult]:
    """Grade TASKS in worker processes and merge each result into gradebook.db from this process.

    The workers are JOBS local processes, or the workers of the Dask cluster at SCHEDULER, which must see
    the course folder at the same path (a shared file system).
    """
    scratch_root = root / SCRATCH_DIR
    shutil.rmtree(scratch_root, ignore_errors=True)
    results = {}
    with contextlib.ExitStack() as stack:
        if scheduler:
            from distributed import Client, as_completed

            try:
                client = stack.enter_context(Client(scheduler, timeout="30s"))
            except OSError as error:
                raise CourseError(f"cannot reach the Dask scheduler at {scheduler}: {error}") from None
            futures = {client.submit(grade_in_scratch, str(root), week, student, pure=False): (week, student)
                       for week, student in tasks}
            completed = as_completed(futures)
        else:
            import concurrent.futures
            import multiprocessing

            pool = stack.enter_context(concurrent.futures.ProcessPoolExecutor(
                max_workers=jobs, mp_context=multiprocessing.get_context("spawn")))
            futures = {pool.submit(grade_in_scratch, str(root), week, student): (week, student)
                       for week, student in tasks}
            completed = concurrent.futures.as_completed(futures)
        try:
            for future in completed:
                if interrupt is not None and interrupt.is_set():
                    # Results still arriving may come from kernels that Ctrl-C interrupted: keep none of them.
                    for pending in futures:
                        pending.cancel()
                    break
                week, student = futures[future]
                try:
                    result = future.result()
                except Exception as error:  # a worker that crashed must not stop the batch
                    logger.error("worker grading %s/%s failed: %s", week, student, error)
                    result = SubmissionResult(week=week, student_id=student, status="failed",
                                              problems=[f"grading worker failed: {error}"])
                results[(week, student)] = _merge_result(root, scratch_root / week / student, result)
                bar.set_postfix_str(f"{week} {student}")
                bar.update()
        finally:
            if interrupt is not None and interrupt.is_set():
                for pending in futures:
                    pending.cancel()
    shutil.rmtree(scratch_root, ignore_errors=True)
    return [results[task] for task in tasks if task in results]


def grade_in_scratch(root: str, week: str, student: str) -> SubmissionResult:
    """Grade one submission in ROOT/.grading/WEEK/STUDENT, a scratch course with a copy of the gradebook.

    Runs in a worker process (local or on a Dask cluster with the course folder on a shared file system).
    It reads the course's source, release and the student's submitted folder and writes only in the scratch
    folder, so workers never write to gradebook.db at the same time.
    """
    root_path = Path(root)
    scratch = root_path / SCRATCH_DIR / week / student
    shutil.rmtree(scratch, ignore_errors=True)
    (scratch / "submitted" / student).mkdir(parents=True)
    for name in ("source", "release"):
        (scratch / name).symlink_to(root_path / name, target_is_directory=True)
    (scratch / "submitted" / student / week).symlink_to(root_path / "submitted" / student / week,
                                                        target_is_directory=True)
    shutil.copy(root_path / "course.toml", scratch / "course.toml")
    shutil.copy(root_path / "gradebook.db", scratch / "gradebook.db")

    settings = load_settings(scratch)
    with grading_environment(settings), _quiet_gradebook():
        api = make_api(scratch, settings)
        return _grade_one(api, scratch, week, student)


def _merge_result(root: Path, scratch: Path, result: SubmissionResult) -> SubmissionResult:
    """Copy a worker's grades and autograded files from its scratch course into the course; return RESULT."""
    from nbgrader.api import Gradebook, MissingEntry

    week, student = result.week, result.student_id
    if result.status != "graded" or not (scratch / "gradebook.db").is_file():
        _remove_stale_grade(root, week, student)
        return result

    with Gradebook(_db_url(scratch)) as source:
        submission = source.find_submission(week, student)
        timestamp = submission.timestamp
        notebooks = [
            (
                notebook.name,
                {g.name: (g.auto_score, g.manual_score, g.extra_credit, g.needs_manual_grade) for g in notebook.grades},
                {c.name: c.auto_comment for c in notebook.comments},
                notebook.late_submission_penalty,
            )
            for notebook in submission.notebooks
        ]
    with _quiet_gradebook(), Gradebook(_db_url(root)) as target:
        target.update_or_create_student(student)
        try:
            target.remove_submission(week, student)
        except MissingEntry:
            pass
        target.add_submission(week, student, timestamp=timestamp)
        for name, grades, comments, penalty in notebooks:
            notebook = target.find_submission_notebook(name, week, student)
            for grade in notebook.grades:
                grade.auto_score, grade.manual_score, grade.extra_credit, grade.needs_manual_grade = grades[grade.name]
            for comment in notebook.comments:
                comment.auto_comment = comments.get(comment.name)
            notebook.late_submission_penalty = penalty
        target.db.commit()

    destination = root / "autograded" / student / week
    shutil.rmtree(destination, ignore_errors=True)
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(scratch / "autograded" / student / week, destination)
    return result
