"""Omniglot: download, read, preprocess, cache and split.

The official layout is ``<set>/<Alphabet>/characterNN/NNNN_DD.png`` (105 x 105,
black strokes on white, 20 drawers per character), inside ``<set>.zip`` or an
extracted ``<set>/`` folder, for the sets ``images_background``,
``images_evaluation`` and the official subsets ``images_background_small1`` and
``images_background_small2``. A character is identified by its alphabet and
character folder, so one that appears in two sets counts once.

Images become 28 x 28 float32 arrays, ink 1.0 and paper 0.0 (``load_image``).
The preprocessed arrays are cached as one .npz under the user's cache folder
(never beside the data), keyed by the source files' names, sizes and times.
"""
import hashlib
import http.client
import io
import json
import os
import re
import urllib.request
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from .._atomic import atomic_write
from ..config import ConfigError, option
from ..outputs import cache_dir
from ..seeds import stream
from . import experiment
from .experiment import EvalConfig, FewShotConfig, Result  # noqa: F401  (the omniglot-eval command's; the Result)
from .fewshot import ClassPool, Pools

SETS = ("images_background", "images_evaluation", "images_background_small1",
        "images_background_small2")
URL = "https://github.com/brendenlake/omniglot/raw/master/python/"   # $MINIREPTILE_OMNIGLOT_URL: a mirror
MD5 = {"images_background.zip": "68d2efa1b9178cc56df9314c21c6e718",
       "images_evaluation.zip": "6b91aef0f799c5bb55b94e3f2daec811"}
#: The official smaller background subsets beside them (5 alphabets each; Greek and Latin in both):
#: enough to run every command in minutes, and what the tests read.
SUBSETS_MD5 = {"images_background_small1.zip": "e704a628b5459e08445c13499850abc4",
               "images_background_small2.zip": "b75a71a51d3b13f821f212756fe481fd"}
SIZE = 28
_MEMBER = re.compile(r"^(images_[a-z0-9_]+)/([^/]+)/(character\d+)/([^/]+\.png)$")


def preprocess(image):
    """A PIL image of a character (dark ink on light paper) -> (28, 28) float32, ink 1.0, paper 0.0.

    Resized with Pillow's LANCZOS filter in float precision, as every Omniglot image is.
    """
    gray = image.convert("F").resize((SIZE, SIZE), Image.LANCZOS)
    return np.clip(1.0 - np.asarray(gray, dtype=np.float32) / 255.0, 0.0, 1.0)


def load_image(file, name=None):
    """One Omniglot PNG (a path or a binary file object) -> (28, 28) float32, ink 1.0, paper 0.0.

    ``name`` labels the file in error messages (default: the path).
    """
    name = name or getattr(file, "name", file)
    try:
        with Image.open(file) as image:
            return preprocess(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"{name}: not a readable PNG image ({err})") from None


@dataclass
class Omniglot:
    """Preprocessed characters: images (C, D, 28, 28) float32 for C characters of D drawings,
    and names[c] = (alphabet, character folder)."""
    images: np.ndarray
    names: list
    sets: tuple = ()            # the sets it was read from, e.g. ("images_background", ...)

    @property
    def alphabets(self):
        return sorted({alphabet for alphabet, _ in self.names})

    def select(self, indices):
        indices = np.asarray(indices, dtype=int)
        return Omniglot(self.images[indices], [self.names[i] for i in indices], self.sets)


