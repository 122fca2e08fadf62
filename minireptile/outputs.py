"""The output folder of a command: checked whole before any work, created only when a file is
written, never written over unasked, listed at the end, removed again if a failure leaves it empty."""
import json
import os
from pathlib import Path

import numpy as np

from ._atomic import atomic_write


class OutputError(Exception):
    """An output folder that cannot be written, or that holds outputs a command would replace."""


def check_writable(path, flag="--out"):
    """Refuse ``path`` before any work unless it is, or can become, a writable folder: the path and
    every ancestor that exists must be a folder, and the nearest existing one writable."""
    if not str(path).strip():
        raise OutputError(f"{flag}: expected a folder, got an empty string")
    path = Path(path)
    for place in [path.absolute(), *path.absolute().parents]:
        if place.exists():
            if not place.is_dir():
                where = "is a file" if place == path.absolute() else f"is under the file {place}"
                raise OutputError(f"{flag} {path} {where}: give a folder")
            if not os.access(place, os.W_OK | os.X_OK):
                raise OutputError(f"{flag} {path}: {place} is not writable")
            return


class RunFolder:
    """Where one command writes, and the record of what it wrote.

    ``file(name)`` gives the path of a file inside the folder and records it (with what is there now);
    ``written()`` lists the recorded files that this command wrote: those that exist and were not
    there, or not the same file, when they were recorded (a file kept as it was is not listed). Nothing creates the folder but writing a file into
    it (``atomic_write`` and ``plots`` make the folder they need), and ``discard_if_empty``
    removes a folder this command created when a failure left it empty.
    """

    def __init__(self, path):
        self.path = Path(path)
        self.existed = self.path.exists()
        self._files = {}                         # path -> what was there when it was recorded

    def file(self, name):
        path = self.path / name
        if path not in self._files:
            self._files[path] = _signature(path)
        return path

    def claim(self, names, overwrite=False, flag="--out"):
        """Refuse before any work if this folder already holds one of the files ``names`` (the
        command's outputs), unless ``overwrite``: then they are removed, so that old and new
        outputs never mix."""
        existing = [name for name in names if (self.path / name).is_file()]
        if existing and not overwrite:
            raise OutputError(f"{flag} {self.path} already holds {', '.join(existing)}: replace "
                              "them with --overwrite, or choose another folder")
        for name in existing:
            (self.path / name).unlink()

    def written(self):
        return [p for p, before in self._files.items() if p.is_file() and _signature(p) != before]

    def discard_if_empty(self):
        if not self.existed and self.path.is_dir() and not any(self.path.iterdir()):
            self.path.rmdir()

    def report(self):
        """'wrote:' and the written files, one a line."""
        files = self.written()
        return "wrote:\n" + "\n".join(f"  {p}" for p in files) if files else "wrote no files"


def _signature(path):
    """(inode, modification time in ns, size) of a file, or None: what changes when a file is written."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def as_folder(out):
    """A RunFolder for ``out`` (a path or already a RunFolder)."""
    return out if isinstance(out, RunFolder) else RunFolder(out)


def write_json(path, data):
    """JSON, written whole or not at all."""
    with atomic_write(path, "w") as f:
        json.dump(jsonable(data), f, indent=2)


def jsonable(value):
    """NumPy scalars, arrays and tuples as plain JSON values, recursively."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.bool_):
        return bool(value)
    return float(value) if isinstance(value, (np.floating, np.integer)) else value


def cache_dir(path=None):
    """The cache folder: ``path``, else $MINIREPTILE_CACHE, else ~/.cache/minireptile."""
    if path is not None:
        return Path(path)
    if os.environ.get("MINIREPTILE_CACHE"):
        return Path(os.environ["MINIREPTILE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "minireptile"
