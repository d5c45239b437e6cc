"""The kernel that runs submissions during grading: an IPython kernel started under resource limits.

`course autograde` registers it as the kernel spec `course-grader` and uses it for every submission, whatever
kernel the student's notebook names (a VS Code or Colab kernel, another Python). Limits come from the
environment, so a student's code cannot raise them above what the grader set.
"""

from __future__ import annotations

import json
import os
import resource
import sys
from pathlib import Path

KERNEL_NAME = "course-grader"
MEMORY_VARIABLE = "COURSE_KERNEL_MEMORY_MB"
FILE_SIZE_VARIABLE = "COURSE_KERNEL_FILE_MB"


def _limit(kind: int, megabytes: int) -> None:
    if megabytes > 0:
        size = megabytes * 1024 * 1024
        resource.setrlimit(kind, (size, size))


def apply_limits() -> None:
    """Cap the kernel's heap (RLIMIT_DATA) and the size of any file it writes (RLIMIT_FSIZE).

    An allocation past the memory cap raises MemoryError inside the kernel, which fails that cell only;
    the machine and the other students' kernels are not affected.
    """
    _limit(resource.RLIMIT_DATA, int(os.environ.get(MEMORY_VARIABLE, "0")))
    _limit(resource.RLIMIT_FSIZE, int(os.environ.get(FILE_SIZE_VARIABLE, "0")))


def write_kernel_spec(folder: Path) -> Path:
    """Write the kernel spec under FOLDER/kernels/course-grader; add FOLDER to JUPYTER_PATH to use it."""
    spec_dir = Path(folder) / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-m", "course_lib.grading_kernel", "-f", "{connection_file}"],
        "display_name": "Python 3 (course grader)",
        "language": "python",
        "metadata": {"debugger": False},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")
    return spec_dir


def main() -> None:
    apply_limits()
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()


if __name__ == "__main__":
    main()
