"""A course term through real nbgrader, as docs/course.md tells an instructor to run it: a fresh virtual
environment with only the documented `pip install -e ".[course]"`, a course folder outside the
repository, one assignment per notebook, nbgrader's exchange in the course folder for one student and
copies for two more (every exercise solved; the untouched release; a realistic mistake in each
notebook), autograde, generate_feedback and export. Nothing may be left beside the notebooks."""
import getpass
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from minireptile import course

pytestmark = pytest.mark.slow            # an install, then real nbgrader over six notebooks: minutes
REPO = Path(__file__).resolve().parents[1]
ASSIGNMENTS = {number: next((REPO / "notebooks").glob(f"{number}_*.ipynb")).stem
               for number in sorted({nb for nb, *_ in course.EXERCISES})}
POINTS = {number: sum(p for nb, _, p, _ in course.EXERCISES if nb == number) for number in ASSIGNMENTS}
#: notebook: (exercise, a line of its solution, the same line as a student gets it wrong)
MISTAKES = {
    "00": ("linear_backward", "return dy @ W.T, x.T @ dy, dy.sum(axis=0)", "return dy @ W.T, dy.T @ x, dy.sum(axis=0)"),
    "01": ("reptile_step", "return theta + eps * (phi.mean(axis=0) - theta)",
           "return theta - eps * (phi.mean(axis=0) - theta)"),
    "02": ("avg_grad_inner", "return 0.5 * (net.hvp(theta, *batch_i, g_j, loss)", "return (net.hvp(theta, *batch_i, g_j, loss)"),
    "03": ("combination_weights", 'return np.full(k, 1.0 if name == "reptile" else 1.0 / k)', "return np.full(k, 1.0)"),
    "04": ("adapted_mse", "curve.append(((prediction - y_query) ** 2).mean(axis=(1, 2)))",
           "curve.append(((prediction - y_query) ** 2).mean())"),
    "05": ("relative_variance", "trace = ((updates - m) ** 2).sum() / (n - 1)", "trace = ((updates - m) ** 2).sum() / n"),
}
STUDENTS = (getpass.getuser(), "untouched", "mistaken")        # the first submits through the exchange


def run(args, cwd, env, timeout=600):
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{args}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout + result.stderr


def solved(release, instructor, mistake=None):
    """The released notebook with each stub replaced by the instructor's solution (markers dropped), as a
    student would write it; ``mistake`` (exercise, line, wrong line) gets one of them wrong."""
    solutions = {c["metadata"]["nbgrader"]["grade_id"]: course._lines(c["source"]) for c in instructor["cells"]
                 if c.get("metadata", {}).get("nbgrader", {}).get("solution")}
    cells = []
    for cell in release["cells"]:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id in solutions:
            source = "".join(line for line in solutions[grade_id] if line.strip() not in (course.BEGIN, course.END))
            if mistake and mistake[0] == grade_id:
                assert mistake[1] in source, mistake
                source = source.replace(mistake[1], mistake[2])
            cell = cell | {"source": source}
        cells.append(cell)
    return release | {"cells": cells}


