"""Phase 1 (weeks 1-6) graded end to end: every week grades as expected and Foundation Master is earned."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

pytestmark = pytest.mark.slow

PHASE1_WEEKS = [str(n) for n in range(1, 7)]


@pytest.fixture(scope="module")
def phase1_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("phase1") / "course"
    run = subprocess.run([sys.executable, "-m", "course_lib.cli", "demo", "--weeks", *PHASE1_WEEKS, "--dir", str(folder)],
                         capture_output=True, text=True, check=False)
    # The demo exits 1 unless the reference scores full marks, the untouched release 0 and the mistakes partial.
    assert run.returncode == 0, f"demo failed:\n{run.stdout}\n{run.stderr}"
    return folder


def test_every_phase1_week_graded(phase1_dir):
    grades = pd.read_csv(phase1_dir / "grades.csv")
    assert sorted(set(grades["week"])) == list(range(1, 7))
    assert (grades["status"] == "graded").all()


def test_foundation_master_for_reference_student(phase1_dir):
    milestones = pd.read_csv(phase1_dir / "milestones.csv", dtype={"weeks_completed": str}).set_index("student_id")
    assert bool(milestones.loc["ada-reference", "foundation_master"])
    assert milestones.loc["ada-reference", "weeks_completed"] == "1-6"
    assert "Foundation Master" in milestones.loc["ada-reference", "milestones"]


def test_no_foundation_master_for_untouched_release(phase1_dir):
    milestones = pd.read_csv(phase1_dir / "milestones.csv", dtype={"weeks_completed": str}).set_index("student_id")
    assert not bool(milestones.loc["ben-untouched", "foundation_master"])
    assert milestones.loc["ben-untouched", "n_completed"] == 0
