"""Release, autograde and feedback through nbgrader's Python API, in the environment grading needs."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import warnings
from dataclasses import asdict, dataclass, field
from datetime import timezone
from pathlib import Path

from course_lib.grading_kernel import FILE_SIZE_VARIABLE, MEMORY_VARIABLE, write_kernel_spec
from course_lib.notebooks import (
    NotebookError,
    grade_id,
    is_grade_cell,
    is_solution_cell,
    nbgrader_metadata,
    read_notebook,
)
from course_lib.paths import REPO_ROOT, week_name
from course_lib.settings import CourseSettings, load_settings, nbgrader_config
from course_lib.tamper import scan_folder, scan_notebook
from course_lib.torch_errors import explain as explain_torch_error

logger = logging.getLogger(__name__)

GRADING_LOG = "grading_log.json"

# Environment of every grading kernel. One thread per process: on a busy 2-core machine two torch threads
# made one training loop 60 times slower. Warnings are silenced because nbgrader scores stderr as a failure.
KERNEL_ENVIRONMENT = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "TRANSFORMERS_VERBOSITY": "error",
    "HF_HUB_OFFLINE": "1",
    "PYTHONWARNINGS": "ignore",
    "TQDM_DISABLE": "1",
    "MPLBACKEND": "Agg",
}


class CourseError(RuntimeError):
    """A problem the person running `course` can fix. Its message explains how."""


@contextlib.contextmanager
def grading_environment(settings: CourseSettings | None = None):
    """Set the kernel environment for the duration of the block.

    `autograder` becomes importable, the `course-grader` kernel spec is registered in a temporary folder on
    JUPYTER_PATH, and its memory and file-size limits are set from the settings.
    """
    settings = settings or CourseSettings()
    saved = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="course-kernel-") as jupyter_dir:
        write_kernel_spec(Path(jupyter_dir))
        os.environ.update(KERNEL_ENVIRONMENT)
        python_path = [str(REPO_ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(python_path))
        jupyter_path = [jupyter_dir] + [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p]
        os.environ["JUPYTER_PATH"] = os.pathsep.join(jupyter_path)
        os.environ[MEMORY_VARIABLE] = str(settings.memory_limit_mb)
        # A submission may write files, but none larger than 1 GiB: that is a runaway loop, not an answer.
        os.environ[FILE_SIZE_VARIABLE] = "1024"
        try:
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)


def make_api(root: Path, settings: CourseSettings | None = None):
    """Return an NbGraderAPI for the course rooted at ROOT with the course's configuration."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    _put_alembic_on_path()
    config = nbgrader_config(root, settings)
    coursedir = CourseDirectory(config=config)
    # The API looks for the exchange folder when it starts and logs a critical message if it is missing.
    # Commands here do not use the exchange, so that message is dropped.
    traitlets_logger = logging.getLogger("traitlets")
    level = traitlets_logger.level
    traitlets_logger.setLevel(logging.CRITICAL + 1)
    try:
        return NbGraderAPI(coursedir=coursedir, config=config)
    finally:
        traitlets_logger.setLevel(level)


def source_weeks(root: Path) -> list[str]:
    """Return the weeks that have a source notebook, in order."""
    folder = Path(root) / "source"
    return sorted(p.name for p in folder.glob("week[0-9][0-9]") if (p / f"{p.name}.ipynb").is_file())


def resolve_weeks(root: Path, weeks: list[str] | None, folder: str = "source") -> list[str]:
    """Normalise the requested weeks, or list all of them; raise CourseError for a week that does not exist."""
    available = source_weeks(root)
    if not weeks:
        if not available:
            raise CourseError(f"no weeks found under {Path(root) / 'source'}: is {root} the course root?")
        return available
    result = []
    for week in weeks:
        try:
            name = week_name(week)
        except ValueError as error:
            raise CourseError(str(error)) from None
        if name not in available:
            listed = ", ".join(available) or "none"
            raise CourseError(f"week {week!r} not found: {Path(root) / 'source' / name} has no {name}.ipynb "
                              f"(weeks available: {listed})")
        result.append(name)
    return result


def _fail_on(result: dict, action: str) -> None:
    if not result.get("success"):
        details = result.get("error") or result.get("log") or "no details"
        raise CourseError(f"{action} failed:\n{details}")


def release(root: Path, weeks: list[str]) -> list[Path]:
    """Generate release/WEEK/ from source/WEEK/ with nbgrader, and record deadlines in the gradebook."""
    settings = load_settings(root)
    api = make_api(root, settings)
    written = []
    for week in weeks:
        read_notebook(Path(root) / "source" / week / f"{week}.ipynb")  # a clear error before nbgrader's
        _fail_on(api.generate_assignment(week, force=True, create=True), f"release of {week}")
        written.extend(sorted((Path(root) / "release" / week).rglob("*.ipynb")))
    _record_deadlines(root, settings)
    return written


