"""nbgrader's configuration for a course built on minireptile's notebooks (see docs/course.md).

Copy this file into the course folder (beside `source/`); every nbgrader command run in that folder
reads it: generate_assignment, release_assignment, collect, autograde, generate_feedback, export.
"""
import os

c = get_config()  # noqa: F821 (nbgrader provides it)

c.CourseDirectory.course_id = "minireptile"

# The exchange (release_assignment, fetch_assignment, submit, collect) lives in the course folder, owned
# by the instructor, instead of nbgrader's system-wide default /srv/nbgrader/exchange (root's to make).
# On a shared server where students fetch and submit themselves, point this at a folder they can all
# reach (chmod 777, as nbgrader's documentation says for its default).
c.Exchange.root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "exchange")

# The stub that replaces each solution region; `python -m minireptile exercises` writes the same one,
# so the student notebooks agree with or without nbgrader. The function's docstring, kept above the
# stub, says what to compute and the shapes.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}

# Autograding runs each submitted notebook top to bottom, its training cells too. Those carry no points:
# at the grading budget they only feed the cells after them, so a student's six notebooks grade in well
# under a minute (docs/course.md), while every check still runs in full. The kernels nbgrader starts
# inherit this variable; set MINIREPTILE_GRADING=0 before a command to run the class budgets instead.
os.environ.setdefault("MINIREPTILE_GRADING", "1")
c.Execute.timeout = 600                      # seconds per cell: the grading budget's cells take seconds
