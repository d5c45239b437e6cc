"""The `course` command: release, grade, report and check the course's notebooks."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from course_lib.paths import REPO_ROOT

logger = logging.getLogger("course")

EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2
# The shell's status for a command stopped by Ctrl-C (128 + SIGINT).
EXIT_INTERRUPTED = 130


def find_root(start: Path) -> Path:
    """Return the nearest folder at or above START with a `source/` folder and a `course.toml`."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / "source").is_dir() and (folder / "course.toml").is_file():
            return folder
    raise SystemExit(
        f"error: {start} is not inside a course folder (one with source/ and course.toml); "
        f"pass --root, for example --root {REPO_ROOT}"
    )


def _root(args) -> Path:
    return Path(args.root).resolve() if args.root else find_root(Path.cwd())


def cmd_release(args) -> int:
    from course_lib.grading import release, resolve_weeks

    root = _root(args)
    weeks = resolve_weeks(root, args.weeks)
    for path in release(root, weeks):
        print(f"wrote {path.relative_to(root)}")
    return EXIT_OK


def cmd_solutions(args) -> int:
    from course_lib.grading import resolve_weeks
    from course_lib.solutions import generate_solutions

    root = _root(args)
    for week in resolve_weeks(root, args.weeks):
        for path in generate_solutions(week, root):
            print(f"wrote {path.relative_to(root)}")
    return EXIT_OK


def _print_results(results) -> None:
    width = max(len(r.student_id) for r in results)
    for r in results:
        score = "-" if r.score is None else f"{r.score:g} / {r.max_score:g}"
        messages = r.flags + r.problems
        first = messages[0] if messages else ""
        more = f" (+{len(messages) - 1} more)" if len(messages) > 1 else ""
        status = "FLAGGED" if r.flags else r.status
        print(f"{r.week}  {r.student_id:<{width}}  {status:<7} {score:>11}  {first}{more}")
    flagged = [r for r in results if r.flags]
    if flagged:
        print(f"{len(flagged)} submissions flagged for possible tampering; the flags column of `course grades` "
              f"lists each finding", file=sys.stderr)


