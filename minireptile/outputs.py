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


def prepare_run(folder, config, outputs, checkpoints, resume=False, overwrite=False):
    """Refuse to mix runs, for every command that trains (OutputError, before any work): --resume needs
    ``checkpoints`` (names) in ``folder`` that record ``config``'s training fields; a run already there
    (its checkpoints, ``outputs``, or other checkpoints of the study under checkpoints/) is replaced only
    with --overwrite, and its files are removed first."""
    from .train import load_progress
    found = [folder.path / c for c in checkpoints if (folder.path / c).is_file()]
    if resume:
        if overwrite:
            raise OutputError("--resume and --overwrite exclude each other")
        if not found:
            raise OutputError(f"--resume: there is no checkpoint {folder.path / checkpoints[0]} to continue")
        for path in found:
            _same_run(path, config)
        return
    existing = found + [folder.path / n for n in outputs if (folder.path / n).is_file()] + [
        p for p in sorted(folder.path.glob("checkpoints/*.npz")) if p not in found]
    if existing and not overwrite:
        progress = load_progress(found[0]) if len(found) == 1 else None
        state = f" (trained {progress[0]} of {progress[1]} iterations)" if progress else ""
        raise OutputError(f"--out {folder.path} already holds a run{state}: continue it with --resume or "
                          "replace it with --overwrite")
    for path in existing:
        path.unlink()


def _same_run(path, config):
    """Refuse to resume ``path`` unless it records ``config``'s training fields."""
    from .config import _show, differences, flag
    from .train import load_experiment
    saved = load_experiment(path)
    if "config" not in saved:
        raise OutputError(f"--resume: {path} records no configuration of this command (another command or an "
                          "older minireptile wrote it); start again with --overwrite")
    shown = lambda v: "(default)" if v is None else _show(v)
    differ = [f"{flag(name)} {shown(old)} (given {shown(new)})"
              for name, old, new in differences(saved["config"], config)]
    if differ:
        raise OutputError(f"--resume: {path} was trained with other arguments: " + "; ".join(differ))


def json_file(path, overwrite=False):
    """(RunFolder, path) of a --json FILE: checked before any work, replaced only with ``overwrite``."""
    path = Path(path)
    check_writable(path.parent, "--json")
    if path.is_dir():
        raise OutputError(f"--json {path} is a folder: give a file name")
    if path.is_file() and not overwrite:            # with overwrite, the atomic write replaces it
        raise OutputError(f"--json {path} exists already: replace it with --overwrite, or choose another file")
    folder = RunFolder(path.parent)
    return folder, folder.file(path.name)


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
