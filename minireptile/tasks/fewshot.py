"""N-way K-shot classification tasks, sampled T at a time on the task axis.

A task picks N classes and gives them the labels 0..N-1 in random order (so no
prediction is possible before adaptation), then K images of each. Inner-loop
minibatches are drawn as the authors' code draws them: cycle through the
shuffled support set, reshuffling each time it is used up.
"""
import copy
import math
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from ..inner import run_adam, run_sgd
from ..losses import softmax_cross_entropy
from ..memory import image_bytes, images_at_once
from .. import memory as _memory
from .._program import blas_limited


class Pool:
    """What every pool of classes shares: drawing tasks as indices, sampling, sharing with workers.

    A subclass sets ``num_classes``, ``counts`` (C,) (the images of each class) and ``names``
    (or None), and gathers the images of drawn tasks (``gather``).
    """

    def sample(self, rng, T, ways, shots):
        """x (T, ways, shots, channels, H, W) and labels (T, ways, shots): T tasks, distinct images."""
        return self.gather(*self.draw(rng, T, ways, shots))

    def draw(self, rng, T, ways, shots):
        """Which images T tasks use, without the images: classes (T, N), drawings (T, N, K),
        K distinct images of each of N distinct classes."""
        fewest, name = self.smallest()
        if not isinstance(ways, (int, np.integer)) or not 1 <= ways <= self.num_classes:
            raise ValueError(f"ways must lie in [1, {self.num_classes}] (the classes available), got {ways!r}")
        if not isinstance(shots, (int, np.integer)) or not 1 <= shots <= fewest:
            why = f"class {name} has {fewest} images" if name else "images per class"
            raise ValueError(f"shots must lie in [1, {fewest}] ({why}), got {shots!r}")
        if not isinstance(T, (int, np.integer)) or T < 1:
            raise ValueError(f"the number of tasks must be a positive integer, got {T!r}")
        classes = np.argsort(rng.random((T, self.num_classes)), axis=1)[:, :ways]   # (T, N)
        keys = rng.random((T, ways, self.counts.max()))                            # a random order of
        keys[np.arange(keys.shape[-1]) >= self.counts[classes][..., None]] = 2.0   # each class's images
        return classes, np.argsort(keys, axis=2)[..., :shots]                      # (T, N, K)

    def smallest(self):
        """(images in the smallest class, its name or None)."""
        c = int(np.argmin(self.counts))
        return int(self.counts[c]), self.names[c] if self.names else None

    def with_data(self, images):
        """This pool over another copy of its images (a worker's memory-mapped one), or None."""
        pool = copy.copy(self)
        pool.images = images
        return pool


@dataclass(frozen=True)
class Pools:
    """The pools of one dataset's split, the same type for every dataset: training and test classes,
    validation classes where the data has them, and a line describing the split."""
    train: Pool
    test: Pool
    description: str
    val: Pool = None
    test_alphabets: tuple = None         # Omniglot: the test alphabets (None: the paper's split)
    synthetic: bool = False              # random patterns standing in for missing data: no number is a result


