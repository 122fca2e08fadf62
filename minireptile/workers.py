"""Task slots on a ``concurrent.futures`` executor: worker processes on this machine, or a Dask cluster.

A meta-iteration's tasks are independent until the outer step averages them. So the driver draws
every task itself (indices only: which images, in which order), hands contiguous groups of task
slots to the executor together with theta and each slot's inner Adam state, and averages what comes
back in slot order:

    driver:  plan = sampler.plan(rng)                      # all T tasks, as indices
    worker:  direction_s, losses_s, state_s = meta_direction(theta, sampler.gather(plan[s]), ...)
    driver:  theta <- outer step with mean over s of direction_s    (slots in a fixed order)

The random stream stays in the driver, so the tasks never depend on the number of workers; only
floating-point rounding can (BLAS blocking), and with one BLAS thread per worker not even that.
Each worker receives a pool of images once: local processes memory-map a file the driver writes,
Dask workers get it once through ``scatter``; a task carries only its indices.

Nothing outlives the driver. Local workers ignore Ctrl-C (the driver answers it: it finishes the
iteration, writes the checkpoint and closes the pool); SIGTERM ends them (the executor itself stops
its workers that way when one has died), and a driver that got SIGTERM too writes the checkpoint of
its last finished iteration (see ``train.meta_train``). Each worker also watches its parent:
when the driver is gone, however it died (SIGKILL included), the worker removes the pool files and
exits within a second; the first of them also unlinks the semaphores of the pool's queues (their names
are in the folder) and tells the resource tracker, which would otherwise warn of them as leaked. The
watch is a thread that polls ``os.getppid()``, on every platform; a Linux parent-death signal would be
quicker, but it kills the worker before it can remove the files. When the workers die with the driver
(SIGKILL of the process group), the next ``Workers.local`` to start removes what they left: the folders
``minireptile-workers-<pid>-*`` of drivers that no longer run, and the semaphores those folders name.
Dask workers belong to the user's cluster: closing the client cancels the driver's futures there.
"""
import collections
import concurrent.futures as cf
import glob
import json
import os
import shutil
import signal
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager

import numpy as np

BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
_POOLS = {}                               # in a worker process: pool key -> pool
#: True once a pool's manager thread is left blocked on a message from a killed worker (CPython's
#: executor cannot notice that): the program must then end with os._exit, as the interpreter's own
#: exit would join that thread forever (see __main__.py).
STUCK = False


def release_semaphores(timeout=5):
    """Before an ``os._exit`` (see STUCK): run multiprocessing's own exit-time finalizers short of
    joining threads (priority >= 0), which unlink the pool's queues' semaphores and tell the resource
    tracker, as a normal exit does; without them the tracker warns of "leaked semaphore objects"
    after the program's one-line error. In a thread with a timeout, in case one of them blocks."""
    from multiprocessing import util
    finalizing = threading.Thread(target=util._run_finalizers, args=(0,), daemon=True)
    finalizing.start()
    finalizing.join(timeout)


_PREFIX = "minireptile-workers-"            # + the driver's process id + a random part
_SEMAPHORES = "semaphores.json"             # in the folder: the names of the pool's POSIX semaphores


def _record_semaphores(executor, folder):
    """Write the names of the POSIX semaphores of the executor's queues into its folder, so that whoever
    outlives a killed driver (a worker, or the next driver to start) can remove them."""
    from multiprocessing.synchronize import SemLock
    names = [lock._semlock.name for queue in (executor._call_queue, executor._result_queue)
             for lock in vars(queue).values() if isinstance(lock, SemLock) and lock._semlock.name]
    with open(os.path.join(folder, _SEMAPHORES), "w") as f:
        json.dump(names, f)


def _unlink_semaphores(folder, tracked):
    """Unlink the semaphores a folder records (those already gone are skipped); with ``tracked`` also
    tell the resource tracker, which would otherwise warn of them as leaked when it ends."""
    import _multiprocessing
    try:
        with open(os.path.join(folder, _SEMAPHORES)) as f:
            names = json.load(f)
    except (OSError, ValueError):
        return
    for name in names:
        try:
            _multiprocessing.sem_unlink(name)
        except OSError:
            continue
        if tracked:
            from multiprocessing import resource_tracker
            resource_tracker.unregister(name, "semaphore")


def remove_stale(tmp=None):
    """Remove the pool folders (and the semaphores they record) of drivers that no longer run: a driver
    killed together with its workers (SIGKILL of the process group, the OOM killer) leaves them behind."""
    for folder in glob.glob(os.path.join(tmp or tempfile.gettempdir(), _PREFIX + "*")):
        pid = os.path.basename(folder)[len(_PREFIX):].split("-")[0]
        if not pid.isdigit() or _running(int(pid)):
            continue
        _unlink_semaphores(folder, tracked=False)
        shutil.rmtree(folder, ignore_errors=True)


