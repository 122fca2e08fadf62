"""The command line as a newcomer meets it: its exit status, its stderr (one line, no traceback) and
what is left in the output folder afterwards. Refusals run ``main(argv)`` in this process; exit codes,
Ctrl-C, SIGTERM, the umask and a finished run run the real command in a subprocess."""
import dataclasses
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import minireptile as mr
from minireptile.cli import build_parser, main
from minireptile.tasks.omniglot import OmniglotConfig
from omniglot_tree import layout, write_zip

REPO = Path(__file__).resolve().parents[1]
DRAWERS = 6


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """An Omniglot-shaped zip: alphabets A, B, C of 4 characters by 6 drawers (test alphabet C)."""
    root = tmp_path_factory.mktemp("omniglot")
    write_zip(root / "images_background.zip", layout("images_background", ["A", "B", "C"], 4, DRAWERS))
    return root


@pytest.fixture
def env(tmp_path):
    return os.environ | {"MINIREPTILE_CACHE": str(tmp_path / "cache"), "PYTHONWARNINGS": "default"}


def run(args, cwd, env, **kwargs):
    return subprocess.run([sys.executable, "-m", "minireptile", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300, **kwargs)


def one_line_error(result, status=2):
    """The stderr of a refused command: exactly one line, 'error: ...', no traceback."""
    assert result.returncode == status, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


TINY = ["--ways", 3, "--iterations", 4, "--train-shots", 3, "--meta-batch", 2, "--inner-iters", 2,
        "--eval-every", 2, "--eval-tasks", 4, "--eval-tasks-during", 2, "--eval-iters", 2, "--quiet"]


# ----------------------------------------------------------------------------- refused before any work

@pytest.mark.parametrize("args,match", [
    (["--meta-batch", 0], "--meta-batch must be an integer of at least 1, got 0"),
    (["--iterations", 0], "--iterations must be an integer of at least 1, got 0"),
    (["--inner-lr", 0], "--inner-lr must be a number above 0, got 0.0"),
    (["--inner-lr", "nan"], "--inner-lr must be a number above 0, got nan"),
    (["--meta-step", 2], "--meta-step must be a number above 0 and at most 1, got 2.0"),
    (["--batch-size", 51], r"--batch-size must be an integer from 1 to 50 \(the points of a wave\), got 51"),
    (["--seed", -1], "--seed must be an integer of at least 0, got -1"),
    (["--method", "reptil"], "argument --method: invalid choice: 'reptil'"),
    (["--iterations", "many"], "argument --iterations: invalid int value: 'many'"),
    (["--bogus", 1], r"^error: python -m minireptile sine: unrecognized arguments: --bogus 1 \(see --help\)$"),
    (["--resume", "--overwrite"], "--resume and --overwrite exclude each other"),
    (["--resume"], "--resume: there is no checkpoint .*checkpoint.npz to continue"),
])
def test_sine_refuses_bad_values_in_one_line(tmp_path, refused, args, match):
    assert __import__("re").search(match, refused(["sine", "--out", tmp_path / "out", *args]))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args,match", [
    (["--shots", 0], "--shots must be an integer of at least 1, got 0"),
    (["--shots", -1], "--shots must be an integer of at least 1, got -1"),
    (["--shots", DRAWERS], rf"--shots must be an integer from 1 to {DRAWERS - 1} \(the test data has "
                           rf"{DRAWERS} images per class and one is the query\), got {DRAWERS}"),
    (["--ways", 200], r"--ways must be an integer from 2 to 4 \(the test data has 4 classes\), got 200"),
    (["--ways", 1], "--ways must be an integer of at least 2, got 1"),
    (["--train-shots", 7], rf"--train-shots must be an integer from 1 to {DRAWERS} \(the images per class"),
    (["--eval-tasks", 0], "--eval-tasks must be an integer of at least 1, got 0"),
    (["--inner-batch", 0], "--inner-batch must be an integer of at least 1, got 0"),
    (["--eval-every", -1], "--eval-every must be an integer of at least 0, got -1"),
    (["--tail"], "--tail must be used with --method fomaml only, got --method reptile"),
    (["--method", "maml", "--inner", "adam"], "--inner must be sgd with --method maml"),
    (["--test-alphabets", "Z"], r"--test-alphabets must be alphabets of the data \(A, B, C\), got Z"),
    (["--test-alphabets", "A", "B", "C"], "--test-alphabets must be a part of the alphabets"),
])
def test_omniglot_refuses_bad_values_before_training(tmp_path, refused, data, args, match):
    assert __import__("re").search(match, refused(["omniglot", "--data", data, "--out", tmp_path / "out",
                                                              *TINY, *args]))
    assert not (tmp_path / "out").exists()


