"""Grading a student's notebook without nbgrader: ``python -m minireptile exercises --grade NOTEBOOK``.

It does what ``nbgrader autograde`` does for one notebook: every check cell is put back as the
instructor notebook has it (so an edited check grades like the original), the notebook runs top to
bottom in a fresh kernel at the grading budget (``course.GRADING``) in a temporary folder, and each
check cell that ends without an error earns its points. The verdict of a failed check is the first
line its cell printed: the check's own sentence.
"""
import json
import os
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path

from . import course


class GradingError(ValueError):
    """The file cannot be graded (not a notebook, no exercise of minireptile's in it)."""


@dataclass(frozen=True)
class Mark:
    """One exercise's result: its points out of the exercise's, and the check's words."""
    exercise: str
    points: int
    out_of: int
    verdict: str


def read_notebook(path):
    """The notebook at ``path`` as a dict, or GradingError saying why it is not one."""
    path = Path(path)
    if path.is_dir():
        raise GradingError(f"--grade {path}: a folder; give the notebook files in it (.ipynb)")
    if not path.is_file():
        raise GradingError(f"--grade {path}: no such file")
    try:
        notebook = json.loads(path.read_text())
        cells = notebook["cells"]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
        cells = None
    if not isinstance(cells, list):
        raise GradingError(f"--grade {path}: expected a Jupyter notebook, got a file whose content is not one")
    return notebook


def _check_cells(notebook):
    """{exercise: index of its check cell} by nbgrader's grade id, or by the call in the source."""
    found = {}
    names = {name for _, name, _, _ in course.EXERCISES}
    for i, cell in enumerate(notebook["cells"]):
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id", "")
        name = grade_id[len("check_"):] if grade_id.startswith("check_") else None
        source = "".join(course._lines(cell.get("source", "")))
        if name is None:
            name = next((n for n in names if f"exercises.check_{n}(" in source), None)
        if cell.get("cell_type") == "code" and name in names:
            found[name] = i
    return found


def graded_version(student, instructor_folder):
    """The student's notebook with every check cell as the instructor's (hidden tests included), and
    the exercises it holds; GradingError where it holds none of minireptile's exercises."""
    theirs = _check_cells(student)
    exercises = [(nb, name, points) for nb, name, points, _ in course.EXERCISES if name in theirs]
    if not exercises:
        raise GradingError("--grade: this notebook holds no exercise of minireptile's (no check cell)")
    number = exercises[0][0]
    source = next(Path(instructor_folder).glob(f"{number}_*.ipynb"), None)
    if source is None:
        raise GradingError(f"--grade: the instructor notebook {number}_*.ipynb is not in {instructor_folder}")
    instructor = json.loads(source.read_text())
    ours = _check_cells(instructor)
    cells = [dict(cell) for cell in student["cells"]]
    for name, i in theirs.items():
        if name in ours:
            cells[i]["source"] = instructor["cells"][ours[name]]["source"]
    return student | {"cells": cells}, [(name, points) for nb, name, points in exercises if nb == number]


def grade(path, instructor_folder=None, timeout=600):
    """Run the notebook at ``path`` with the instructor's checks; returns a Mark for each exercise."""
    try:
        import nbformat
        from nbclient import NotebookClient
        from nbclient.exceptions import DeadKernelError
    except ImportError:
        raise GradingError('--grade runs the notebook in a Jupyter kernel: pip install -e ".[notebooks]" '
                           '(or ".[course]")') from None
    student = read_notebook(path)
    notebook, exercises = graded_version(student, instructor_folder or course.notebooks_folder())
    checks = _check_cells(notebook)
    nb = nbformat.reads(json.dumps(notebook), as_version=4)       # sources joined into strings
    with tempfile.TemporaryDirectory(prefix="minireptile-grading-") as folder:
        client = NotebookClient(nb, timeout=timeout, allow_errors=True, kernel_name="python3",
                                resources={"metadata": {"path": folder}})
        try:
            client.execute(env=os.environ | {course.GRADING: "1"})  # the kernel runs the grading budget
        except (DeadKernelError, AssertionError) as err:
            # nbclient routes Ctrl-C through asyncio, which ends the kernel: it then reports a dead kernel, or
            # fails its own cleanup (an assertion); a notebook that ends its own process looks the same
            if isinstance(err, AssertionError) and not _from_nbclient(err):
                raise
            raise GradingError(f"--grade {path}: the notebook's kernel stopped before it finished (a Ctrl-C, or "
                               "the notebook ended its own process); nothing was graded") from None
    marks = []
    for name, points in exercises:                      # every one of them has its check cell
        outputs = nb.cells[checks[name]].get("outputs", [])
        error = next((o for o in outputs if o.get("output_type") == "error"), None)
        printed = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream").strip()
        if error is None and outputs:
            marks.append(Mark(name, points, points, printed.splitlines()[-1] if printed else "passed"))
        elif error is None:
            marks.append(Mark(name, 0, points, "the check did not run"))
        else:
            marks.append(Mark(name, 0, points, _verdict(printed) or f"{error['ename']}: {error['evalue']}"))
    return marks


def _from_nbclient(error):
    """Whether the error was raised inside nbclient itself (not in our code around it)."""
    frames = traceback.extract_tb(error.__traceback__)
    return bool(frames) and "nbclient" in frames[-1].filename


def _verdict(printed):
    """The check's sentence: its first printed line and the lines wrapped from it (indented)."""
    lines = printed.splitlines() or [""]
    sentence = [lines[0]]
    for line in lines[1:]:
        if not line.startswith("    ") or line.startswith("     "):
            break
        sentence.append(line.strip())
    return " ".join(sentence)


def report(path, marks):
    """The marks as the command prints them."""
    width = max(len(m.exercise) for m in marks)
    lines = [f"{path}:"]
    lines += [f"  {m.exercise:{width}s}  {m.points}/{m.out_of}  {m.verdict}" for m in marks]
    total, out_of = sum(m.points for m in marks), sum(m.out_of for m in marks)
    lines.append(f"  {'total':{width}s}  {total}/{out_of}")
    return "\n".join(lines)


def grade_all(paths, instructor_folder=None):
    """Grade each notebook of ``paths`` and print its report; every file is read (and refused, with a
    GradingError) before the first one runs."""
    for path in paths:
        graded_version(read_notebook(path), instructor_folder or course.notebooks_folder())
    for path in paths:
        print(report(path, grade(path, instructor_folder)), flush=True)
