"""Submissions that attack the hidden checks: no points for a wrong answer, and a flag for the instructor."""

from __future__ import annotations

import shutil

import nbformat
import pytest

from course_lib.demo import build_submission
from course_lib.grading import autograde, release
from course_lib.notebooks import grade_id, read_notebook
from course_lib.paths import REPO_ROOT
from course_lib.reports import grades_table
from course_lib.tamper import scan_notebook

# Right on the public tests' inputs only, so the hidden check is what fails it.
HARDCODED_ENTROPY = '''import math
import numpy as np

def entropy(p, base=None):
    p = np.asarray(p, dtype=float)
    if p.ndim == 2:
        return np.full(p.shape[0], math.log(4))
    if p.tolist() == [0.5, 0.5]:
        return math.log(2)
    if p.tolist() == [0.5, 0.25, 0.25]:
        return 1.5
    return 0.0
'''

ATTACKS = {
    "swap_check": "import autograder.week01 as grader\ngrader.check_entropy = lambda *args, **kwargs: None\n",
    "patch_numpy": "import numpy\nnumpy.allclose = lambda *args, **kwargs: True\nnumpy.isclose = lambda *a, **k: True\n",
    "replace_module": "import sys, types\nsys.modules['autograder.week01'] = types.SimpleNamespace(check_entropy=print)\n",
    "read_checks": "source = open('autograder/week01.py').read()\n",
    "patch_builtins": "import builtins\nbuiltins.abs = lambda x: 0\nbuiltins.all = lambda values: True\n",
    "patch_torch": ("import torch\ntorch.allclose = lambda *args, **kwargs: True\n"
                    "torch.testing.assert_close = lambda *args, **kwargs: None\n"),
    "patch_scipy": ("import scipy.stats\n_right = scipy.stats.entropy\n"
                    "scipy.stats.entropy = lambda p, base=None, axis=-1, **kwargs: entropy(p, base=base)\n"),
    "input_transformer": ("import IPython\nIPython.get_ipython().input_transformers_post.append(\n"
                          "    lambda lines: [line for line in lines if 'check_' not in line])\n"),
    "tracer": ("import sys\nfrom sys import settrace\n\ndef tracer(frame, event, arg):\n"
               "    return tracer\n\nsettrace(tracer)\n"),
    # Patches made while the check runs cannot be undone before it compares; they must be flagged.
    "alias_at_call": ("import numpy\nm = numpy\n\ndef entropy(p, base=None):\n"
                      "    m.isclose = lambda a, b, **kwargs: numpy.ones(numpy.broadcast(a, b).shape, bool)\n"
                      "    return 0.0\n"),
    "frame_globals": ("import inspect\n\ndef entropy(p, base=None):\n"
                      "    inspect.currentframe().f_back.f_globals['_assert_close'] = lambda *a, **k: None\n"
                      "    return 0.0\n"),
}

# Files a student submits beside the notebook, to shadow the grader's package.
FAKE_PACKAGE = {
    "autograder/__init__.py": "",
    "autograder/week01.py": "def __getattr__(name):\n    return lambda *args, **kwargs: None\n",
}


def _submission(kind: str):
    source_nb = read_notebook(REPO_ROOT / "source" / "week01" / "week01.ipynb")
    release_nb = read_notebook(REPO_ROOT / "release" / "week01" / "week01.ipynb")
    notebook = build_submission(source_nb, release_nb, "reference")
    if kind == "clean":
        return notebook
    attack = ATTACKS.get(kind, "")
    for cell in notebook.cells:
        if grade_id(cell) == "entropy":
            cell.source = attack if "def entropy" in attack else attack + HARDCODED_ENTROPY
    return notebook


def test_scan_clean_on_every_solution_notebook():
    for path in sorted((REPO_ROOT / "solutions").glob("week*/week*.ipynb")):
        assert scan_notebook(read_notebook(path)) == [], path


@pytest.mark.parametrize("kind", sorted(ATTACKS))
def test_scan_flags_attack(kind):
    findings = scan_notebook(_submission(kind))
    assert findings, kind
    assert all(f.cell == "cell entropy" for f in findings)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("tamper")
    shutil.copytree(REPO_ROOT / "source" / "week01", root / "source" / "week01")
    shutil.copy(REPO_ROOT / "course.toml", root / "course.toml")
    release(root, ["week01"])
    for kind in ["clean", "fake_package", *ATTACKS]:
        folder = root / "submitted" / kind / "week01"
        folder.mkdir(parents=True)
        nbformat.write(_submission(kind), str(folder / "week01.ipynb"))
    for name, text in FAKE_PACKAGE.items():
        path = root / "submitted" / "fake_package" / "week01" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    results = {r.student_id: r for r in autograde(root, ["week01"], progress=False)}
    return root, results


def _entropy_points(root, student: str) -> float:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gradebook:
        notebook = gradebook.find_submission_notebook("week01", "week01", student)
        return {grade.name: grade.score for grade in notebook.grades}["test_entropy"]


@pytest.mark.slow
def test_clean_submission_not_flagged(graded):
    root, results = graded
    assert results["clean"].flags == []
    assert results["clean"].score == results["clean"].max_score


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["swap_check", "patch_numpy", "replace_module", "patch_builtins", "patch_torch",
                                  "patch_scipy", "input_transformer", "tracer", "fake_package"])
def test_attack_earns_no_points(graded, kind):
    root, _ = graded
    assert _entropy_points(root, kind) == 0


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(ATTACKS))
def test_attack_flagged_in_report(graded, kind):
    root, results = graded
    assert results[kind].flags
    table = grades_table(root).set_index("student_id")
    assert "possible tampering in cell entropy" in table.loc[kind, "flags"]
    assert table.loc["clean", "flags"] == ""


@pytest.mark.slow
def test_fake_package_flagged(graded):
    _, results = graded
    assert any("the submission contains autograder/" in flag for flag in results["fake_package"].flags)
