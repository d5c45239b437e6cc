"""Course settings from `course.toml` and the nbgrader configuration built from them."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from traitlets.config import Config

from course_lib.grading_kernel import KERNEL_NAME
from course_lib.paths import week_name

# Canvas names a downloaded submission LOGIN_[LATE_]USERID_SUBMISSIONID_FILENAME, with "-N" before the
# extension for the Nth resubmission: alice_LATE_12345_67890_week01-1.ipynb. nbgrader matches the whole path.
CANVAS_FILENAME_REGEX = (
    r".*/(?P<student_id>[^/_]+)_(?:LATE_)?\d+_\d+_(?P<file_id>week\d{2})(?:-\d+)?\.ipynb$"
)

CODE_STUB = '# YOUR CODE HERE\nraise NotImplementedError("Replace this line with your implementation")'


@dataclass(frozen=True)
class CourseSettings:
    """Settings of one course run."""

    course_id: str = "llm-agents"
    pass_threshold: float = 0.70
    """Fraction of a week's points needed to count the week as completed."""
    cell_timeout_seconds: int = 120
    """Seconds a notebook cell may run during grading before it is interrupted."""
    memory_limit_mb: int = 4096
    """Heap size, in MiB, past which allocations in a grading kernel raise MemoryError; 0 for no limit."""
    output_limit_chars: int = 20_000
    """Characters of text kept per cell output in graded notebooks and feedback; the rest is cut."""
    deadlines: dict[str, datetime] = field(default_factory=dict)
    """Deadline per week name (`week01`), always time-zone aware."""
    exchange_root: str | None = None
    """Folder of nbgrader's exchange, shared by instructor and students; None keeps nbgrader's default."""
    lms_filename_regex: str = CANVAS_FILENAME_REGEX
    """Pattern with `student_id` and `file_id` groups that `nbgrader zip_collect` applies to each uploaded file."""


def load_settings(root: Path) -> CourseSettings:
    """Read ROOT/course.toml; a missing file gives the defaults, an invalid one raises ValueError."""
    path = Path(root) / "course.toml"
    if not path.is_file():
        return CourseSettings()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path}: invalid TOML ({error})") from error

    course = data.get("course", {})
    threshold = float(course.get("pass_threshold", 0.70))
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"{path}: pass_threshold must be in (0, 1], got {threshold}")
    timeout = int(course.get("cell_timeout_seconds", 120))
    if timeout <= 0:
        raise ValueError(f"{path}: cell_timeout_seconds must be positive, got {timeout}")

    memory = int(course.get("memory_limit_mb", 4096))
    if memory < 0:
        raise ValueError(f"{path}: memory_limit_mb must be 0 (no limit) or positive, got {memory}")
    output_limit = int(course.get("output_limit_chars", 20_000))
    if output_limit <= 0:
        raise ValueError(f"{path}: output_limit_chars must be positive, got {output_limit}")

    deadlines = {}
    for key, value in data.get("deadlines", {}).items():
        week = week_name(key)
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        if moment.tzinfo is None:
            raise ValueError(f"{path}: deadline of {week} ({value}) has no time zone; add an offset such as +00:00")
        deadlines[week] = moment
    exchange_root = data.get("exchange", {}).get("root")
    lms_regex = str(data.get("lms", {}).get("filename_regex", CANVAS_FILENAME_REGEX))
    try:
        groups = re.compile(lms_regex).groupindex
    except re.error as error:
        raise ValueError(f"{path}: invalid lms.filename_regex {lms_regex!r} ({error})") from error
    if not {"student_id", "file_id"} <= set(groups):
        raise ValueError(f"{path}: lms.filename_regex must have the named groups student_id and file_id")
    return CourseSettings(
        course_id=str(course.get("course_id", "llm-agents")),
        pass_threshold=threshold,
        cell_timeout_seconds=timeout,
        memory_limit_mb=memory,
        output_limit_chars=output_limit,
        deadlines=deadlines,
        exchange_root=str(exchange_root) if exchange_root else None,
        lms_filename_regex=lms_regex,
    )


def nbgrader_config(root: Path, settings: CourseSettings | None = None) -> Config:
    """Return the nbgrader configuration of the course rooted at ROOT."""
    from course_lib import nbgrader_ext

    settings = settings or load_settings(root)
    c = Config()
    c.CourseDirectory.root = str(Path(root).resolve())
    c.CourseDirectory.course_id = settings.course_id
    if settings.exchange_root:
        c.Exchange.root = settings.exchange_root
    c.FileNameCollectorPlugin.named_regexp = settings.lms_filename_regex
    c.ClearSolutions.code_stub = {"python": CODE_STUB}
    c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

    c.Execute.timeout = settings.cell_timeout_seconds
    c.Execute.interrupt_on_timeout = True
    # Every submission runs in the course's own kernel, under the memory limit, whatever kernel it names.
    c.Execute.kernel_name = KERNEL_NAME
    c.LimitOutput.max_lines = 1000
    c.TruncateLongOutputs.max_chars = settings.output_limit_chars
    # The kernel's own start-up warnings (for example about unencrypted TCP) go to the terminal, not the grades.
    c.Execute.extra_arguments = [
        "--HistoryManager.hist_file=:memory:",
        "--IPKernelApp.log_level=ERROR",
        # Restores patched comparison functions and grader modules before every cell (see grading_kernel.py).
        "--IPKernelApp.exec_lines=import course_lib.grading_kernel as _course_guard; _course_guard.install_guard(); del _course_guard",
    ]

    from nbconvert.preprocessors import ClearMetadataPreprocessor
    from nbgrader.preprocessors import (
        AssignLatePenalties,
        CheckCellMetadata,
        ClearOutput,
        IgnorePattern,
        LimitOutput,
        OverwriteCells,
        OverwriteKernelspec,
        SaveAutoGrades,
    )

    c.RestoreDeletedTestCells.release_dir = str(Path(root).resolve() / "release")
    c.Autograde.sanitize_preprocessors = [
        ClearOutput,
        nbgrader_ext.DeduplicateGradeIds,
        nbgrader_ext.RestoreDeletedTestCells,
        OverwriteKernelspec,
        OverwriteCells,
        CheckCellMetadata,
    ]
    c.Autograde.autograde_preprocessors = [
        nbgrader_ext.RecoveringExecute,
        nbgrader_ext.KeepStderrOutOfGrades,
        nbgrader_ext.TruncateLongOutputs,
        IgnorePattern,
        ClearMetadataPreprocessor,
        LimitOutput,
        SaveAutoGrades,
        AssignLatePenalties,
        CheckCellMetadata,
    ]

    from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
    from nbgrader.preprocessors import ClearHiddenTests, GetGrades

    c.GenerateFeedback.preprocessors = [
        GetGrades,
        nbgrader_ext.HideGraderTracebacks,
        ClearHiddenTests,
        CSSHTMLHeaderPreprocessor,
    ]
    return c
