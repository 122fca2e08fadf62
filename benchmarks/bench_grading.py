"""Seconds `nbgrader autograde` takes per student for the six notebooks, as docs/course.md runs a term.

    python benchmarks/bench_grading.py [--students N] [--busy N] [--smoke]

A course folder in a temporary directory (course/nbgrader_config.py, so the grading budget), one
assignment per notebook, N students (default 3) whose submissions are the instructor notebook (full
marks, every check run in full), $MINIREPTILE_OMNIGLOT for the data; each assignment is autograded for
all of them at once, as an instructor does, so nbgrader's own start is shared. Target: 60 s or less
per student for the six on a 2-core laptop. ``--busy N`` spins N processes beside it; ``--smoke``
grades notebook 00 for one student. Needs the `course` extra (nbgrader).
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _busy import spinning

REPO = Path(__file__).resolve().parent.parent


def nbgrader(folder, *args):
    path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS") and k != "MINIREPTILE_SMOKE"}
    subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=folder, check=True, capture_output=True,
                   env=env | {"PATH": path}, timeout=1800)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=3, metavar="N", help="submissions per notebook")
    parser.add_argument("--busy", type=int, default=0, metavar="N", help="spinning processes beside it")
    parser.add_argument("--smoke", action="store_true", help="notebook 00 only, to check this script")
    args = parser.parse_args()
    from minireptile import course
    numbers = ["00"] if args.smoke else sorted({nb for nb, *_ in course.EXERCISES})
    students = 1 if args.smoke else args.students
    with spinning(args.busy):
        with tempfile.TemporaryDirectory(prefix="minireptile-bench-grading-") as folder:
            folder = Path(folder)
            shutil.copy(REPO / "course" / "nbgrader_config.py", folder)
            print(f"{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, {students} students, {args.busy} "
                  "spinning processes beside:")
            print("| notebook | autograde seconds, all students | per student |")
            print("|---|---:|---:|")
            total = 0.0
            for number in numbers:
                source = next((REPO / "notebooks").glob(f"{number}_*.ipynb"))
                (folder / "source" / source.stem).mkdir(parents=True)
                shutil.copy(source, folder / "source" / source.stem)
                nbgrader(folder, "generate_assignment", source.stem)
                for student in range(students):
                    (folder / "submitted" / f"student{student}" / source.stem).mkdir(parents=True)
                    shutil.copy(source, folder / "submitted" / f"student{student}" / source.stem)
                began = time.perf_counter()
                nbgrader(folder, "autograde", source.stem, "--create")
                seconds = time.perf_counter() - began
                total += seconds
                print(f"| {source.stem} | {seconds:.1f} | {seconds / students:.1f} |", flush=True)
            print(f"| all {len(numbers)} | {total:.1f} | {total / students:.1f} |")


if __name__ == "__main__":
    main()
