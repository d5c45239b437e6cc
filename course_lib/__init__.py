"""Runtime library of the course: devices, seeding, tolerances, shipped data, plots, and the `course` command."""

import importlib

# Imported on first use, so that the `course` command starts without loading PyTorch.
_LAZY = {
    "get_device": "course_lib.device",
    "seed_everything": "course_lib.seed",
    "tolerance": "course_lib.tolerances",
}

__all__ = list(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'course_lib' has no attribute {name!r}")
