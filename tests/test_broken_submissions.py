"""Broken and odd submissions: each is graded as far as it can be, with a reason, and left unchanged on disk."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course_lib.grading import load_grading_log, release
from course_lib.reports import grades_table
from toy_course import CORRECT, fill_solutions, make_toy_course

pytestmark = pytest.mark.slow


def _grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def _without(notebook, names: set[str]):
    notebook = copy.deepcopy(notebook)
    notebook.cells = [c for c in notebook.cells if _grade_id(c) not in names and c.get("id") not in names]
    return notebook


def _answers(released, **changes):
    return fill_solutions(released, {**CORRECT, **changes})


def _cases(released) -> dict:
    """Submission name -> notebook (or raw text, or a dict of file names to contents)."""
    good = fill_solutions(released, CORRECT)
    cases = {"good": good}

    cases["deleted_test_cell"] = _without(good, {"test_add"})
    cases["deleted_both_test_cells"] = _without(good, {"test_add", "test_scale"})
    cases["deleted_first_cell"] = _without(good, {"intro"})

    copied = copy.deepcopy(good)
    duplicate = copy.deepcopy(copied.cells[1])
    duplicate["id"] = "copy-after"
    copied.cells.insert(2, duplicate)
    cases["answer_cell_copied_after"] = copied
    copied = copy.deepcopy(good)
    duplicate = copy.deepcopy(copied.cells[2])
    duplicate["id"] = "copy-before"
    duplicate.source = "pass"
    copied.cells.insert(1, duplicate)
    cases["test_cell_copied_before"] = copied

    markdown = copy.deepcopy(good)
    test_cell = markdown.cells[2]
    markdown.cells[2] = nbformat.v4.new_markdown_cell(test_cell.source, id=test_cell.id, metadata=test_cell.metadata)
    cases["test_cell_made_markdown"] = markdown
    inserted = copy.deepcopy(good)
    inserted.cells.insert(3, nbformat.v4.new_code_cell("scratch = [1, 2, 3]", id="scratch"))
    cases["cell_inserted"] = inserted
    reordered = copy.deepcopy(good)
    reordered.cells = [reordered.cells[i] for i in (0, 3, 4, 1, 2)]
    cases["cells_reordered"] = reordered

    cases["edited_test_cell"] = copy.deepcopy(_answers(released, add="def add(a, b):\n    return 0"))
    for cell in cases["edited_test_cell"].cells:
        if _grade_id(cell) == "test_add":
            cell.source = "5.0"  # a lone number would read as partial credit if the edit survived
    # Error display switched off three ways; the failed test must still count as failed.
    silencing = {
        "showtraceback_off": "get_ipython().showtraceback = lambda *args, **kwargs: None\n",
        "custom_exception_handler": ("get_ipython().set_custom_exc((Exception,), "
                                     "lambda shell, etype, value, tb, tb_offset=None: None)\n"),
        "excepthook_off": "import sys\nsys.excepthook = lambda *args: None\n",
    }
    for name, prefix in silencing.items():
        cases[name] = _answers(released, add=prefix + "def add(a, b):\n    return 0")
    cases["tensors_on_two_devices"] = _answers(released, add=(
        "import torch\n\ndef add(a, b):\n"
        "    return float(torch.tensor([a]) + torch.tensor([b], device='meta'))"))
    cases["mixed_dtypes"] = _answers(released, add=(
        "import torch\n\ndef add(a, b):\n"
        "    return float(torch.tensor([a], dtype=torch.float64) @ torch.tensor([b], dtype=torch.float32))"))
    cases["syntax_error"] = _answers(released, add="def add(a, b)\n    return a + b")
    cases["exception"] = _answers(released, add="raise RuntimeError('boom')")
    cases["infinite_loop"] = _answers(released, scale="while True:\n    pass")
    cases["sleeps_past_timeout"] = _answers(released, scale="import time\ntime.sleep(600)\n" + CORRECT["scale"])
    cases["memory_hog"] = _answers(released, scale="chunks = []\nwhile True:\n    chunks.append(bytearray(50 * 2**20))")
    cases["kernel_exit"] = _answers(released, scale="import os\nos._exit(1)")
    cases["segfault"] = _answers(released, scale="import ctypes\nctypes.string_at(0)")
    cases["many_lines"] = _answers(released, scale="for i in range(300_000):\n    print(i)\n" + CORRECT["scale"])
    cases["one_huge_line"] = _answers(released, scale="print('x' * 50_000_000)\n" + CORRECT["scale"])

    foreign = copy.deepcopy(good)
    foreign.metadata["kernelspec"] = {"name": "julia-1.9", "display_name": "Julia 1.9", "language": "julia"}
    foreign.metadata["vscode"] = {"interpreter": {"hash": "0123abcd"}}
    foreign.metadata["colab"] = {"provenance": [], "name": "week01.ipynb"}
    cases["foreign_editor_metadata"] = foreign
    old = copy.deepcopy(good)
    old.nbformat_minor = 4
    for cell in old.cells:
        cell.pop("id", None)
    cases["nbformat_4_4_without_ids"] = old
    cases["non_ascii"] = _answers(released, add="# 日本語, Кириллица, x₁ + x₂\ndef add(a, b):\n"
                                                "    print('合計 сумма ∑')\n    return a + b")

    cases["renamed"] = {"week01 (final copy).ipynb": nbformat.writes(good)}
    cases["extra_files"] = {"week01.ipynb": nbformat.writes(good), "week01.html": "<html></html>",
                            "plot.png": "\x89PNG fake"}
    cases["no_notebook"] = {"answers.txt": "see attached"}
    cases["not_json"] = "this is not a notebook"
    cases["truncated"] = nbformat.writes(good)[:300]
    cases["schema_invalid"] = json.dumps({"cells": [{"cell_type": "code", "source": "x"}], "metadata": {},
                                          "nbformat": 4, "nbformat_minor": 5})
    cases["empty_file"] = ""
    return cases


# Points out of 5 (add: 2, scale: 3) and a fragment of the reason the instructor sees.
EXPECTED = {
    "good": (5, None),
    "deleted_test_cell": (5, "test cell test_add is missing from the submission (deleted?); it was restored"),
    "deleted_both_test_cells": (5, "test cell test_scale is missing"),
    "deleted_first_cell": (5, None),
    "answer_cell_copied_after": (5, "cell add appears 2 times (copied?)"),
    "test_cell_copied_before": (5, "cell test_add appears 2 times"),
    "test_cell_made_markdown": (5, "test cell test_add was edited by the student"),
    "cell_inserted": (5, None),
    "cells_reordered": (5, None),
    "edited_test_cell": (3, "test cell test_add was edited by the student; the original was graded"),
    "showtraceback_off": (3, "test_add"),
    "custom_exception_handler": (3, "test_add"),
    "excepthook_off": (3, "test_add"),
    "tensors_on_two_devices": (3, "tensors are on different devices (meta and cpu)"),
    "mixed_dtypes": (3, "tensors have different dtypes (float64 and float32)"),
    "syntax_error": (3, "answer cell add: SyntaxError"),
    "exception": (3, "answer cell add: RuntimeError: boom"),
    "infinite_loop": (2, "answer cell scale: timed out"),
    "sleeps_past_timeout": (2, "answer cell scale: timed out"),
    "memory_hog": (2, "answer cell scale: MemoryError"),
    "kernel_exit": (2, "answer cell scale: DeadKernelError"),
    "segfault": (2, "answer cell scale: DeadKernelError"),
    "many_lines": (5, None),
    "one_huge_line": (5, None),
    "foreign_editor_metadata": (5, None),
    "nbformat_4_4_without_ids": (5, None),
    "non_ascii": (5, None),
    "renamed": (0, "notebook week01.ipynb missing: found week01 (final copy).ipynb instead (renamed?)"),
    "extra_files": (5, None),
    "no_notebook": (0, "no notebook submitted: expected week01.ipynb, found answers.txt"),
    "not_json": (0, "not valid JSON"),
    "truncated": (0, "not valid JSON"),
    "schema_invalid": (0, "not a Jupyter notebook"),
    "empty_file": (0, "not valid JSON"),
}


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = make_toy_course(tmp_path_factory.mktemp("broken"), timeout=5)
    text = (root / "course.toml").read_text(encoding="utf-8")
    text = text.replace("cell_timeout_seconds = 5", "cell_timeout_seconds = 5\nmemory_limit_mb = 600\noutput_limit_chars = 5000")
    (root / "course.toml").write_text(text, encoding="utf-8")
    release(root, ["week01"])
    released = nbformat.read(str(root / "release" / "week01" / "week01.ipynb"), as_version=4)

    cases = _cases(released)
    assert set(cases) == set(EXPECTED)
    for name, content in cases.items():
        folder = root / "submitted" / name / "week01"
        folder.mkdir(parents=True)
        if isinstance(content, nbformat.NotebookNode):
            nbformat.write(content, str(folder / "week01.ipynb"))
        elif isinstance(content, dict):
            for file_name, text in content.items():
                (folder / file_name).write_text(text, encoding="utf-8")
        else:
            (folder / "week01.ipynb").write_text(content, encoding="utf-8")
    before = _hashes(root / "submitted")

    # Graded under the C locale, through the command, as an instructor's shell might be set up.
    env = dict(os.environ, LC_ALL="C", LANG="C")
    run = subprocess.run([sys.executable, "-m", "course_lib.cli", "--root", str(root), "autograde"],
                         capture_output=True, text=True, env=env, check=False)
    # Status 1: some submissions (no notebook, not JSON) could not be graded at all.
    assert run.returncode == 1, run.stderr
    assert "could not be graded" in run.stderr
    return {"root": root, "before": before, "stdout": run.stdout}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_points(graded, name):
    table = grades_table(graded["root"]).set_index("student_id")
    assert table.loc[name, "score"] == EXPECTED[name][0]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_max_score_kept(graded, name):
    table = grades_table(graded["root"]).set_index("student_id")
    assert table.loc[name, "max_score"] == 5


@pytest.mark.parametrize("name", sorted(n for n, (_, reason) in EXPECTED.items() if reason))
def test_reason_reported(graded, name):
    problems = load_grading_log(graded["root"])[f"week01/{name}"]["problems"]
    assert any(EXPECTED[name][1] in p for p in problems), problems


def test_every_student_in_command_output(graded):
    for name in EXPECTED:
        assert f" {name} " in graded["stdout"]


def test_submitted_files_unchanged(graded):
    assert _hashes(graded["root"] / "submitted") == graded["before"]


def test_stored_output_stays_small(graded):
    for name in ("many_lines", "one_huge_line"):
        graded_notebook = graded["root"] / "autograded" / name / "week01" / "week01.ipynb"
        assert graded_notebook.stat().st_size < 200_000, name


def test_feedback_small_and_clean(graded):
    from course_lib.feedback import feedback

    written, problems = feedback(graded["root"], ["week01"], students=["one_huge_line", "many_lines", "edited_test_cell"])
    assert problems == []
    for page in written:
        text = page.read_text(encoding="utf-8")
        assert len(text) < 2_000_000
        assert "BEGIN HIDDEN TESTS" not in text
