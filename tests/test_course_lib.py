"""Tests of the course_lib runtime modules: devices, tolerances, seeding, shipped data, notebooks, paths."""

from __future__ import annotations

import random
import re

import nbformat
import numpy as np
import pytest
import torch
from torch.testing._comparison import default_tolerances

from course_lib import device as device_module
from course_lib.data import hpo_corpus, hpo_definitions, icd10cm_descriptions
from course_lib.device import get_device, supports_float64
from course_lib.notebooks import (
    NotebookError,
    read_notebook,
    reference_source,
    strip_hidden_tests,
    strip_solution_markers,
)
from course_lib.paths import week_name, week_number
from course_lib.seed import seed_everything
from course_lib.tolerances import tolerance

HAS_ACCELERATOR = torch.cuda.is_available() or torch.backends.mps.is_available()


# device


@pytest.fixture
def cpu_only(monkeypatch):
    """Make CUDA and MPS look absent, whatever this machine has."""
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def test_get_device_course_device_cpu(monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert get_device() == torch.device("cpu")


def test_get_device_course_device_case_and_spaces(monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", " CPU ")
    assert get_device() == torch.device("cpu")


def test_get_device_course_device_overrides_search(monkeypatch):
    # With CUDA present, COURSE_DEVICE=cpu still wins over the search order.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert get_device() == torch.device("cpu")


def test_get_device_course_device_cuda_when_available(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("COURSE_DEVICE", "cuda:1")
    assert get_device() == torch.device("cuda", 1)


def test_get_device_unknown_name_in_environment(monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "tpu")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        get_device()


def test_get_device_unknown_name_argument(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        get_device("tpu")


def test_get_device_cuda_unavailable(cpu_only, monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "cuda")
    with pytest.raises(ValueError, match="'cuda' was requested but is not available"):
        get_device()


def test_get_device_mps_unavailable(cpu_only):
    with pytest.raises(ValueError, match="'mps' was requested but is not available"):
        get_device("mps")


def test_get_device_argument_before_environment(monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "tpu")
    assert get_device("cpu") == torch.device("cpu")


def test_get_device_search_without_accelerator(cpu_only):
    assert get_device() == torch.device("cpu")


def test_get_device_empty_variable_searches(cpu_only, monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "")
    assert get_device() == torch.device("cpu")


def test_get_device_search_prefers_mps_then_cuda(cpu_only, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert get_device() == torch.device("cuda")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert get_device() == torch.device("mps")


@pytest.mark.skipif(HAS_ACCELERATOR, reason="this machine has CUDA or MPS, so the default is not the CPU")
def test_get_device_default_on_cpu_machine(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    assert get_device() == torch.device("cpu")


def test_supports_float64_per_device():
    assert supports_float64("cpu")
    assert supports_float64(torch.device("cuda"))
    assert not supports_float64("mps")


def test_known_devices_listed():
    assert device_module.KNOWN_DEVICES == ("cpu", "cuda", "mps")


# tolerances


# default_tolerances is the private helper that torch.testing.assert_close calls in torch 2.13. Comparing with it
# ties the test to torch's own defaults, not to numbers copied from its documentation.
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_tolerance_cpu_equals_torch_defaults(dtype):
    rtol, atol = default_tolerances(dtype)
    assert tolerance(dtype, "cpu") == {"rtol": rtol, "atol": atol}


def test_tolerance_default_arguments():
    rtol, atol = default_tolerances(torch.float32)
    assert tolerance() == {"rtol": rtol, "atol": atol}


@pytest.mark.parametrize("device", ["cuda", "mps", torch.device("cuda", 0)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tolerance_wider_on_accelerators(dtype, device):
    cpu = tolerance(dtype, "cpu")
    accelerator = tolerance(dtype, device)
    assert accelerator["rtol"] > cpu["rtol"]
    assert accelerator["atol"] > cpu["atol"]


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool, torch.complex64])
def test_tolerance_unknown_dtype(dtype):
    with pytest.raises(ValueError, match=f"no tolerance defined for dtype {dtype}"):
        tolerance(dtype)


def test_tolerance_unknown_device_type():
    with pytest.raises(ValueError, match="no tolerance defined for device type 'meta'"):
        tolerance(torch.float32, "meta")


def test_tolerance_accepts_values_assert_close_accepts():
    expected = torch.ones(4, dtype=torch.float32)
    actual = expected + 1e-6
    torch.testing.assert_close(actual, expected, **tolerance(torch.float32))


# seed


def draw_all(generator: np.random.Generator) -> tuple:
    return (
        torch.rand(3).tolist(),
        torch.randint(0, 1000, (3,)).tolist(),
        np.random.rand(3).tolist(),
        generator.random(3).tolist(),
        [random.random() for _ in range(3)],
    )


def test_seed_everything_same_seed_same_draws():
    first = draw_all(seed_everything(1234))
    second = draw_all(seed_everything(1234))
    assert first[0] == second[0]
    assert first[1] == second[1]
    assert first[2] == second[2]
    assert first[3] == second[3]
    assert first[4] == second[4]


def test_seed_everything_other_seed_other_draws():
    first = draw_all(seed_everything(1))
    second = draw_all(seed_everything(2))
    assert first[0] != second[0]
    assert first[2] != second[2]
    assert first[3] != second[3]
    assert first[4] != second[4]


def test_seed_everything_returns_fresh_generator():
    generator = seed_everything(7)
    assert isinstance(generator, np.random.Generator)
    assert generator.random() == np.random.default_rng(7).random()


# data


def test_hpo_definitions_count():
    assert len(hpo_definitions()) > 10_000


def test_hpo_definitions_non_empty_strings():
    definitions = hpo_definitions()
    assert all(isinstance(text, str) for text in definitions)
    assert all(text.strip() for text in definitions)


def test_hpo_definitions_no_obo_markup():
    definitions = hpo_definitions()
    assert not [text for text in definitions if text.startswith("def:")]
    assert not [text for text in definitions if '\\"' in text]
    # No OBO escape of any kind is left, such as a literal \n inside a sentence.
    assert not [text for text in definitions if "\\" in text]
    assert not [text for text in definitions if "\n" in text]


def test_hpo_definitions_escaped_quotes_restored():
    # hp.obo escapes quotation marks inside definitions as \", and they must come back as plain quotes.
    assert any('"' in text for text in hpo_definitions())


@pytest.mark.parametrize("n_definitions", [1, 5, 250])
def test_hpo_corpus_line_count(n_definitions):
    corpus = hpo_corpus(n_definitions)
    assert len(corpus.split("\n")) == n_definitions
    assert corpus.split("\n") == list(hpo_definitions()[:n_definitions])


def test_hpo_corpus_all_definitions():
    assert len(hpo_corpus().split("\n")) == len(hpo_definitions())


@pytest.mark.parametrize("n_definitions", [0, -1])
def test_hpo_corpus_invalid_count(n_definitions):
    with pytest.raises(ValueError, match=f"n_definitions must be positive, got {n_definitions}"):
        hpo_corpus(n_definitions)


def test_icd10cm_descriptions_count():
    assert len(icd10cm_descriptions()) > 90_000


def test_icd10cm_descriptions_known_code():
    descriptions = icd10cm_descriptions()
    assert "E11.9" in descriptions
    assert "diabetes" in descriptions["E11.9"].lower()


def test_icd10cm_descriptions_non_empty():
    assert all(text.strip() for text in icd10cm_descriptions().values())


# notebooks


def write_text(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


def test_read_notebook_invalid_json(tmp_path):
    path = write_text(tmp_path / "broken.ipynb", '{"cells": [')
    with pytest.raises(NotebookError, match="not valid JSON") as info:
        read_notebook(path)
    assert "broken.ipynb" in str(info.value)


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1}',
        "[1, 2]",
        '"text"',
        '{"nbformat": 4, "nbformat_minor": 5, "metadata": {}}',
    ],
)
def test_read_notebook_json_not_a_notebook(tmp_path, text):
    path = write_text(tmp_path / "data.ipynb", text)
    with pytest.raises(NotebookError, match="not a Jupyter notebook") as info:
        read_notebook(path)
    assert "data.ipynb" in str(info.value)


def test_read_notebook_not_utf8(tmp_path):
    path = tmp_path / "latin1.ipynb"
    path.write_bytes('{"a": "caf\xe9"}'.encode("latin-1"))
    with pytest.raises(NotebookError, match="not UTF-8") as info:
        read_notebook(path)
    assert "latin1.ipynb" in str(info.value)


def test_notebook_error_is_value_error():
    assert issubclass(NotebookError, ValueError)


HIDDEN_GRADE_CELL = (
    "assert entropy([1.0]) == 0\n"
    "### BEGIN HIDDEN TESTS\n"
    "from autograder.week01 import check_entropy\n"
    "check_entropy(entropy)\n"
    "### END HIDDEN TESTS\n"
)

SOLUTION_CELL = (
    "def entropy(p):\n"
    '    """Entropy in nats."""\n'
    "    ### BEGIN SOLUTION\n"
    "    return -sum(x * math.log(x) for x in p if x > 0)\n"
    "    ### END SOLUTION\n"
)


def small_notebook() -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook()
    imports = nbformat.v4.new_code_cell("import math", metadata={"tags": ["reference"]})
    prose = nbformat.v4.new_markdown_cell("### BEGIN SOLUTION\nmarkdown is never reference code")
    solution = nbformat.v4.new_code_cell(
        SOLUTION_CELL,
        metadata={"nbgrader": {"solution": True, "grade": False, "grade_id": "entropy", "schema_version": 3}},
    )
    example = nbformat.v4.new_code_cell("entropy([0.5, 0.5])")
    grade = nbformat.v4.new_code_cell(
        HIDDEN_GRADE_CELL,
        metadata={"nbgrader": {"solution": False, "grade": True, "grade_id": "test_entropy", "points": 2}},
    )
    notebook.cells = [imports, prose, solution, example, grade]
    return notebook


def test_read_notebook_round_trip(tmp_path):
    path = tmp_path / "week01.ipynb"
    nbformat.write(small_notebook(), str(path))
    notebook = read_notebook(path)
    assert len(notebook.cells) == 5
    assert notebook.cells[2].source == SOLUTION_CELL


def test_strip_hidden_tests_removes_block():
    assert strip_hidden_tests(HIDDEN_GRADE_CELL) == "assert entropy([1.0]) == 0"


def test_strip_hidden_tests_keeps_code_after_block():
    source = "a = 1\n### BEGIN HIDDEN TESTS\nsecret()\n### END HIDDEN TESTS\nb = 2\n"
    assert strip_hidden_tests(source) == "a = 1\nb = 2"


def test_strip_hidden_tests_two_blocks():
    source = (
        "a = 1\n"
        "### BEGIN HIDDEN TESTS\nfirst()\n### END HIDDEN TESTS\n"
        "b = 2\n"
        "    ### BEGIN HIDDEN TESTS\n    second()\n    ### END HIDDEN TESTS\n"
    )
    assert strip_hidden_tests(source) == "a = 1\nb = 2"


def test_strip_hidden_tests_without_block():
    assert strip_hidden_tests("x = 1\n") == "x = 1"


def test_strip_hidden_tests_unterminated_block():
    source = "a = 1\n### BEGIN HIDDEN TESTS\nsecret()\n"
    with pytest.raises(ValueError, match="unmatched hidden-test marker in line '### BEGIN HIDDEN TESTS'"):
        strip_hidden_tests(source)


def test_strip_hidden_tests_end_without_begin():
    with pytest.raises(ValueError, match="unmatched hidden-test marker"):
        strip_hidden_tests("a = 1\n### END HIDDEN TESTS\n")


def test_strip_solution_markers_keeps_code():
    stripped = strip_solution_markers(SOLUTION_CELL)
    assert "BEGIN SOLUTION" not in stripped
    assert "END SOLUTION" not in stripped
    assert "    return -sum(x * math.log(x) for x in p if x > 0)" in stripped
    assert stripped.startswith('def entropy(p):\n    """Entropy in nats."""\n')


def test_reference_source_contents():
    source = reference_source(small_notebook())
    assert source == (
        "import math\n"
        "\n\n"
        "def entropy(p):\n"
        '    """Entropy in nats."""\n'
        "    return -sum(x * math.log(x) for x in p if x > 0)\n"
    )


def test_reference_source_is_importable_code():
    namespace: dict = {}
    exec(compile(reference_source(small_notebook()), "reference.py", "exec"), namespace)
    assert namespace["entropy"]([1.0]) == 0
    assert namespace["entropy"]([0.5, 0.5]) == pytest.approx(0.6931471805599453)


def test_reference_source_skips_grade_and_example_cells():
    source = reference_source(small_notebook())
    assert "check_entropy" not in source
    assert "entropy([0.5, 0.5])" not in source
    assert "markdown" not in source


# paths


@pytest.mark.parametrize("week", [1, "1", "01", "week01", " Week01 ", "WEEK01"])
def test_week_name_normalises_week_1(week):
    assert week_name(week) == "week01"


@pytest.mark.parametrize(("week", "expected"), [(9, "week09"), (10, "week10"), ("24", "week24"), ("week24", "week24")])
def test_week_name_two_digits(week, expected):
    assert week_name(week) == expected


@pytest.mark.parametrize("week", [0, 25, "0", "25", "week00", "week25"])
def test_week_name_out_of_range(week):
    with pytest.raises(ValueError, match="the course has weeks 1 to 24"):
        week_name(week)


@pytest.mark.parametrize("week", ["weekX", "week1", "week", "", "1.5", 1.0, "-1", "week 01"])
def test_week_name_invalid_text(week):
    with pytest.raises(ValueError, match=f"invalid week {re.escape(repr(week))}"):
        week_name(week)


def test_week_number_from_name():
    assert week_number("week07") == 7
    assert week_number("7") == 7
