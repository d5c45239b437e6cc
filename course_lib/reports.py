"""Tables read off the nbgrader gradebook: grades per student and week, and milestones."""

from __future__ import annotations

from datetime import timezone
from pathlib import Path

import pandas as pd

from course_lib.grading import load_grading_log
from course_lib.paths import week_number

GRADE_COLUMNS = [
    "student_id", "week", "assignment", "score", "max_score", "percent",
    "submitted", "timestamp", "late", "seconds_late", "status", "problems", "flags",
]


def grades_table(root: Path) -> pd.DataFrame:
    """Return one row per student and week of the gradebook, sorted by student and week.

    A student with no submission for a week gets a row with score 0, `submitted` False and `status` missing.
    Times are ISO 8601 in UTC. `status` is `graded`, `failed` (nothing could be graded; see `problems`)
    or `missing`. `flags` lists possible tampering found in the student's code, for the instructor to review.
    """
    from nbgrader.api import Gradebook, MissingEntry

    root = Path(root).resolve()
    db_path = root / "gradebook.db"
    if not db_path.is_file():
        raise FileNotFoundError(f"no gradebook at {db_path}: run `course autograde` first")
    log = load_grading_log(root)

    rows = []
    with Gradebook(f"sqlite:///{db_path}") as gradebook:
        assignments = sorted(gradebook.assignments, key=lambda a: a.name)
        students = sorted(s.id for s in gradebook.students)
        for student in students:
            for assignment in assignments:
                entry = log.get(f"{assignment.name}/{student}", {})
                row = {
                    "student_id": student,
                    "week": week_number(assignment.name),
                    "assignment": assignment.name,
                    "score": 0.0,
                    "max_score": float(assignment.max_score),
                    "submitted": False,
                    "timestamp": "",
                    "late": False,
                    "seconds_late": 0.0,
                    "status": "missing",
                    "problems": " | ".join(entry.get("problems", [])),
                    "flags": " | ".join(entry.get("flags", [])),
                }
                try:
                    submission = gradebook.find_submission(assignment.name, student)
                except MissingEntry:
                    if entry.get("status") == "failed":
                        row["submitted"] = True
                        row["status"] = "failed"
                    rows.append(row)
                    continue
                row["score"] = float(submission.score)
                row["submitted"] = True
                row["status"] = "graded"
                if submission.timestamp is not None:
                    row["timestamp"] = submission.timestamp.replace(tzinfo=timezone.utc).isoformat()
                seconds_late = float(submission.total_seconds_late or 0.0)
                row["seconds_late"] = seconds_late
                row["late"] = seconds_late > 0
                rows.append(row)

    table = pd.DataFrame(rows, columns=GRADE_COLUMNS)
    table["percent"] = (100.0 * table["score"] / table["max_score"].where(table["max_score"] > 0)).round(1)
    return table.sort_values(["student_id", "week"], ignore_index=True)