def _running(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:                 # another user's process
        return True
    return True


class WorkerLost(RuntimeError):
    """A worker died (killed, out of memory, a lost cluster node) while it held task slots."""


class Workers:
    """Hands task slots to ``executor``, which runs ``size`` of them at once.

    Use ``Workers.local(n)`` or ``Workers.dask(address)``; close it (or use ``with``) to stop
    the workers and remove the shared pool files.
    """

    def __init__(self, executor, size, client=None, owns_executor=True):
        self.executor, self.size, self.client = executor, size, client
        self._owns, self._shared, self._folder, self._pids = owns_executor, {}, None, None
        self.slot_fn = _train_slots          # what a worker runs for its slots (benchmarks swap it)

    @classmethod
    def local(cls, n, threads=None):
        """n worker processes on this machine, each with ``threads`` BLAS threads
        (default: the cores divided among the workers, so that workers x threads = cores)."""
        import multiprocessing
        threads = threads or max(1, (os.cpu_count() or 1) // n)
        remove_stale()                                               # what killed drivers left behind
        folder = tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-")  # the pool files; the workers
        executor = None                                              # remove it if the driver dies
        try:
            with _environment({name: str(threads) for name in BLAS_THREADS}):
                executor = cf.ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn"),
                                                  initializer=_start_worker, initargs=(os.getpid(), folder))
                _record_semaphores(executor, folder)
                started = [executor.submit(_ready) for _ in range(n)]    # spawns every worker now, under
                cf.wait(started)                                         # these settings
        except BaseException:                        # Ctrl-C while they start: none of them is left behind
            if executor is not None:
                for process in list((executor._processes or {}).values()):
                    process.kill()
                executor.shutdown(wait=False, cancel_futures=True)
            shutil.rmtree(folder, ignore_errors=True)
            raise
        workers = cls(executor, n)
        workers._folder = folder
        workers._pids = {p.pid for p in executor._processes.values()}    # CPython's pool keeps them there
        return workers

    @classmethod
    def dask(cls, address):
        """The workers of the Dask cluster whose scheduler listens at ``address``."""
        try:
            from distributed import Client
        except ImportError:
            raise RuntimeError('--scheduler needs Dask: pip install "minireptile[distributed]"') from None
        client = Client(address)             # waits distributed.comm.timeouts.connect (30 s) at most
        size = sum(client.nthreads().values())
        if size == 0:
            client.close()
            raise RuntimeError(f"the Dask scheduler at {address} has no workers")
        return cls(client.get_executor(), size, client=client)

    # -- the pools of images, shared once

    def share(self, pool):
        """(handle, images argument) under which workers find ``pool``; shared on first use.
        A pool already in a file (``pool.path``, a memory-mapped cache) is shared as its path."""
        if id(pool) not in self._shared:
            key, template, path, images = uuid.uuid4().hex, pool.with_data(None), getattr(pool, "path", None), None
            if self.client is not None:
                images, path = self.client.scatter(pool.images, broadcast=True), None
            elif path is None:
                path = os.path.join(self._folder, f"{key}.npy")
                np.save(path, pool.images)
            self._shared[id(pool)] = ((key, path, template), images)
        return self._shared[id(pool)]

    # -- the work

    def slots(self, T):
        """Contiguous groups of the T task slots, one per worker at most."""
        return [s for s in np.array_split(np.arange(T), min(T, self.size)) if len(s)]

    def step(self, net, theta, sampler, plan, loss, config, state):
        """``train.task_directions`` of a plan's T tasks, with the slots spread over the workers:
        directions (T, P), inner losses (T, k) and the new inner Adam state (T slots), in task order."""
        handle, images = self.share(sampler.pool)
        with _worker_faults():
            futures = [self.executor.submit(
                self.slot_fn, handle, images, sampler, {name: indices[s] for name, indices in plan.items()},
                net, theta, loss, config, None if state is None else _slot_state(state, s))
                for s in self.slots(len(plan["classes"]))]
            results = _results(futures, self._lost)
        new_state = None if results[0][2] is None else _join_states([st for _, _, st in results])
        return np.concatenate([d for d, _, _ in results]), np.concatenate([l for _, l, _ in results]), new_state

    def score(self, score_tasks, net, thetas, pool, plans, **adapt):
        """score_tasks(net, thetas, pool, plan, **adapt) for each plan of the iterable ``plans``, in order,
        spread over the workers (``fewshot.score_tasks``, passed in by its module: the workers know no task
        family). Two plans per worker are in flight at most, so a long evaluation stops at once on Ctrl-C."""
        handle, images = self.share(pool)
        flight = collections.deque()
        with _worker_faults():
            try:
                for plan in plans:
                    flight.append(self.executor.submit(_score, score_tasks, handle, images, net, thetas, plan, adapt))
                    if len(flight) >= 2 * self.size:
                        yield _results([flight.popleft()], self._lost)[0]
                while flight:
                    yield _results([flight.popleft()], self._lost)[0]
            finally:                                # stopped early (Ctrl-C, an error): drop the rest
                for future in flight:
                    future.cancel()

    def _lost(self):
        """Whether a local worker process has ended (never for a Dask cluster)."""
        import multiprocessing
        return bool(self._pids) and not self._pids <= {p.pid for p in multiprocessing.active_children()}

    def close(self):
        if self._owns:
            if self.client is not None:
                self.client.close()
            elif self._lost():            # the pool may never notice: end what is left of it ourselves
                global STUCK
                processes = list((self.executor._processes or {}).values())
                manager = self.executor._executor_manager_thread
                self.executor.shutdown(wait=False, cancel_futures=True)
                for process in processes:
                    process.kill()
                if manager is not None:
                    manager.join(timeout=5)
                    STUCK = STUCK or manager.is_alive()
            else:
                self.executor.shutdown(wait=True, cancel_futures=True)
        if self._folder:
            shutil.rmtree(self._folder, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _results(futures, lost):
    """The futures' results in order; if waiting is interrupted, the others are cancelled.
    ``lost()`` is asked every half second: the executor can miss a worker that died while sending
    its result (it waits for the rest of the message), so the driver watches the processes too."""
    try:
        while cf.wait(futures, timeout=0.5, return_when=cf.FIRST_EXCEPTION).not_done:
            if lost():
                raise cf.BrokenExecutor("a worker process ended while its task slots were running")
        return [f.result() for f in futures]
    except BaseException:
        for f in futures:
            f.cancel()
        raise


@contextmanager
def _worker_faults():
    """A lost worker, at submission or while working, becomes one WorkerLost."""
    try:
        yield
    except cf.BrokenExecutor as err:
        raise WorkerLost(f"a worker process died ({err})") from None
    except Exception as err:
        if type(err).__name__ in ("KilledWorker", "CommClosedError", "CancelledError"):
            raise WorkerLost(f"a Dask worker was lost ({type(err).__name__}: {err})") from None
        raise


def _slot_state(state, slots):
    from .inner import AdamState
    return AdamState(state.m[slots], state.v[slots], state.t)


def _join_states(states):
    from .inner import AdamState
    return AdamState(np.concatenate([s.m for s in states]), np.concatenate([s.v for s in states]), states[0].t)


# -- what runs in a worker

def _start_worker(driver, folder):
    """Ctrl-C reaches every process of the terminal; only the driver answers it (it finishes the
    iteration and writes the checkpoint), so the workers must not die of it. And a worker must not
    outlive its driver: see ``_watch``."""
    from ._malloc import tune_malloc
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    tune_malloc()                                  # a worker process is ours: see _malloc.py
    threading.Thread(target=_watch, args=(driver, folder), daemon=True, name="minireptile-watch").start()


def _watch(driver, folder, every=0.25):
    """Once the driver is no longer this process's parent (it died; the orphan was adopted by
    init or a subreaper), remove the shared pool files and end the process at once."""
    while os.getppid() == driver:
        time.sleep(every)
    try:                                   # the first worker to get here removes the semaphores too
        os.close(os.open(os.path.join(folder, "cleaning"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        _unlink_semaphores(folder, tracked=True)
    except OSError:
        pass
    shutil.rmtree(folder, ignore_errors=True)
    os._exit(1)


def _ready():
    return os.getpid()


def _pool(handle, images):
    """This worker's copy of a pool: memory-mapped from a file, or Dask's array."""
    key, path, template = handle
    if key not in _POOLS:
        _POOLS[key] = template.with_data(np.load(path, mmap_mode="r") if path is not None else images)
    return _POOLS[key]


def _train_slots(handle, images, sampler, plan, net, theta, loss, config, state):
    """``train.task_directions`` of t task slots: directions (t, P), losses (t, k), the inner Adam state."""
    from .train import task_directions
    sampler.pool = _pool(handle, images)
    return task_directions(net, theta, sampler.gather(plan), loss, config, state)


def _score(score_tasks, handle, images, net, thetas, plan, adapt):
    return score_tasks(net, thetas, _pool(handle, images), plan, **adapt)


@contextmanager
def _environment(values):
    """Set environment variables for the block (the spawned workers inherit them)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
