"""Hidden checks of the course, one module per week; never released to students."""
