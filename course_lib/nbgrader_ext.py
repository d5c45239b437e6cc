"""nbgrader preprocessors of the course: grading that tolerates library warnings, feedback that hides the grader."""

from __future__ import annotations

from nbgrader.preprocessors import NbGraderPreprocessor

from course_lib.notebooks import is_grade_cell

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
    """Reduce every traceback that passes through the hidden checks to the exception type and message.

    The frames of a hidden check quote its source, reference values included. A student still sees what
    failed and why, through the check's assertion message.
    """

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            return cell, resources
        for output in cell.get("outputs", []):
            if output.get("output_type") != "error":
                continue
            if _mentions_grader(output.get("traceback", [])):
                message = f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"
                output["traceback"] = [message, "(the hidden test's traceback is not shown)"]
        return cell, resources
