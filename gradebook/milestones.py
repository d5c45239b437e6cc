"""Milestone rules: which weeks a student completed and which milestones those weeks earn.

Everything here is a pure function over scores, with no file or database access, so that an instructor's
gradebook and a self-learner's local progress go through the same rules.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import pandas as pd

FIRST_WEEK = 1
LAST_WEEK = 24
COURSE_WEEKS = range(FIRST_WEEK, LAST_WEEK + 1)

PASS_THRESHOLD = 0.70
"""Default fraction of a week's points that completes the week. `pass_threshold` in `course.toml` may set another."""

WEEK_WARRIOR_STREAK = 7
"""Number of consecutive completed weeks that earns Week Warrior."""

# nbgrader sums float points, so a score of exactly 70 % can come out a rounding step below the threshold:
# 21 cells of 0.1 points out of 30 give 2.1000000000000005 / 3.0000000000000013 == 0.6999999999999998.
# So a ratio this close to the threshold passes, and a score this close above its max_score is accepted.
_RELATIVE_TOLERANCE = 1e-9

TABLE_COLUMNS = ("student_id", "week", "score", "max_score")
"""Columns that `milestone_table` requires, one row per student and week."""


@dataclass(frozen=True)
class Milestone:
    """A milestone and the rule that earns it."""

    name: str
    """Display name, such as "Week Warrior"."""
    key: str
    """Column name in `milestone_table`, such as "week_warrior"."""
    description: str
    """The rule in words."""
    rule: Callable[[frozenset[int]], bool]
    """Predicate over the set of completed week numbers."""

    def is_earned(self, weeks: Iterable[int]) -> bool:
        """Return whether the completed week numbers `weeks` earn this milestone."""
        return self.rule(frozenset(weeks))


def _all_weeks_completed(first: int, last: int) -> Callable[[frozenset[int]], bool]:
    required = frozenset(range(first, last + 1))

    def rule(weeks: frozenset[int]) -> bool:
        return required <= weeks

    return rule


def _has_streak(weeks: frozenset[int]) -> bool:
    return longest_streak(weeks) >= WEEK_WARRIOR_STREAK


MILESTONES: tuple[Milestone, ...] = (
    Milestone(
        "Week Warrior",
        "week_warrior",
        f"{WEEK_WARRIOR_STREAK} consecutive course weeks completed",
        _has_streak,
    ),
    Milestone("Foundation Master", "foundation_master", "weeks 1-6 completed", _all_weeks_completed(1, 6)),
    Milestone("Advanced Practitioner", "advanced_practitioner", "weeks 7-12 completed", _all_weeks_completed(7, 12)),
    Milestone("Agent Architect", "agent_architect", "weeks 13-18 completed", _all_weeks_completed(13, 18)),
    Milestone(
        "AI Master",
        "ai_master",
        f"all {len(COURSE_WEEKS)} weeks completed",
        _all_weeks_completed(FIRST_WEEK, LAST_WEEK),
    ),
)
"""Every milestone, in the order that reports list them."""


def _is_number(value: object) -> bool:
    # bool is a subclass of int, but True as a score or a week is a mistake in the table.
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_threshold(threshold: float) -> float:
    if not _is_number(threshold) or not 0.0 < float(threshold) <= 1.0:
        raise ValueError(f"invalid threshold {threshold!r}: expected a fraction of the points in (0, 1], such as 0.7")
    return float(threshold)


def _check_week(week: object) -> int:
    # A week column with one empty cell is read as floats, so 3.0 is accepted as week 3.
    if not _is_number(week) or not float(week).is_integer():
        raise ValueError(f"invalid week {week!r}: expected an integer from {FIRST_WEEK} to {LAST_WEEK}")
    number = int(week)
    if number not in COURSE_WEEKS:
        raise ValueError(f"invalid week {week!r}: the course has weeks {FIRST_WEEK} to {LAST_WEEK}")
    return number


def _check_points(week: int, label: str, value: object) -> float:
    if not _is_number(value):
        raise ValueError(f"week {week}: invalid {label} {value!r}: expected a number")
    points = float(value)
    if not math.isfinite(points):
        raise ValueError(f"week {week}: invalid {label} {points!r}: expected a finite number")
    if points < 0:
        raise ValueError(f"week {week}: invalid {label} {points!r}: must not be negative")
    return points


def _check_entry(week: int, entry: object) -> tuple[float, float]:
    try:
        score, max_score = entry
    except (TypeError, ValueError) as error:
        raise ValueError(f"week {week}: invalid entry {entry!r}: expected a pair (score, max_score)") from error

    score = _check_points(week, "score", score)
    max_score = _check_points(week, "max_score", max_score)
    if score > max_score and not math.isclose(score, max_score, rel_tol=_RELATIVE_TOLERANCE):
        raise ValueError(f"week {week}: score {score!r} is greater than max_score {max_score!r}")
    return score, max_score


def _reaches_threshold(score: float, max_score: float, threshold: float) -> bool:
    if max_score == 0:
        return False
    ratio = score / max_score
    return ratio >= threshold or math.isclose(ratio, threshold, rel_tol=_RELATIVE_TOLERANCE)