def test_omniglot_refuses_missing_and_foreign_data(tmp_path, refused):
    message = refused(["omniglot", "--data", tmp_path / "nowhere", *TINY])
    assert "--data " in message and "nowhere does not exist" in message
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"\xff\xd8")
    message = refused(["omniglot", "--data", tmp_path / "photos", *TINY])
    assert "--data " in message and "holds none of the Omniglot sets" in message
    assert not (tmp_path / "runs").exists()


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data):
    """A finished tiny Omniglot run (fomaml with a tail, so that every training flag can change)."""
    out = tmp_path_factory.mktemp("run") / "omniglot"
    argv = ["omniglot", "--data", str(data), "--out", str(out), "--method", "fomaml", "--tail",
            *map(str, TINY)]
    assert main(argv) == 0
    return out, argv


def test_a_finished_run_is_not_overwritten_without_resume_or_overwrite(tmp_path, env, trained):
    out, argv = trained
    before = (out / "checkpoint.npz").read_bytes()
    message = one_line_error(run(argv, tmp_path, env))
    assert "already holds a run (trained 4 of 4 iterations)" in message and "--resume" in message
    assert (out / "checkpoint.npz").read_bytes() == before


CHANGES = {"ways": 4, "shots": 2, "method": "reptile", "iterations": 6, "seed": 1, "inner": "sgd",
           "inner_lr": 0.002, "inner_batch": 5, "inner_iters": 3, "train_shots": 4, "meta_batch": 3,
           "meta_step": 0.5, "meta_step_final": 0.1, "tail": None, "eval_iters": 3, "eval_batch": 4,
           "eval_every": 1, "test_alphabets": "B"}


def test_every_training_argument_is_covered_by_the_resume_check():
    training = {f.name for f in dataclasses.fields(OmniglotConfig) if f.metadata["train"]}
    assert training == set(CHANGES)


