"""The course kit: student notebooks generated from the instructor notebooks.

The repository's notebooks are the complete instructor versions, ready for nbgrader: each exercise is
a solution cell (an "autograded answer", its grade id the function's name) followed by a locked
autograder-tests cell (grade id ``check_<name>``, worth the exercise's points), and the regions follow
nbgrader's markers:

    ### BEGIN SOLUTION              the lines a student writes (replaced by a stub)
    ### END SOLUTION
    ### BEGIN HIDDEN TESTS          checks the student does not see (removed)
    ### END HIDDEN TESTS

``nbgrader_metadata`` writes that cell metadata from ``EXERCISES`` (a test keeps the notebooks in step
with it). Without nbgrader, ``write_student_notebooks`` makes what ``nbgrader generate_assignment``
releases: each solution region replaced by nbgrader's stub (``STUB``, indented like the region; the
function's docstring above it says what to compute and the shapes), hidden tests and outputs removed,
and an index of the exercises with their points.
"""
import json
import os
import re
from contextlib import contextmanager
from pathlib import Path

#: (notebook, function the student writes, points, what it teaches); exercises.py has a check for each.
EXERCISES = [
    ("00", "linear_backward", 2, "the gradients of y = xW + b"),
    ("00", "col2im", 3, "Conv2d's backward: give each window's gradient back to its pixels, adding overlaps"),
    ("00", "maxpool_backward", 2, "the gradient of a maximum goes to the winner"),
    ("00", "batchnorm_backward", 3, "three paths from each input: through x-hat, the mean and the variance"),
    ("00", "softmax_cross_entropy_backward", 1, "softmax minus one-hot, over N"),
    ("01", "inner_sgd_loop", 2, "k SGD steps for T tasks at once on the task axis, recording g_i"),
    ("01", "reptile_step", 1, "theta moves towards the mean of the adapted weights"),
    ("01", "fomaml_gradient", 1, "first-order MAML: the last inner gradient, at the adapted weights"),
    ("01", "maml_gradient", 3, "exact MAML: g_k carried back through (I - lr H_i) by Hessian-vector products"),
    ("02", "avg_grad_inner", 2, "AvgGradInner = 1/2 (H_i g_j + H_j g_i) = 1/2 grad (g_i . g_j)"),
    ("03", "combination_weights", 1, "joint training, FOMAML, Reptile and their averages as weights on g_1..g_k"),
    ("04", "adapted_mse", 2, "the loss after adaptation, step by step: what meta-learning improves and joint training does not"),
    ("05", "relative_variance", 2, "the relative variance of an update, corrected for the noise in the mean of n tasks"),
]
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")      # nbgrader's ClearSolutions.code_stub
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"


#: The variable that selects the grading budget: course/nbgrader_config.py sets it for every notebook
#: nbgrader runs (autograde, validate), and ``exercises --grade`` sets it for the notebook it grades.
GRADING = "MINIREPTILE_GRADING"


def notebook_budget():
    """The budget a notebook runs at: "grading" while a notebook is graded ($MINIREPTILE_GRADING=1:
    the training cells, which carry no points, only feed the later cells; seconds), "smoke" under the
    test suite ($MINIREPTILE_SMOKE=1), else "class" (each study's ``BUDGETS`` say what that is: ten
    minutes or less on a 2-core laptop)."""
    if os.environ.get(GRADING) == "1":
        return "grading"
    return "smoke" if os.environ.get("MINIREPTILE_SMOKE") == "1" else "class"


def caveat(budget, pools=None):
    """The sentence to print above a notebook's table of results, or None where the numbers are results:
    on synthetic stand-in data (``pools.synthetic``), or on a budget too small to learn anything."""
    if pools is not None and getattr(pools, "synthetic", False):
        return "These numbers are no results: synthetic random patterns stood in for Omniglot (see above)."
    if budget != "class":
        return f"These numbers are no results: the {budget} budget is too small to learn anything."
    return None


@contextmanager
def notebook_workers(most=4):
    """Worker processes for a notebook's long cells, one per core (at most ``most``), or None on a single
    core or while grading (starting processes would cost more than the grading budget's work):
    ``with course.notebook_workers() as workers: study.run(..., workers=workers)``. Results equal
    one process's; the workers end with the block, and with the kernel however it dies."""
    count = min(most, os.cpu_count() or 1)
    if count < 2 or notebook_budget() == "grading":
        yield None
        return
    from .workers import Workers
    with Workers.local(count) as workers:
        yield workers


def notebooks_folder():
    """The instructor notebooks of a source checkout (beside the package)."""
    return Path(__file__).resolve().parent.parent / "notebooks"


def reference(module):
    """The committed result of a study ``module`` (``figures/`` of the source checkout: its JSON as the study's
    command made it at the full budget, docs/results.md says when) as its Result, or None where there is no
    checkout beside the package."""
    path = notebooks_folder().parent / "figures" / module.OUTPUTS[0]
    return module.Result.from_dict(json.loads(path.read_text())) if path.is_file() else None


