"""The harness under the exercise checks: it runs a student's function on hypothesis's cases, tells a
wrong answer from the student's own crash and from a crash of the check itself, and words the verdict
for a feedback page (the sentence first, wrapped; the case; the student's own traceback, short).

Kinds of verdict (``ExerciseFailed.kind``):

    "not done"   the stub still raises NotImplementedError
    "raised"     the student's code raised; their own traceback lines follow the sentence
    "type"       the answer is not the kind of value asked for (None, a string, too few parts)
    "shape"      an array of the wrong shape
    "value"      the right shape, the wrong numbers

A crash inside a check is none of these: it propagates with a note that it is the check's bug.
"""
import inspect
import tempfile
import textwrap
import traceback
from dataclasses import dataclass

import numpy as np
from hypothesis import HealthCheck, configuration, given, settings
from hypothesis.errors import Flaky

from .gradcheck import rel_error

WIDTH = 88                      # feedback pages and notebook outputs wrap here
TOLERANCE = 1e-7
MOST_FRAMES = 6                 # of the student's traceback


class ExerciseFailed(AssertionError):
    """The student's function is not right yet; ``kind`` says how (see the module docstring) and the
    message, whose first sentence is the verdict, says for which case."""

    def __init__(self, message, kind):
        super().__init__(message)
        self.kind = kind

    def _render_traceback_(self):
        """What IPython shows for it (a notebook cell, nbgrader's feedback page): one line, below the
        verdict the check printed; no frames of the check's own code. The cause, where the student's
        code raised, stays on the exception (``__cause__``), and its lines are in the verdict."""
        return [f"ExerciseFailed: {str(self).split(':')[0]} (0 points; the verdict is above)"]


@dataclass(frozen=True)
class Wrong:
    """What is wrong with an answer, in words, and of which kind ("type", "shape" or "value")."""
    kind: str
    words: str

    def at(self, where):
        """The same verdict, said for a case: "for x of shape (2, 3): ..."."""
        return Wrong(self.kind, f"{where}: {self.words}")


class _NotDone(Exception):
    """The student's function raised NotImplementedError (nbgrader's stub)."""


class _Raised(Exception):
    """The student's function raised; ``error`` is theirs, ``called`` says with what."""

    def __init__(self, error, called):
        super().__init__(str(error))
        self.error, self.called = error, called


class _Rejected(Exception):
    """A case the answer got wrong (the words are kept beside it)."""


class Answer:
    """The student's function, called so that whatever it raises is known to be theirs."""

    def __init__(self, function):
        self.function = function
        try:
            self.names = list(inspect.signature(function).parameters)
        except (TypeError, ValueError):
            self.names = []

    def __call__(self, *args):
        __tracebackhide__ = True                       # IPython shows the student's frames, not this one
        try:
            return self.function(*args)
        except NotImplementedError as err:
            raise _NotDone(str(err)) from err
        except Exception as err:
            raise _Raised(err, self.describe(args)) from err

    def describe(self, args):
        """The arguments of a call in a few words: arrays by shape, numbers by value."""
        names = self.names + [f"argument {i + 1}" for i in range(len(self.names), len(args))]
        return ", ".join(f"{name} {_describe(arg)}" for name, arg in zip(names, args))


def _describe(value):
    if isinstance(value, np.ndarray):
        return f"of shape {value.shape}"
    if isinstance(value, (list, tuple)):
        return f"({len(value)} items)"
    if isinstance(value, (int, float, np.number, str, tuple)):
        return f"= {value!r}"
    return f"(a {type(value).__name__})"


def run(name, student, check, cases, examples=20):
    """Run ``check(answer, case)`` (None, or a Wrong) on hypothesis's cases; print "passed", or print
    the verdict for the smallest failing case and raise ExerciseFailed with it."""
    __tracebackhide__ = True
    answer, found = Answer(student), []

    @settings(max_examples=examples, deadline=None, database=None, derandomize=True, print_blob=False,
              report_multiple_bugs=False, suppress_health_check=list(HealthCheck))
    @given(cases)
    def prop(case):
        problem = check(answer, case)
        if problem:
            found.append(problem)
            raise _Rejected(problem.words)

    cause = None
    try:
        _without_litter(prop)
    except _Rejected:
        kind, lines = found[-1].kind, [f"{name} is wrong: {found[-1].words}"]
    except _NotDone as err:
        kind, lines = "not done", [f"{name} is not done yet: it raises NotImplementedError{f' ({err})' if str(err) else ''}"]
    except _Raised as err:
        kind, cause = "raised", err.error
        lines = [f"{name} raised {type(cause).__name__}: {cause}", f"when called with {err.called}.",
                 "Your code, where it raised:", *_student_frames(cause)]
    except Flaky:
        if not found:
            raise
        kind, lines = found[-1].kind, [f"{name} is wrong (and not the same on every call): {found[-1].words}"]
    except Exception as err:
        err.add_note(f"This is a bug in minireptile's check for {name}, not in your answer: please tell "
                     "your instructor.")
        raise
    else:
        print(f"{name}: passed on {examples} random cases")
        return
    message = lines[0]
    print(_wrap(lines))
    raise ExerciseFailed(message if kind != "raised" else f"{message} {lines[1]}", kind) from cause


