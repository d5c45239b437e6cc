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
import threading
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
        # A check's globals could be rewritten through a frame; the snapshot lets the next cell undo it.
        _MODULE_SNAPSHOTS[module.__name__] = dict(vars(module))
        # Submodules are set on the package by the import system after this, so packages stay writable.
        if not hasattr(module, "__path__"):
            module.__class__ = _ReadOnlyModule


def protect_grader_modules() -> None:
    sys.meta_path.insert(0, _ProtectGraderModules())


# The autograder modules as first imported, and their globals then, so a replacement can be undone.
_REAL_MODULES: dict[str, types.ModuleType] = {}
_MODULE_SNAPSHOTS: dict[str, dict] = {}

# Modules whose functions the hidden checks compare with; their attributes are restored before every cell.
GUARDED_MODULES = (
    "builtins", "math", "numpy", "numpy.testing", "torch", "torch.testing", "torch.nn.functional",
    "scipy", "scipy.stats", "scipy.special",
)


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
    # The package is imported now, before any student code, so its submodules always load from its own folder.
    package = importlib.import_module("autograder")
    _REAL_MODULES["autograder"] = package
    package_path = list(package.__path__)

    def restore(*args, **kwargs):
        # A tracer or profiler installed by an earlier cell could rewrite a check's locals as it runs.
        sys.settrace(None)
        sys.setprofile(None)
        threading.settrace(None)
        threading.setprofile(None)
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
            if name in _MODULE_SNAPSHOTS:
                namespace = vars(module)
                for key, value in _MODULE_SNAPSHOTS[name].items():
                    if namespace.get(key, _MISSING) is not value:
                        namespace[key] = value
        package.__path__[:] = package_path

    shell = get_ipython()
    shell.events.register("pre_run_cell", restore)
    _guard_input_transformers(shell)


def _guard_input_transformers(shell) -> None:
    """Reset IPython's input transformers before every cell is transformed.

    A transformer added by student code could delete the hidden-test lines of the cells after it. The
    transformation runs before the `pre_run_cell` event, so `restore` would come too late for it.
    """
    manager = shell.input_transformer_manager
    cleanup = list(manager.cleanup_transforms)
    line = list(manager.line_transforms)
    post = list(shell.input_transformers_post)
    transform = shell.transform_cell

    def guarded_transform(raw_cell):
        shell.input_transformer_manager = manager
        manager.cleanup_transforms[:] = cleanup
        manager.line_transforms[:] = line
        shell.input_transformers_post[:] = post
        return transform(raw_cell)

    shell.transform_cell = guarded_transform


_MISSING = object()


def write_kernel_spec(folder: Path) -> Path:
    """Write the kernel spec under FOLDER/kernels/course-grader; add FOLDER to JUPYTER_PATH to use it."""
    spec_dir = Path(folder) / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        # -P keeps the submission's folder off sys.path, so files a student submits beside the notebook
        # (an `autograder/` or `course_lib/` folder) cannot shadow the course's packages.
        "argv": [sys.executable, "-P", "-m", "course_lib.grading_kernel", "-f", "{connection_file}"],
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