class ClassPool(Pool):
    """Classes of images: (C, D, H, W) for C characters with D drawings each.

    With ``rotations`` each character gives four classes, rotated by 0, 90, 180
    and 270 degrees (the paper's augmentation of the training characters).
    """
    names = None

    def __init__(self, images, rotations=False):
        self.images = np.asarray(images, dtype=np.float32)
        if self.images.ndim != 4:
            raise ValueError(f"images must have shape (classes, drawings, H, W), got {self.images.shape}")
        self.rotations = 4 if rotations else 1
        self.num_classes = len(self.images) * self.rotations
        self.counts = np.full(self.num_classes, self.images.shape[1])

    @property
    def image_shape(self):
        """(1, H, W): the shape of one image of a task."""
        return (1,) + self.images.shape[-2:]

    def gather(self, classes, drawings):
        """The images and labels of ``draw``'s tasks: (T, N, K, 1, H, W) and (T, N, K)."""
        x = self.images[(classes // self.rotations)[..., None], drawings]           # (T, N, K, H, W)
        turns = classes % self.rotations
        for r in range(1, self.rotations):
            x[turns == r] = np.rot90(x[turns == r], r, axes=(-2, -1))
        return x[:, :, :, None], task_labels(drawings.shape)


class ImagePool(Pool):
    """Classes of colour images, each with its own number of images: class c is the rows
    ``starts[c] : starts[c] + counts[c]`` of a uint8 array (N, H, W, 3), usually memory-mapped
    from a cache file (``path``). Tasks get float32 in [0, 1], channels first.
    """
    rotations = 1

    def __init__(self, images, counts, names=None, path=None):
        self.images, self.path = images, path                         # (N, H, W, 3) uint8
        self.counts = np.asarray(counts, dtype=np.int64)              # (C,)
        self.starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]])
        self.names = list(names) if names is not None else [str(c) for c in range(len(self.counts))]
        self.num_classes = len(self.counts)

    @property
    def image_shape(self):
        """(3, H, W): the shape of one image of a task (channels first)."""
        return (self.images.shape[3],) + self.images.shape[1:3]

    def gather(self, classes, drawings):
        """The images and labels of ``draw``'s tasks: (T, N, K, 3, H, W) float32 and (T, N, K)."""
        rows = self.starts[classes][..., None] + drawings                         # (T, N, K)
        x = self.images[rows.ravel()].reshape(rows.shape + self.images.shape[1:])  # (T, N, K, H, W, 3)
        x = np.multiply(x, np.float32(1 / 255), dtype=np.float32)
        return np.moveaxis(x, -1, -3), task_labels(drawings.shape)


def task_labels(shape):
    """(T, N, K) labels: class n of every task is label n."""
    T, ways, shots = shape
    return np.broadcast_to(np.arange(ways)[None, :, None], (T, ways, shots)).copy()


def flatten_task(x, labels):
    """(T, N, K, ...) images and (T, N, K) labels -> (T, N K, ...) and (T, N K)."""
    T = x.shape[0]
    return x.reshape((T, -1) + x.shape[3:]), labels.reshape(T, -1)


def cycle_order(rng, T, n, batch_size, num_batches):
    """The authors' minibatch order: cycle through a shuffled copy of each task's n samples,
    reshuffling when it is used up. Returns sample indices (T, num_batches, batch_size)."""
    if not 1 <= batch_size:
        raise ValueError(f"batch_size must be positive, got {batch_size!r}")
    epochs = math.ceil(batch_size * num_batches / n)
    order = np.argsort(rng.random((T, epochs, n)), axis=2).reshape(T, epochs * n)
    return order[:, :batch_size * num_batches].reshape(T, num_batches, batch_size)


def take_batches(x, labels, order):
    """x (T, n, ...), labels (T, n) and an order (T, k, B) -> [(x_i (T, B, ...), labels_i (T, B))] * k."""
    rows = np.arange(len(order))[:, None]
    return [(x[rows, order[:, i]], labels[rows, order[:, i]]) for i in range(order.shape[1])]


def cycle_batches(rng, x, labels, batch_size, num_batches):
    """The authors' inner minibatches: x (T, n, ...), labels (T, n) ->
    [(x_i (T, B, ...), labels_i (T, B))] * num_batches."""
    return take_batches(x, labels, cycle_order(rng, *labels.shape, batch_size, num_batches))


