"""A round trip through real nbgrader (the `course` extra): every notebook with exercises is accepted
by generate_assignment, its release holds no solution line and the stubs of `minireptile exercises`,
and autograde gives the instructor notebook full marks and the untouched release zero."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from minireptile import course

pytest.importorskip("nbgrader")
pytestmark = pytest.mark.slow               # real nbgrader runs each notebook twice: a minute each
REPO = Path(__file__).resolve().parents[1]
WITH_EXERCISES = sorted({nb for nb, *_ in course.EXERCISES})


def nbgrader(folder, *args):
    # nbgrader runs alembic as a program: the interpreter's own scripts folder first (a venv not activated)
    path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    result = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=folder, capture_output=True,
                            text=True, timeout=600, env=os.environ | {"MINIREPTILE_SMOKE": "1", "PATH": path})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def solution_lines(notebook):
    lines = []
    for cell in notebook["cells"]:
        source = course._lines(cell["source"])
        for first, last in course.solution_regions(source):
            lines += [line.strip() for line in source[first + 1:last] if line.strip()]
    return lines


@pytest.mark.parametrize("number", WITH_EXERCISES)
def test_generate_assignment_and_autograde(number, tmp_path):
    source = next((REPO / "notebooks").glob(f"{number}_*.ipynb"))
    name = source.stem
    shutil.copy(REPO / "course" / "nbgrader_config.py", tmp_path)
    (tmp_path / "source" / name).mkdir(parents=True)
    shutil.copy(source, tmp_path / "source" / name / source.name)
    nbgrader(tmp_path, "generate_assignment", name, "--force")
    released = json.loads((tmp_path / "release" / name / source.name).read_text())
    instructor = json.loads(source.read_text())
    text = "\n".join("".join(course._lines(c["source"])) for c in released["cells"])
    assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text
    assert not [line for line in solution_lines(instructor) if line in text.splitlines()
                and not line.startswith(('"""', "#"))], "a solution line survived the release"
    ours, _ = course.student_notebook(instructor)                  # `minireptile exercises` agrees
    code = lambda nb: ["".join(course._lines(c["source"])) for c in nb["cells"] if c["cell_type"] == "code"]
    assert code(ours) == code(released)

    for student, notebook in (("instructor", source), ("untouched", tmp_path / "release" / name / source.name)):
        (tmp_path / "submitted" / student / name).mkdir(parents=True)
        shutil.copy(notebook, tmp_path / "submitted" / student / name / source.name)
    nbgrader(tmp_path, "autograde", name, "--create", "--force")
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{tmp_path / 'gradebook.db'}") as gradebook:
        points = sum(p for nb, _, p, _ in course.EXERCISES if nb == number)
        full = gradebook.find_submission(name, "instructor")
        empty = gradebook.find_submission(name, "untouched")
        assert (full.score, full.max_score) == (points, points)
        assert (empty.score, empty.max_score) == (0, points)
