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
    measured with benchmarks/bench_threads.py on 2 cores, one thread gives up at most 40% on idle
    cores and keeps its pace beside another job, where two threads, spinning while they wait for a
    busy core, become 2-4x slower (docs/speed.md)."""
    from .workers import BLAS_THREADS
    if any(name in os.environ for name in BLAS_THREADS):
        return
    from threadpoolctl import threadpool_limits
    threadpool_limits(limits=1, user_api="blas")
