"""Self-check for learners: run a notebook's public tests in a real kernel and report a score per question."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

from course_lib.notebooks import grade_id, is_grade_cell, is_solution_cell, read_notebook, strip_hidden_tests
from course_lib.paths import REPO_ROOT
from course_lib.torch_errors import explain as explain_torch_error


@dataclass
class QuestionResult:
    """Outcome of one grade cell's public tests."""

    grade_id: str
    points: float
    max_points: float
    message: str
    """Empty when the tests passed; otherwise the first line of the error."""


def _release_for(notebook):
    """Return the released notebook that shares the most grade ids with NOTEBOOK, or None.

    Matching on grade ids, not the file name, finds the week of a renamed copy too.
    """
    names = {grade_id(c) for c in notebook.cells} - {None}
    best, best_overlap = None, 0
    for candidate in sorted((REPO_ROOT / "release").glob("week*/week*.ipynb")):
        released = read_notebook(candidate)
        overlap = len(names & ({grade_id(c) for c in released.cells} - {None}))
        if overlap > best_overlap:
            best, best_overlap = released, overlap
    return best


def _first_error(cell) -> str:
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            if output.get("ename") in ("KeyboardInterrupt", "CellTimeoutError"):
                return "timed out: the cell ran past the time limit and was interrupted (an endless loop?)"
            text = f"{output.get('ename', 'Error')}: {output.get('evalue', '')}".strip()
            first_line = (text.splitlines() or ["error"])[0][:200]
            hint = explain_torch_error(text)
            return f"{first_line} ({hint})" if hint else first_line
    return ""


def check_notebook(path: Path, timeout: int = 300) -> list[QuestionResult]:
    """Execute a copy of the notebook at PATH (the file is not changed) and grade its public tests.

    Hidden-test blocks, if the notebook has any, are removed first: only the public tests run. A grade cell
    of the released notebook that is missing from PATH counts as failed.
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    path = Path(path).resolve()
    notebook = copy.deepcopy(read_notebook(path))
    release = _release_for(notebook)
    released_tests = {}
    if release is not None:
        released_tests = {grade_id(c): c.source.strip() for c in release.cells if c.cell_type == "code" and is_grade_cell(c)}
    edited = {grade_id(c) for c in notebook.cells
              if is_grade_cell(c) and grade_id(c) in released_tests
              and strip_hidden_tests(c.source).strip() != released_tests[grade_id(c)]}
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.source = strip_hidden_tests(cell.source)

    client = NotebookClient(
        notebook,
        timeout=timeout,
        interrupt_on_timeout=True,
        kernel_name="python3",
        allow_errors=True,
        # The kernel's start-up warning about unencrypted local TCP is unrelated to the notebook.
        extra_arguments=["--IPKernelApp.log_level=ERROR"],
        resources={"metadata": {"path": str(path.parent)}},
    )
    try:
        client.execute()
    except DeadKernelError:
        # The kernel died (os._exit, a crash in native code): the cells run so far are scored, the rest are not.
        pass

    results = []
    seen = set()
    answer_error = ""
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        if is_solution_cell(cell):
            message = _first_error(cell)
            if message:
                answer_error = f"answer cell {grade_id(cell)}: {message}"
            continue
        if not is_grade_cell(cell):
            continue
        name = grade_id(cell) or "(unnamed)"
        seen.add(name)
        max_points = float(cell.metadata["nbgrader"].get("points", 0))
        message = _first_error(cell)
        if message and answer_error:
            # The error in the answer cell above usually explains the failed test (a syntax error, a timeout).
            message = f"{message} (after {answer_error})"
        elif not message and not cell.get("outputs") and cell.get("execution_count") is None:
            message = "not run: the kernel stopped before this cell"
        answer_error = ""
        if name in edited:
            message = "test cell differs from the released one: restore it, since grading uses the original"
        results.append(QuestionResult(name, 0.0 if message else max_points, max_points, message))

    if release is not None:
        for cell in release.cells:
            name = grade_id(cell)
            if cell.cell_type == "code" and is_grade_cell(cell) and name not in seen:
                max_points = float(cell.metadata["nbgrader"].get("points", 0))
                results.append(QuestionResult(name, 0.0, max_points, "test cell missing from your notebook (deleted?)"))
    return results


def format_results(results: list[QuestionResult]) -> str:
    """Format results as a fixed-width table with a total line."""
    width = max([len(r.grade_id) for r in results] + [8])
    lines = [f"{'question':<{width}}  {'points':>9}  result", f"{'-' * width}  {'-' * 9}  {'-' * 40}"]
    for r in results:
        outcome = "passed" if not r.message else r.message
        lines.append(f"{r.grade_id:<{width}}  {r.points:>4g} / {r.max_points:<3g}  {outcome}")
    earned = sum(r.points for r in results)
    possible = sum(r.max_points for r in results)
    lines.append(f"{'total':<{width}}  {earned:>4g} / {possible:<3g}  (public tests only; hidden tests run at grading)")
    return "\n".join(lines)
