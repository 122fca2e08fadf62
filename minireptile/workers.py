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

The local workers are a small executor of our own (``LocalExecutor``) on public APIs only:
``multiprocessing`` "spawn" processes, one duplex ``Pipe`` each, and ``concurrent.futures.Future``s
completed by the protocol that executors use (``set_running_or_notify_cancel``, ``set_result``,
``set_exception``). CPython's ProcessPoolExecutor was the alternative, but what this module needs
from it (its processes, to kill them; noticing a worker that died halfway through a message; ending
with no thread left waiting) it keeps in private attributes that any release may change. A pipe needs
no POSIX semaphore, so nothing is left in /dev/shm however the driver ends, and each pipe belongs to
one worker: when that worker dies the driver's thread waiting on it reads the end of the pipe at once
and fails its submission and every queued one (``BrokenExecutor``, which ``Workers`` reports as
``WorkerLost``).

Nothing outlives the driver. Local workers ignore Ctrl-C (the driver answers it: it finishes the
iteration, writes the checkpoint and closes the pool); SIGTERM ends them, and a driver that got
SIGTERM too writes the checkpoint of its last finished iteration (see ``train.meta_train``). Each
worker also watches its parent: when the driver is gone, however it died (SIGKILL included), the
worker removes the pool files and exits within a second. The watch is a thread that polls
``os.getppid()``, on every platform (a Linux parent-death signal would be quicker, but it kills the
worker before it can remove the files), and the end of the worker's pipe says the same sooner when the
worker is idle. When the workers die with the driver (SIGKILL of the process group), the next
``Workers.local`` to start removes what they left: the folders ``minireptile-workers-<pid>-*`` of
drivers that no longer run. Dask workers belong to the user's cluster: closing the client cancels
the driver's futures there.
"""
import collections
import concurrent.futures as cf
import glob
import multiprocessing
import os
import pickle
import queue
import re
import shutil
import signal
import tempfile
import threading
import time
import traceback
import uuid
from contextlib import contextmanager

import numpy as np

BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
_POOLS = {}                               # in a worker process: pool key -> pool
_PREFIX = "minireptile-workers-"            # + the driver's process id + a random part
_STOP = b""                               # the driver's last message to a worker


def remove_stale(tmp=None):
    """Remove the pool folders of drivers that no longer run: a driver killed together with its workers
    (SIGKILL of the process group, the OOM killer) leaves them behind."""
    for folder in glob.glob(os.path.join(tmp or tempfile.gettempdir(), _PREFIX + "*")):
        pid = os.path.basename(folder)[len(_PREFIX):].split("-")[0]
        if pid.isdigit() and not _running(int(pid)):
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


class LocalExecutor(cf.Executor):
    """``n`` worker processes ("spawn"), each behind a duplex pipe of its own and a thread of the
    driver's that sends it the oldest waiting submission, reads the answer and completes that
    submission's future: the first free worker takes the next submission, and the caller keeps the
    order by its list of futures. ``pids`` are the workers' process ids.

    A worker that dies fails the submission it held and every waiting one with ``BrokenExecutor``
    (its process id and how it ended); later submissions are refused the same way. ``shutdown``
    tells each worker to stop once the submissions before it are done, waits for them, and kills any
    that has not ended five seconds later (all of them at once when one has died)."""

    def __init__(self, n, driver=None, folder=None):
        context = multiprocessing.get_context("spawn")
        self._jobs = queue.SimpleQueue()                 # (future, pickled call), or None: stop
        self._lock = threading.Lock()                    # over submitting, shutting down, breaking
        self._broken, self._closing = None, False
        self._children, self._pipes = [], []
        try:
            for i in range(n):
                mine, theirs = context.Pipe(duplex=True)
                process = context.Process(target=_serve, args=(theirs, driver or os.getpid(), folder),
                                          name=f"minireptile-worker-{i}", daemon=True)
                process.start()
                theirs.close()                            # the worker's end is the worker's alone
                self._children.append(process)
                self._pipes.append(mine)
            for process, pipe in zip(self._children, self._pipes):    # all started under the caller's
                try:                                                   # settings, and listening
                    pipe.recv_bytes()
                except (EOFError, OSError):
                    raise cf.BrokenExecutor(f"{_ended(process)} while starting") from None
        except BaseException:                            # Ctrl-C while they start: none is left behind
            self._kill()
            raise
        self.pids = [process.pid for process in self._children]
        self._threads = [threading.Thread(target=self._hand, args=(process, pipe), daemon=True,
                                          name=f"minireptile-worker-{i}")
                         for i, (process, pipe) in enumerate(zip(self._children, self._pipes))]
        for thread in self._threads:
            thread.start()

    def submit(self, fn, /, *args, **kwargs):
        call = pickle.dumps((fn, args, kwargs), pickle.HIGHEST_PROTOCOL)     # in the caller's thread
        with self._lock:
            if self._broken:
                raise cf.BrokenExecutor(self._broken)
            if self._closing:
                raise RuntimeError("cannot schedule new futures after shutdown")
            future = cf.Future()
            self._jobs.put((future, call))
        return future

    def shutdown(self, wait=True, *, cancel_futures=False):
        dropped = []
        with self._lock:
            if not self._closing:
                self._closing = True
                dropped = self._drain() if cancel_futures else []
                for _ in self._threads:
                    self._jobs.put(None)
        for future, _ in dropped:                        # outside the lock: their callbacks may submit
            future.cancel()
            future.set_running_or_notify_cancel()        # tells the waiters: cancelled
        if not wait:
            return
        if self._broken:                                  # the run ends with an error: no work is kept
            self._kill()
        for thread in self._threads:
            thread.join()
        deadline = time.monotonic() + 5
        for process in self._children:
            process.join(max(0.0, deadline - time.monotonic()))
        self._kill()
        for pipe in self._pipes:
            pipe.close()

    def _hand(self, process, pipe):
        """One worker's thread in the driver: the next submission to the worker, its answer to the future."""
        while (job := self._jobs.get()) is not None:
            future, call = job
            if not future.set_running_or_notify_cancel():
                continue
            if self._broken:
                future.set_exception(cf.BrokenExecutor(self._broken))
                continue
            try:
                pipe.send_bytes(call)
                answer = pipe.recv_bytes()
            except Exception as err:                     # the end of the pipe (half a message, too)
                self._break(process, future, err)
                return
            try:
                ok, value = pickle.loads(answer)
            except Exception as err:
                future.set_exception(err)
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
        try:
            pipe.send_bytes(_STOP)
        except OSError:                                  # it is gone already
            pass

    def _break(self, process, future, err):
        """The worker behind ``process`` is lost: fail its submission and every waiting one."""
        if process.is_alive():
            process.join(1)                              # the kernel is still closing it: its exit code
        why = _ended(process) if not process.is_alive() else f"lost the pipe to process {process.pid} ({err!r})"
        with self._lock:
            self._broken = self._broken or why
            waiting = self._drain()
            for job in waiting:
                if job is None:                          # shutdown's, for the other threads: put back
                    self._jobs.put(None)
        future.set_exception(cf.BrokenExecutor(why))
        for job in waiting:                              # outside the lock: their callbacks may submit
            if job is not None and job[0].set_running_or_notify_cancel():
                job[0].set_exception(cf.BrokenExecutor(self._broken))

    def _drain(self):
        jobs = []
        while True:
            try:
                jobs.append(self._jobs.get_nowait())
            except queue.Empty:
                return jobs

    def _kill(self):
        for process in self._children:
            if process.is_alive():
                process.kill()
        for process in self._children:
            process.join()


