"""Locations of the course folders and the naming of weeks."""

from __future__ import annotations

import re
from pathlib import Path

# The repository this package was installed from (editable install) or unpacked in.
REPO_ROOT = Path(__file__).resolve().parents[1]

WEEK_PATTERN = re.compile(r"^week(\d{2})$")


def week_name(week: str | int) -> str:
    """Normalise `1`, `"1"`, `"01"` or `"week01"` to `"week01"`; raise ValueError on anything else."""
    text = str(week).strip().lower()
    if WEEK_PATTERN.match(text):
        number = int(text[4:])
    elif text.isdigit():
        number = int(text)
    else:
        raise ValueError(f"invalid week {week!r}: expected a number such as 1 or a name such as week01")
    if not 1 <= number <= 24:
        raise ValueError(f"invalid week {week!r}: the course has weeks 1 to 24")
    return f"week{number:02d}"


def week_number(name: str) -> int:
    return int(week_name(name)[4:])