def _record_deadlines(root: Path, settings: CourseSettings) -> None:
    from nbgrader.api import Gradebook

    if not settings.deadlines:
        return
    with Gradebook(_db_url(root)) as gradebook:
        for week, deadline in settings.deadlines.items():
            # nbgrader stores naive datetimes in UTC.
            utc = deadline.astimezone(timezone.utc).replace(tzinfo=None)
            gradebook.update_or_create_assignment(week, duedate=utc)


def _put_alembic_on_path() -> None:
    """Add this Python's scripts folder to PATH: nbgrader runs `alembic` from there to create a gradebook."""
    bin_dir = str(Path(sys.executable).parent)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join([bin_dir, os.environ.get("PATH", "")])


def _db_url(root: Path) -> str:
    _put_alembic_on_path()
    return f"sqlite:///{Path(root).resolve() / 'gradebook.db'}"


@dataclass
class SubmissionResult:
    """Outcome of autograding one student's submission of one week."""

    week: str
    student_id: str
    status: str
    """`graded`, or `failed` when nbgrader could not grade the submission at all."""
    score: float | None = None
    max_score: float | None = None
    problems: list[str] = field(default_factory=list)
    """Messages for the instructor: failed tests, timeouts, invalid files."""
    flags: list[str] = field(default_factory=list)
    """Possible tampering found in the student's own code, for the instructor to review."""


def submissions(root: Path, week: str) -> list[str]:
    """Return the student ids with a submission folder for WEEK."""
    folder = Path(root) / "submitted"
    return sorted(p.parent.name for p in folder.glob(f"*/{week}") if p.is_dir())


def _fingerprint(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _precheck(folder: Path, week: str) -> list[str]:
    """Return problems nbgrader would report badly: no notebook, a renamed one, a file that is not a notebook."""
    problems = []
    expected = folder / f"{week}.ipynb"
    notebooks = sorted(folder.glob("*.ipynb"))
    if not notebooks:
        present = ", ".join(p.name for p in sorted(folder.iterdir())) or "nothing"
        problems.append(f"no notebook submitted: expected {expected.name}, found {present}")
        return problems
    if not expected.is_file():
        names = ", ".join(p.name for p in notebooks)
        problems.append(f"notebook {expected.name} missing: found {names} instead (renamed?)")
        return problems
    try:
        read_notebook(expected)
    except NotebookError as error:
        problems.append(str(error).replace(str(folder) + os.sep, ""))
    timestamp_file = folder / "timestamp.txt"
    if timestamp_file.is_file():
        from nbgrader.utils import parse_utc

        text = timestamp_file.read_text(encoding="utf-8", errors="replace").strip()
        try:
            parse_utc(text)
        except (ValueError, OverflowError, TypeError):
            problems.append(f"timestamp.txt contains {text[:60]!r}, which is not a time; expected for example "
                            f"'2027-01-15 10:00:00.000000 UTC'. Correct or delete the file and grade again")
    return problems


def _missing_cells(root: Path, notebook_path: Path, week: str) -> list[str]:
    """Return a message for each cell of the release that the submission lacks, copies or has edited.

    nbgrader restores locked cells from the gradebook before running them, so an edited test cell cannot
    change a grade. The edit is still reported, since nbgrader's own checksum warning fires for every cell
    with hidden tests and so cannot tell an edit apart.
    """
    release_path = root / "release" / week / f"{week}.ipynb"
    if not release_path.is_file():
        return []
    submitted_cells = [c for c in read_notebook(notebook_path).cells if grade_id(c)]
    names = [grade_id(c) for c in submitted_cells]
    last_copy = {grade_id(c): c for c in submitted_cells}
    problems = []
    for cell in read_notebook(release_path).cells:
        name = grade_id(cell)
        if name in last_copy and nbgrader_metadata(cell).get("locked"):
            edited = last_copy[name]
            if edited.cell_type != cell.cell_type or edited.source.strip() != cell.source.strip():
                problems.append(f"test cell {name} was edited by the student; the original was graded")
        if not name or name in names:
            continue
        if nbgrader_metadata(cell).get("locked"):
            problems.append(f"test cell {name} is missing from the submission (deleted?); it was restored for grading")
        else:
            problems.append(f"answer cell {name} is missing from the submission (deleted?)")
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"cell {name} appears {names.count(name)} times (copied?); the last copy was graded")
    return problems