def find_sources(root):
    """The Omniglot sets under ``root``: [(set name, path to the .zip or folder)]."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"data folder {root} " + ("is a file, not a folder" if root.exists() else "does not exist"))
    sources = []
    for name in SETS:
        if (root / name).is_dir():
            sources.append((name, root / name))
        elif (root / f"{name}.zip").is_file():
            sources.append((name, root / f"{name}.zip"))
    if not sources:
        raise ValueError(f"{root} holds none of the Omniglot sets {', '.join(SETS)} "
                         "(as .zip files or extracted folders); python -m minireptile download --data DIR fetches them")
    return sources


def _stat_key(sources):
    """Names, sizes and modification times of every source file, hashed."""
    entries = []
    for _, path in sources:
        files = [path] if path.is_file() else sorted(path.rglob("*.png"))
        entries += [(str(f.relative_to(path.parent)), f.stat().st_size, f.stat().st_mtime_ns)
                    for f in files]
    return hashlib.sha1(json.dumps(entries).encode()).hexdigest()[:20]


def _members(name, path):
    """Yield (alphabet, character, label for errors, opener) for each PNG of one set."""
    if path.is_dir():
        for png in sorted(path.glob("*/character*/*.png")):
            yield png.parent.parent.name, png.parent.name, str(png), lambda png=png: open(png, "rb")
        return
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise ValueError(f"{path}: not a zip file") from None
    with archive:
        members = [m for m in archive.namelist() if m.endswith(".png")]
        matched = [(_MEMBER.match(m), m) for m in members]
        if not members or any(m is None or m.group(1) != name for m, _ in matched):
            bad = next((m for match, m in matched if match is None or match.group(1) != name), None)
            raise ValueError(f"{path}: not an Omniglot zip (expected {name}/<Alphabet>/characterNN/"
                             f"*.png, found {bad or 'no PNG files'})")
        for match, member in sorted(matched, key=lambda mm: mm[1]):
            yield (match.group(2), match.group(3), f"{path}:{member}",
                   lambda member=member: io.BytesIO(archive.read(member)))


def _read(sources):
    drawings = {}                                        # (alphabet, character) -> [image]
    for name, path in sources:
        seen = set()
        for alphabet, character, label, opener in _members(name, path):
            key = (alphabet, character)
            if key in drawings and key not in seen:     # the same character from another set
                continue
            seen.add(key)
            with opener() as f:
                drawings.setdefault(key, []).append(load_image(f, name=label))
        if not seen:
            raise ValueError(f"{path}: no character images found (empty folder?)")
    counts = {len(v) for v in drawings.values()}
    if len(counts) != 1:
        odd = min(drawings, key=lambda k: len(drawings[k]))
        raise ValueError(f"characters have different numbers of drawings ({sorted(counts)}); "
                         f"for example {odd} has {len(drawings[odd])}")
    names = sorted(drawings)
    return Omniglot(np.stack([np.stack(drawings[k]) for k in names]), names)


def load(root, cache=None):
    """All the Omniglot sets found under ``root``, preprocessed, through the cache."""
    sources = find_sources(root)
    sets = tuple(name for name, _ in sources)
    path = cache_dir(cache) / f"omniglot-{_stat_key(sources)}.npz"
    if path.is_file():
        with np.load(path) as f:
            return Omniglot(f["images"], [tuple(n) for n in json.loads(str(f["names"]))], sets)
    data = _read(sources)
    with atomic_write(path) as f:
        np.savez(f, images=data.images, names=np.array(json.dumps(data.names)))
    return Omniglot(data.images, data.names, sets)


def download(root, files=tuple(MD5), url=None, md5=None, timeout=60, progress=False):
    """Fetch the official zips into ``root`` over HTTPS and verify their md5 sums.

    Each file is written to a temporary file and renamed only when its sum
    matches; a mismatch or an interrupted download leaves no partial file.
    Files already present with the right sum are kept. Returns the paths.
    """
    md5 = (MD5 | SUBSETS_MD5) if md5 is None else md5
    url = url or os.environ.get("MINIREPTILE_OMNIGLOT_URL") or URL
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in files:
        target = root / name
        if target.is_file() and _md5_file(target) == md5[name]:
            paths.append(target)
            continue
        with atomic_write(target) as out:                 # renamed into place only if the sum matches
            try:
                with urllib.request.urlopen(url + name, timeout=timeout) as response, tqdm(
                        total=int(response.headers.get("Content-Length") or 0) or None, unit="B",
                        unit_scale=True, desc=name, disable=not progress, leave=False) as bar:
                    got = _md5(response, copy_to=out, bar=bar)
            except (OSError, http.client.HTTPException) as err:
                raise OSError(f"download of {name} from {url} failed ({err!r}); nothing was written") from err
            if got != md5[name]:
                raise DownloadCorrupt(f"{name}: md5 {got} does not match the expected {md5[name]} "
                                 "(corrupted or incomplete download); nothing was written")
        paths.append(target)
    return paths


class DownloadCorrupt(OSError):
    """A downloaded file whose md5 sum is not the official one."""


def _md5(stream, copy_to=None, bar=None):
    """The md5 hex digest of a binary stream, read in 1 MiB blocks (each also written to copy_to)."""
    digest = hashlib.md5()
    for block in iter(lambda: stream.read(1 << 20), b""):
        digest.update(block)
        if copy_to is not None:
            copy_to.write(block)
        if bar is not None:
            bar.update(len(block))
    return digest.hexdigest()


def _md5_file(path):
    with open(path, "rb") as f:
        return _md5(f)


def split_by_alphabet(data, test_alphabets):
    """(train, test) Omniglot: the characters of ``test_alphabets`` against all the others."""
    test_alphabets = list(test_alphabets)
    unknown = sorted(set(test_alphabets) - set(data.alphabets))
    if unknown:
        raise ConfigError("test_alphabets", "alphabets of the data (" + ", ".join(data.alphabets) + ")",
                          unknown)
    test = [i for i, (alphabet, _) in enumerate(data.names) if alphabet in test_alphabets]
    train = [i for i, (alphabet, _) in enumerate(data.names) if alphabet not in test_alphabets]
    if not train:
        raise ConfigError("test_alphabets", "a part of the alphabets, leaving some to train on",
                          test_alphabets)
    return data.select(train), data.select(test)


def paper_split(data, seed=0, train=1200):
    """The paper's split: all characters shuffled with ``seed``; ``train`` for training, the rest test."""
    if not 0 < train < len(data.names):
        raise ValueError(f"train must lie between 1 and {len(data.names) - 1} characters for this "
                         f"data, got {train}; split the small subsets by alphabet")
    order = stream(seed, "data split").permutation(len(data.names))
    return data.select(np.sort(order[:train])), data.select(np.sort(order[train:]))


