"""Tests of gradebook.milestones on hand-made score tables."""

from __future__ import annotations

import math
import re

import pandas as pd
import pytest

from gradebook.milestones import (
    MILESTONES,
    PASS_THRESHOLD,
    completed_weeks,
    earned_milestones,
    format_weeks,
    longest_streak,
    milestone_table,
    milestones_for,
)

ALL_NAMES = ["Week Warrior", "Foundation Master", "Advanced Practitioner", "Agent Architect", "AI Master"]
MILESTONE_KEYS = ["week_warrior", "foundation_master", "advanced_practitioner", "agent_architect", "ai_master"]


def passed(*weeks: int) -> dict[int, tuple[float, float]]:
    """Scores with full marks in `weeks` and nothing else."""
    return {week: (10.0, 10.0) for week in weeks}


def table(rows: list[tuple[object, int, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["student_id", "week", "score", "max_score"])


def student_row(result: pd.DataFrame, student_id: object) -> pd.Series:
    matches = result[result["student_id"] == student_id]
    assert len(matches) == 1, f"expected one row for {student_id!r}, got {len(matches)}"
    return matches.iloc[0]


# completed_weeks: the pass threshold


def test_completed_weeks_exactly_70_percent():
    assert completed_weeks({1: (7, 10)}) == {1}


def test_completed_weeks_float_rounding_at_70_percent():
    # 21 cells of 0.1 points out of 30: the float sums give a ratio of 0.6999999999999998.
    score = sum([0.1] * 21)
    max_score = sum([0.1] * 30)
    assert score / max_score < 0.7
    assert completed_weeks({1: (score, max_score)}) == {1}
    assert completed_weeks({2: (0.7 * 3, 3)}) == {2}


def test_completed_weeks_just_below_threshold():
    assert completed_weeks({1: (6.99, 10)}) == set()


def test_completed_weeks_full_and_zero_score():
    assert completed_weeks({1: (10, 10)}) == {1}
    assert completed_weeks({1: (0, 10)}) == set()


def test_completed_weeks_zero_max_score_not_completed():
    assert completed_weeks({1: (0, 0)}) == set()


def test_completed_weeks_missing_weeks_not_completed():
    assert completed_weeks({2: (9, 10), 5: (8, 10)}) == {2, 5}


def test_completed_weeks_empty_scores():
    assert completed_weeks({}) == set()


def test_completed_weeks_threshold_argument():
    scores = {1: (5, 10), 2: (8, 10), 3: (9, 10)}
    assert completed_weeks(scores, threshold=0.5) == {1, 2, 3}
    assert completed_weeks(scores, threshold=0.85) == {3}
    assert completed_weeks(scores, threshold=1.0) == set()
    assert completed_weeks({1: (10, 10)}, threshold=1.0) == {1}


def test_completed_weeks_default_threshold():
    assert PASS_THRESHOLD == 0.70


def test_completed_weeks_accepts_integral_float_week():
    assert completed_weeks({3.0: (10, 10)}) == {3}


@pytest.mark.parametrize("threshold", [0, -0.1, 1.01, 70, math.nan, True, "0.7"])
def test_completed_weeks_invalid_threshold(threshold):
    with pytest.raises(ValueError, match="invalid threshold"):
        completed_weeks({1: (10, 10)}, threshold=threshold)


@pytest.mark.parametrize(
    ("scores", "message"),
    [
        ({1: (-1, 10)}, "invalid score -1.0: must not be negative"),
        ({1: (0, -10)}, "invalid max_score -10.0: must not be negative"),
        ({1: (11, 10)}, "score 11.0 is greater than max_score 10.0"),
        ({1: (5, 0)}, "score 5.0 is greater than max_score 0.0"),
        ({1: (math.nan, 10)}, "invalid score nan"),
        ({1: (5, math.nan)}, "invalid max_score nan"),
        ({1: (math.inf, math.inf)}, "invalid score inf"),
        ({1: ("7", 10)}, "invalid score '7': expected a number"),
        ({1: (None, 10)}, "invalid score None"),
        ({1: (7,)}, r"invalid entry \(7,\)"),
    ],
)
def test_completed_weeks_invalid_values(scores, message):
    with pytest.raises(ValueError, match=message):
        completed_weeks(scores)


@pytest.mark.parametrize("week", [0, 25, -1, 2.5, math.nan, "3", True, None])
def test_completed_weeks_invalid_week(week):
    with pytest.raises(ValueError, match=f"invalid week {re.escape(repr(week))}"):
        completed_weeks({week: (10, 10)})


def test_completed_weeks_error_names_week():
    with pytest.raises(ValueError, match="week 4: "):
        completed_weeks({3: (10, 10), 4: (-2, 10)})


# longest_streak and format_weeks


def test_longest_streak_empty():
    assert longest_streak(set()) == 0


def test_longest_streak_single_week():
    assert longest_streak({12}) == 1


def test_longest_streak_picks_longest_run():
    assert longest_streak({1, 2, 3, 5, 6, 7, 8, 20}) == 4


def test_longest_streak_unsorted_input():
    assert longest_streak([9, 7, 8, 1, 7]) == 3


def test_format_weeks_runs_and_gaps():
    assert format_weeks({5, 1, 2, 3}) == "1-3, 5"
    assert format_weeks({1, 3, 5}) == "1, 3, 5"
    assert format_weeks(range(1, 25)) == "1-24"


def test_format_weeks_empty():
    assert format_weeks(set()) == ""


# milestones_for: the rules


def test_milestone_order_fixed():
    assert [milestone.name for milestone in MILESTONES] == ALL_NAMES
    assert [milestone.key for milestone in MILESTONES] == MILESTONE_KEYS


def test_milestones_all_24_weeks():
    assert milestones_for(passed(*range(1, 25))) == ALL_NAMES


def test_milestones_none_without_scores():
    assert milestones_for({}) == []


def test_week_warrior_streak_of_7():
    assert milestones_for(passed(*range(9, 16))) == ["Week Warrior"]


def test_week_warrior_streak_of_6_not_earned():
    assert milestones_for(passed(*range(9, 15))) == []


def test_week_warrior_streak_ending_at_week_24():
    assert milestones_for(passed(*range(18, 25))) == ["Week Warrior"]


def test_week_warrior_streak_broken_by_failed_week():
    scores = passed(*range(1, 8))
    scores[4] = (6.99, 10)
    assert "Week Warrior" not in milestones_for(scores)
    assert longest_streak(completed_weeks(scores)) == 3


def test_week_warrior_streak_across_phases():
    # Weeks 4-10 span Foundation and Advanced, and complete neither phase.
    assert milestones_for(passed(*range(4, 11))) == ["Week Warrior"]


def test_foundation_master_weeks_1_to_6():
    assert milestones_for(passed(*range(1, 7))) == ["Foundation Master"]


def test_foundation_master_week_6_missing():
    assert milestones_for(passed(1, 2, 3, 4, 5)) == []


def test_foundation_master_week_6_failed():
    scores = passed(*range(1, 7))
    scores[6] = (6.99, 10)
    assert milestones_for(scores) == []


def test_advanced_practitioner_weeks_7_to_12():
    assert milestones_for(passed(*range(7, 13))) == ["Advanced Practitioner"]


def test_agent_architect_weeks_13_to_18():
    assert milestones_for(passed(*range(13, 19))) == ["Agent Architect"]


def test_ai_master_needs_every_week():
    weeks = [week for week in range(1, 25) if week != 20]
    earned = milestones_for(passed(*weeks))
    assert "AI Master" not in earned
    assert earned == ["Week Warrior", "Foundation Master", "Advanced Practitioner", "Agent Architect"]


def test_milestones_threshold_argument():
    scores = {week: (6, 10) for week in range(1, 7)}
    assert milestones_for(scores) == []
    assert milestones_for(scores, threshold=0.6) == ["Foundation Master"]


def test_earned_milestones_from_weeks():
    earned = earned_milestones(range(13, 19))
    assert [milestone.name for milestone in earned] == ["Agent Architect"]


# milestone_table


def test_table_columns():
    result = milestone_table(table([("ana", 1, 10, 10)]))
    expected = ["student_id", "weeks_completed", "n_completed", "longest_streak", *MILESTONE_KEYS, "milestones"]
    assert list(result.columns) == expected


def test_table_one_row_per_student_in_input_order():
    rows = [("bo", 1, 10, 10), ("ana", 1, 10, 10), ("bo", 2, 10, 10)]
    result = milestone_table(table(rows))
    assert list(result["student_id"]) == ["bo", "ana"]


def test_table_gaps_and_counts():
    rows = [("ana", week, 8, 10) for week in (1, 2, 3, 5, 9, 10)]
    row = student_row(milestone_table(table(rows)), "ana")
    assert row["weeks_completed"] == "1-3, 5, 9-10"
    assert row["n_completed"] == 6
    assert row["longest_streak"] == 3
    assert row["milestones"] == ""


def test_table_boundary_scores():
    rows = [("ana", 1, 7, 10), ("ana", 2, 6.99, 10), ("ana", 3, 0, 0)]
    row = student_row(milestone_table(table(rows)), "ana")
    assert row["weeks_completed"] == "1"
    assert row["n_completed"] == 1


def test_table_student_without_completed_week():
    rows = [("ana", 1, 10, 10), ("bo", 1, 2, 10), ("bo", 2, 0, 10)]
    row = student_row(milestone_table(table(rows)), "bo")
    assert row["weeks_completed"] == ""
    assert row["n_completed"] == 0
    assert row["longest_streak"] == 0
    assert not row[MILESTONE_KEYS].any()
    assert row["milestones"] == ""


def test_table_all_24_weeks():
    rows = [("ana", week, 9, 10) for week in range(1, 25)]
    row = student_row(milestone_table(table(rows)), "ana")
    assert row["weeks_completed"] == "1-24"
    assert row["n_completed"] == 24
    assert row["longest_streak"] == 24
    assert row["ai_master"]
    assert row["week_warrior"]
    assert row["milestones"] == ", ".join(ALL_NAMES)


def test_table_streak_ending_at_week_24():
    rows = [("ana", week, 10, 10) for week in range(18, 25)]
    row = student_row(milestone_table(table(rows)), "ana")
    assert row["week_warrior"]
    assert row["longest_streak"] == 7
    assert row["milestones"] == "Week Warrior"


def test_table_streak_of_6():
    rows = [("ana", week, 10, 10) for week in range(2, 8)]
    row = student_row(milestone_table(table(rows)), "ana")
    assert not row["week_warrior"]
    assert row["longest_streak"] == 6


def test_table_streak_broken_by_failed_week():
    rows = [("ana", week, 10, 10) for week in range(1, 9)]
    rows[3] = ("ana", 4, 5, 10)
    row = student_row(milestone_table(table(rows)), "ana")
    assert row["weeks_completed"] == "1-3, 5-8"
    assert row["longest_streak"] == 4
    assert not row["week_warrior"]


def test_table_foundation_master_week_6_missing():
    rows = [("ana", week, 10, 10) for week in range(1, 6)]
    row = student_row(milestone_table(table(rows)), "ana")
    assert not row["foundation_master"]
    assert row["weeks_completed"] == "1-5"


def test_table_student_without_rows_for_phase():
    # bo has rows for weeks 1-12 only, so the later phases are not earned.
    rows = [("bo", week, 10, 10) for week in range(1, 13)]
    row = student_row(milestone_table(table(rows)), "bo")
    assert row["foundation_master"]
    assert row["advanced_practitioner"]
    assert not row["agent_architect"]
    assert not row["ai_master"]
    assert row["milestones"] == "Week Warrior, Foundation Master, Advanced Practitioner"


def test_table_phase_milestones_per_student():
    rows = [("ana", week, 10, 10) for week in range(13, 19)]
    rows += [("bo", week, 10, 10) for week in range(7, 13)]
    result = milestone_table(table(rows))
    ana = student_row(result, "ana")
    bo = student_row(result, "bo")
    assert ana["milestones"] == "Agent Architect"
    assert bo["milestones"] == "Advanced Practitioner"


def test_table_threshold_argument():
    rows = [("ana", week, 6, 10) for week in range(1, 7)]
    default = student_row(milestone_table(table(rows)), "ana")
    lowered = student_row(milestone_table(table(rows), threshold=0.6), "ana")
    assert default["n_completed"] == 0
    assert lowered["n_completed"] == 6
    assert lowered["foundation_master"]


def test_table_column_types():
    rows = [("ana", 1, 10, 10), ("bo", 2, 1, 10)]
    result = milestone_table(table(rows))
    assert result["n_completed"].dtype == "int64"
    assert result["longest_streak"].dtype == "int64"
    for key in MILESTONE_KEYS:
        assert result[key].dtype == bool, key


def test_table_integer_student_ids_kept():
    result = milestone_table(table([(101, 1, 10, 10), (102, 1, 0, 10)]))
    assert list(result["student_id"]) == [101, 102]
    assert result["student_id"].dtype == "int64"


def test_table_empty_input():
    result = milestone_table(table([]))
    assert len(result) == 0
    assert result["n_completed"].dtype == "int64"
    assert result["ai_master"].dtype == bool


def test_table_extra_columns_ignored():
    scores = table([("ana", 1, 10, 10)]).assign(assignment="week01")
    row = student_row(milestone_table(scores), "ana")
    assert row["weeks_completed"] == "1"


def test_table_input_not_modified():
    scores = table([("ana", 1, 10, 10), ("ana", 2, 3, 10)])
    before = scores.copy()
    milestone_table(scores)
    pd.testing.assert_frame_equal(scores, before)


def test_table_duplicate_rows_named():
    rows = [("ana", 1, 10, 10), ("ana", 1, 5, 10), ("bo", 3, 10, 10), ("bo", 3, 10, 10), ("bo", 4, 10, 10)]
    with pytest.raises(ValueError, match="more than one row") as info:
        milestone_table(table(rows))
    message = str(info.value)
    assert "student 'ana' week 1" in message
    assert "student 'bo' week 3" in message
    assert "week 4" not in message


@pytest.mark.parametrize("week", [0, 25])
def test_table_week_out_of_range(week):
    with pytest.raises(ValueError, match=f"student 'ana', invalid week {week}"):
        milestone_table(table([("ana", 1, 10, 10), ("ana", week, 10, 10)]))


def test_table_missing_week_value():
    scores = table([("ana", 1, 10, 10), ("ana", None, 10, 10)])
    with pytest.raises(ValueError, match="invalid week nan"):
        milestone_table(scores)


def test_table_float_week_column_accepted():
    # One empty cell in a CSV turns the week column into floats; the other rows still count.
    scores = table([("ana", 1, 10, 10), ("ana", 2, 10, 10)]).astype({"week": "float64"})
    row = student_row(milestone_table(scores), "ana")
    assert row["weeks_completed"] == "1-2"


@pytest.mark.parametrize(
    ("score", "max_score", "message"),
    [
        (-1, 10, "student 'ana', week 2: invalid score -1.0"),
        (12, 10, "student 'ana', week 2: score 12.0 is greater than max_score 10.0"),
        (math.nan, 10, "student 'ana', week 2: invalid score nan"),
        (5, math.nan, "student 'ana', week 2: invalid max_score nan"),
    ],
)
def test_table_invalid_values(score, max_score, message):
    with pytest.raises(ValueError, match=message):
        milestone_table(table([("ana", 1, 10, 10), ("ana", 2, score, max_score)]))


def test_table_missing_column():
    scores = table([("ana", 1, 10, 10)]).drop(columns="max_score")
    with pytest.raises(ValueError, match="missing column\\(s\\) max_score"):
        milestone_table(scores)


def test_table_missing_student_id():
    scores = table([("ana", 1, 10, 10), (None, 2, 10, 10)])
    with pytest.raises(ValueError, match="without a student_id"):
        milestone_table(scores)


def test_table_invalid_threshold():
    with pytest.raises(ValueError, match="invalid threshold 1.5"):
        milestone_table(table([("ana", 1, 10, 10)]), threshold=1.5)