def _cell_problems(notebook_path: Path) -> list[str]:
    """Return one line per failed cell of an autograded notebook: which cell, and the error's first line.

    Answer cells come first, since their errors (a syntax error, a timeout) usually explain the failed tests.
    """
    try:
        notebook = read_notebook(notebook_path)
    except NotebookError as error:
        return [str(error)]
    answer_problems, test_problems = [], []
    for index, cell in enumerate(notebook.cells, start=1):
        if cell.cell_type != "code":
            continue
        error = next((o for o in cell.get("outputs", []) if o.get("output_type") == "error"), None)
        if error is None:
            continue
        message = f"{error.get('ename', 'Error')}: {error.get('evalue', '')}".strip(" :")
        if error.get("ename") in ("CellTimeoutError", "KeyboardInterrupt"):
            # Grading interrupts a cell only when it runs past the time limit.
            message = "timed out: the cell ran past the time limit and was interrupted (an endless loop?)"
        first_line = (message.splitlines() or ["error"])[0][:300]
        hint = explain_torch_error(message)
        if hint:
            first_line = f"{first_line} ({hint})"
        if is_grade_cell(cell):
            test_problems.append(f"{grade_id(cell)}: {first_line}")
        elif is_solution_cell(cell):
            answer_problems.append(f"answer cell {grade_id(cell)}: {first_line}")
        elif error.get("ename") in ("CellTimeoutError", "KeyboardInterrupt"):
            answer_problems.append(f"cell {index}: {first_line}")
    return answer_problems + test_problems


# nbgrader log lines that only point at a traceback `course` does not show, or repeat a reported timeout.
_LOG_NOISE = (
    "Traceback (most recent call last)",
    "Please see the the above traceback",
    "There was an error processing assignment",
    "Timeout waiting for execute reply",
    "Interrupting kernel",
    "Kernel died while waiting for execute reply",
    "restarting it and running the cells above again",
)


def _problems_from_log(log: str) -> list[str]:
    """Return nbgrader's error lines that describe the submission's problems, without their prefix."""
    keep = []
    for line in (log or "").splitlines():
        if not line.startswith(("[ERROR]", "[CRITICAL]")):
            continue
        if any(noise in line for noise in _LOG_NOISE):
            continue
        keep.append(re.sub(r"^\[\w+\]\s*", "", line)[:300])
    return keep


def autograde(root: Path, weeks: list[str], students: list[str] | None = None, progress: bool = True,
              jobs: int = 1, scheduler: str | None = None) -> list[SubmissionResult]:
    """Autograde every submission of WEEKS (or only those of STUDENTS) into the gradebook.

    A submission that cannot be graded is reported and the batch continues. Files under submitted/ are
    compared before and after, and any change is reported as an error. With JOBS above 1, submissions are
    graded in that many worker processes, each in a scratch copy of the course with its own gradebook, and
    this process alone writes their results into gradebook.db. With SCHEDULER, the address of a Dask
    scheduler, the cluster's workers grade instead of local processes.
    """
    from tqdm import tqdm

    root = Path(root).resolve()
    settings = load_settings(root)
    if jobs < 1:
        raise CourseError(f"the number of worker processes must be at least 1, got {jobs}")
    tasks = []
    for week in weeks:
        found = submissions(root, week)
        if students:
            found = [s for s in found if s in students]
        tasks.extend((week, student) for student in found)
    if students:
        unknown = sorted(set(students) - {student for _, student in tasks})
        if unknown:
            raise CourseError(f"no submission of {', '.join(weeks)} from {', '.join(map(repr, unknown))} "
                              f"under {root / 'submitted'}")
    if not tasks:
        raise CourseError(f"no submissions found under {root / 'submitted'} for {', '.join(weeks)}: "
                          f"expected submitted/STUDENT_ID/{weeks[0]}/{weeks[0]}.ipynb")

    _ensure_released(root, sorted({week for week, _ in tasks}), settings)
    bar = tqdm(total=len(tasks), desc="autograde", unit="submission", disable=not progress or None)
    with _catch_interrupt() as interrupt:
        if jobs == 1 and not scheduler:
            results = []
            with grading_environment(settings), _quiet_gradebook():
                api = make_api(root, settings)
                for week, student in tasks:
                    bar.set_postfix_str(f"{week} {student}")
                    result = _grade_one(api, root, week, student)
                    if interrupt.is_set():
                        # Ctrl-C also reached this submission's kernel, so its grade may be incomplete.
                        result.status = "interrupted"
                        result.problems.insert(0, "grading was interrupted; grade this submission again")
                        results.append(result)
                        break
                    results.append(result)
                    bar.update()
        else:
            from course_lib.workers import grade_in_workers

            results = grade_in_workers(root, tasks, jobs, bar, scheduler, interrupt)
    bar.close()

    _save_log(root, results)
    if interrupt.is_set():
        raise GradingInterrupted(len([r for r in results if r.status != "interrupted"]), len(tasks))
    return results


