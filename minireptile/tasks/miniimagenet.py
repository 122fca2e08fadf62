"""Mini-ImageNet: read any of its three common layouts, cache it as uint8, split into pools.

Mini-ImageNet (Vinyals et al. 2016, with Ravi and Larochelle's split) is 100 ImageNet classes
of 600 images: 64 to train on, 16 to validate with and 20 to test on. It is read from whichever
of these layouts a folder holds, split by split:

- class folders ``<root>/{train,val,test}/<wnid>/*.JPEG`` (the layout of the authors' fetch script);
- Ravi and Larochelle's split files ``<root>/{train,val,test}.csv`` (``filename,label``) beside
  ``<root>/images/``;
- the pickled caches that several libraries distribute, ``<root>/mini-imagenet-cache-{split}.pkl``:
  a dict with ``image_data`` (N, 84, 84, 3) uint8 and ``class_dict`` (class -> its row indices).
  They are unpickled by ``ArraysOnly``, which builds plain containers and NumPy arrays only: any
  other class or function named in the file is refused, so no code in it runs.

Every image becomes 84 x 84 RGB uint8 (Pillow; images of another size are resized with the
LANCZOS filter, images already 84 x 84 are kept as they are). Classes are sorted by name and
each class's images by file name (by row for the pickles). The uint8 arrays are cached, one
``.npy`` per split, under the user's cache folder (``outputs.cache_dir``), keyed by the source
files' names, sizes and modification times, so a changed file builds a new cache. Pools
memory-map them and hand out float32 in [0, 1] for the images a task uses only: the full set is
about 1.3 GB as uint8 and is never held in memory, let alone as float.
"""
import csv
import hashlib
import json
import os
import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from .._atomic import atomic_write
from ..config import option
from ..outputs import cache_dir
from . import experiment
from .experiment import EvalConfig, FewShotConfig, Result
from .fewshot import ImagePool

SPLITS = ("train", "val", "test")
SIZE = 84
EXTENSIONS = (".jpeg", ".jpg", ".png")
_CACHE_FORMAT = 1                                   # bump when the cached arrays change meaning


def load_image(file, name=None, size=SIZE):
    """One image (a path or a binary file object) -> (size, size, 3) uint8 RGB.

    Resized with Pillow's LANCZOS filter unless it already has that size. ``name`` labels the
    file in error messages (default: the path).
    """
    name = name or (str(file) if isinstance(file, (str, os.PathLike)) else getattr(file, "name", "image"))
    try:
        with Image.open(file) as image:
            image = image.convert("RGB")
            if image.size != (size, size):
                image = image.resize((size, size), Image.LANCZOS)
            return np.asarray(image, dtype=np.uint8)
    except UnidentifiedImageError:
        raise ValueError(f"{name}: not a readable image (an unknown format, or corrupt)") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"{name}: not a readable image ({err})") from None


# ----------------------------------------------------------------------------- the layouts

class ArraysOnly(pickle.Unpickler):
    """An unpickler that builds dicts, lists, strings, numbers and NumPy arrays, and nothing else.

    A pickle names the functions it calls to rebuild its objects; this one looks up only the few
    that rebuild an ndarray, a dtype or a NumPy scalar, and refuses every other name, so a
    malicious file cannot run code. (encoding="latin1" reads the Python 2 pickles too.)
    """
    ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict"),
               ("_codecs", "encode"),                      # bytes in protocol 2 (text -> bytes, no code)
               *((f"numpy.{core}.multiarray", f) for core in ("core", "_core") for f in ("_reconstruct", "scalar")),
               *((f"numpy.{core}.numeric", "_frombuffer") for core in ("core", "_core"))}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"it names {module}.{name}, which is neither a container nor a "
                                     "NumPy array (refused: unpickling it could run code)")


def read_pickle(path):
    """A ``mini-imagenet-cache-*.pkl`` -> {class: images (n, 84, 84, 3) uint8}, classes sorted."""
    try:
        with open(path, "rb") as f:
            data = ArraysOnly(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as err:
        raise ValueError(f"{path}: not a Mini-ImageNet cache pickle ({err})") from None
    if not isinstance(data, dict) or not {"image_data", "class_dict"} <= set(data):
        raise ValueError(f"{path}: not a Mini-ImageNet cache pickle (expected a dict with image_data and "
                         "class_dict)")
    images, classes = data["image_data"], data["class_dict"]
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"{path}: image_data must be a uint8 array (N, H, W, 3), got "
                         f"{getattr(images, 'dtype', type(images).__name__)} {getattr(images, 'shape', '')}")
    out = {}
    for name in sorted(classes):
        rows = np.asarray(classes[name]).astype(np.int64, copy=False)
        if rows.ndim != 1 or rows.size == 0 or rows.min() < 0 or rows.max() >= len(images):
            raise ValueError(f"{path}: class {name} lists rows outside image_data (0..{len(images) - 1})")
        out[str(name)] = images[rows]
    return out


