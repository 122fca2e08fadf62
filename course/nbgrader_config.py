"""nbgrader's configuration for a course built on minireptile's notebooks (see docs/course.md).

Copy this file into the course folder that `nbgrader quickstart` made (beside `source/`), or start
from it alone: `nbgrader generate_assignment`, `autograde` and `generate_feedback` read it there.
"""
c = get_config()  # noqa: F821 (nbgrader provides it)

c.CourseDirectory.course_id = "minireptile"

# The stub that replaces each solution region; `python -m minireptile exercises` writes the same one,
# so the student notebooks agree with or without nbgrader. The function's docstring, kept above the
# stub, says what to compute and the shapes.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}

# Autograding runs each submitted notebook top to bottom. Its longest cells train models: at the
# notebooks' class budgets a cell can take minutes (docs/course.md lists them). Grade on the smoke
# budgets, which run every check in seconds, by exporting MINIREPTILE_SMOKE=1 before `nbgrader autograde`.
c.Execute.timeout = 1800
