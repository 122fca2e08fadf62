"""Each course notebook at the budget a class runs (``course.notebook_budget()``: "class"), timed.

    python benchmarks/bench_notebooks.py [--notebooks 03 04 05] [--out DIR]

Target: every notebook in 10 minutes or less on a 2-core laptop. Each runs top to bottom in a fresh
kernel exactly as a student's Jupyter would run it (MINIREPTILE_SMOKE unset, one BLAS thread as the
suite uses), reading Omniglot from $MINIREPTILE_OMNIGLOT. Nothing is written into the repository;
with --out the executed notebooks, with their outputs, are kept there for reading.
"""
import argparse
import os
import time
from pathlib import Path

import nbclient
import nbformat

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def run(path, timeout):
    """Execute the notebook at ``path`` in a fresh kernel; returns (seconds, executed notebook)."""
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=timeout, resources={"metadata": {"path": str(path.parent)}})
    began = time.perf_counter()
    client.execute()
    return time.perf_counter() - began, notebook


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", nargs="+", default=None, help="numbers of the notebooks (default: all)")
    parser.add_argument("--out", type=Path, default=None, help="keep the executed notebooks in this folder")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds a cell may take")
    args = parser.parse_args()
    os.environ.pop("MINIREPTILE_SMOKE", None)                  # the class budget, as a student runs it
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")
    paths = sorted(p for p in NOTEBOOKS.glob("*.ipynb") if args.notebooks is None or p.name[:2] in args.notebooks)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
    print(f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, the class budget:")
    print("| notebook | seconds | minutes |")
    print("|---|---:|---:|")
    for path in paths:
        seconds, executed = run(path, args.timeout)
        if args.out:
            nbformat.write(executed, args.out / path.name)
        print(f"| {path.stem} | {seconds:.0f} | {seconds / 60:.1f} |", flush=True)


if __name__ == "__main__":
    main()
