"""The kernel that runs submissions during grading: an IPython kernel started under resource limits.

`course autograde` registers it as the kernel spec `course-grader` and uses it for every submission, whatever
kernel the student's notebook names (a VS Code or Colab kernel, another Python). Limits come from the
environment, so a student's code cannot raise them above what the grader set.
"""

from __future__ import annotations

import importlib.abc
import json
import os
import resource
import sys
import types
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

    An allocation past the memory cap raises MemoryError inside the kernel, which fails that cell only.
    The machine and the other students' kernels are not affected.
    """
    _limit(resource.RLIMIT_DATA, int(os.environ.get(MEMORY_VARIABLE, "0")))
    _limit(resource.RLIMIT_FSIZE, int(os.environ.get(FILE_SIZE_VARIABLE, "0")))


class _ReadOnlyModule(types.ModuleType):
    """A module whose attributes cannot be rebound or deleted by ordinary assignment."""

    def __setattr__(self, name, value):
        raise AttributeError(f"module {self.__name__!r} is read-only during grading")

    def __delattr__(self, name):
        raise AttributeError(f"module {self.__name__!r} is read-only during grading")


class _ProtectGraderModules(importlib.abc.MetaPathFinder):
    """Make every `autograder` module read-only as it is imported, so student code cannot swap a check."""

    def find_spec(self, fullname, path, target=None):
        if fullname != "autograder" and not fullname.startswith("autograder."):
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _ReadOnlyLoader(spec.loader)
                return spec
        return None


class _ReadOnlyLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        _REAL_MODULES[module.__name__] = module
        # Submodules are set on the package by the import system after this, so packages stay writable.
        if not hasattr(module, "__path__"):
            module.__class__ = _ReadOnlyModule


def protect_grader_modules() -> None:
    sys.meta_path.insert(0, _ProtectGraderModules())


# The autograder modules as first imported, so a replacement in sys.modules can be undone.
_REAL_MODULES: dict[str, types.ModuleType] = {}

# Modules whose functions the hidden checks compare with; their attributes are restored before every cell.
GUARDED_MODULES = ("builtins", "math", "numpy", "numpy.testing", "torch", "torch.testing", "torch.nn.functional")


def install_guard() -> None:
    """Undo, before every cell, any rebinding of the guarded modules' attributes and of the autograder modules.

    Student code runs in the kernel that later runs the hidden checks. Without this, an answer cell could set
    `numpy.allclose = lambda *a, **k: True` or put a fake `autograder.week01` in sys.modules, and every
    check after it would pass. Run inside the kernel at start-up, before any student code.
    """
    import importlib

    from IPython import get_ipython

    snapshots = []
    for name in GUARDED_MODULES:
        module = importlib.import_module(name)
        snapshots.append((vars(module), dict(vars(module))))

    def restore(*args, **kwargs):
        for namespace, original in snapshots:
            for key, value in original.items():
                if namespace.get(key, _MISSING) is not value:
                    namespace[key] = value
        for name in [n for n in sys.modules if n == "autograder" or n.startswith("autograder.")]:
            if sys.modules[name] is not _REAL_MODULES.get(name):
                # Not the module the import system loaded: drop it, so the next import loads the real one.
                del sys.modules[name]
        for name, module in _REAL_MODULES.items():
            sys.modules[name] = module

    get_ipython().events.register("pre_run_cell", restore)


_MISSING = object()


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
    protect_grader_modules()
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()


if __name__ == "__main__":
    main()
