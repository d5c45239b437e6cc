"""Milestone rules, gradebook readers and reports of the course."""

from gradebook.milestones import (
    MILESTONES,
    PASS_THRESHOLD,
    Milestone,
    completed_weeks,
    earned_milestones,
    format_weeks,
    longest_streak,
    milestone_table,
    milestones_for,
)

__all__ = [
    "MILESTONES",
    "PASS_THRESHOLD",
    "Milestone",
    "completed_weeks",
    "earned_milestones",
    "format_weeks",
    "longest_streak",
    "milestone_table",
    "milestones_for",
]
