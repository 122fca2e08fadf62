"""Process-wide settings for the programs that own their process: the command line, its worker
processes and the benchmarks. The library never applies them on import (a notebook's kernel or a
student's script is not ours to tune); a notebook may call ``own_process()`` itself.

What the library needs for its own pace it sets around its own long computations and restores after
(``blas_limited``): meta-training, evaluation and the studies run with one BLAS thread wherever they
are called from, so a notebook or a script keeps the command line's pace and the caller's thread
settings are as they were when the call returns.
"""
import os
from contextlib import contextmanager

from ._malloc import tune_malloc


def own_process():
    """Keep freed buffers for reuse (``tune_malloc``) and compute with one BLAS thread."""
    tune_malloc()
    one_blas_thread()


def one_blas_thread():
    """Limit this process's BLAS to one thread, unless OPENBLAS_NUM_THREADS, OMP_NUM_THREADS or
    MKL_NUM_THREADS says otherwise. For the programs that own their process (the command line):
    measured with benchmarks/bench_threads.py on 2 cores, one thread gives up at most 40% on idle
    cores and keeps its pace beside another job, where two threads, spinning while they wait for a
    busy core, become 2-4x slower (docs/speed.md)."""
    from .workers import BLAS_THREADS
    if any(name in os.environ for name in BLAS_THREADS):
        return
    from threadpoolctl import threadpool_limits
    threadpool_limits(limits=1, user_api="blas")


_depth = 0                      # how many blas_limited blocks are open (only the outermost sets the limit)


@contextmanager
def blas_limited():
    """One BLAS thread inside the block (a context manager and a decorator), the caller's limits
    restored after it; nested blocks cost nothing. Left alone where OPENBLAS_NUM_THREADS,
    OMP_NUM_THREADS or MKL_NUM_THREADS is set: whoever set it chose. Measured on 2 cores beside
    other work (2026-12-04): an Omniglot meta-iteration from a script took 1.5-2.8 s with the
    default threads and 0.17-0.22 s with one (benchmarks/bench_threads.py has the full table)."""
    global _depth
    limit = None
    if _depth == 0:
        from .workers import BLAS_THREADS
        if not any(name in os.environ for name in BLAS_THREADS):
            from threadpoolctl import threadpool_limits
            limit = threadpool_limits(limits=1, user_api="blas")
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if limit is not None:
            limit.restore_original_limits()