class GradingInterrupted(CourseError):
    """Ctrl-C stopped `course autograde`; the submissions graded before it are saved."""

    def __init__(self, done: int, total: int):
        super().__init__(f"interrupted after {done} of {total} submissions; the grades so far are saved. "
                         "Run the same command again to grade the rest")
        self.done = done
        self.total = total


@contextlib.contextmanager
def _catch_interrupt():
    """Turn Ctrl-C into a flag that the grading loops check between submissions.

    nbgrader catches every exception of a run, KeyboardInterrupt included, so a plain Ctrl-C would only
    fail the submission being graded and the batch would go on.
    """
    import signal
    import threading

    flag = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        flag.set()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def _quiet_gradebook():
    with warnings.catch_warnings():
        # nbgrader's gradebook code triggers SQLAlchemy autoflush warnings that are unrelated to the grades.
        warnings.filterwarnings("ignore", module="nbgrader")
        warnings.filterwarnings("ignore", message=".*not in session.*")
        yield


def _ensure_released(root: Path, weeks: list[str], settings: CourseSettings) -> None:
    """Make sure the gradebook contains each week (its cells and points) before grading it."""
    from nbgrader.api import Gradebook, MissingEntry

    missing = []
    with Gradebook(_db_url(root)) as gradebook:
        for week in weeks:
            try:
                assignment = gradebook.find_assignment(week)
                if not assignment.notebooks:
                    missing.append(week)
            except MissingEntry:
                missing.append(week)
    if missing:
        logger.info("Releasing %s first so the gradebook knows its tests", ", ".join(missing))
        for week in missing:
            if not (root / "source" / week / f"{week}.ipynb").is_file():
                raise CourseError(f"cannot grade {week}: no source notebook at source/{week}/{week}.ipynb")
        release(root, missing)
    elif settings.deadlines:
        _record_deadlines(root, settings)


def _grade_one(api, root: Path, week: str, student: str) -> SubmissionResult:
    folder = root / "submitted" / student / week
    before = _fingerprint(folder)
    result = SubmissionResult(week=week, student_id=student, status="graded")

    problems = _precheck(folder, week)
    if problems:
        # No readable notebook to grade: nbgrader would stop with a traceback. The week scores 0.
        result.status = "failed"
        result.problems = problems
        _remove_stale_grade(root, week, student)
    else:
        result.problems = _missing_cells(root, folder / f"{week}.ipynb", week)
        result.flags = [str(finding) for finding in scan_notebook(read_notebook(folder / f"{week}.ipynb"))]
        result.flags += scan_folder(folder)
        outcome = api.autograde(week, student, force=True, create=True)
        if not outcome.get("success"):
            result.status = "failed"
            last_error_line = (outcome.get("error") or "autograde failed").strip().splitlines()[-1]
            result.problems += _problems_from_log(outcome.get("log", "")) or [f"nbgrader failed: {last_error_line}"]
            _remove_stale_grade(root, week, student)
        else:
            result.problems += _cell_problems(root / "autograded" / student / week / f"{week}.ipynb")
            result.problems += [p for p in _problems_from_log(outcome.get("log", "")) if p not in result.problems]

    score = _score(root, week, student)
    if score is not None:
        result.score, result.max_score = score

    if _fingerprint(folder) != before:
        result.problems.append(f"ERROR: files under submitted/{student}/{week} changed during grading")
        logger.error("submitted/%s/%s changed during grading", student, week)
    return result


def _remove_stale_grade(root: Path, week: str, student: str) -> None:
    """Drop an earlier grade of a submission that can no longer be graded, so no outdated score survives.

    The student is added to the gradebook, so reports list them with the failed week.
    """
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(_db_url(root)) as gradebook:
        gradebook.update_or_create_student(student)
        try:
            gradebook.remove_submission(week, student)
        except MissingEntry:
            pass
    shutil.rmtree(root / "autograded" / student / week, ignore_errors=True)
    shutil.rmtree(root / "feedback" / student / week, ignore_errors=True)


def _score(root: Path, week: str, student: str) -> tuple[float, float] | None:
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(_db_url(root)) as gradebook:
        try:
            submission = gradebook.find_submission(week, student)
        except MissingEntry:
            return None
        return float(submission.score), float(submission.max_score)


def _save_log(root: Path, results: list[SubmissionResult]) -> None:
    path = Path(root) / GRADING_LOG
    entries = {}
    if path.is_file():
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            logger.warning("%s is not valid JSON; starting a new one", path)
    for result in results:
        entries[f"{result.week}/{result.student_id}"] = asdict(result)
    path.write_text(json.dumps(entries, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def load_grading_log(root: Path) -> dict[str, dict]:
    path = Path(root) / GRADING_LOG
    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))