def cmd_autograde(args) -> int:
    from course_lib.grading import GradingInterrupted, autograde, resolve_weeks

    root = _root(args)
    weeks = resolve_weeks(root, args.weeks)
    print(f"grading {', '.join(weeks)} in {root}", file=sys.stderr)
    try:
        results = autograde(root, weeks, students=args.student, progress=sys.stderr.isatty(), jobs=args.jobs,
                            scheduler=args.scheduler)
    except GradingInterrupted as interrupted:
        print(f"error: {interrupted}", file=sys.stderr)
        return EXIT_INTERRUPTED
    _print_results(results)
    failed = [r for r in results if r.status != "graded"]
    if failed:
        print(f"{len(failed)} of {len(results)} submissions could not be graded; see the messages above "
              f"and grading_log.json", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def cmd_grades(args) -> int:
    from course_lib.reports import grades_table

    root = _root(args)
    table = grades_table(root)
    output = Path(args.output) if args.output else root / "grades.csv"
    table.to_csv(output, index=False)
    print(table[["student_id", "assignment", "score", "max_score", "percent", "late", "status"]].to_string(index=False))
    print(f"\nwrote {output}", file=sys.stderr)
    return EXIT_OK


def milestone_report(root: Path, threshold: float | None):
    from course_lib.reports import grades_table
    from course_lib.settings import load_settings
    from gradebook.milestones import milestone_table

    threshold = load_settings(root).pass_threshold if threshold is None else threshold
    return milestone_table(grades_table(root), threshold=threshold)


def cmd_milestones(args) -> int:
    root = _root(args)
    table = milestone_report(root, args.threshold)
    output = Path(args.output) if args.output else root / "milestones.csv"
    table.to_csv(output, index=False)
    print(table.to_string(index=False))
    print(f"\nwrote {output}", file=sys.stderr)
    return EXIT_OK


def cmd_feedback(args) -> int:
    from course_lib.feedback import feedback, ungraded_submissions
    from course_lib.grading import resolve_weeks

    root = _root(args)
    weeks = resolve_weeks(root, args.weeks)
    written, problems = feedback(root, weeks, students=args.student)
    for path in written:
        print(f"wrote {path.relative_to(root)}")
    skipped = ungraded_submissions(root, weeks, students=args.student)
    for line in skipped:
        print(f"skipped {line}", file=sys.stderr)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if not written and not problems and not skipped:
        who = f" of {', '.join(args.student)}" if args.student else ""
        print(f"error: no autograded submissions{who} under {root / 'autograded'}; run `course autograde` first",
              file=sys.stderr)
        return EXIT_ERROR
    return EXIT_FAILED if problems else EXIT_OK


def cmd_check(args) -> int:
    from course_lib.check import check_notebook, format_results

    path = Path(args.notebook)
    if path.is_dir():
        print(f"error: {path} is a folder; pass the notebook file, for example {path / 'week01.ipynb'}", file=sys.stderr)
        return EXIT_ERROR
    if not path.is_file():
        print(f"error: notebook not found: {path}", file=sys.stderr)
        return EXIT_ERROR
    if path.suffix != ".ipynb":
        print(f"error: {path} is not a Jupyter notebook (.ipynb file)", file=sys.stderr)
        return EXIT_ERROR
    if args.timeout <= 0:
        print(f"error: --timeout must be a positive number of seconds, got {args.timeout}", file=sys.stderr)
        return EXIT_ERROR
    results = check_notebook(path, timeout=args.timeout)
    if not results:
        print(f"error: {path} has no test cells; is it a course notebook?", file=sys.stderr)
        return EXIT_ERROR
    print(format_results(results))
    return EXIT_FAILED if any(r.message for r in results) else EXIT_OK


def cmd_demo(args) -> int:
    from course_lib.demo import DEMO_WEEKS, check_expectations, prepare_course
    from course_lib.feedback import feedback
    from course_lib.grading import autograde, resolve_weeks
    from course_lib.reports import grades_table

    course_dir = Path(args.dir).resolve()
    weeks = resolve_weeks(REPO_ROOT, args.weeks or list(DEMO_WEEKS))
    print(f"demo course folder: {course_dir}", file=sys.stderr)
    prepare_course(course_dir, weeks)
    print(f"released {', '.join(weeks)} and created three submissions per week", file=sys.stderr)
    results = autograde(course_dir, weeks, progress=sys.stderr.isatty())
    _print_results(results)
    _, feedback_problems = feedback(course_dir, weeks)

    grades = grades_table(course_dir)
    grades.to_csv(course_dir / "grades.csv", index=False)
    print("\nGrades")
    print(grades[["student_id", "assignment", "score", "max_score", "percent", "late"]].to_string(index=False))
    milestones = milestone_report(course_dir, None)
    milestones.to_csv(course_dir / "milestones.csv", index=False)
    print("\nMilestones")
    print(milestones.to_string(index=False))

    problems = check_expectations(grades) + feedback_problems
    if problems:
        print("\ndemo FAILED:", *problems, sep="\n  ", file=sys.stderr)
        return EXIT_FAILED
    print(f"\ndemo passed: reference full marks, untouched release 0, mistakes partial credit. "
          f"Files in {course_dir}", file=sys.stderr)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="course",
        description="Release, autograde and report the notebooks of the LLM and agentic AI course (nbgrader).",
    )
    parser.add_argument("--root", help="course folder, the one with source/ and course.toml; give it before "
                                       "the command (default: the nearest such folder at or above the current one)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log nbgrader's progress messages")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    week_help = "week numbers or names (1, 01, week01); default: every week under source/"

    sub = commands.add_parser("release", help="generate release/ (student notebooks) from source/")
    sub.add_argument("weeks", nargs="*", metavar="WEEK", help=week_help)
    sub.set_defaults(func=cmd_release)

    sub = commands.add_parser("solutions", help="generate solutions/ (importable reference code, solution notebook)")
    sub.add_argument("weeks", nargs="*", metavar="WEEK", help=week_help)
    sub.set_defaults(func=cmd_solutions)

    sub = commands.add_parser("autograde", help="grade every submission under submitted/ into gradebook.db",
                              description="Grade every submission under submitted/ into gradebook.db. Exits with "
                                          "status 1 when a submission could not be graded at all.")
    sub.add_argument("weeks", nargs="*", metavar="WEEK", help=week_help)
    sub.add_argument("--student", action="append", metavar="ID", help="grade only this student (repeatable)")
    sub.add_argument("--jobs", type=int, default=1, metavar="N",
                     help="worker processes grading in parallel, one kernel each (default: 1)")
    sub.add_argument("--scheduler", metavar="ADDRESS",
                     help="grade on the workers of this Dask scheduler, such as tcp://10.0.0.5:8786; they must see "
                          "the course folder at the same path (default: grade on this machine)")
    sub.set_defaults(func=cmd_autograde)

    sub = commands.add_parser("grades", help="write grades.csv: one row per student and week")
    sub.add_argument("--output", metavar="CSV", help="output file (default: grades.csv in the course folder)")
    sub.set_defaults(func=cmd_grades)

    sub = commands.add_parser("milestones", help="print and write each student's milestones")
    sub.add_argument("--output", metavar="CSV", help="output file (default: milestones.csv in the course folder)")
    sub.add_argument("--threshold", type=float, metavar="FRACTION",
                     help="fraction of a week's points that completes it (default: pass_threshold in course.toml, 0.70)")
    sub.set_defaults(func=cmd_milestones)

    sub = commands.add_parser("feedback", help="write feedback HTML for students, without hidden tests")
    sub.add_argument("weeks", nargs="*", metavar="WEEK", help=week_help)
    sub.add_argument("--student", action="append", metavar="ID", help="only this student (repeatable)")
    sub.set_defaults(func=cmd_feedback)

    sub = commands.add_parser("check", help="run a notebook's public tests and print your points per question")
    sub.add_argument("notebook", metavar="NOTEBOOK", help="your copy of a week's notebook (it is not modified)")
    sub.add_argument("--timeout", type=int, default=300, metavar="SECONDS",
                     help="limit for one cell, in seconds (default: 300)")
    sub.set_defaults(func=cmd_check)

    sub = commands.add_parser("demo", help="release weeks 1-2, grade three sample submissions, print grades and milestones")
    sub.add_argument("--weeks", nargs="+", metavar="WEEK", help="weeks to include (default: 1 2)")
    sub.add_argument("--dir", default=str(REPO_ROOT / "build" / "demo"), metavar="DIR",
                     help="course folder the demo creates; an earlier demo folder there is replaced (default: build/demo)")
    sub.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    from course_lib.grading import CourseError
    from course_lib.notebooks import NotebookError

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        # nbgrader logs every traceback it catches; `course` reports each problem in one line instead.
        nbgrader_logger = logging.getLogger("traitlets")
        nbgrader_logger.propagate = False
        nbgrader_logger.addHandler(logging.NullHandler())
    try:
        return args.func(args)
    except (CourseError, NotebookError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