@pytest.mark.parametrize("name", sorted(CHANGES))
def test_resume_refuses_each_changed_training_argument(trained, capsys, name):
    out, argv = trained
    before = (out / "checkpoint.npz").read_bytes()
    flag, value = "--" + name.replace("_", "-"), CHANGES[name]
    if value is None:                                           # a switch: leave it out
        changed = [a for a in argv if a != flag]
    else:
        changed = argv + [flag, str(value)]
    if name == "method":
        changed = [a for a in changed if a != "--tail"]
    assert main(changed + ["--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "was trained with other arguments" in err[0] and flag in err[0], err
    assert (out / "checkpoint.npz").read_bytes() == before


def test_resume_with_unchanged_arguments_finishes_and_counts_the_whole_run(trained, capsys):
    out, argv = trained
    assert main(argv + ["--resume", "--eval-tasks", "6"]) == 0         # eval-tasks: evaluation only
    text = capsys.readouterr().out
    assert "trained 4 iterations in" in text and "accuracy over 6 tasks" in text
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["iterations"] == 4 and results["train_seconds"] > 0


def _as_in_a_terminal():
    """Ctrl-C as a terminal's foreground command gets it. A suite started as a background job (``&`` in a
    script, as CI may run it) ignores SIGINT, and the commands it starts would inherit that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt(argv, cwd, env, after):
    """Start the command, wait until ``after()`` holds, then press Ctrl-C: SIGINT to the whole
    process group, workers included, as a terminal sends it; (status, stderr)."""
    process = subprocess.Popen([sys.executable, "-m", "minireptile", *map(str, argv)], cwd=cwd, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True, preexec_fn=_as_in_a_terminal)
    deadline = time.monotonic() + 120
    while not after() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    return process.returncode, stderr


def stopped_at(stderr):
    assert "Traceback" not in stderr and "continue with the same command and --resume" in stderr, stderr
    return int(stderr.split("stopped at iteration ")[1].split(";")[0])


@pytest.mark.slow
def test_ctrl_c_writes_the_checkpoint_and_resume_continues_from_it(tmp_path, env, data):
    out = tmp_path / "out"
    argv = ["omniglot", "--data", data, "--out", out, "--ways", 3, "--train-shots", 3, "--meta-batch", 2,
            "--iterations", 100000, "--checkpoint-every", 50, "--eval-every", 0, "--workers", 2, "--quiet"]
    status, stderr = interrupt(argv, tmp_path, env, after=lambda: out.exists())
    first = stopped_at(stderr)
    assert status == 130
    with np.load(out / "checkpoint.npz") as ckpt:              # written at the stop, not at a multiple of 50
        assert int(ckpt["iteration"]) == first and np.isfinite(ckpt["theta"]).all()
    assert not [p for p in os.listdir(out) if p.endswith(".tmp")]
    written = (out / "checkpoint.npz").stat().st_mtime_ns
    status, stderr = interrupt(argv + ["--resume"], tmp_path, env,
                               after=lambda: (out / "checkpoint.npz").stat().st_mtime_ns != written)
    assert status == 130 and stopped_at(stderr) > first        # continued, did not start again
    changed = [100001 if a == 100000 else a for a in argv]
    message = one_line_error(run(changed + ["--resume"], tmp_path, env))
    assert "--iterations 100000 (given 100001)" in message


@pytest.mark.slow
def test_ctrl_c_in_an_evaluation_says_nothing_was_written(tmp_path, env, trained, data):
    out, _ = trained
    argv = ["omniglot-eval", "--data", data, "--checkpoint", out / "theta.npz", "--eval-tasks", 10**6,
            "--json", tmp_path / "scores.json", "--quiet"]
    started = time.monotonic()
    status, stderr = interrupt(argv, tmp_path, env, after=lambda: time.monotonic() - started > 3)
    assert status == 130 and "Traceback" not in stderr
    assert stderr.strip().splitlines() == ["interrupted; nothing was written"]
    assert not (tmp_path / "scores.json").exists()


def test_divergence_is_one_line_naming_the_iteration_and_the_step_sizes(tmp_path, env):
    result = run(["sine", "--inner-lr", 5, "--out", tmp_path / "out", "--quiet"], tmp_path, env)
    message = one_line_error(result, status=1)
    assert "diverged at iteration" in message and "--inner-lr 5.0" in message
    assert "no checkpoint was written yet" in message and "overflow" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_sine_writes_only_into_its_folder_lists_the_files_and_respects_the_umask(tmp_path, env):
    result = run(["sine", "--iterations", 30, "--quiet"], tmp_path, env)
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "runs" / "sine"
    written = sorted(p.name for p in folder.iterdir())
    assert written == ["checkpoint.npz", "joint_checkpoint.npz", "sine.json", "sine.png", "theta.npz"]
    listed = result.stdout.split("wrote:\n")[1].split()
    assert sorted(Path(p).name for p in listed) == written
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path     # the test runs under umask 022
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "cache") == ["runs"]


def test_no_default_output_lies_in_the_repository():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    for name, sub in commands.items():
        defaults = {a.dest: a.default for a in sub._actions}
        if "out" in defaults:
            assert defaults["out"] == f"runs/{name}", name
    assert not str(Path(commands["download"].get_default("data")).resolve()).startswith(str(REPO))


# ----------------------------------------------------------------------------- omniglot-eval

@pytest.mark.slow
def test_omniglot_eval_reports_carried_over_rows_only_with_an_adam_state(tmp_path, env, trained, data):
    out, _ = trained
    base = ["omniglot-eval", "--data", data, "--eval-tasks", 3, "--eval-iters", 2, "--quiet"]
    with_state = run([*base, "--checkpoint", out / "checkpoint.npz", "--json", tmp_path / "s.json"], tmp_path, env)
    assert with_state.returncode == 0, with_state.stderr
    assert "carried-over Adam state" in with_state.stdout and "the checkpoint's split" in with_state.stdout
    assert [f["state"] for f in json.loads((tmp_path / "s.json").read_text())["final"]] == [
        "carried-over Adam state", "fresh Adam state"]
    bare = run([*base, "--checkpoint", out / "theta.npz"], tmp_path, env)
    assert bare.returncode == 0 and "carried-over" not in bare.stdout.split("holds no inner Adam state")[1]
    assert "holds no inner Adam state" in bare.stdout


@pytest.mark.parametrize("make,match", [
    (lambda p: None, "checkpoint .*missing.npz does not exist"),
    (lambda p: p.write_text("hello"), "is not a minireptile checkpoint \\(not an .npz archive\\)"),
    (lambda p: p.write_bytes(__import__("pickle").dumps({"theta": [1.0]})), "not an .npz archive"),
    (lambda p: np.savez(p, weights=np.zeros(3)), "holds no array named 'theta' \\(it has weights\\)"),
    (lambda p: np.savez(p, theta=np.zeros(4353)), "records no configuration \\(a bare theta\\): give --ways"),
    (lambda p: np.savez(p, theta=np.zeros(mr.omniglot_net(5).num_params, np.float32)), None),
    (lambda p: np.savez(p, theta=np.zeros(3), experiment=np.array(json.dumps({"combinations": {}, "run": "g1"}))),
     r"records no configuration \(its record holds combinations, run, from another command\): give --ways"),
])
def test_omniglot_eval_refuses_missing_and_foreign_checkpoints(tmp_path, refused, data, make, match):
    path = tmp_path / "missing.npz"
    make(path)
    args = ["omniglot-eval", "--data", data, "--checkpoint", path, "--eval-tasks", 2, "--quiet"]
    if match is None:                     # a bare 5-way theta said to be a 3-way net
        match = "holds 113221 parameters, not those of an Omniglot 3-way net \\(112707\\)"
        args += ["--ways", 3]
    message = refused(args)
    assert __import__("re").search(match, message), message
    assert "allow_pickle" not in message


def test_omniglot_eval_takes_the_net_from_the_checkpoints_configuration(tmp_path, env, trained, data, capsys):
    out, _ = trained                                   # a 3-way run: its checkpoint says so
    assert main(["omniglot-eval", "--data", str(data), "--checkpoint", str(out / "theta.npz"), "--ways", "5"]) == 2
    assert capsys.readouterr().err.strip() == f"error: --ways must be 3: {out / 'theta.npz'} is a 3-way net, got 5"


def test_omniglot_eval_refuses_zero_tasks(tmp_path, refused, trained, data):
    out, _ = trained
    message = refused(["omniglot-eval", "--data", data, "--checkpoint", out / "theta.npz",
                                  "--eval-tasks", 0])
    assert "--eval-tasks must be an integer of at least 1, got 0" in message


# ----------------------------------------------------------------------------- the other commands

@pytest.mark.parametrize("args,match", [
    (["gradient-combos", "--eval-tasks", 0], "--eval-tasks must be an integer of at least 1, got 0"),
    (["gradient-combos", "--inner-lr", -1], "--inner-lr must be a number above 0"),
    (["gradient-combos"], "--data must be at least 5 training classes of 20 images each"),
    (["gradient-combos", "--runs", "g1", "g5"], "--runs must be one of g1, g2, .*, got g5"),
    (["gradient-combos", "--runs", "g1", "g1"], "--runs must be distinct names, got g1 g1"),
    (["joint", "--test-alphabets", "Q"], "--test-alphabets must be alphabets of the data"),
    (["joint"], "--data must be at least 5 training classes of 10 images each, got 32 classes of 6"),
    (["figures", "--test-alphabets", "Q"], "--test-alphabets must be alphabets of the data"),
    (["demo", "--port", 70000], "--port must be from 0 to 65535"),
    (["demo", "--checkpoint", "nothing.npz"], "nothing.npz does not exist"),
])
def test_other_commands_refuse_bad_values(tmp_path, refused, data, args, match):
    if args[0] != "demo":
        args = args[:1] + ["--data", data] + args[1:]
    message = refused(args)
    assert __import__("re").search(match, message), message
    assert not (tmp_path / "runs").exists()


def test_an_out_that_is_a_file_is_refused(tmp_path, refused):
    (tmp_path / "taken").write_text("mine")
    message = refused(["taylor", "--smoke", "--out", tmp_path / "taken"])
    assert "is a file: give a folder" in message and (tmp_path / "taken").read_text() == "mine"


def test_a_failed_download_is_one_line_and_leaves_nothing(tmp_path, env):
    env = env | {"MINIREPTILE_OMNIGLOT_URL": "http://127.0.0.1:9/"}            # nothing listens there
    result = run(["download", "--data", tmp_path / "omniglot", "--quiet"], tmp_path, env)
    message = one_line_error(result, status=1)
    assert "download of images_background.zip" in message and "nothing was written" in message
    assert not (tmp_path / "omniglot").exists()


def test_the_20_way_preset_sets_the_papers_values_and_given_flags_still_win():
    from minireptile._shell import parse
    from minireptile.tasks.omniglot import PRESETS
    _parse = lambda argv: parse(build_parser, argv)
    args = _parse(["omniglot", "--data", "d", "--preset", "20-way"])
    assert {name: getattr(args, name) for name in PRESETS["20-way"]} == PRESETS["20-way"]
    assert (args.ways, args.inner_batch, args.inner_iters, args.inner_lr, args.eval_batch, args.eval_iters) == (
        20, 20, 10, 0.0005, 10, 50)
    args = _parse(["omniglot", "--data", "d", "--preset", "20-way", "--inner-batch", "7", "--ways=10"])
    assert (args.ways, args.inner_batch, args.inner_iters) == (10, 7, 10)
    default = _parse(["omniglot", "--data", "d"])
    assert (default.ways, default.inner_batch, default.inner_iters, default.inner_lr) == (5, 10, 5, None)


def test_an_internal_error_keeps_its_traceback_and_asks_to_be_reported(monkeypatch, tmp_path):
    """A ValueError the command line did not raise on purpose is a bug: never a one-line 'usage' error."""
    from minireptile.tasks import sine

    def broken(*args, **kwargs):
        raise ValueError("operands could not be broadcast together")       # a bug deep inside

    monkeypatch.setattr(sine, "run", broken)
    with pytest.raises(ValueError, match="could not be broadcast") as err:
        main(["sine", "--out", str(tmp_path / "out"), "--quiet"])
    assert any("please report it" in note for note in err.value.__notes__)
    assert err.traceback[-1].name == "broken"                            # the original frame, not a rewrap
    assert not (tmp_path / "out").exists()