@pytest.fixture(scope="module")
def term(tmp_path_factory):
    """The whole term, once: (course folder, {step: output}, {student: autograde seconds})."""
    root = tmp_path_factory.mktemp("term")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MINIREPTILE_", "PYTHON", "VIRTUAL_ENV"))
           and not k.endswith("_NUM_THREADS")} | {"HOME": str(root / "home"), "PATH": f"{venv / 'bin'}{os.pathsep}"
                                                  f"{os.environ.get('PATH', '')}", "VIRTUAL_ENV": str(venv)}
    if os.environ.get("MINIREPTILE_OMNIGLOT"):
        env["MINIREPTILE_OMNIGLOT"] = os.environ["MINIREPTILE_OMNIGLOT"]
    (root / "home").mkdir()
    run([venv / "bin" / "python", "-m", "pip", "install", "-q", "-e", f"{REPO}[course]"], root, env, timeout=1200)

    out, seconds = {}, {}
    run(["nbgrader", "quickstart", "mycourse"], root, env)
    folder = root / "mycourse"
    shutil.rmtree(folder / "source" / "ps1")
    shutil.copy(REPO / "course" / "nbgrader_config.py", folder)
    exchange = ["--course", "minireptile", f"--Exchange.root={folder / 'exchange'}"]
    for number, name in ASSIGNMENTS.items():
        (folder / "source" / name).mkdir()
        shutil.copy(REPO / "notebooks" / f"{name}.ipynb", folder / "source" / name)
        out["generate", name] = run(["nbgrader", "generate_assignment", name], folder, env)
        run(["nbgrader", "release_assignment", name], folder, env)
        desk = root / "students" / STUDENTS[0]
        desk.mkdir(parents=True, exist_ok=True)
        run(["nbgrader", "fetch_assignment", name, *exchange], desk, env)
        fetched = desk / name / f"{name}.ipynb"
        release = json.loads(fetched.read_text())
        instructor = json.loads((REPO / "notebooks" / f"{name}.ipynb").read_text())
        fetched.write_text(json.dumps(solved(release, instructor)))
        run(["nbgrader", "submit", name, *exchange], desk, env)
        run(["nbgrader", "collect", name], folder, env)
        for student, notebook in (("untouched", release), ("mistaken", solved(release, instructor, MISTAKES[number]))):
            (folder / "submitted" / student / name).mkdir(parents=True)
            (folder / "submitted" / student / name / f"{name}.ipynb").write_text(json.dumps(notebook))
    for name in ASSIGNMENTS.values():
        start = time.perf_counter()
        out["autograde", name] = run(["nbgrader", "autograde", name, "--create"], folder, env, timeout=1200)
        seconds[name] = time.perf_counter() - start
        run(["nbgrader", "generate_feedback", name], folder, env)
    run(["nbgrader", "export"], folder, env)
    return folder, out, seconds


def grades(folder):
    import csv
    with open(folder / "grades.csv") as f:
        return {(row["student_id"], row["assignment"]): (float(row["score"]), float(row["max_score"]))
                for row in csv.DictReader(f)}


def failed_cells(folder, student, name):
    """{grade id: the cell's outputs} of the check cells that ended with an error."""
    notebook = json.loads((folder / "autograded" / student / name / f"{name}.ipynb").read_text())
    return {c["metadata"]["nbgrader"]["grade_id"]: c["outputs"] for c in notebook["cells"]
            if c.get("metadata", {}).get("nbgrader", {}).get("grade") and
            any(o["output_type"] == "error" for o in c["outputs"])}


def test_the_solutions_get_full_marks_the_release_none_and_a_mistake_loses_its_points(term):
    folder, _, _ = term
    got = grades(folder)
    for number, name in ASSIGNMENTS.items():
        exercise = MISTAKES[number][0]
        lost = next(p for nb, n, p, _ in course.EXERCISES if n == exercise)
        assert got[STUDENTS[0], name] == (POINTS[number], POINTS[number]), name
        assert got["untouched", name] == (0, POINTS[number]), name
        assert got["mistaken", name] == (POINTS[number] - lost, POINTS[number]), name
        assert list(failed_cells(folder, "mistaken", name)) == [f"check_{exercise}"], name


def test_a_failed_cell_starts_with_the_checks_own_words(term):
    folder, _, _ = term
    for number, name in ASSIGNMENTS.items():
        exercise = MISTAKES[number][0]
        outputs = failed_cells(folder, "mistaken", name)[f"check_{exercise}"]
        first = outputs[0]
        assert first["output_type"] == "stream", outputs
        line = "".join(first["text"]).splitlines()[0]
        assert line.startswith(f"{exercise} is wrong: ") and len(line) <= 88, line
        for grade_id, stub in failed_cells(folder, "untouched", name).items():
            text = "".join(stub[0].get("text", ""))
            assert text.startswith(f"{grade_id[len('check_'):]} is not done yet"), (name, stub)
        page = (folder / "feedback" / "mistaken" / name / f"{name}.html").read_text()
        assert f"{exercise} is wrong: " in page and f"The check of {exercise}" in page


def test_the_term_raises_no_false_alarm_and_leaves_nothing_behind(term):
    folder, out, seconds = term
    for (step, name), text in out.items():
        assert "has changed!" not in text, (step, name, text[-2000:])
    assert not list(folder.rglob(".hypothesis")), list(folder.rglob(".hypothesis"))
    assert (folder / "exchange" / "minireptile" / "outbound").is_dir()         # the instructor's own exchange
    print("autograde seconds for three students:", {n: round(s, 1) for n, s in seconds.items()})