class TrainingSampler:
    """sample(rng) -> the inner minibatches of ``meta_batch`` tasks, for ``meta_train``.

    ``plan(rng)`` draws every task as indices only (which images, in which order) and
    ``gather(plan, slots)`` turns the plan of some task slots into minibatches: a driver
    can draw all the tasks and let workers, each with its own copy of the pool, gather
    their slots. The random stream, and so the result, does not depend on the split.
    With ``tail_shots``, ``tail_shots`` images per class are held out of the cycle and the
    last minibatch is either those images (first-order MAML's *separate tail*: data the
    earlier minibatches never saw) or, with ``shared_tail``, the cycle's next minibatch (the
    *shared tail*: data of the same training set). The two draw the same random numbers, so
    for the same generator state they differ in the last minibatch only.
    """

    def __init__(self, pool, ways, shots, batch_size, inner_iters, meta_batch, tail_shots=None,
                 shared_tail=False):
        if tail_shots is not None and not 1 <= tail_shots < shots:
            raise ValueError(f"tail_shots must lie in [1, shots = {shots}), got {tail_shots!r}")
        if shared_tail and tail_shots is None:
            raise ValueError("shared_tail needs tail_shots (the images held out of the shared cycle)")
        self.pool, self.ways, self.shots, self.batch_size = pool, ways, shots, batch_size
        self.inner_iters, self.meta_batch, self.tail_shots = inner_iters, meta_batch, tail_shots
        self.shared_tail = shared_tail

    def plan(self, rng):
        """{"classes" (T, N), "drawings" (T, N, K), "order" (T, k, B)}: the tasks, as indices."""
        classes, drawings = self.pool.draw(rng, self.meta_batch, self.ways, self.shots)
        head = self.ways * (self.shots - (self.tail_shots or 0))            # images in the cycle
        order = cycle_order(rng, self.meta_batch, head, self.batch_size, self.inner_iters)
        return {"classes": classes, "drawings": drawings, "order": order}

    def gather(self, plan, slots=slice(None)):
        """The minibatches [(x_i (t, B, ...), labels_i (t, B))] of the plan's ``slots``."""
        x, labels = self.pool.gather(plan["classes"][slots], plan["drawings"][slots])
        tail = self.tail_shots or 0
        order = plan["order"][slots]                                          # (t, k, B)
        if not tail or self.shared_tail:
            return take_batches(*flatten_task(x[:, :, tail:], labels[:, :, tail:]), order)
        head = take_batches(*flatten_task(x[:, :, tail:], labels[:, :, tail:]), order[:, :-1])
        return head + [flatten_task(x[:, :, :tail], labels[:, :, :tail])]

    def __call__(self, rng):
        return self.gather(self.plan(rng))

    def __getstate__(self):                  # a worker gets the pool once, not with every task
        return self.__dict__ | {"pool": None}


def training_sampler(pool, ways, shots, batch_size, inner_iters, meta_batch, tail_shots=None, shared_tail=False):
    """A TrainingSampler (see there)."""
    return TrainingSampler(pool, ways, shots, batch_size, inner_iters, meta_batch, tail_shots, shared_tail)


