"""Self-check for learners: run a notebook's public tests in a real kernel and report a score per question."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

from course_lib.notebooks import grade_id, is_grade_cell, read_notebook, strip_hidden_tests
from course_lib.paths import REPO_ROOT


@dataclass
class QuestionResult:
    """Outcome of one grade cell's public tests."""

    grade_id: str
    points: float
    max_points: float
    message: str
    """Empty when the tests passed; otherwise the first line of the error."""


def _release_for(path: Path):
    """Return the release notebook with the same file name, used to spot deleted test cells, or None."""
    candidate = REPO_ROOT / "release" / path.stem / path.name
    if candidate.is_file():
        return read_notebook(candidate)
    return None


def _first_error(cell) -> str:
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            text = f"{output.get('ename', 'Error')}: {output.get('evalue', '')}".strip()
            return (text.splitlines() or ["error"])[0][:200]
    return ""


def check_notebook(path: Path, timeout: int = 300) -> list[QuestionResult]:
    """Execute a copy of the notebook at PATH (the file is not changed) and grade its public tests.

    Hidden-test blocks, if the notebook has any, are removed first: only the public tests run. A grade cell
    of the released notebook that is missing from PATH counts as failed.
    """
    from nbclient import NotebookClient

    path = Path(path).resolve()
    notebook = copy.deepcopy(read_notebook(path))
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.source = strip_hidden_tests(cell.source)

    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()

    results = []
    seen = set()
    for cell in notebook.cells:
        if cell.cell_type != "code" or not is_grade_cell(cell):
            continue
        name = grade_id(cell) or "(unnamed)"
        seen.add(name)
        max_points = float(cell.metadata["nbgrader"].get("points", 0))
        message = _first_error(cell)
        results.append(QuestionResult(name, 0.0 if message else max_points, max_points, message))

    release = _release_for(path)
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
