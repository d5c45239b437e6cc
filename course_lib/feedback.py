"""Feedback for students: nbgrader's HTML pages, checked for hidden-test text before they are kept."""

from __future__ import annotations

import os
from pathlib import Path

from course_lib.grading import _problems_from_log, load_grading_log, make_api, submissions
from course_lib.notebooks import read_notebook

# Text that must never reach a student: the hidden-test markers and paths into the grader's package.
LEAK_MARKERS = ("BEGIN HIDDEN TESTS", "END HIDDEN TESTS", f"{os.sep}autograder{os.sep}")


def _hidden_lines(root: Path, week: str) -> list[str]:
    """Lines of the week's hidden-test blocks long enough to identify them in a feedback page."""
    path = root / "source" / week / f"{week}.ipynb"
    if not path.is_file():
        return []
    lines = []
    for cell in read_notebook(path).cells:
        inside = False
        for line in cell.source.split("\n"):
            if "BEGIN HIDDEN TESTS" in line:
                inside = True
            elif "END HIDDEN TESTS" in line:
                inside = False
            elif inside and len(line.strip()) >= 20:
                lines.append(line.strip())
    return lines


def feedback(root: Path, weeks: list[str], students: list[str] | None = None) -> tuple[list[Path], list[str]]:
    """Generate feedback HTML for every autograded submission of WEEKS; return written files and problems.

    Each page is scanned afterwards for the hidden-test markers, paths into `autograder/` and the lines of
    the hidden tests. A page that contains any of them is deleted and reported with the text found. A student
    who quoted the hidden tests in their own code is reported the same way, which is also worth a look.
    """
    import html as html_lib

    root = Path(root).resolve()
    api = make_api(root)
    written, problems = [], []
    for week in weeks:
        markers = list(LEAK_MARKERS) + _hidden_lines(root, week)
        graded = sorted(p.parent.name for p in (root / "autograded").glob(f"*/{week}") if p.is_dir())
        if students:
            graded = [s for s in graded if s in students]
        for student in graded:
            outcome = api.generate_feedback(week, student, force=True)
            if not outcome.get("success"):
                reason = (_problems_from_log(outcome.get("log", "")) or ["nbgrader gave no reason"])[0]
                problems.append(f"{week}/{student}: feedback failed: {reason}")
                continue
            for page in sorted((root / "feedback" / student / week).glob("*.html")):
                text = html_lib.unescape(page.read_text(encoding="utf-8", errors="replace"))
                leaked = [marker for marker in markers if marker in text]
                if leaked:
                    page.unlink()
                    problems.append(f"{week}/{student}: feedback withheld, it contains hidden-test text: {leaked[0]!r}")
                else:
                    written.append(page)
    return written, problems


def ungraded_submissions(root: Path, weeks: list[str], students: list[str] | None = None) -> list[str]:
    """Return one line per submission that has no autograded notebook, with the reason from the grading log."""
    root = Path(root).resolve()
    log = load_grading_log(root)
    lines = []
    for week in weeks:
        for student in submissions(root, week):
            if students and student not in students:
                continue
            if (root / "autograded" / student / week).is_dir():
                continue
            entry = log.get(f"{week}/{student}", {})
            reason = "; ".join(entry.get("problems", [])) or "not graded yet: run `course autograde`"
            lines.append(f"{week}/{student}: no feedback, {reason}")
    return lines
