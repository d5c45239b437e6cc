"""nbgrader preprocessors of the course: grading that tolerates library warnings, feedback that hides the grader."""

from __future__ import annotations

import copy
from pathlib import Path

import nbformat
from nbclient.exceptions import DeadKernelError
from jupyter_core.utils import run_sync
from nbformat import NotebookNode
from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from traitlets import Integer, Unicode

from course_lib.notebooks import BEGIN_HIDDEN, is_grade_cell, nbgrader_metadata

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


class TruncateLongOutputs(NbGraderPreprocessor):
    """Cut every text output to `max_chars` characters, so a flood of output cannot bloat stored results.

    nbgrader's LimitOutput counts lines; one printed line of 50 MB passes it whole.
    """

    max_chars = Integer(20_000, help="Characters kept per output text; the rest is replaced by a note.").tag(config=True)

    def _cut(self, text: str) -> str:
        if len(text) <= self.max_chars:
            return text
        return text[: self.max_chars] + f"\n... [output truncated: {len(text) - self.max_chars} more characters]\n"

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            return cell, resources
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                text = output.get("text", "")
                output["text"] = self._cut("".join(text) if isinstance(text, list) else text)
            elif output.get("output_type") in ("execute_result", "display_data"):
                data = output.get("data", {})
                for mime in ("text/plain", "text/html"):
                    if mime in data:
                        value = data[mime]
                        data[mime] = self._cut("".join(value) if isinstance(value, list) else value)
            elif output.get("output_type") == "error":
                output["evalue"] = self._cut(output.get("evalue", ""))
        return cell, resources


class RecoveringExecute(Execute):
    """nbgrader's Execute, but a kernel that dies (os._exit, a crash in native code) fails one cell, not all.

    The cell where the kernel died gets an error output. The kernel is restarted, the cells above that ran
    without error are run again so that their definitions exist, and execution goes on with the next cell.
    """

    max_kernel_restarts = Integer(3, help="Kernel deaths tolerated per notebook before grading gives up.").tag(config=True)

    def preprocess(self, nb, resources=None, km=None):
        self._kernel_deaths = 0
        return super().preprocess(nb, resources, km=km)

    def preprocess_cell(self, cell, resources, index):
        try:
            return super().preprocess_cell(cell, resources, index)
        except DeadKernelError:
            if self._kernel_deaths >= self.max_kernel_restarts:
                raise
            self._kernel_deaths += 1
            self.log.error("The kernel died in cell %d; restarting it and running the cells above again", index)
            cell.outputs.append(NotebookNode(
                output_type="error",
                ename="DeadKernelError",
                evalue="the kernel died while running this cell (os._exit, a crash in native code, or memory "
                       "exhausted); grading restarted it and went on with the next cell",
                traceback=[],
            ))
            self._restart_and_replay(index)
            return cell, self.resources

    def _restart_and_replay(self, cell_index: int) -> None:
        run_sync(self.km.restart_kernel)(now=True)
        run_sync(self.kc.wait_for_ready)(timeout=self.startup_timeout)
        for index, earlier in enumerate(self.nb.cells[:cell_index]):
            if earlier.cell_type != "code":
                continue
            if any(output.get("output_type") == "error" for output in earlier.get("outputs", [])):
                continue
            # A copy, so the stored outputs of the first run stay as they were.
            self.execute_cell(copy.deepcopy(earlier), index, store_history=False)


class DeduplicateGradeIds(NbGraderPreprocessor):
    """Keep the last cell of each grade id and make earlier copies plain cells.

    A student who copies a graded cell leaves two cells with one grade id. nbgrader's DeduplicateIds empties
    the copy's metadata, which its own schema check then rejects as an old format, so grading fails. Here the
    metadata is removed instead, and the last copy, usually the one the student worked on, is graded.
    """

    def preprocess(self, nb, resources):
        seen = set()
        for cell in reversed(nb.cells):
            name = nbgrader_metadata(cell).get("grade_id")
            if not name:
                continue
            if name in seen:
                self.log.warning("Cell with id '%s' exists multiple times; grading the last one", name)
                cell.metadata.pop("nbgrader", None)
            else:
                seen.add(name)
        return nb, resources


class RestoreDeletedTestCells(NbGraderPreprocessor):
    """Put back locked cells (test cells among them) that the student deleted, at their place in the release.

    A deleted test cell would otherwise score 0 however good the answer above it. The restored cell is then
    filled from the gradebook, hidden tests included, like every locked cell.
    """

    release_dir = Unicode("", help="Folder of the released notebooks, release/ of the course.").tag(config=True)

    def preprocess(self, nb, resources):
        assignment = resources.get("nbgrader", {}).get("assignment")
        notebook = resources.get("nbgrader", {}).get("notebook")
        if not (self.release_dir and assignment and notebook):
            return nb, resources
        release_path = Path(self.release_dir) / assignment / f"{notebook}.ipynb"
        if not release_path.is_file():
            return nb, resources
        released = nbformat.read(str(release_path), as_version=4)

        present = {nbgrader_metadata(c).get("grade_id") for c in nb.cells} - {None}
        previous = None  # grade id of the last release cell that the submission has
        for cell in released.cells:
            meta = nbgrader_metadata(cell)
            name = meta.get("grade_id")
            if not name:
                continue
            if name in present:
                previous = name
                continue
            if not meta.get("locked"):
                continue
            position = 0
            if previous is not None:
                position = next(i for i, c in enumerate(nb.cells) if nbgrader_metadata(c).get("grade_id") == previous) + 1
            restored = copy.deepcopy(cell)
            restored.pop("id", None)
            nb.cells.insert(position, restored)
            present.add(name)
            previous = name
            self.log.warning("Locked cell '%s' was missing and has been restored", name)
        return nb, resources
