"""Each course notebook top to bottom in a fresh kernel, as a student's Jupyter runs it, timed.

    python benchmarks/bench_notebooks.py [--budget class|smoke|grading] [--notebooks 03 04 05] [--busy N]
                                         [--out DIR] [--smoke]

The kernel gets the default environment of a laptop: no BLAS thread variable (the library limits
its own long computations to one thread and restores the caller's settings), $MINIREPTILE_OMNIGLOT
for the data. ``--busy N`` runs N processes that spin beside it (2 doubles a 2-core laptop's load),
killed at the end however it ends. Target: every notebook in 10 minutes or less at the class budget on
a 2-core laptop. Nothing is written into the repository; with --out the executed notebooks, with their
outputs, are kept there for reading. ``--smoke``: notebook 00 at the grading budget (seconds).
"""
import argparse
import os
import time
from pathlib import Path

import nbclient
import nbformat

from _busy import spinning

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
BUDGET_VARIABLES = {"class": {}, "smoke": {"MINIREPTILE_SMOKE": "1"}, "grading": {"MINIREPTILE_GRADING": "1"}}


def run(path, timeout, env):
    """Execute the notebook at ``path`` in a fresh kernel; returns (seconds, executed notebook)."""
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=timeout, resources={"metadata": {"path": str(path.parent)}})
    began = time.perf_counter()
    client.execute(env=env)
    return time.perf_counter() - began, notebook


def kernel_environment(budget):
    """This process's environment as a student's kernel would have it, at ``budget``."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")
           and k not in ("MINIREPTILE_SMOKE", "MINIREPTILE_GRADING")}
    return env | BUDGET_VARIABLES[budget]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", choices=tuple(BUDGET_VARIABLES), default="class")
    parser.add_argument("--notebooks", nargs="+", default=None, help="numbers of the notebooks (default: all)")
    parser.add_argument("--busy", type=int, default=0, metavar="N", help="spinning processes beside the kernel")
    parser.add_argument("--out", type=Path, default=None, help="keep the executed notebooks in this folder")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds a cell may take")
    parser.add_argument("--smoke", action="store_true", help="notebook 00 at the grading budget, to check this script")
    args = parser.parse_args()
    if args.smoke:
        args.budget, args.notebooks = "grading", ["00"]
    paths = sorted(p for p in NOTEBOOKS.glob("*.ipynb") if args.notebooks is None or p.name[:2] in args.notebooks)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
    with spinning(args.busy):
        print(f"{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, the {args.budget} budget, default BLAS "
              f"threads, {args.busy} spinning processes beside:")
        print("| notebook | seconds | minutes |")
        print("|---|---:|---:|")
        for path in paths:
            seconds, executed = run(path, args.timeout, kernel_environment(args.budget))
            if args.out:
                nbformat.write(executed, args.out / path.name)
            print(f"| {path.stem} | {seconds:.0f} | {seconds / 60:.1f} |", flush=True)


if __name__ == "__main__":
    main()
