"""nbgrader preprocessors of the course: grading that tolerates library warnings, feedback that hides the grader."""

from __future__ import annotations

from nbgrader.preprocessors import NbGraderPreprocessor

from course_lib.notebooks import BEGIN_HIDDEN, is_grade_cell

# Text that marks a traceback frame or message as coming from the hidden checks.
GRADER_MARKERS = ("autograder", "/autograder/", "BEGIN HIDDEN TESTS")


class KeepStderrOutOfGrades(NbGraderPreprocessor):
    """Turn stderr streams of grade cells into stdout streams before the grades are saved.

    nbgrader scores a grade cell 0 when it wrote anything to stderr, so a library warning (PyTorch, NumPy,
    matplotlib) would fail a correct answer. A failing test raises, and the raised error is kept, so only the
    warning text moves. The text stays visible in the graded notebook and the feedback.
    """

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code" and is_grade_cell(cell):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "stream" and output.get("name") == "stderr":
                    output["name"] = "stdout"
        return cell, resources


def _mentions_grader(lines) -> bool:
    return any(marker in line for line in lines for marker in GRADER_MARKERS)


class HideGraderTracebacks(NbGraderPreprocessor):
    """Reduce tracebacks that could quote hidden tests to the exception type and message.

    That is every traceback of a cell with a hidden-test block (its frames quote the block's lines) and
    every traceback through the `autograder` package (its frames quote the checks and reference values).
    A student still sees what failed and why, through the assertion message. Run it before ClearHiddenTests.
    """

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            return cell, resources
        has_hidden_tests = BEGIN_HIDDEN in cell.source
        for output in cell.get("outputs", []):
            if output.get("output_type") != "error":
                continue
            if has_hidden_tests or _mentions_grader(output.get("traceback", [])):
                message = f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"
                output["traceback"] = [message, "(the hidden test's traceback is not shown)"]
        return cell, resources