def completed_weeks(scores: Mapping[int, tuple[float, float]], threshold: float = PASS_THRESHOLD) -> set[int]:
    """Return the weeks whose score reaches `threshold` of their points.

    `scores` maps a week number (1 to 24) to `(score, max_score)`. A week absent from `scores`, or with a
    max_score of 0, is not completed. A negative, NaN or infinite value, a score above its max_score, a week
    outside 1 to 24 or a threshold outside (0, 1] raises ValueError.
    """
    threshold = _check_threshold(threshold)
    completed = set()
    for week, entry in scores.items():
        number = _check_week(week)
        score, max_score = _check_entry(number, entry)
        if _reaches_threshold(score, max_score, threshold):
            completed.add(number)
    return completed


def longest_streak(weeks: Iterable[int]) -> int:
    """Return the length of the longest run of consecutive week numbers in `weeks` (0 when empty)."""
    longest = 0
    current = 0
    previous = None
    for week in sorted(set(weeks)):
        if previous is not None and week == previous + 1:
            current += 1
        else:
            current = 1
        longest = max(longest, current)
        previous = week
    return longest


def format_weeks(weeks: Iterable[int]) -> str:
    """Format week numbers as sorted ranges, such as "1-3, 5". No weeks give an empty string."""
    runs: list[list[int]] = []
    for week in sorted(set(weeks)):
        if runs and week == runs[-1][-1] + 1:
            runs[-1].append(week)
        else:
            runs.append([week])
    return ", ".join(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}" for run in runs)


def earned_milestones(weeks: Iterable[int]) -> list[Milestone]:
    """Return the milestones that the completed week numbers `weeks` earn, in the order of `MILESTONES`."""
    completed = frozenset(weeks)
    return [milestone for milestone in MILESTONES if milestone.is_earned(completed)]


def milestones_for(scores: Mapping[int, tuple[float, float]], threshold: float = PASS_THRESHOLD) -> list[str]:
    """Return the names of the milestones that `scores` earn, in the order of `MILESTONES`.

    `scores` and `threshold` are as in `completed_weeks`, which raises ValueError on invalid input.
    """
    return [milestone.name for milestone in earned_milestones(completed_weeks(scores, threshold))]


def _check_table(scores: pd.DataFrame) -> None:
    missing = [column for column in TABLE_COLUMNS if column not in scores.columns]
    if missing:
        raise ValueError(
            f"score table is missing column(s) {', '.join(missing)}: expected columns {', '.join(TABLE_COLUMNS)}"
        )

    no_id = scores["student_id"].isna()
    if no_id.any():
        rows = ", ".join(repr(label) for label in scores.index[no_id])
        raise ValueError(f"score table has rows without a student_id (index {rows})")

    duplicated = scores.duplicated(["student_id", "week"], keep=False)
    if duplicated.any():
        pairs = scores.loc[duplicated, ["student_id", "week"]].drop_duplicates()
        listed = "; ".join(
            f"student {student_id!r} week {week!r}" for student_id, week in pairs.itertuples(index=False)
        )
        raise ValueError(f"score table has more than one row for: {listed}. Keep one row per student and week")


def milestone_table(scores: pd.DataFrame, threshold: float = PASS_THRESHOLD) -> pd.DataFrame:
    """Summarise completed weeks and earned milestones, one row per student.

    `scores` has the columns student_id, week (1 to 24), score and max_score, at most one row per student
    and week, as in a grades CSV. Other columns are ignored. A week without a row is not completed.

    The result has one row per student, in order of first appearance, with the columns student_id,
    weeks_completed (such as "1-3, 5"), n_completed, longest_streak, one boolean column per milestone named
    by `Milestone.key`, and milestones (the earned names, comma-separated). Invalid values, a missing
    column, a missing student_id or a duplicate student and week raise ValueError.
    """
    threshold = _check_threshold(threshold)
    _check_table(scores)

    rows = []
    for student_id, group in scores.groupby("student_id", sort=False):
        week_scores = dict(zip(group["week"], zip(group["score"], group["max_score"])))
        try:
            weeks = completed_weeks(week_scores, threshold)
        except ValueError as error:
            raise ValueError(f"student {student_id!r}, {error}") from error

        earned = earned_milestones(weeks)
        row = {
            "student_id": student_id,
            "weeks_completed": format_weeks(weeks),
            "n_completed": len(weeks),
            "longest_streak": longest_streak(weeks),
        }
        for milestone in MILESTONES:
            row[milestone.key] = milestone in earned
        row["milestones"] = ", ".join(milestone.name for milestone in earned)
        rows.append(row)

    columns = [
        "student_id",
        "weeks_completed",
        "n_completed",
        "longest_streak",
        *(milestone.key for milestone in MILESTONES),
        "milestones",
    ]
    table = pd.DataFrame(rows, columns=columns)

    # Set the types explicitly so that an empty score table gives the same column types as a full one.
    types = {
        "student_id": scores["student_id"].dtype,
        "weeks_completed": "str",
        "n_completed": "int64",
        "longest_streak": "int64",
        "milestones": "str",
    }
    types.update({milestone.key: "bool" for milestone in MILESTONES})
    return table.astype(types)
