"""Task slots on worker processes and on a Dask cluster: the same result as one process, a killed
worker reported in one line with the checkpoint intact, and resume with another worker count."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import minireptile as mr
from minireptile.tasks import fewshot
from minireptile.workers import Workers
from omniglot_tree import layout, write_zip

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("omniglot")
    write_zip(root / "images_background.zip", layout("images_background", ["A", "B", "C"], 6, 6))
    return root


@pytest.mark.slow
def test_workers_give_the_same_theta_adam_state_and_scores_as_one_process(data, tmp_path):
    """With one BLAS thread everywhere, every slot is computed with the same arithmetic however
    the slots are split (3 + 2 here), and the driver averages them in slot order: so the
    results must be equal bit for bit, not merely close."""
    pytest.importorskip("distributed")
    env = os.environ | {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                        "MINIREPTILE_CACHE": str(tmp_path / "cache")}
    result = subprocess.run([sys.executable, str(HERE / "workers_check.py"), str(data)], env=env,
                            capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(report) == 11 and all(report.values()), report


def test_the_task_plan_splits_into_slots_without_changing_any_task():
    rng = np.random.default_rng(0)
    pool = fewshot.ClassPool(rng.random((10, 6, 8, 8)), rotations=True)
    sampler = fewshot.training_sampler(pool, 5, 4, 3, 4, 5, tail_shots=1)
    plan = sampler.plan(np.random.default_rng(1))
    whole = sampler.gather(plan)
    parts = [sampler.gather(plan, slots) for slots in (slice(0, 3), slice(3, 5))]
    for i, (x, y) in enumerate(whole):
        np.testing.assert_array_equal(x, np.concatenate([p[i][0] for p in parts]))
        np.testing.assert_array_equal(y, np.concatenate([p[i][1] for p in parts]))
    again = sampler(np.random.default_rng(1))                    # sample == gather(plan)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(again, whole))


def test_slots_are_contiguous_and_cover_the_meta_batch():
    workers = Workers(executor=None, size=2, owns_executor=False)
    assert [list(s) for s in workers.slots(5)] == [[0, 1, 2], [3, 4]]
    assert [list(s) for s in workers.slots(1)] == [[0]]


def worker_pids(driver):
    """The driver's worker processes (spawned children, not the resource tracker)."""
    pids = []
    for child in Path(f"/proc/{driver}/task/{driver}/children").read_text().split():
        cmdline = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
        if b"spawn_main" in cmdline and b"resource_tracker" not in cmdline:
            pids.append(int(child))
    return pids


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux's /proc to find the workers")
@pytest.mark.slow
def test_a_killed_worker_ends_the_run_in_one_line_and_resume_completes(data, tmp_path):
    env = os.environ | {"MINIREPTILE_CACHE": str(tmp_path / "cache")}
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "minireptile", "omniglot", "--data", str(data), "--test-alphabets", "C",
            "--out", str(out), "--workers", "2", "--iterations", "100", "--train-shots", "3",
            "--meta-batch", "2", "--inner-iters", "2", "--checkpoint-every", "5", "--eval-every", "0", "--eval-tasks", "4", "--eval-iters", "2", "--quiet"]
    process = subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    deadline = time.monotonic() + 120
    while not (out / "checkpoint.npz").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    victims = worker_pids(process.pid)
    assert len(victims) == 2
    os.kill(victims[0], signal.SIGKILL)
    _, stderr = process.communicate(timeout=120)
    lines = stderr.strip().splitlines()
    assert process.returncode == 1 and len(lines) == 1 and "Traceback" not in stderr, stderr
    assert "a worker process died" in lines[0] and "during iteration" in lines[0]
    assert "is kept: continue with --resume" in lines[0]
    with np.load(out / "checkpoint.npz") as ckpt:
        stopped = int(ckpt["iteration"])
        assert 5 <= stopped < 100 and np.isfinite(ckpt["theta"]).all()
    one = argv[:argv.index("--workers") + 1] + ["1"] + argv[argv.index("--workers") + 2:]   # another count
    resumed = subprocess.run(one + ["--resume"], env=env, cwd=tmp_path, capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed at iteration {stopped}" in resumed.stdout
    with np.load(out / "checkpoint.npz") as ckpt:
        assert int(ckpt["iteration"]) == 100


@pytest.mark.slow
def test_workers_and_scheduler_flags_are_checked_before_any_work(data, tmp_path):
    base = [sys.executable, "-m", "minireptile", "omniglot", "--data", str(data), "--test-alphabets", "C",
            "--out", str(tmp_path / "run"), "--iterations", "2", "--train-shots", "3"]
    for extra, message in (
            (["--workers", "0"], "error: --workers must be an integer of at least 1, got 0"),
            (["--workers", "2", "--scheduler", "tcp://127.0.0.1:9"], "error: --workers and --scheduler exclude"),
            (["--scheduler", "tcp://127.0.0.1:9"], "error: --scheduler tcp://127.0.0.1:9: ")):
        result = subprocess.run(base + extra, capture_output=True, text=True, timeout=120, cwd=tmp_path,
                                env=os.environ | {"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "1s"})
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith(message), result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("address", ["tcp://127.0.0.1", "notanaddress", "http://10.0.0.1:8786",
                                     "tcp://10.0.0.1:99999", "tcp://10.0.0.1:8786/x"])
def test_a_malformed_scheduler_address_is_refused_in_one_line_before_any_work(refused, monkeypatch, tmp_path,
                                                                             address):
    from minireptile.tasks import omniglot
    monkeypatch.setattr(omniglot, "pools", lambda *a, **k: pytest.fail("the data was read before the refusal"))
    line = refused(["omniglot", "--data", tmp_path, "--scheduler", address])
    assert line == ("error: --scheduler must be a Dask scheduler's address, [tcp|tls|ws|wss|ucx://]HOST:PORT "
                    f"such as tcp://10.0.0.1:8786, got {address!r}")


def test_a_well_formed_scheduler_address_passes_the_check():
    from types import SimpleNamespace
    from minireptile._shell import check_scale
    for address in ("tcp://10.0.0.1:8786", "127.0.0.1:8786", "tls://scheduler.example.org:8786", "[::1]:8786"):
        check_scale(SimpleNamespace(workers=None, scheduler=address))


def test_the_memory_flag_is_refused_in_one_line_and_reaches_the_workers_as_the_budget(refused, tmp_path,
                                                                                      monkeypatch):
    from minireptile import memory
    from minireptile import cli
    assert refused(["omniglot", "--data", tmp_path, "--memory", "lots"]) == \
        "error: --memory must be a size in bytes such as 512M or 1.5G, got 'lots'"
    monkeypatch.delenv(memory.ENV, raising=False)
    seen = []                                                 # what the command (and its workers) would see
    monkeypatch.setattr(cli, "cmd_study", lambda args: seen.append((os.environ.get(memory.ENV), memory.budget())))
    assert cli.main(["omniglot", "--data", str(tmp_path), "--memory", "64M", "--quiet"]) == 0
    assert seen == [("64M", 64 * 2 ** 20)] and memory.ENV not in os.environ    # the caller's environment, as it was


def children(pid):
    """Every live descendant of ``pid`` (workers and the resource tracker), from /proc."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            for child in (task / "children").read_text().split():
                found.append(int(child))
                todo.append(int(child))
    return found


def alive(pid):
    """True while ``pid`` runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def start_training(data, tmp_path, *extra, started=None):
    """omniglot --workers 2 in a subprocess with its own TMPDIR (so its pool files can be counted);
    waits until ``started(out)`` holds (default: a checkpoint exists); returns (process, out, tmp,
    the descendants then)."""
    tmp, out = tmp_path / "tmp", tmp_path / "run"
    tmp.mkdir(exist_ok=True)
    started = started or (lambda out: (out / "checkpoint.npz").exists())
    env = os.environ | {"MINIREPTILE_CACHE": str(tmp_path / "cache"), "TMPDIR": str(tmp)}
    argv = [sys.executable, "-m", "minireptile", "omniglot", "--data", str(data), "--test-alphabets", "C",
            "--out", str(out), "--workers", "2", "--iterations", "100000", "--train-shots", "3",
            "--meta-batch", "2", "--inner-iters", "2", "--checkpoint-every", "5", "--eval-every", "0",
            "--quiet", *extra]
    process = subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while not started(out) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    return process, out, tmp, children(process.pid)


def gone_within(pids, seconds):
    deadline = time.monotonic() + seconds
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [p for p in pids if alive(p)]


@pytest.fixture
def reaper():
    """Kills whatever a test's run left behind, pass or fail."""
    pids = []
    yield pids
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux's /proc to find the workers")
def test_a_driver_killed_with_sigkill_leaves_no_worker_and_no_pool_file(data, tmp_path, reaper):
    process, out, tmp, descendants = start_training(data, tmp_path)
    reaper.extend(descendants + [process.pid])
    assert len(descendants) >= 2 and list(tmp.glob("minireptile-workers-*")), descendants
    assert in_dev_shm([process.pid] + descendants) == []        # the pipes need no semaphore: nothing to leave
    process.kill()                                               # the OOM killer, a hard time limit
    _, stderr = process.communicate(timeout=60)                 # once the resource tracker has ended too
    assert gone_within(descendants, 10) == []
    assert list(tmp.iterdir()) == []
    assert "leaked" not in stderr and "Traceback" not in stderr, stderr


def in_dev_shm(pids):
    """The files in /dev/shm (POSIX semaphores, shared memory) that these processes map, unlinked ones aside:
    what a killed driver could leave behind there."""
    found = []
    for pid in pids:
        try:
            maps = Path(f"/proc/{pid}/maps").read_text()
        except OSError:
            continue
        found += [line.split()[-1] for line in maps.splitlines() if "/dev/shm/" in line and "(deleted)" not in line]
    return found


def test_the_next_start_removes_the_folder_of_a_driver_that_died_with_its_workers(tmp_path, monkeypatch):
    import tempfile
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)                                      # a process id that no longer runs
    stale, live = tmp_path / f"minireptile-workers-{pid}-x1", tmp_path / f"minireptile-workers-{os.getpid()}-x2"
    for folder in (stale, live):
        folder.mkdir()
        np.save(folder / "pool.npy", np.zeros(1000))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with Workers.local(2) as workers:
        assert Path(workers._folder).parent == tmp_path and Path(workers._folder).name.startswith(
            f"minireptile-workers-{os.getpid()}-")
        assert not stale.exists() and live.exists()              # a running driver's folder stays
    assert not Path(workers._folder).exists()


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux's /proc to find the workers")
@pytest.mark.parametrize("to", ["driver", "every process"])
@pytest.mark.slow
def test_sigterm_stops_like_ctrl_c_and_resume_continues(to, data, tmp_path, reaper):
    """`kill PID` reaches the driver alone; a scheduler's time limit signals every process of the
    job, the workers too: either way the checkpoint is written and --resume continues it."""
    process, out, tmp, descendants = start_training(data, tmp_path)
    reaper.extend(descendants + [process.pid])
    if to == "driver":
        process.terminate()
    else:
        os.killpg(process.pid, signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143 and "Traceback" not in stderr, stderr
    assert "terminated (SIGTERM): stopped at iteration" in stderr and "--resume" in stderr
    assert gone_within(descendants, 10) == []
    assert list(tmp.iterdir()) == []
    with np.load(out / "checkpoint.npz") as ckpt:
        stopped = int(ckpt["iteration"])
        assert stopped >= 5 and np.isfinite(ckpt["theta"]).all()
    later = lambda out: _iteration(out / "checkpoint.npz") > stopped
    process, out, tmp, descendants = start_training(data, tmp_path, "--resume", started=later)
    reaper.extend(descendants + [process.pid])
    process.terminate()
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr
    assert _iteration(out / "checkpoint.npz") > stopped                # continued, did not start again


def _iteration(checkpoint):
    try:
        with np.load(checkpoint) as ckpt:
            return int(ckpt["iteration"])
    except (OSError, ValueError, KeyError):                 # being replaced at this moment
        return -1


# ----------------------------------------------------------------------------- the local executor
# (the calls are the standard library's own functions, so that a worker need not import this file)

def test_the_local_executor_answers_in_order_and_a_worker_error_keeps_its_traceback():
    import math
    from minireptile.workers import LocalExecutor
    executor = LocalExecutor(2)
    try:
        futures = [executor.submit(pow, i, 2) for i in range(12)]
        assert [f.result(timeout=60) for f in futures] == [i * i for i in range(12)]
        assert {executor.submit(os.getpid).result(timeout=60) for _ in range(20)} <= set(executor.pids)
        with pytest.raises(ValueError, match="math domain error") as raised:
            executor.submit(math.sqrt, -1).result(timeout=60)
        assert any("in worker process" in note and "Traceback" in note for note in raised.value.__notes__)
        assert executor.submit(pow, 3, 3).result(timeout=60) == 27          # an error breaks nothing
    finally:
        executor.shutdown()
    assert not any(alive(pid) for pid in executor.pids)
    with pytest.raises(RuntimeError, match="after shutdown"):
        executor.submit(pow, 2, 2)


def test_a_killed_worker_fails_its_call_and_every_waiting_one_at_once_and_shutdown_ends_the_rest():
    import concurrent.futures as cf
    from minireptile.workers import LocalExecutor
    executor = LocalExecutor(2)
    try:
        busy = [executor.submit(time.sleep, 30) for _ in range(2)]
        waiting = [executor.submit(pow, 2, i) for i in range(4)]
        deadline = time.monotonic() + 30
        while not all(f.running() for f in busy) and time.monotonic() < deadline:
            time.sleep(0.01)
        start = time.monotonic()
        os.kill(executor.pids[0], signal.SIGKILL)
        with pytest.raises(cf.BrokenExecutor, match=rf"process {executor.pids[0]}, killed by SIGKILL"):
            cf.wait(busy, timeout=10, return_when=cf.FIRST_EXCEPTION)
            next(f for f in busy if f.done()).result()
        assert time.monotonic() - start < 5                              # not after the other's 30 s
        assert all(isinstance(f.exception(timeout=10), cf.BrokenExecutor) for f in waiting)
        with pytest.raises(cf.BrokenExecutor):
            executor.submit(pow, 2, 2)
    finally:
        start = time.monotonic()
        executor.shutdown(wait=True, cancel_futures=True)
    assert time.monotonic() - start < 10 and not any(alive(pid) for pid in executor.pids)
    assert all(f.done() for f in busy)


def test_shutdown_cancels_the_waiting_calls_and_lets_the_running_ones_finish():
    from minireptile.workers import LocalExecutor
    executor = LocalExecutor(2)
    running = [executor.submit(time.sleep, 0.5) for _ in range(2)]
    waiting = [executor.submit(pow, 2, i) for i in range(6)]
    deadline = time.monotonic() + 30
    while not all(f.running() for f in running) and time.monotonic() < deadline:
        time.sleep(0.01)
    executor.shutdown(wait=True, cancel_futures=True)
    assert [f.result() for f in running] == [None, None]
    assert all(f.cancelled() for f in waiting)
    assert not any(alive(pid) for pid in executor.pids)


def test_a_lost_worker_reaches_the_caller_of_workers_as_one_worker_lost():
    from minireptile.workers import WorkerLost, _results, _worker_faults
    with Workers.local(2, threads=1) as workers:
        os.kill(workers.executor.pids[1], signal.SIGKILL)
        with pytest.raises(WorkerLost, match=r"^a worker process died \(process \d+, killed by SIGKILL\)$"):
            for _ in range(10):                       # as Workers.step and .score wait for their calls
                with _worker_faults():
                    _results([workers.executor.submit(time.sleep, 0.1) for _ in range(2)])


#: private names of the standard library's process and thread machinery that code once used
INTERNALS = ("._processes", "_executor_manager_thread", "_run_finalizers", "_semlock", "_call_queue",
             "_result_queue", "_multiprocessing", "resource_tracker")
#: underscore names the standard library documents as public
DOCUMENTED = {"os._exit"}


def _stdlib_private_names():
    """Every underscore name that the modules minireptile's workers stand on use for themselves."""
    import ast
    import concurrent.futures
    import importlib
    import inspect
    import multiprocessing
    files = [p for package in (concurrent.futures, multiprocessing) for p in Path(package.__file__).parent.glob("*.py")]
    files += [Path(inspect.getsourcefile(importlib.import_module(name)))
              for name in ("threading", "queue", "subprocess", "signal", "weakref", "tempfile", "shutil", "pickle")]
    names = set()
    for file in files:
        for node in ast.walk(ast.parse(file.read_text())):
            name = getattr(node, "attr", None) or getattr(node, "id", None) or getattr(node, "name", None)
            if isinstance(name, str) and _private(name):
                names.add(name)
    return names


def _private(name):
    return name.startswith("_") and not name.startswith("__")


def test_the_package_reaches_into_no_private_part_of_the_standard_library():
    """Python may change any underscore name of its own in any release: the package uses none (its own
    ``self._x`` aside), nor imports a private module of the standard library."""
    import ast
    package = Path(mr.__file__).parent
    sources = {path: path.read_text() for path in sorted(package.rglob("*.py"))}
    assert [f"{path}: {name}" for path, text in sources.items() for name in INTERNALS if name in text] == []
    stdlib_private, found = _stdlib_private_names(), []
    for path, text in sources.items():
        tree = ast.parse(text)
        modules = set()                                   # names bound to the standard library's modules
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] in sys.stdlib_module_names:
                        modules.add(alias.asname or alias.name.split(".")[0])
                        if any(_private(part) for part in alias.name.split(".")):
                            found.append(f"{path}:{node.lineno}: import {alias.name}")
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                if node.module.split(".")[0] in sys.stdlib_module_names:
                    if any(_private(part) for part in node.module.split(".")):
                        found.append(f"{path}:{node.lineno}: from {node.module}")
                    for alias in node.names:
                        if _private(alias.name):
                            found.append(f"{path}:{node.lineno}: from {node.module} import {alias.name}")
                        else:
                            modules.add(alias.asname or alias.name)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Attribute) and _private(node.attr)):
                continue
            base, code = node.value, ast.unparse(node)
            if isinstance(base, ast.Name) and base.id in ("self", "cls") or code in DOCUMENTED:
                continue                                  # our own objects' attributes
            if node.attr in stdlib_private or isinstance(base, ast.Name) and base.id in modules:
                found.append(f"{path}:{node.lineno}: {code}")
    assert found == []


def test_the_check_for_private_parts_would_catch_what_the_workers_once_used():
    import ast
    stdlib_private = _stdlib_private_names()
    for code in ("executor._processes", "self.executor._executor_manager_thread", "util._run_finalizers",
                 "lock._semlock.name", "executor._call_queue"):
        attribute = ast.parse(code, mode="eval").body
        while not _private(attribute.attr):
            attribute = attribute.value
        assert attribute.attr in stdlib_private, code
