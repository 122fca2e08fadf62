"""Configurations: frozen dataclasses whose fields carry their defaults, help texts and checks.

One object per study holds the paper's defaults. The command line builds its options from it
(``--inner-lr`` for the field ``inner_lr``), a checkpoint stores it, and ``--resume`` compares it
field by field with the one given. A field marked ``train=False`` only shapes the final evaluation
or the bookkeeping, so it may change between a run and its resumption.

Every field is checked by its type, once, here (``Checked``): an ``int`` is an integer of at least
``low`` (default 1) and at most ``high``; a ``float`` a finite number above ``low`` (default 0; at
least it with ``closed=True``) and at most ``high``; a field with ``choices`` one of them; a ``tuple``
of ``type`` int holds such integers. ``None`` passes where it is the default (a value filled in by
``derived``). A study's configuration adds only what relates its fields (``check``).
"""
import dataclasses
import math

import numpy as np


def option(default, help, *, train=True, choices=None, type=None, nargs=None, low=None, high=None,
           closed=False, why="", metavar=None):
    """A configuration field: default, help text, whether it shapes training (``train``), and its range."""
    return dataclasses.field(default=default, metadata={
        "help": help, "train": train, "choices": choices, "type": type, "nargs": nargs, "low": low,
        "high": high, "closed": closed, "why": why, "metavar": metavar})


class ConfigError(ValueError):
    """A configuration value out of range; names the field, what it must be and what it got."""

    def __init__(self, name, expected, got):
        self.name, self.expected, self.got = name, expected, got
        super().__init__(f"{name} must be {expected}, got {_show(got)}")


def _show(value):
    return " ".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)


def check_int(name, value, low=1, high=None, why=""):
    """value must be an integer in [low, high]; ``why`` explains the upper bound."""
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not ok or value < low or (high is not None and value > high):
        expected = (f"an integer of at least {low}" if high is None
                    else f"an integer from {low} to {high}{why}")
        raise ConfigError(name, expected, value)


def check_step(name, value, low=0.0, high=None, open_low=True):
    """value must be a finite number above ``low`` (or equal to it, if not ``open_low``)
    and at most ``high``."""
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if open_low else value >= low) and (high is None or value <= high)
    if not ok:
        bound = f"above {low:g}" if open_low else f"at least {low:g}"
        expected = f"a number {bound}" + ("" if high is None else f" and at most {high:g}")
        raise ConfigError(name, expected, value)


def check_choice(name, value, choices):
    if value not in choices:
        raise ConfigError(name, "one of " + ", ".join(map(str, choices)), value)


def check_field(field, value):
    """``value`` against what ``field``'s type and metadata say (see the module's docstring)."""
    meta, kind = field.metadata, field.type
    if value is None and field.default is None:
        return
    if meta.get("choices"):
        check_choice(field.name, value, meta["choices"])
    elif kind in (int, "int"):
        check_int(field.name, value, 1 if meta.get("low") is None else meta["low"], meta.get("high"), meta.get("why", ""))
    elif kind in (float, "float"):
        check_step(field.name, value, meta.get("low") or 0.0, meta.get("high"), not meta.get("closed"))
    elif kind in (tuple, "tuple") and meta.get("type") is int:
        for v in value:
            check_int(field.name, v, 1 if meta.get("low") is None else meta["low"])
    elif kind in (tuple, "tuple") and meta.get("type") is float:
        for v in value:
            check_step(field.name, v, meta.get("low") or 0.0, meta.get("high"), not meta.get("closed"))


class Checked:
    """A frozen configuration dataclass that checks its fields when it is made: ``derived()`` fills in
    defaults that depend on other fields ({name: value}), every field is checked by its type and
    metadata, then ``check()`` relates the fields. Lists become tuples."""

    def __post_init__(self):
        for f in dataclasses.fields(self):
            if isinstance(getattr(self, f.name), list):
                object.__setattr__(self, f.name, tuple(getattr(self, f.name)))
        for name, value in self.derived().items():
            object.__setattr__(self, name, value)
        for f in dataclasses.fields(self):
            check_field(f, getattr(self, f.name))
        self.check()

    def derived(self):
        return {}

    def check(self):
        pass


def distinct(name, values, known):
    """Each of ``values`` one of ``known``, none twice, at least one."""
    for value in values:
        check_choice(name, value, known)
    if len(set(values)) != len(values):
        raise ConfigError(name, "distinct names", values)
    if not values:
        raise ConfigError(name, "at least one name", "none")


def flag(name):
    """The command-line flag of a field: inner_lr -> --inner-lr."""
    return "--" + name.replace("_", "-")


def add_flags(parser, cls, required=()):
    """One argparse option per field of the configuration dataclass ``cls``, with its help and default:
    the data first, the evaluation's settings last."""
    order = lambda f: 0 if f.name == "data" else 2 if f.name.startswith("eval_") else 1
    for f in sorted(dataclasses.fields(cls), key=order):
        meta, default, kind = f.metadata, f.default, f.metadata.get("type") or f.type
        shown = "" if default is None else f" (default: {_show(default)})"
        if isinstance(default, bool):
            parser.add_argument(flag(f.name), action="store_true", help=meta["help"])
            continue
        metavar = meta.get("metavar") or {int: "N", float: "X", str: "NAME"}.get(kind, "VALUE")
        parser.add_argument(flag(f.name), nargs=meta.get("nargs"), default=default, help=meta["help"] + shown,
                            type=str if kind is tuple else kind, choices=meta.get("choices"),
                            required=f.name in required, metavar=None if meta.get("choices") else metavar)


def from_flags(cls, args):
    """The configuration ``cls`` of parsed arguments (the fields it has flags for)."""
    return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)})


def to_dict(config):
    """The configuration as plain JSON-ready values."""
    return {f.name: _plain(getattr(config, f.name)) for f in dataclasses.fields(config)}


def _plain(value):
    if isinstance(value, tuple):
        return list(value)
    return value.item() if isinstance(value, np.generic) else value


def differences(saved, config):
    """[(field, saved value, given value)] for the training fields of ``config`` that differ
    from the dict ``saved`` (a stored ``to_dict``)."""
    given = to_dict(config)
    return [(f.name, saved.get(f.name, "(not recorded)"), given[f.name])
            for f in dataclasses.fields(config)
            if f.metadata.get("train", True) and saved.get(f.name, "(not recorded)") != given[f.name]]
