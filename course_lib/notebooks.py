"""Read course notebooks and pull out their parts: solution code, grade cells, hidden-test blocks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
BEGIN_HIDDEN = "### BEGIN HIDDEN TESTS"
END_HIDDEN = "### END HIDDEN TESTS"

# Code cells with this tag go into the importable reference module even though they are not solution cells
# (imports, constants and helpers the solutions need).
REFERENCE_TAG = "reference"


class NotebookError(ValueError):
    """A notebook file that cannot be read as a Jupyter notebook."""


def read_notebook(path: Path) -> nbformat.NotebookNode:
    """Read a notebook, raising NotebookError with the path and the reason when it is not a valid notebook."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise NotebookError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from error
    try:
        json.loads(text)
    except json.JSONDecodeError as error:
        raise NotebookError(f"{path}: not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})") from error
    try:
        notebook = nbformat.reads(text, as_version=4)
    except Exception as error:  # nbformat raises several types for malformed notebooks
        raise NotebookError(f"{path}: not a Jupyter notebook ({error})") from error
    return notebook


def nbgrader_metadata(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def is_solution_cell(cell) -> bool:
    return bool(nbgrader_metadata(cell).get("solution", False))


def is_grade_cell(cell) -> bool:
    return bool(nbgrader_metadata(cell).get("grade", False))


def grade_id(cell) -> str | None:
    return nbgrader_metadata(cell).get("grade_id")


def strip_solution_markers(source: str) -> str:
    """Keep the code between the solution markers and drop the marker lines."""
    lines = [line for line in source.split("\n") if line.strip() not in (BEGIN_SOLUTION, END_SOLUTION)]
    return "\n".join(lines)


def strip_hidden_tests(source: str) -> str:
    """Remove every hidden-test block, markers included.

    nbgrader 0.9.6 treats any line that contains a marker text as a marker, but this function removes only
    whole blocks between marker lines. Marker text left after that (a BEGIN line without its END line, or a
    marker inside other code) raises ValueError, so that no hidden test reaches a published notebook.
    """
    pattern = re.compile(rf"^[ \t]*{re.escape(BEGIN_HIDDEN)}.*?^[ \t]*{re.escape(END_HIDDEN)}[^\n]*\n?", re.S | re.M)
    stripped = pattern.sub("", source)
    for marker in ("BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
        for line in stripped.split("\n"):
            if marker in line:
                raise ValueError(
                    f"unmatched hidden-test marker in line {line.strip()!r}: "
                    f"put each hidden block between a {BEGIN_HIDDEN!r} line and a {END_HIDDEN!r} line"
                )
    return stripped.rstrip("\n")


def reference_source(notebook) -> str:
    """Return the importable reference code of a source notebook.

    It is the concatenation, in notebook order, of the code of every solution cell and of every code cell
    tagged `reference`, with the solution markers removed.
    """
    chunks = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        tags = cell.get("metadata", {}).get("tags", [])
        if is_solution_cell(cell) or REFERENCE_TAG in tags:
            chunks.append(strip_solution_markers(cell.source).strip("\n"))
    return "\n\n\n".join(chunks) + "\n"