#: The default held-out alphabets on data other than the full sets: the three alphabets of
#: images_background_small2 that images_background_small1 lacks.
SMALL_TEST_ALPHABETS = ("Japanese_(katakana)", "Sanskrit", "Tagalog")
TEST_ALPHABETS_HELP = ("alphabets to test on (default: the paper's split on the full sets; on other data "
                       "those of " + ", ".join(SMALL_TEST_ALPHABETS) + " it has, else the last third "
                       "of its alphabets)")


def default_test_alphabets(data):
    """The documented default split, as the test alphabets (None: the paper's split).

    Data holding both full sets (images_background and images_evaluation) gets the paper's
    split. Any other data holds out those of SMALL_TEST_ALPHABETS it has, if that leaves some
    alphabets to train on; otherwise the last third of its alphabets in alphabetical order.
    """
    if {"images_background", "images_evaluation"} <= set(data.sets):
        return None
    alphabets = data.alphabets
    if len(alphabets) < 2:
        raise ConfigError("data", "Omniglot with at least two alphabets (one to train on, one to "
                          "test on)", f"only {', '.join(alphabets)}")
    test = [a for a in SMALL_TEST_ALPHABETS if a in alphabets]
    if not test or len(test) == len(alphabets):
        test = alphabets[-max(1, len(alphabets) // 3):]
    return tuple(test)


def split(data, test_alphabets=None, seed=0, origin="given"):
    """(train, test, test alphabets, how): the alphabets named (``origin`` says by whom), else the
    default split (see ``default_test_alphabets``); ``how`` says which."""
    chosen = tuple(test_alphabets) if test_alphabets else default_test_alphabets(data)
    if chosen is None:
        train, test = paper_split(data, seed=seed)
        return train, test, None, f"the paper's split (seed {seed}): {len(train.names)} training characters"
    train, test = split_by_alphabet(data, chosen)
    how = origin if test_alphabets else "the default for this data; --test-alphabets to choose"
    return train, test, chosen, f"test alphabets {', '.join(chosen)} ({how})"


def pools(root, test_alphabets=None, seed=0, cache=None, origin="given"):
    """The ``fewshot.Pools`` of the Omniglot under ``root``, split as ``split`` says."""
    train, test, chosen, how = split(load(root, cache=cache), test_alphabets, seed, origin)
    train_pool, test_pool = ClassPool(train.images, rotations=True), ClassPool(test.images)
    return Pools(train_pool, test_pool, f"{how}; {train_pool.num_classes} training classes (with "
                 f"rotations), {test_pool.num_classes} test classes", test_alphabets=chosen)


#: The paper's hyperparameters (its appendix, Table 3) that differ between 5-way and 20-way Omniglot.
PRESETS = {"5-way": {},
           "20-way": dict(ways=20, inner_batch=20, inner_iters=10, inner_lr=0.0005, eval_batch=10, eval_iters=50)}

DATA_HELP = "folder holding the Omniglot zips or folders (python -m minireptile download fetches them)"


@dataclass(frozen=True)
class OmniglotConfig(FewShotConfig):
    """The few-shot experiment on Omniglot, with its data and split."""
    data: str = option(None, DATA_HELP, train=False, type=str, metavar="DIR")
    test_alphabets: tuple = option(None, TEST_ALPHABETS_HELP, nargs="+", metavar="NAME")


Config = OmniglotConfig

#: The command's budgets, as changes to OmniglotConfig: "smoke" checks that it runs (seconds); "full" is
#: the paper's (days here: docs/results.md).
BUDGETS = {"smoke": dict(iterations=4, eval_every=2, eval_tasks=4, eval_iters=5), "grading": dict(
    iterations=2, eval_every=2, eval_tasks=2, eval_iters=2), "class": dict(iterations=1000, eval_tasks=200),
    "full": {}}
OUTPUTS, checkpoints = experiment.OUTPUTS, experiment.checkpoints


def test_pool(root, test_alphabets=None, saved=None):
    """(the test pool of ``root``, a line describing it) for evaluating a checkpoint: split by
    ``test_alphabets``, else as the checkpoint's record ``saved`` (its configuration) says."""
    saved = saved or {}
    origin = "given" if test_alphabets else "the checkpoint's split"
    found = pools(root, test_alphabets or saved.get("test_alphabets"), saved.get("seed", 0), origin=origin)
    return found.test, found.description


def prepare(config, progress=True):
    """(config with its split's test alphabets, the Pools of ``config.data``), checked against each other:
    the ``prepare`` of every study on Omniglot."""
    found = pools(config.data, config.test_alphabets, config.seed)
    config = replace(config, test_alphabets=found.test_alphabets)
    config.check_data(found)
    return config, found


def run(config, out=None, *, resume=False, progress=True, workers=None, pools=None):
    """The few-shot experiment on Omniglot (``experiment.run_experiment``): on ``pools`` (``fewshot.Pools``)
    if given, else on those of ``config.data``."""
    from ..models import omniglot_net
    if pools is None:
        config, pools = prepare(config, progress)
    return experiment.run_experiment(omniglot_net(config.ways), config, pools, out, command="omniglot",
                                     resume=resume, progress=progress, workers=workers)


class DataMissing(RuntimeError):
    """No Omniglot where one was looked for, and no way to download it."""


def default_data_dir():
    """$MINIREPTILE_OMNIGLOT, else $XDG_DATA_HOME/minireptile/omniglot (~/.local/share/...)."""
    if os.environ.get("MINIREPTILE_OMNIGLOT"):
        return Path(os.environ["MINIREPTILE_OMNIGLOT"])
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "minireptile" / "omniglot"


def locate(root=None, download_missing=True, progress=True):
    """A folder holding Omniglot: ``root``, else ``default_data_dir()``. If it holds none and
    ``download_missing``, the full sets are downloaded into it; if that fails, DataMissing
    says how to get the data."""
    root = Path(root) if root is not None else default_data_dir()
    if root.is_dir() and any((root / f"{n}.zip").is_file() or (root / n).is_dir() for n in SETS):
        return root
    how = (f"no Omniglot at {root}. Get it with `python -m minireptile download --data {root}` on a "
           "machine with network access (or copy images_background.zip and images_evaluation.zip "
           "there), or point MINIREPTILE_OMNIGLOT at a folder that holds them")
    if not download_missing:
        raise DataMissing(how)
    existed = root.exists()
    try:
        download(root, progress=progress)
    except (OSError, ValueError) as err:
        if not existed and root.is_dir() and not any(root.iterdir()):
            root.rmdir()
        raise DataMissing(f"{how}. (The download failed: {err})") from None
    return root


def notebook_pools(budget="class"):
    """The ``fewshot.Pools`` of a notebook at a course budget (``course.notebook_budget()``): Omniglot
    found by ``locate``, at the "class" budget downloaded when missing (DataMissing says how to get it
    where that fails). At the "smoke" and "grading" budgets, where there is no Omniglot, tiny pools of
    random patterns stand in (``synthetic``), and the description says in one sentence how to get the
    data: no number from them is a result, and the graded checks never depend on them."""
    if budget not in ("class", "smoke", "grading"):
        raise ValueError(f"notebook_pools: budget must be 'class', 'smoke' or 'grading', got {budget!r}")
    try:
        found = locate(download_missing=budget == "class")
    except DataMissing:
        if budget == "class":
            raise                              # the message says how to get the data
        rng = stream(0, "synthetic data")
        patterns = lambda n: rng.uniform(0, 1, (n, 1, 28, 28)) + 0.1 * rng.standard_normal((n, 20, 28, 28))
        return Pools(ClassPool(patterns(10)), ClassPool(patterns(6)), (
            "No Omniglot found, so synthetic random patterns stand in and no number below is a result: "
            "set MINIREPTILE_OMNIGLOT to a folder that holds it (python -m minireptile download --data DIR "
            "--subsets fetches the small subsets, 3 MB) and restart the kernel."), synthetic=True)
    return pools(found)