def read_csv(path, images_folder):
    """A split file ``filename,label`` -> {class: [image path]}, classes and files sorted.
    Every named file must exist."""
    classes = {}
    with open(path, newline="") as f:
        rows = csv.reader(f)
        header = next(rows, None)
        if header is None or [h.strip().lower() for h in header[:2]] != ["filename", "label"]:
            raise ValueError(f"{path}: not a Mini-ImageNet split file (expected the header filename,label, "
                             f"got {','.join(header or []) or 'an empty file'})")
        for line, row in enumerate(rows, start=2):
            if not row:
                continue
            if len(row) < 2:
                raise ValueError(f"{path} line {line}: expected filename,label, got {','.join(row)}")
            image = images_folder / row[0].strip()
            if not image.is_file():
                raise ValueError(f"{path} line {line}: {image} does not exist")
            classes.setdefault(row[1].strip(), []).append(image)
    return {name: sorted(files) for name, files in sorted(classes.items())}


def read_folders(folder):
    """``<split>/<class>/*.JPEG`` -> {class: [image path]}, classes and files sorted."""
    classes = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = sorted(p for p in sub.iterdir() if p.suffix.lower() in EXTENSIONS)
        if files:
            classes[sub.name] = files
    return classes


def find_sources(root):
    """{split: (layout, path)} for the splits under ``root``; in each, class folders are preferred
    to a split file, and a split file to a pickle. Train and test must be there; val may not."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"data folder {root} " + ("is a file, not a folder" if root.exists() else "does not exist"))
    sources = {}
    for split in SPLITS:
        pickled = root / f"mini-imagenet-cache-{split}.pkl"
        if (root / split).is_dir() and read_folders(root / split):
            sources[split] = ("folders", root / split)
        elif (root / f"{split}.csv").is_file() and (root / "images").is_dir():
            sources[split] = ("csv", root / f"{split}.csv")
        elif pickled.is_file():
            sources[split] = ("pickle", pickled)
    missing = [s for s in ("train", "test") if s not in sources]
    if missing:
        raise ValueError(f"{root} holds no Mini-ImageNet {' and '.join(missing)} split: expected "
                         "{train,val,test}/<class>/*.JPEG, {train,val,test}.csv beside images/, or "
                         "mini-imagenet-cache-{train,val,test}.pkl")
    return sources


def _files(layout, path):
    if layout == "folders":
        return [f for files in read_folders(path).values() for f in files]
    if layout == "csv":
        return [path] + [f for files in read_csv(path, path.parent / "images").values() for f in files]
    return [path]


def _stat_key(sources, size):
    """The names, sizes and modification times of every source file, hashed."""
    entries = [_CACHE_FORMAT, size]
    for split, (layout, path) in sorted(sources.items()):
        entries += [(split, layout, str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in _files(layout, path)]
    return hashlib.sha1(json.dumps(entries).encode()).hexdigest()[:20]


# ----------------------------------------------------------------------------- the cache

@dataclass
class MiniImageNet:
    """The splits: {split: ImagePool} over the memory-mapped uint8 cache, and where it came from."""
    pools: dict
    sources: dict                     # {split: (layout, path)}
    cache: Path


def load(root, cache=None, size=SIZE, progress=False):
    """Every split under ``root`` (see ``find_sources``), through the uint8 cache."""
    root = Path(root).resolve()
    sources = find_sources(root)
    folder = cache_dir(cache) / f"miniimagenet-{_stat_key(sources, size)}"
    if not (folder / "index.json").is_file():
        _build(folder, root, sources, size, progress)
    index = json.loads((folder / "index.json").read_text())
    pools = {split: ImagePool(np.load(folder / f"{split}.npy", mmap_mode="r"), entry["counts"],
                              entry["classes"], path=str(folder / f"{split}.npy"))
             for split, entry in index["splits"].items()}
    return MiniImageNet(pools, sources, folder)


def _build(folder, root, sources, size, progress):
    """Write every split's images into ``folder`` (built under a temporary name, renamed when
    whole, so Ctrl-C leaves no half cache); remove older caches of the same root."""
    partial = folder.with_name(f".{folder.name}.{os.getpid()}.partial")
    partial.mkdir(parents=True, exist_ok=True)
    try:
        index = {"root": str(root), "size": size, "splits": {}}
        for split, (layout, path) in sources.items():
            classes, counts = _write_split(partial / f"{split}.npy", layout, path, size, progress, split)
            index["splits"][split] = {"layout": layout, "classes": classes, "counts": counts}
        with atomic_write(partial / "index.json", "w") as f:
            json.dump(index, f)
        try:
            partial.rename(folder)
        except OSError:                                # another process built it meanwhile
            if not (folder / "index.json").is_file():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    for old in folder.parent.glob("miniimagenet-*/index.json"):
        if old.parent != folder and json.loads(old.read_text()).get("root") == str(root):
            shutil.rmtree(old.parent, ignore_errors=True)


def _write_split(target, layout, path, size, progress, split):
    """One split as a uint8 .npy (N, size, size, 3), class after class; returns (classes, counts)."""
    readers = {"pickle": read_pickle, "folders": read_folders,
               "csv": lambda p: read_csv(p, p.parent / "images")}
    groups = readers[layout](path)                    # {class: [path] or images (n, H, W, 3)}
    count = sum(len(v) for v in groups.values())
    if not groups:
        raise ValueError(f"{path}: no images found")
    array = np.lib.format.open_memmap(target, mode="w+", dtype=np.uint8, shape=(count, size, size, 3))
    row = 0
    with tqdm(total=count, desc=f"caching Mini-ImageNet {split}", unit="image", disable=not progress,
              leave=False, mininterval=0.5) as bar:
        for images in groups.values():
            for image in images:
                if isinstance(image, Path):
                    array[row] = load_image(image, size=size)
                elif image.shape[:2] != (size, size):
                    array[row] = load_image_array(image, size)
                else:
                    array[row] = image
                row += 1
                bar.update()
    array.flush()
    del array
    return list(groups), [len(v) for v in groups.values()]


def load_image_array(image, size=SIZE):
    """(H, W, 3) uint8 -> (size, size, 3) uint8, resized as ``load_image`` resizes."""
    return np.asarray(Image.fromarray(image).resize((size, size), Image.LANCZOS), dtype=np.uint8)


# ----------------------------------------------------------------------------- the experiment

def pools(root, cache=None, progress=False):
    """The ``fewshot.Pools`` (ImagePools) of the Mini-ImageNet under ``root``, with a line describing them."""
    from .fewshot import Pools
    data = load(root, cache=cache, progress=progress)
    description = "Mini-ImageNet (" + "; ".join(
        f"{split}: {pool.num_classes} classes, {int(pool.counts.sum())} images from the {data.sources[split][0]}"
        for split, pool in data.pools.items()) + ")"
    return Pools(data.pools["train"], data.pools["test"], description, val=data.pools.get("val"))


DATA_HELP = ("Mini-ImageNet folder: {train,val,test}/<class>/*.JPEG, {train,val,test}.csv beside images/, "
             "or mini-imagenet-cache-{train,val,test}.pkl")


@dataclass(frozen=True)
class MiniImageNetConfig(FewShotConfig):
    """The paper's 5-way Mini-ImageNet recipe (Table 3 of the appendix): the inner Adam (lr 0.001,
    beta1 = 0) for 8 steps on minibatches of 10 from 15 images per class, 5 tasks per meta-step,
    meta step 1 annealed to 0 over 100,000 iterations; evaluated 1-shot and 5-shot with 50 inner
    steps on minibatches of 5."""
    inner_iters: int = option(8, "inner steps per task in training (k)")
    train_shots: int = option(15, "images per class that a training task draws")
    final_shots: tuple = option((1, 5), "support images per class (K) of the final evaluations, one "
                                "evaluation each", train=False, nargs="+", type=int)
    data: str = option(None, DATA_HELP, train=False, type=str, metavar="DIR")


Config = MiniImageNetConfig

#: The command's budgets, as changes to MiniImageNetConfig: "smoke" checks that it runs; "full" is the
#: paper's (days here: docs/results.md).
BUDGETS = {"smoke": dict(iterations=2, eval_every=2, eval_tasks=2, eval_iters=2), "grading": dict(
    iterations=2, eval_every=2, eval_tasks=2, eval_iters=2), "class": dict(iterations=200, eval_tasks=50),
    "full": {}}
OUTPUTS, checkpoints = experiment.OUTPUTS, experiment.checkpoints


def test_pool(root, split="test", progress=False):
    """(the ``split`` pool of ``root``, a line describing it) for evaluating a checkpoint."""
    from ..config import ConfigError
    found = pools(root, progress=progress)
    if getattr(found, split) is None:
        raise ConfigError("split", f"one of the splits {root} has (train, test)", split)
    return getattr(found, split), f"{found.description}; evaluating on {split}"


def prepare(config, progress=True):
    """(config, the Pools of ``config.data``; the cache is built on first use), checked against each other."""
    found = pools(config.data, progress=progress)
    config.check_data(found)
    return config, found


def run(config, out=None, *, resume=False, progress=True, workers=None, pools=None):
    """The few-shot experiment on Mini-ImageNet (``experiment.run_experiment``), its learning curve on the
    validation classes: on ``pools`` if given, else on those of ``config.data``."""
    from ..models import miniimagenet_net
    if pools is None:
        config, pools = prepare(config, progress)
    return experiment.run_experiment(miniimagenet_net(config.ways), config, pools, out, command="miniimagenet",
                                     resume=resume, progress=progress, workers=workers)


@dataclass(frozen=True)
class MiniImageNetEvalConfig(EvalConfig):
    """Evaluating a trained theta: the 1-shot and the 5-shot evaluation, as the paper reports them."""
    shots: tuple = option((1, 5), "support images per class (K); several values give an evaluation "
                          "each", nargs="+", type=int)
