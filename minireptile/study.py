"""What every study shares: its shape, its typed results and claims, and how they are kept.

A study is a module (``tasks.sine``, ``tasks.omniglot`` and ``tasks.miniimagenet`` through
``tasks.experiment``, ``analysis``, ``combinations``, ``joint``, ``comparison``) with

    Config                      a frozen configuration (``config.Checked``); its fields are the command's flags
    BUDGETS                     {"smoke", "grading", "class", "full"}: changes to Config
    OUTPUTS                     the files ``save`` writes: the JSON, then the figures
    run(config, out=None, *, resume=False, progress=True, workers=None) -> Result
    checkpoints(config)         the checkpoints ``run`` keeps in ``out`` (for --resume), relative to it

and a Result (a ``Record``: ``to_dict()`` / ``from_dict(d)``) with ``report()`` (text), ``figures()``
({file name: Figure}) and ``claims`` (Claims). The command line and ``figures`` drive every study
through ``run`` and ``save``; a notebook calls ``run`` and reads the Result's attributes.
"""
import dataclasses
import types
import typing

import numpy as np

from .outputs import as_folder, write_json


class Record:
    """A dataclass that is its own JSON: ``to_dict()`` gives plain values (fields with
    ``metadata={"json": False}`` left out), ``from_dict(d)`` rebuilds it by its type hints."""

    def to_dict(self):
        return to_plain(self)

    @classmethod
    def from_dict(cls, d):
        return from_plain(cls, d)


def to_plain(value):
    """Dataclasses (or anything with a ``to_dict()``), dicts, sequences, arrays and NumPy scalars as plain
    JSON values."""
    if hasattr(value, "to_dict") and not isinstance(value, Record):   # a type of one's own with its own JSON
        return to_plain(value.to_dict())
    if dataclasses.is_dataclass(value):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)
                if f.metadata.get("json", True)}
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, (np.ndarray, np.generic)):
        return value.tolist()
    return value


def from_plain(kind, value):
    """A value of type ``kind`` (a dataclass, tuple[X, ...], dict[K, V], X | None, an array, a
    number) from its ``to_plain`` form."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if value is None:
        return None
    if dataclasses.is_dataclass(kind):
        hints = typing.get_type_hints(kind)
        return kind(**{f.name: from_plain(hints[f.name], value[f.name]) for f in dataclasses.fields(kind)
                       if f.init and f.name in value})
    if origin in (typing.Union, types.UnionType):
        return from_plain(next(a for a in args if a is not type(None)), value)
    if kind is tuple or origin is tuple:
        return tuple(from_plain(args[0] if args else None, v) for v in value)
    if origin is dict:
        return {from_plain(args[0], k): from_plain(args[1], v) for k, v in value.items()}
    if kind is np.ndarray:
        return np.asarray(value, dtype=float)
    if kind in (int, float):
        return kind(value)
    return value


@dataclasses.dataclass(frozen=True)
class Claim(Record):
    """A claim of the paper read from a study's numbers: a short ``id``, the sentence, the verdict
    ("holds", "does not hold", or why it is undecided), the rule that decided it, and the numbers it
    was read from ({name: value})."""
    id: str
    statement: str
    verdict: str
    rule: str
    numbers: dict

    def __str__(self):
        return f"{self.verdict}: {self.statement}"


def sign_verdict(differences):
    """"holds" when every (mean, 95% half-width) difference is positive beyond its interval, "does not
    hold" when one is negative beyond it, "undecided at this budget" otherwise."""
    if all(mean - ci > 0 for mean, ci in differences):
        return "holds"
    if any(mean + ci < 0 for mean, ci in differences):
        return "does not hold"
    return "undecided at this budget"


def shown(value):
    """A claim's number as text: a paired difference {"mean", "ci95"} (fractions) in points, a float to 4
    significant digits, anything else as it is."""
    if isinstance(value, dict) and set(value) == {"mean", "ci95"}:
        return f"{100 * value['mean']:+.1f} +- {100 * value['ci95']:.1f} points"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def table(rows, header):
    """Right-aligned columns, two spaces apart, under a header row: the Results' reports."""
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).rjust(w) for c, w in zip(r, widths))
    return "\n".join([line(header)] + [line(r) for r in rows])


class DataError(ValueError):
    """A study's --data that cannot be read (missing, a file, not the dataset)."""


def prepared(module, config, progress=True):
    """(config, pools): the study's data read and checked against its configuration (a study without data,
    or without ``config.data``: (config, None))."""
    from .config import ConfigError
    if not hasattr(module, "prepare") or getattr(config, "data", None) is None:
        return config, None
    try:
        return module.prepare(config, progress)
    except ConfigError:
        raise
    except ValueError as err:
        raise DataError(f"--data {config.data}: {err}") from None


#: the studies whose JSON and figures are in figures/, in the order ``make_figures`` runs them
FIGURES = ("tasks.sine", "analysis", "joint", "combinations", "comparison")


def make_figures(out, budget="full", data=None, test_alphabets=None, progress=True, overwrite=False):
    """Every study of FIGURES at a named budget into the folder ``out`` (those that need data only with
    ``data``), each as its command makes it; every configuration, output and the data checked before any
    work. The two long ones keep their checkpoints in ``out``."""
    import dataclasses
    import importlib
    out = as_folder(out)
    configs = {}
    for name in FIGURES:
        module = importlib.import_module(f".{name}", __package__)
        fields = {f.name for f in dataclasses.fields(module.Config)}
        if "data" in fields and data is None and name != "joint":
            continue
        given = {"data": data, "test_alphabets": test_alphabets} if "data" in fields else {}
        configs[module] = module.Config(**module.BUDGETS[budget] | given)
    kept = lambda module: module.__name__.endswith(("combinations", "comparison"))     # hours each
    out.claim([n for m, c in configs.items() for n in m.OUTPUTS + tuple(m.checkpoints(c) * kept(m))
               if n != "theta.npz"], overwrite)
    ready = {module: prepared(module, config, progress) for module, config in configs.items()}
    for module, (config, pools) in ready.items():
        result = module.run(config, out if kept(module) else None, progress=progress,
                            **({"pools": pools} if pools is not None else {}))
        save(result, out, module.OUTPUTS)


def save(result, out, outputs):
    """The Result's JSON (``outputs[0]``) and its figures into the folder ``out``, each whole or not at all."""
    from .plots import save_figure
    out = as_folder(out)
    write_json(out.file(outputs[0]), result.to_dict())
    for name, figure in result.figures().items():
        save_figure(figure, out.file(name))
