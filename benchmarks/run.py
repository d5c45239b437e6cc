"""Measure the course's time budgets and write them to BENCHMARKS.md.

It measures each week's reference notebook executed by plain `jupyter nbconvert --execute`, and `course
autograde` of the same notebook submitted by one student, with the ratio of the two. It also measures grading
throughput with one and two workers and, with `--suite`, the whole test suite.
Run it as `make benchmark` (one thread per process, as grading and CI run).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import nbformat

from course_lib.demo import build_submission
from course_lib.grading import autograde, grading_environment, release, source_weeks
from course_lib.notebooks import read_notebook
from course_lib.paths import REPO_ROOT

BUDGET_SECONDS = 60.0
SUITE_BUDGET_SECONDS = 15 * 60.0


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def time_plain_execution(week: str, scratch: Path) -> float:
    """Seconds for `jupyter nbconvert --execute` of the source notebook (hidden tests included)."""
    copy = scratch / f"plain-{week}.ipynb"
    shutil.copy(REPO_ROOT / "source" / week / f"{week}.ipynb", copy)
    jupyter = Path(sys.executable).parent / "jupyter"
    command = [str(jupyter), "nbconvert", "--to", "notebook", "--execute", "--ExecutePreprocessor.timeout=600",
               "--output", str(scratch / f"plain-{week}-out.ipynb"), str(copy)]
    with grading_environment():
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, cwd=scratch)
        return time.perf_counter() - start


def time_autograde(week: str, scratch: Path) -> float:
    """Seconds for `course autograde` of one reference submission, excluding the one-off release."""
    root = scratch / f"course-{week}"
    shutil.copytree(REPO_ROOT / "source" / week, root / "source" / week)
    shutil.copy(REPO_ROOT / "course.toml", root / "course.toml")
    release(root, [week])
    source_nb = read_notebook(root / "source" / week / f"{week}.ipynb")
    release_nb = read_notebook(root / "release" / week / f"{week}.ipynb")
    folder = root / "submitted" / "benchmark-student" / week
    folder.mkdir(parents=True)
    nbformat.write(build_submission(source_nb, release_nb, "reference"), str(folder / f"{week}.ipynb"))
    start = time.perf_counter()
    results = autograde(root, [week], progress=False)
    elapsed = time.perf_counter() - start
    if results[0].score != results[0].max_score:
        raise RuntimeError(f"{week}: the reference submission scored {results[0].score} of {results[0].max_score}")
    return elapsed


def time_throughput(week: str, scratch: Path, students: int, jobs: int) -> float:
    """Seconds to grade STUDENTS reference submissions of WEEK with JOBS worker processes."""
    root = scratch / f"cohort-{week}-{jobs}"
    shutil.copytree(REPO_ROOT / "source" / week, root / "source" / week)
    shutil.copy(REPO_ROOT / "course.toml", root / "course.toml")
    release(root, [week])
    source_nb = read_notebook(root / "source" / week / f"{week}.ipynb")
    release_nb = read_notebook(root / "release" / week / f"{week}.ipynb")
    text = nbformat.writes(build_submission(source_nb, release_nb, "reference"))
    for index in range(students):
        folder = root / "submitted" / f"student{index:03d}" / week
        folder.mkdir(parents=True)
        (folder / f"{week}.ipynb").write_text(text, encoding="utf-8")
    start = time.perf_counter()
    autograde(root, [week], progress=False, jobs=jobs)
    return time.perf_counter() - start


def time_suite() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pytest", "-q"], check=True, cwd=REPO_ROOT)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", action="store_true", help="also time the whole test suite (about 10 minutes)")
    parser.add_argument("--output", default=str(REPO_ROOT / "BENCHMARKS.md"), help="report file (default: BENCHMARKS.md)")
    parser.add_argument("--cohort", type=int, default=6, metavar="N",
                        help="submissions per week graded with 1 and 2 workers for the throughput table (default: 6)")
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        for week in source_weeks(REPO_ROOT):
            plain = time_plain_execution(week, scratch)
            graded = time_autograde(week, scratch)
            rows.append((week, plain, graded))
            print(f"{week}: nbconvert {plain:.1f} s, autograde {graded:.1f} s, ratio {graded / plain:.2f}", flush=True)
        throughput = []
        for week in ("week01", "week02"):
            for jobs in (1, 2):
                seconds = time_throughput(week, scratch, args.cohort, jobs)
                throughput.append((week, jobs, seconds))
                print(f"{week}: {args.cohort} submissions with {jobs} worker(s) in {seconds:.1f} s", flush=True)
    suite = time_suite() if args.suite else None

    lines = [
        "# Benchmarks",
        "",
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d} with `make benchmark` (`python benchmarks/run.py"
        f"{' --suite' if suite else ''}`) on {os.cpu_count()} CPU cores ({_cpu_model()}), "
        f"Python {platform.python_version()}, `OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}`.",
        "Each number is one run, wall-clock seconds.",
        "",
        "## Reference notebooks and grading overhead",
        "",
        f"Budget: each reference notebook under {BUDGET_SECONDS:.0f} s. `nbconvert` is plain",
        "`jupyter nbconvert --to notebook --execute` of the source notebook, hidden tests included; `autograde` is",
        "`course autograde` of the same solutions submitted by one student (kernel start, nbgrader's sanitizing,",
        "execution, gradebook writes). The plain run also starts a new Python process and imports nbconvert,",
        "which `course autograde` has already done, so it can take longer than grading.",
        "",
        "| week | nbconvert (s) | within budget | autograde (s) | autograde / nbconvert |",
        "| --- | ---: | --- | ---: | ---: |",
    ]
    for week, plain, graded in rows:
        verdict = "yes" if plain < BUDGET_SECONDS else "NO"
        lines.append(f"| {week} | {plain:.1f} | {verdict} | {graded:.1f} | {graded / plain:.2f} |")
    lines += [
        "",
        "## Throughput",
        "",
        f"`course autograde --jobs N` on {args.cohort} reference submissions per week. Submissions per hour is",
        "3600 / (seconds per submission). The lines under the table extrapolate it to a cohort of 200 students",
        "submitting weeks 1 and 2 (400 submissions): an estimate from these runs, not a measurement.",
        "",
        "| week | workers | seconds | seconds per submission | submissions per hour |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    per_submission = {}
    for week, jobs, seconds in throughput:
        each = seconds / args.cohort
        per_submission.setdefault(jobs, []).append(each)
        lines.append(f"| {week} | {jobs} | {seconds:.1f} | {each:.1f} | {3600 / each:.0f} |")
    for jobs, values in sorted(per_submission.items()):
        hours = 200 * sum(values) / 3600
        lines.append(f"\nCohort of 200 on weeks 1-2 with {jobs} worker(s): about {hours:.1f} hours "
                     f"({400 / hours:.0f} submissions per hour).")
    if suite is not None:
        verdict = "yes" if suite < SUITE_BUDGET_SECONDS else "NO"
        lines += ["", "## Test suite", "", f"`python -m pytest -q`: {suite:.0f} s "
                  f"(budget {SUITE_BUDGET_SECONDS / 60:.0f} minutes; within budget: {verdict})."]
    Path(args.output).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")
    return 0 if all(plain < BUDGET_SECONDS for _, plain, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