def _ended(process):
    """How a worker process ended, for a message."""
    code = process.exitcode
    if code is not None and code < 0:
        try:
            return f"process {process.pid}, killed by {signal.Signals(-code).name}"
        except ValueError:
            pass
    return f"process {process.pid}, exit status {code}"


class Workers:
    """Hands task slots to ``executor``, which runs ``size`` of them at once.

    Use ``Workers.local(n)`` or ``Workers.dask(address)``; close it (or use ``with``) to stop
    the workers and remove the shared pool files.
    """

    def __init__(self, executor, size, client=None, owns_executor=True):
        self.executor, self.size, self.client = executor, size, client
        self._owns, self._shared, self._folder = owns_executor, {}, None
        self.slot_fn = _train_slots          # what a worker runs for its slots (benchmarks swap it)

    @classmethod
    def local(cls, n, threads=None):
        """n worker processes on this machine, each with ``threads`` BLAS threads
        (default: the cores divided among the workers, so that workers x threads = cores)."""
        threads = threads or max(1, (os.cpu_count() or 1) // n)
        remove_stale()                                               # what killed drivers left behind
        folder = tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-")  # the pool files; the workers
        try:                                                         # remove it if the driver dies
            with _environment({name: str(threads) for name in BLAS_THREADS}), _worker_faults():
                executor = LocalExecutor(n, os.getpid(), folder)     # every worker spawned under these settings
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        workers = cls(executor, n)
        workers._folder = folder
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
            results = _results(futures)
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
                        yield _results([flight.popleft()])[0]
                while flight:
                    yield _results([flight.popleft()])[0]
            finally:                                # stopped early (Ctrl-C, an error): drop the rest
                for future in flight:
                    future.cancel()

    def close(self):
        if self._owns:
            if self.client is not None:
                self.client.close()
            else:
                self.executor.shutdown(wait=True, cancel_futures=True)
        if self._folder:
            shutil.rmtree(self._folder, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


#: a Dask scheduler's address: [protocol://]host:port, as ``distributed.Client`` takes it
SCHEDULER = re.compile(r"(?:(?:tcp|tls|ws|wss|ucx)://)?(?:[A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\]):(\d{1,5})/?")


def check_flags(workers=None, scheduler=None):
    """The command line's --workers and --scheduler, refused with a ValueError that names the flag."""
    if workers is not None and workers < 1:
        raise ValueError(f"--workers must be an integer of at least 1, got {workers}")
    if scheduler and workers is not None:
        raise ValueError("--workers and --scheduler exclude each other (a cluster has its own workers)")
    match = SCHEDULER.fullmatch(scheduler) if scheduler is not None else None
    if scheduler is not None and not (match and 0 < int(match[1]) < 65536):
        raise ValueError("--scheduler must be a Dask scheduler's address, [tcp|tls|ws|wss|ucx://]HOST:PORT "
                         f"such as tcp://10.0.0.1:8786, got {scheduler!r}")
    import importlib.util
    if scheduler is not None and importlib.util.find_spec("distributed") is None:
        raise ValueError(f'--scheduler {scheduler}: a cluster needs Dask: pip install "minireptile[distributed]"')


def for_flags(workers=None, scheduler=None, tasks=None):
    """A context giving the Workers that --workers / --scheduler ask for, or None (this process). The
    default is a worker per core, but no more than the ``tasks`` that run at once; a cluster that cannot be
    reached is a ValueError naming --scheduler."""
    from contextlib import nullcontext
    if scheduler:
        try:
            return Workers.dask(scheduler)
        except (OSError, TimeoutError, RuntimeError, ValueError) as err:
            raise ValueError(f"--scheduler {scheduler}: {err}") from None
    if workers is None:
        workers = max(1, min(os.cpu_count() or 1, tasks or os.cpu_count() or 1))
    return Workers.local(workers) if workers > 1 else nullcontext()


def _results(futures):
    """The futures' results in order; the first failure is raised as soon as it happens (the others
    are then cancelled, and so they are if waiting is interrupted)."""
    try:
        done, _ = cf.wait(futures, return_when=cf.FIRST_EXCEPTION)
        for future in futures:
            if future in done and not future.cancelled() and future.exception() is not None:
                future.result()                     # raises it
        return [future.result() for future in futures]
    except BaseException:
        for future in futures:
            future.cancel()
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

def _serve(pipe, driver, folder):
    """A local worker process: set up (``_start_worker``), say so, then answer one call after another,
    (True, result) or (False, the exception), until the driver says stop or is gone (the pipe ends)."""
    _start_worker(driver, folder)
    pipe.send_bytes(b"ready")
    while True:
        try:
            call = pipe.recv_bytes()
        except (EOFError, OSError):                      # the driver died, or dropped us unclosed
            _leave(folder)
        if call == _STOP:
            return
        try:
            fn, args, kwargs = pickle.loads(call)
            answer = (True, fn(*args, **kwargs))
        except BaseException as err:                     # the driver raises it, with this traceback
            answer = (False, _portable(err))
        try:
            message = pickle.dumps(answer, pickle.HIGHEST_PROTOCOL)
        except Exception as err:
            message = pickle.dumps((False, _portable(err)), pickle.HIGHEST_PROTOCOL)
        try:
            pipe.send_bytes(message)
        except OSError:                                  # the driver died while this worker computed
            _leave(folder)


def _portable(err):
    """``err`` with the worker's traceback as a note, or a RuntimeError that says it all where ``err``
    does not survive pickling: the driver raises it as the call's error."""
    where = f"in worker process {os.getpid()}:\n" + "".join(traceback.format_exception(err)).rstrip()
    try:
        err.add_note(where)
        pickle.loads(pickle.dumps(err, pickle.HIGHEST_PROTOCOL))
        return err
    except Exception:
        return RuntimeError(f"{type(err).__name__}: {err}\n{where}")


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
    _leave(folder)


def _leave(folder):
    """The driver is gone: remove the pool files it shared and end this worker now."""
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
    os._exit(1)


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
