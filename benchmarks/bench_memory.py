"""Peak resident memory of every process of each command at its small budget, and of one default
evaluation chunk of Omniglot and Mini-ImageNet, in one process and with 2 workers.

    python benchmarks/bench_memory.py [--omniglot DIR] [--only NAME ...] [--memory SIZE]

Each command runs as a user runs it (``python -m minireptile ...``) in a fresh temporary folder, with
Mini-ImageNet generated there (tests/miniimagenet_tree.py: 8/5/5 classes of 20 JPEGs, 84 x 84, as a
class-folder dataset). The peak of each process is its VmHWM from /proc, read every 50 ms until it
ends (the driver, each worker, the resource tracker); the table shows the driver's and the largest
other process's peak, and the wall seconds. Linux only (/proc).
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
TARGET = 1.5 * 2 ** 30

CHUNK = """
import sys, numpy as np, minireptile as mr
from minireptile.tasks import fewshot
from minireptile.workers import Workers
mr.own_process()
kind, workers, shots = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
if kind == "omniglot":
    pool, net = fewshot.ClassPool(rng.random((40, 20, 28, 28), dtype=np.float32)), mr.omniglot_net(5)
else:
    pool = fewshot.ImagePool(rng.integers(0, 256, (800, 84, 84, 3), dtype=np.uint8), [20] * 40)
    net = mr.miniimagenet_net(5)
theta = net.init(rng, dtype=np.float32)
p = fewshot.Protocol(ways=5, shots=shots)                     # the paper's: 50 inner Adam steps on batches of 5
tasks = fewshot._IMAGES_PER_CHUNK // (5 * (5 * shots + 1))    # one drawn chunk
tasks = min(tasks, 50) if kind == "omniglot" else min(tasks, 10 if workers == 1 else 20)
pool_workers = Workers.local(workers) if workers > 1 else None
try:
    fewshot.evaluate(net, theta, pool, rng, p, tasks, workers=pool_workers)
finally:
    if pool_workers is not None:
        pool_workers.close()
print(tasks)
"""


def peak_of(argv, env, cwd):
    """(driver peak, largest other peak, other processes seen, seconds, return code, last stderr line)."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peaks = {}
    while process.poll() is None:
        for pid in [process.pid] + descendants(process.pid):
            hwm = vm_hwm(pid)
            if hwm:
                peaks[pid] = max(peaks.get(pid, 0), hwm)
        time.sleep(0.05)
    out, err = process.communicate()
    seconds = time.perf_counter() - start
    others = [v for pid, v in peaks.items() if pid != process.pid]
    last = (err.strip().splitlines() or [""])[-1]
    return peaks.get(process.pid, 0), max(others, default=0), len(others), seconds, process.returncode, last


def descendants(pid):
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            found += children
            todo += children
    return found


def vm_hwm(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return 0
    return 0


def commands(omniglot, mini):
    """{name: argv after python -m minireptile}: every command at the small budget the README names."""
    data = ["--data", str(omniglot)]
    return {
        "sine --iterations 300": ["sine", "--iterations", "300"],
        "taylor --smoke": ["taylor", "--smoke"],
        "joint --smoke": ["joint", "--smoke", *data],
        "omniglot --iterations 20 --eval-tasks 50": ["omniglot", *data, "--iterations", "20", "--eval-tasks", "50",
                                                     "--workers", "1"],
        "omniglot, 2 workers": ["omniglot", *data, "--iterations", "20", "--eval-tasks", "50", "--workers", "2",
                                "--overwrite"],
        "omniglot-eval --eval-tasks 100, 2 workers": ["omniglot-eval", *data, "--checkpoint", "@omniglot",
                                                      "--eval-tasks", "100", "--workers", "2"],
        "compare --iterations 30 --methods reptile maml": ["compare", *data, "--iterations", "30", "--methods",
                                                           "reptile", "maml", "--workers", "1"],
        "compare, smoke budget": ["compare", *data, "--iterations", "4", "--eval-every", "2", "--eval-tasks", "4",
                                  "--variance-tasks", "3", "--workers", "1", "--overwrite"],
        "gradient-combos --iterations 4": ["gradient-combos", *data, "--iterations", "4", "--eval-every", "2",
                                           "--eval-tasks", "3", "--workers", "1"],
        "miniimagenet --iterations 3 --eval-tasks 3": ["miniimagenet", "--data", str(mini), "--iterations", "3",
                                                       "--eval-tasks", "3", "--workers", "1"],
        "miniimagenet, 2 workers": ["miniimagenet", "--data", str(mini), "--iterations", "3", "--eval-tasks", "3",
                                    "--workers", "2", "--overwrite"],
        "figures --smoke": ["figures", "--smoke", *data],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--omniglot", default=str(ROOT.parent / "shared" / "omniglot"),
                        help="Omniglot folder (default: ../shared/omniglot, the small subsets)")
    parser.add_argument("--only", nargs="+", help="run only the rows whose name starts with one of these")
    parser.add_argument("--memory", help="MINIREPTILE_MEMORY for every run (default: the library's)")
    parser.add_argument("--smoke", action="store_true", help="two rows (sine and taylor), to check that this script runs")
    args = parser.parse_args()
    if args.smoke:
        args.only = ["sine", "taylor"]
    from miniimagenet_tree import dataset, write_folders
    tmp = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    mini = write_folders(tmp / "mini", dataset((("train", 8), ("val", 5), ("test", 5)), per_class=20))
    env = {k: v for k, v in os.environ.items() if k != "MINIREPTILE_MEMORY"} | {
        "MINIREPTILE_CACHE": str(tmp / "cache"), "PYTHONPATH": str(ROOT)}
    if args.memory:
        env["MINIREPTILE_MEMORY"] = args.memory
    rows = []
    chunks = {f"one evaluation chunk, {kind} 5-way {shots}-shot, {'2 workers' if w > 1 else 'one process'}":
              [sys.executable, "-c", CHUNK, kind, str(w), str(shots)]
              for kind in ("omniglot", "miniimagenet") for shots in (1, 5) for w in (1, 2)}
    runs = {name: [sys.executable, "-m", "minireptile", *argv, "--quiet"] +
            ([] if argv[0].endswith("-eval") else ["--out", str(tmp / name.split()[0].strip(","))])
            for name, argv in commands(args.omniglot, mini).items()}
    for name, argv in (runs | chunks).items():
        if args.only and not any(name.startswith(o) for o in args.only):
            continue
        argv = [str(tmp / "omniglot" / "checkpoint.npz") if a == "@omniglot" else a for a in argv]   # the run above's
        driver, other, n, seconds, code, last = peak_of(argv, env, tmp)
        rows.append((name, driver, other, n, seconds, code, last))
        worst = max(driver, other)
        print(f"| {name} | {driver / 2 ** 20:.0f} MB | {other / 2 ** 20:.0f} MB ({n}) | {seconds:.1f} s | "
              f"{'ok' if worst <= TARGET and code == 0 else 'OVER' if worst > TARGET else f'exit {code}: {last}'} |",
              flush=True)
    print(f"\nall under 1.5 GB: {all(max(d, o) <= TARGET for _, d, o, *_ in rows)}")


if __name__ == "__main__":
    print("| run | driver peak | largest other process (count) | wall | <= 1.5 GB |\n|---|---:|---:|---:|---|")
    main()
