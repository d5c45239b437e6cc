"""nbgrader configuration of the course, for plain `nbgrader` commands run in this folder.

The settings come from course.toml through course_lib.settings, the same code the `course` command uses.
"""

from pathlib import Path

from course_lib.settings import nbgrader_config

c = get_config()  # noqa: F821 (nbgrader provides get_config)
c.merge(nbgrader_config(Path(__file__).resolve().parent))