def _without_litter(prop):
    """Run the property with hypothesis's storage (its cache of constants) in a temporary folder, so
    that a check leaves no .hypothesis folder beside the student's notebook; the caller's restored."""
    previous = configuration.storage_directory(intent_to_write=False).home_directory
    with tempfile.TemporaryDirectory(prefix="minireptile-check-") as home:
        configuration.set_hypothesis_home_dir(home)
        try:
            prop()
        finally:
            configuration.set_hypothesis_home_dir(previous)


def _student_frames(error):
    """The student's own traceback lines: the frames below the Answer wrapper, the last few, each
    named as IPython names a notebook cell ("Cell In[3], line 4")."""
    lines = []
    for frame in traceback.extract_tb(error.__traceback__)[1:][-MOST_FRAMES:]:
        lines.append(f"  {_place(frame.filename)}, line {frame.lineno}, in {frame.name}")
        if frame.line:
            lines.append(f"    {frame.line.strip()}")
    return lines


def _place(filename):
    """'Cell In[3]' for the code of a notebook cell, else 'File "path"'."""
    try:
        from IPython import get_ipython
        shell = get_ipython()
        named = shell.compile.format_code_name(filename) if shell is not None else None
    except Exception:                              # no IPython, or one without cell names: the plain path
        named = None
    return " ".join(named) if named else f'File "{filename}"'


def _wrap(lines):
    """The verdict wrapped to WIDTH; traceback lines kept as they are."""
    out = []
    for line in lines:
        if line.startswith("  "):
            out += line.splitlines()
        else:
            out.append(textwrap.fill(line, WIDTH, subsequent_indent="    ", break_long_words=False))
    return "\n".join(out)


def as_array(label, got):
    """got as a float array, or a Wrong of kind "type" saying what it was."""
    if got is None:
        return Wrong("type", f"{label} is None (did the function forget to return it?)")
    try:
        array = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        return Wrong("type", f"{label} is a {type(got).__name__}, not an array of numbers")
    return array


def parts(got, labels):
    """A tuple answer split into its parts, or a Wrong of kind "type" saying why it cannot be."""
    if not isinstance(got, (tuple, list)) or len(got) != len(labels):
        what = f"{len(got)} values" if isinstance(got, (tuple, list)) else f"a {type(got).__name__}"
        return Wrong("type", f"it should return {len(labels)} values ({', '.join(labels)}), got {what}")
    return list(got)


def compare(label, got, expected, tol=TOLERANCE):
    """None if got matches expected (any mix of scalars and arrays), else a Wrong: the kind of value,
    the shape, or the error and where it is largest."""
    expected = np.asarray(expected, dtype=np.float64)
    got = as_array(label, got)
    if isinstance(got, Wrong):
        return got
    if got.shape != expected.shape:
        return Wrong("shape", f"{label} has shape {got.shape}, expected {expected.shape}")
    finite = np.isfinite(expected)
    if np.any(np.isfinite(got) != finite) or np.any(got[~finite] != expected[~finite]):
        where = tuple(int(i) for i in np.argwhere((got != expected) & ~(np.isfinite(got) & finite))[0])
        at = f" at index {where}" if where else ""
        return Wrong("value", f"{label} is {got[where]:.4g}{at}, expected {expected[where]:.4g}")
    error = rel_error(got[finite], expected[finite])
    if error <= tol:
        return None
    if got.ndim == 0:
        return Wrong("value", f"{label} is off by rel_error {error:.1e} (got {got:.4g}, expected {expected:.4g})")
    gap = np.where(finite, np.abs(got - expected), 0)
    where = np.unravel_index(np.argmax(gap), got.shape)
    return Wrong("value", f"{label} is off by rel_error {error:.1e}; the largest error, {gap[where]:.3g}, is at "
                          f"index {tuple(int(i) for i in where)} (got {got[where]:.4g}, expected {expected[where]:.4g})")


def first(*problems):
    """The first of the problems that is not None."""
    return next((p for p in problems if p), None)
