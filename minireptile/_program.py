"""Process-wide settings for the programs that own their process: the command line, its worker
processes and the benchmarks. The library never applies them on import (a notebook's kernel or a
student's script is not ours to tune); a notebook may call ``own_process()`` itself."""
import os

from ._malloc import tune_malloc


def own_process():
    """Keep freed buffers for reuse (``tune_malloc``) and compute with one BLAS thread."""
    tune_malloc()
    one_blas_thread()


def one_blas_thread():
    """Limit this process's BLAS to one thread, unless OPENBLAS_NUM_THREADS, OMP_NUM_THREADS or
    MKL_NUM_THREADS says otherwise. For the programs that own their process (the command line):
    measured with benchmarks/bench_threads.py on 2 cores, one thread is faster than two even on idle
    cores (131 against 154 ms a meta-iteration), and beside another job it keeps its pace where two
    threads, spinning while they wait for a busy core, fall to 563 ms."""
    if any(name in os.environ for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")):
        return
    from threadpoolctl import threadpool_limits
    threadpool_limits(limits=1, user_api="blas")
