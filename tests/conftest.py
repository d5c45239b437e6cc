"""Shared fixtures: an isolated HOME, and the environment grading uses."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))


@pytest.fixture(autouse=True, scope="session")
def _one_thread_and_quiet_home(tmp_path_factory):
    """Run with one thread per process, and keep library caches out of the real HOME."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")
    os.environ.setdefault("MPLBACKEND", "Agg")
    # scikit-learn and pydataset write caches under HOME; Jupyter writes runtime files there.
    os.environ["SCIKIT_LEARN_DATA"] = str(tmp_path_factory.mktemp("sklearn_data"))
    yield
