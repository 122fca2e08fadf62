"""exercises --grade: a student's notebook graded with the instructor's checks, without nbgrader."""
import json
from pathlib import Path

import pytest

from minireptile import course, grading

REPO = Path(__file__).resolve().parents[1]
SINE = REPO / "notebooks" / "01_sine_regression.ipynb"


def handout(tmp_path):
    """The student version of notebook 01, as `exercises --out` writes it."""
    notebook, _ = course.student_notebook(json.loads(SINE.read_text()))
    path = tmp_path / SINE.name
    path.write_text(json.dumps(notebook))
    return path, notebook


def test_refusals_name_the_file_and_say_why(refused, tmp_path):
    assert refused(["exercises", "--grade", tmp_path / "absent.ipynb"]) == \
        f"error: --grade {tmp_path / 'absent.ipynb'}: no such file"
    (tmp_path / "notes.txt").write_text("not a notebook")
    assert "expected a Jupyter notebook, got a file whose content is not one" in refused(
        ["exercises", "--grade", tmp_path / "notes.txt"])
    assert refused(["exercises", "--grade", tmp_path]).endswith(": a folder; give the notebook files in it (.ipynb)")
    (tmp_path / "other.ipynb").write_text(json.dumps({"cells": [{"cell_type": "code", "source": "1 + 1"}]}))
    assert "holds no exercise of minireptile's" in refused(["exercises", "--grade", tmp_path / "other.ipynb"])


def test_an_edited_check_is_graded_as_the_instructors(tmp_path):
    path, notebook = handout(tmp_path)
    check = next(c for c in notebook["cells"] if "exercises.check_reptile_step(" in "".join(c["source"]))
    check["source"] = "# exercises.check_reptile_step(reptile_step)   (the student commented it out)"
    graded, exercises = grading.graded_version(notebook, REPO / "notebooks")
    assert [name for name, _ in exercises] == ["inner_sgd_loop", "reptile_step", "fomaml_gradient", "maml_gradient"]
    sources = ["".join(course._lines(c["source"])) for c in graded["cells"]]
    assert any(s.rstrip().endswith("exercises.check_reptile_step(reptile_step)") and not s.startswith("# exercises")
               for s in sources)


@pytest.mark.slow
def test_the_instructor_notebook_gets_full_marks_and_a_wrong_answer_loses_its_points(tmp_path, capsys):
    from minireptile.cli import main
    path, notebook = handout(tmp_path)
    solution = next(c for c in json.loads(SINE.read_text())["cells"]
                    if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "reptile_step")
    for cell in notebook["cells"]:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "reptile_step":
            cell["source"] = "".join(course._lines(solution["source"])).replace("theta + eps", "theta - eps")
    wrong = tmp_path / "wrong.ipynb"
    wrong.write_text(json.dumps(notebook))
    assert main(["exercises", "--grade", str(SINE), str(wrong)]) == 0
    out = capsys.readouterr().out
    rows = lambda block: {line.split()[0]: line.split(None, 2)[1:] for line in block.splitlines()[1:] if line.strip()}
    instructor, student = (rows(block) for block in out.split(f"{wrong}:"))
    assert instructor["total"] == ["7/7"] and all(v[0] == f"{p}/{p}" for k, v in instructor.items() if k != "total"
                                                  for p in [v[0].split("/")[1]])
    assert student["reptile_step"][0] == "0/1" and student["reptile_step"][1].startswith("reptile_step is wrong: for T = ")
    assert student["inner_sgd_loop"] == ["0/2", "inner_sgd_loop is not done yet: it raises NotImplementedError"]
    assert student["total"] == ["0/7"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [SINE.name, "wrong.ipynb"]   # nothing beside them


@pytest.mark.slow
def test_a_notebook_that_ends_its_kernel_is_refused_in_one_line(refused, tmp_path):
    path, notebook = handout(tmp_path)
    notebook["cells"].insert(1, {"cell_type": "code", "id": "ends-kernel", "metadata": {}, "outputs": [],
                                 "execution_count": None, "source": "import os; os._exit(0)"})
    path.write_text(json.dumps(notebook))
    assert refused(["exercises", "--grade", path]).endswith(
        "the notebook's kernel stopped before it finished (a Ctrl-C, or the notebook ended its own process); "
        "nothing was graded")