def holds_solutions(folder):
    """Whether ``folder`` holds a notebook with solution regions (an instructor version)."""
    return any(BEGIN in path.read_text(errors="replace") for path in Path(folder).glob("*.ipynb"))


def solution_regions(source):
    """[(first line, last line)] of the solution regions in a cell's lines (markers included)."""
    regions, start = [], None
    for i, line in enumerate(source):
        if line.strip() == BEGIN:
            start = i
        elif line.strip() == END and start is not None:
            regions.append((start, i))
            start = None
    if start is not None:
        raise ValueError(f"a '{BEGIN}' without its '{END}'")
    return regions


def student_cell(lines):
    """A code cell's lines with each solution region replaced by a stub and hidden tests removed."""
    out, hidden = [], False
    regions = dict(solution_regions(lines))
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.strip() == BEGIN_HIDDEN:
            hidden = True
        elif line.strip() == END_HIDDEN:
            hidden = False
        elif hidden:
            pass
        elif i in regions:
            indent = line[:len(line) - len(line.lstrip())]
            out.extend(f"{indent}{stub}\n" for stub in STUB)
            i = regions[i]
        else:
            out.append(line)
        i += 1
    if out:
        out[-1] = out[-1].rstrip("\n")               # a cell's last line has no newline
    return out


def nbgrader_metadata(notebook):
    """The notebook (a dict as in the .ipynb file) with nbgrader's metadata on its exercise cells:
    a solution cell defining ``name`` becomes an autograded answer, a cell calling
    ``exercises.check_<name>`` a locked autograder-tests cell worth the exercise's points."""
    points = {name: p for _, name, p, _ in EXERCISES}
    cells = []
    for cell in notebook["cells"]:
        meta = {k: v for k, v in cell.get("metadata", {}).items() if k != "nbgrader"}
        source = "".join(_lines(cell["source"]))
        defined = re.search(r"^def (\w+)\(", source, re.M) if BEGIN in source else None
        checked = re.search(r"exercises\.check_(\w+)\(", source)
        if cell["cell_type"] == "code" and defined:
            meta["nbgrader"] = _nbgrader(defined.group(1), solution=True)
        elif cell["cell_type"] == "code" and checked and checked.group(1) in points:
            meta["nbgrader"] = _nbgrader(f"check_{checked.group(1)}", grade=True, locked=True,
                                         points=points[checked.group(1)])
        cells.append(cell | {"metadata": meta})
    return notebook | {"cells": cells}


def _nbgrader(grade_id, solution=False, grade=False, locked=False, points=None):
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3,
            "solution": solution, "task": False}
    return meta | ({"points": points} if points is not None else {})


def student_notebook(notebook):
    """The student version of a notebook (a dict as in the .ipynb file): stubs, no hidden tests,
    no outputs. Returns (notebook, number of exercises)."""
    cells, count = [], 0
    for cell in notebook["cells"]:
        cell = dict(cell)
        if cell["cell_type"] == "code":
            lines = _lines(cell["source"])
            count += len(solution_regions(lines))
            cell.update(source=student_cell(lines), outputs=[], execution_count=None)
        cells.append(cell)
    return notebook | {"cells": cells}, count


def write_student_notebooks(source, out, overwrite=False):
    """Student versions of every notebook in ``source`` and EXERCISES.md into ``out`` (a RunFolder
    or path); returns the number of exercises written. A file already there that differs from
    what would be written (a student's edited notebook) is replaced only with ``overwrite``:
    otherwise nothing is written and OutputError names the files."""
    from .outputs import OutputError, as_folder
    from ._atomic import atomic_write
    out = as_folder(out)
    files, total = {}, 0
    for path in sorted(Path(source).glob("*.ipynb")):
        notebook, count = student_notebook(json.loads(path.read_text()))
        total += count
        files[path.name] = json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"
    files["EXERCISES.md"] = index()
    differ = [name for name, text in files.items()
              if (out.path / name).is_file() and (out.path / name).read_text() != text]
    if differ and not overwrite:
        were, them = ("they were", "them") if len(differ) > 1 else ("it was", "it")
        raise OutputError(f"--out {out.path} holds {', '.join(differ)}, changed since {were} written (a "
                          f"student's work?): replace {them} with --overwrite, or choose another folder")
    for name, text in files.items():
        target = out.file(name)
        if not (target.is_file() and target.read_text() == text):
            with atomic_write(target, "w") as f:
                f.write(text)
    return total


def index():
    """The exercises with their notebooks and points, as Markdown."""
    rows = [f"| {nb} | `{name}` | {points} | {what} |" for nb, name, points, what in EXERCISES]
    return "\n".join([
        "# minireptile exercises", "",
        "Open each notebook, write the functions whose body raises NotImplementedError, and run the",
        "check below each one: it tests your function on random shapes and values and says what is wrong.",
        "", "| notebook | exercise | points | what it teaches |", "|---|---|---:|---|", *rows, "",
        f"Total: {sum(p for *_, p, _ in EXERCISES)} points.", ""])


def _lines(source):
    return source.splitlines(keepends=True) if isinstance(source, str) else list(source)
