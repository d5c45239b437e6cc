"""Run a week's grade cells directly in a module built from its reference code, without a kernel."""

from __future__ import annotations

import types

from course_lib.notebooks import grade_id, is_grade_cell, reference_source


def grade_cells(notebook) -> list:
    return [cell for cell in notebook.cells if cell.cell_type == "code" and is_grade_cell(cell)]


def module_from_notebook(notebook, name: str) -> types.ModuleType:
    """Build a module from the reference code of `notebook`, as `course solutions` does."""
    module = types.ModuleType(name)
    exec(compile(reference_source(notebook), name, "exec"), module.__dict__)
    return module


def run_grade_cell(cell, namespace: types.ModuleType) -> None:
    """Run a grade cell (public tests and hidden block) in the namespace of a reference module."""
    exec(compile(cell.source, f"<{grade_id(cell)}>", "exec"), namespace.__dict__)
