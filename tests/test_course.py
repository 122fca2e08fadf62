"""The course kit: student notebooks leak no solution, stop at their first exercise, and the
command that writes them behaves like every other."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from minireptile import course, exercises

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.fixture(scope="module")
def students(tmp_path_factory):
    out = tmp_path_factory.mktemp("students")
    assert course.write_student_notebooks(NOTEBOOKS, out) == len(course.EXERCISES)
    return out


def cells(path):
    return [(c["cell_type"], "".join(c["source"])) for c in json.loads(Path(path).read_text())["cells"]]


def test_no_line_of_any_solution_region_reaches_the_students(students):
    leaked = []
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        solution = set()
        for kind, source in cells(path):
            lines = source.splitlines()
            for start, end in course.solution_regions(lines):
                solution |= {line.strip() for line in lines[start + 1:end] if line.strip()}
        student = "\n".join(source for _, source in cells(students / path.name))
        student_lines = {line.strip() for line in student.splitlines()}
        leaked += [(path.name, line) for line in sorted(solution & student_lines)]
        assert "BEGIN SOLUTION" not in student and "HIDDEN TESTS" not in student
    assert not leaked


def test_every_exercise_is_in_its_notebook_with_a_check_after_it(students):
    for notebook, name, _, _ in course.EXERCISES:
        path = next(students.glob(f"{notebook}_*.ipynb"))
        sources = [s for _, s in cells(path)]
        at = next(i for i, s in enumerate(sources) if f"def {name}(" in s)
        assert "raise NotImplementedError(" in sources[at]
        assert f"exercises.check_{name}({name})" in sources[at + 1]
        assert hasattr(exercises, f"check_{name}")


def test_student_notebooks_have_no_outputs(students):
    for path in students.glob("*.ipynb"):
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [] and cell["execution_count"] is None


@pytest.mark.parametrize("notebook", sorted({nb for nb, *_ in course.EXERCISES}))
@pytest.mark.slow
def test_each_student_notebook_stops_at_its_first_check_saying_the_exercise_is_not_done(students, notebook):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    path = next(students.glob(f"{notebook}_*.ipynb"))
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, resources={"metadata": {"path": str(NOTEBOOKS)}})
    with pytest.raises(nbclient.exceptions.CellExecutionError) as stopped:
        client.execute()
    first = next(name for nb_, name, *_ in course.EXERCISES if nb_ == notebook)
    assert stopped.value.ename == "ExerciseFailed"
    executed = [c for c in nb.cells if c.cell_type == "code" and c.execution_count is not None]
    assert f"exercises.check_{first}(" in executed[-1].source          # it stopped at the first check
    printed = "".join(o.get("text", "") for o in executed[-1].outputs if o.output_type == "stream")
    assert printed.strip() == f"{first} is not done yet: it raises NotImplementedError"


def test_the_exercises_command_writes_the_kit_and_refuses_bad_folders(tmp_path):
    run = lambda *args: subprocess.run([sys.executable, "-m", "minireptile", "exercises", *map(str, args)],
                                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    result = run("--out", tmp_path / "kit")
    assert result.returncode == 0, result.stderr
    assert f"{len(course.EXERCISES)} exercises" in result.stdout and "EXERCISES.md" in result.stdout
    assert "| 00 | `linear_backward` | 2 |" in (tmp_path / "kit" / "EXERCISES.md").read_text()
    for args, message in ((["--notebooks", tmp_path / "nothing"], "--notebooks "),
                          (["--out", NOTEBOOKS], "holds instructor notebooks"),
                          (["--notebooks", tmp_path / "kit", "--out", NOTEBOOKS], "holds instructor notebooks")):
        refused = run(*args)
        lines = refused.stderr.strip().splitlines()
        assert refused.returncode == 2 and len(lines) == 1 and message in lines[0], refused.stderr


def test_exercises_never_replace_a_students_edited_notebook_unasked(tmp_path, capsys):
    from minireptile.cli import main
    kit = tmp_path / "kit"
    assert main(["exercises", "--out", str(kit)]) == 0
    assert main(["exercises", "--out", str(kit)]) == 0                # the same files: nothing to replace
    student = next(kit.glob("00_*.ipynb"))
    student.write_text(student.read_text().replace("NotImplementedError", "my answer", 1))
    edited = {p.name: p.read_bytes() for p in kit.iterdir()}
    capsys.readouterr()
    assert main(["exercises", "--out", str(kit)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and student.name in err[0] and "--overwrite" in err[0], err
    assert {p.name: p.read_bytes() for p in kit.iterdir()} == edited
    assert main(["exercises", "--out", str(kit), "--overwrite"]) == 0
    assert "my answer" not in student.read_text()


def test_hidden_tests_are_removed_and_a_stub_keeps_the_indentation():
    lines = ['def f(x):\n', '    """Double x: (N,) -> (N,)."""\n', '    ### BEGIN SOLUTION\n',
             '    return 2 * x\n', '    ### END SOLUTION\n', '### BEGIN HIDDEN TESTS\n', 'assert f(1) == 2\n',
             '### END HIDDEN TESTS\n', 'print("done")']
    assert course.student_cell(lines) == ['def f(x):\n', '    """Double x: (N,) -> (N,)."""\n',
                                          '    # YOUR CODE HERE\n', '    raise NotImplementedError()\n',
                                          'print("done")']
    with pytest.raises(ValueError, match="without its"):
        course.solution_regions(["### BEGIN SOLUTION\n", "x = 1\n"])


def test_the_notebooks_carry_nbgrader_metadata_in_step_with_the_exercises():
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        notebook = json.loads(path.read_text())
        assert course.nbgrader_metadata(notebook) == notebook, f"{path.name}: run course.nbgrader_metadata"
        graded = [c["metadata"]["nbgrader"] for c in notebook["cells"] if "nbgrader" in c.get("metadata", {})]
        mine = [(name, p) for nb, name, p, _ in course.EXERCISES if path.name.startswith(nb)]
        assert [(g["grade_id"], g.get("points")) for g in graded if g["grade"]] == [(f"check_{n}", p) for n, p in mine]
        assert [g["grade_id"] for g in graded if g["solution"]] == [n for n, _ in mine]
