"""Experiment configurations: frozen dataclasses whose fields carry their defaults and help texts.

One object per experiment holds the paper's defaults. The command line builds its options from
it (``--inner-lr`` for the field ``inner_lr``), a checkpoint stores it, and ``--resume`` compares
it field by field with the one given. A field marked ``train=False`` only shapes the final
evaluation or the bookkeeping, so it may change between a run and its resumption.
"""
import dataclasses
import math

import numpy as np


def option(default, help, *, train=True, choices=None, type=None, nargs=None):
    """A configuration field: default, help text, and whether it shapes training (``train``)."""
    return dataclasses.field(default=default, metadata={
        "help": help, "train": train, "choices": choices, "type": type, "nargs": nargs})


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
    ok = isinstance(value, (int, float, np.floating)) and math.isfinite(value)
    ok = ok and (value > low if open_low else value >= low) and (high is None or value <= high)
    if not ok:
        bound = f"above {low:g}" if open_low else f"at least {low:g}"
        expected = f"a number {bound}" + ("" if high is None else f" and at most {high:g}")
        raise ConfigError(name, expected, value)


def check_choice(name, value, choices):
    if value not in choices:
        raise ConfigError(name, "one of " + ", ".join(map(str, choices)), value)


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