def predict(net, phi, support, queries, transductive, memory=None):
    """Logits (T, Q, N) for the queries (T, Q, ...) with adapted weights phi (T, P).

    Transductive: all queries in one batch, so BatchNorm normalizes them together.
    Non-transductive: each query in a batch of its own with the support set (T, S, ...),
    so no query sees another; the T Q such batches run on the task axis, as many at once as
    ``memory`` bytes hold (default: the process's budget, ``memory.budget()``).
    """
    if transductive:
        return net.forward(phi, queries)[0]
    T, Q, S = queries.shape[0], queries.shape[1], support.shape[1]
    at_once = max(1, images_at_once(net, queries.shape[2:], backward=False, dtype=phi.dtype,
                                    memory=memory) // (S + 1))           # query batches per piece
    logits = []
    for start in range(0, T * Q, at_once):
        rows = np.arange(start, min(start + at_once, T * Q))            # row r: task r // Q, query r % Q
        batch = np.concatenate([support[rows // Q], queries[rows // Q, rows % Q][:, None]], axis=1)
        logits.append(net.forward(phi[rows // Q], batch)[0][:, -1])     # (rows, N)
    return np.concatenate(logits).reshape(T, Q, -1)


@dataclass(frozen=True)
class Protocol:
    """How a test task is scored: ``ways``-way ``shots``-shot; theta is fine-tuned on the support set
    by ``inner`` ("adam", the paper's, or plain "sgd") for ``inner_iters`` steps of step size ``lr`` on
    minibatches of ``batch_size`` support images, then one query per class is classified."""
    ways: int = 5
    shots: int = 1
    lr: float = 0.001
    inner_iters: int = 50
    batch_size: int = 5
    inner: str = "adam"

    def __post_init__(self):
        if self.inner not in ("adam", "sgd"):
            raise ValueError(f"inner must be 'adam' or 'sgd', got {self.inner!r}")


#: the two ways of classifying a test task's queries (``predict``)
MODES = ("non-transductive", "transductive")


@dataclass(frozen=True)
class Score:
    """Accuracy on ``tasks`` held-out tasks in one ``mode`` of MODES, with its 95% half-width."""
    mode: str
    accuracy: float
    ci95: float
    tasks: int

    def __str__(self):
        return f"{100 * self.accuracy:.2f}% +- {100 * self.ci95:.2f}"


@dataclass(frozen=True, eq=False)
class Hits:
    """Task by task, the fraction of queries each of R models gets right: (R, tasks) per mode.
    Models scored together are scored on the same tasks, so their differences are paired."""
    non_transductive: np.ndarray
    transductive: np.ndarray

    def of(self, mode):
        return self.transductive if mode == "transductive" else self.non_transductive

    def scores(self, model=0):
        """(non-transductive Score, transductive Score) of one model."""
        return tuple(Score(mode, *map(float, mean_ci(self.of(mode)[model])), self.of(mode).shape[1])
                     for mode in MODES)


#: tasks drawn at a time at most: 50 tasks of 5-way 5-shot hold 6,500 images of non-transductive predictions
_IMAGES_PER_CHUNK = 50 * 5 * (5 * 5 + 1)


@blas_limited()
def evaluate(net, theta, pool, rng, protocol=Protocol(), tasks=1000, *, state=None, progress=False,
             desc="evaluation", workers=None, chunk=50):
    """(non-transductive, transductive) Scores of theta (P,) on ``tasks`` held-out tasks of ``pool``,
    each task scored as ``protocol`` (a Protocol) says: fine-tuned on its support set, then its queries
    classified. ``state``: the inner Adam state to start from (the authors carry the training state into
    evaluation); None starts fresh. ``progress`` shows a bar over the tasks (it disappears when done).
    ``workers`` (a ``workers.Workers``) scores the chunks of tasks in parallel: the driver draws every
    task here, so the tasks and the scores do not depend on how many workers there are. ``chunk``: tasks
    drawn at a time (at most; fewer for large tasks); it decides which tasks ``rng`` gives."""
    return task_scores(net, theta, pool, rng, protocol, tasks, state=state, progress=progress, desc=desc,
                       workers=workers, chunk=chunk).scores()


@blas_limited()
def task_scores(net, theta, pool, rng, protocol=Protocol(), tasks=1000, *, state=None, progress=False,
                desc="evaluation", workers=None, chunk=50):
    """``evaluate``'s scores task by task (``Hits``), for theta (P,) or (R, P): R models scored on the same
    tasks and minibatches (all R x tasks adaptations run together on the task axis)."""
    if not isinstance(tasks, (int, np.integer)) or tasks < 1:
        raise ValueError(f"tasks (the number of test tasks) must be a positive integer, got {tasks!r}")
    p, thetas = protocol, np.atleast_2d(theta)                              # (R, P)
    # Tasks are drawn ``drawn`` at a time, a number that depends on the protocol only, so the tasks that
    # ``rng`` gives never depend on the memory budget or on the number of models R. Each drawn chunk is
    # then scored in parts of as many tasks as the budget holds for all R models (``part``).
    drawn = max(1, min(chunk, _IMAGES_PER_CHUNK // (p.ways * (p.ways * p.shots + 1))))
    part = max(1, min(drawn, tasks_at_once(net, pool, p, len(thetas), thetas.dtype)))

    def plans():                                     # every task, drawn here in order, chunk by chunk as
        for start in range(0, tasks, drawn):         # the scoring goes (a million tasks are not drawn up front)
            T = min(drawn, tasks - start)
            classes, drawings = pool.draw(rng, T, p.ways, p.shots + 1)
            plan = {"classes": classes, "drawings": drawings,
                    "order": cycle_order(rng, T, p.ways * p.shots, p.batch_size, p.inner_iters)}
            yield from ({name: a[s:s + part] for name, a in plan.items()} for s in range(0, T, part))
    adapt = dict(lr=p.lr, inner=p.inner, state=state)
    scored = (map(lambda plan: score_tasks(net, thetas, pool, plan, **adapt), plans()) if workers is None
              else workers.score(score_tasks, net, thetas, pool, plans(), **adapt))
    correct = {mode: [] for mode in MODES}
    with tqdm(total=tasks, desc=desc, unit="task", disable=not progress, leave=False, mininterval=0.5,
              dynamic_ncols=True) as bar:
        for hits in scored:
            for mode in MODES:
                correct[mode].append(hits[mode])
            bar.update(hits["transductive"].shape[1])
    return Hits(*(np.concatenate(correct[mode], axis=1) for mode in MODES))


def paired_difference(hits_a, hits_b):
    """Mean and 95% half-width of a - b over the same tasks (tasks,): the paired comparison,
    free of the task-to-task spread that both share."""
    return tuple(map(float, mean_ci(np.asarray(hits_a, dtype=np.float64) - np.asarray(hits_b, dtype=np.float64))))


def image_shape(pool):
    """The shape (C, H, W) of one image of ``pool``: its ``image_shape``, else that of a gathered one."""
    if getattr(pool, "image_shape", None) is not None:
        return tuple(pool.image_shape)
    return pool.gather(*pool.draw(np.random.default_rng(0), 1, 1, 1))[0].shape[3:]


def tasks_at_once(net, pool, protocol, models=1, dtype=np.float32, memory=None):
    """How many test tasks ``score_tasks`` may adapt at once for ``models`` models within ``memory``
    bytes (default: the process's budget): each task and model keeps its inner loop's vectors
    (``memory.task_bytes``), steps on minibatches of ``batch_size`` images (forward and backward) and
    then classifies ``ways`` queries together (``predict`` splits the non-transductive predictions
    itself); at least 1."""
    per_image = image_bytes(net, image_shape(pool), dtype)
    per_task = (per_image * max(protocol.batch_size * _memory.BACKWARD, protocol.ways * _memory.FORWARD)
                + _memory.task_bytes(net, dtype=dtype))
    return max(1, int((_memory.budget() if memory is None else memory) // (per_task * models)))


def score_tasks(net, thetas, pool, plan, lr, inner, state):
    """{mode: hits (R, T)}: the fraction of queries that R models, each fine-tuned on the support
    sets of a plan's T tasks (drawn with shots + 1 images per class, the first the query), get right."""
    x, labels = pool.gather(plan["classes"], plan["drawings"])
    support, support_labels = flatten_task(x[:, :, 1:], labels[:, :, 1:])
    queries, query_labels = x[:, :, 0], labels[:, :, 0]                     # (T, N, ...), (T, N)
    R, T = len(thetas), len(x)
    every = lambda a: np.concatenate([a] * R)                               # run-major: (R T, ...)
    batches = [(every(xb), every(yb)) for xb, yb in take_batches(support, support_labels, plan["order"])]
    start_thetas = np.repeat(thetas, T, axis=0)                             # (R T, P)
    if inner == "sgd":
        phi = run_sgd(net, start_thetas, batches, lr, softmax_cross_entropy, keep=False)[0]
    else:
        start_state = None if state is None else state.for_tasks(len(start_thetas))
        phi = run_adam(net, start_thetas, batches, lr, softmax_cross_entropy, start_state, keep=False)[0]
    hits = {}
    for mode in ("transductive", "non-transductive"):
        logits = predict(net, phi, every(support), every(queries), mode == "transductive")
        hits[mode] = (logits.argmax(axis=-1) == every(query_labels)).mean(axis=1).reshape(R, T)
    return hits


def mean_ci(per_task):
    """Mean and 95% confidence half-width over tasks (the last axis; normal approximation)."""
    n = per_task.shape[-1]
    ci = 1.96 * per_task.std(axis=-1, ddof=1) / np.sqrt(n) if n > 1 else np.zeros(per_task.shape[:-1])
    return per_task.mean(axis=-1), ci
