"""No command writes over what is there unasked, and a bad --out is refused before any work."""
import json

import pytest

from minireptile import analysis, combinations, comparison, joint
from minireptile.cli import main
from omniglot_tree import layout, write_zip


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    data = tmp_path_factory.mktemp("omniglot")
    write_zip(data / "images_background.zip", layout("images_background", ["A", "B", "C"], 4, 20))
    return data


def commands(data):
    """(argv without --out, the files it writes) of every command that writes a folder."""
    omniglot = ["--data", str(data), "--test-alphabets", "C"]
    return {
        "taylor": (["taylor", "--smoke"], analysis.OUTPUTS),
        "joint": (["joint", "--smoke", "--workers", "1"], joint.OUTPUTS),
        "figures": (["figures", "--smoke"], ("sine.png",) + analysis.OUTPUTS + joint.OUTPUTS),
        "gradient-combos": (["gradient-combos", "--data", str(data), "--test-alphabets", "B", "C", "--iterations", "2", "--workers", "1"],
                            combinations.OUTPUTS),
        "compare": (["compare", *omniglot, "--ways", "3", "--shots", "1", "--workers", "1"], comparison.OUTPUTS),
        "sine": (["sine"], ("results.json", "theta.npz")),
        "omniglot": (["omniglot", *omniglot, "--ways", "3", "--workers", "1"], ("results.json", "theta.npz")),
    }


def one_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


@pytest.mark.parametrize("name", ["taylor", "joint", "figures", "gradient-combos", "compare", "sine", "omniglot"])
def test_existing_outputs_are_refused_without_overwrite_and_left_byte_identical(name, data, tmp_path, capsys):
    argv, outputs = commands(data)[name]
    out = tmp_path / "out"
    out.mkdir()
    for i, file in enumerate(outputs):
        (out / file).write_bytes(f"an earlier run's {file} #{i}".encode())
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(argv + ["--out", str(out), "--quiet"]) == 2
    message = one_line(capsys)
    assert str(out) in message and "--overwrite" in message, message
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.parametrize("name", ["taylor", "joint", "figures", "gradient-combos", "compare", "sine", "omniglot"])
def test_an_out_under_a_file_is_refused_in_one_line_before_any_work(name, data, tmp_path, capsys):
    argv, _ = commands(data)[name]
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert main(argv + ["--out", str(blocker / "sub"), "--quiet"]) == 2
    message = one_line(capsys)
    assert f"--out {blocker / 'sub'} is under the file {blocker}" in message, message
    assert capsys.readouterr().out == ""                       # nothing started


@pytest.mark.slow
def test_taylor_twice_refuses_then_overwrite_replaces(tmp_path, capsys):
    out = tmp_path / "taylor"
    argv = ["taylor", "--smoke", "--quiet", "--out", str(out)]
    assert main(argv) == 0
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(first) == sorted(analysis.OUTPUTS)
    capsys.readouterr()
    assert main(argv) == 2 and "--overwrite" in one_line(capsys)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first
    assert main(argv + ["--overwrite"]) == 0
    assert json.loads((out / "taylor.json").read_text())


def test_eval_json_is_not_replaced_unasked(tmp_path, capsys):
    target = tmp_path / "scores.json"
    target.write_text("{}")
    assert main(["omniglot-eval", "--data", str(tmp_path), "--checkpoint", str(tmp_path / "none.npz"),
                 "--json", str(target), "--quiet"]) == 2
    assert "--json" in one_line(capsys) and target.read_text() == "{}"


ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_tests_write_nothing_under_the_users_cache_folder(tmp_path):
    """The refusal tests read Omniglot without setting MINIREPTILE_CACHE themselves: the suite's own
    cache folder takes what they cache. Run with HOME a temporary folder and no cache variable set."""
    import os
    import subprocess
    import sys
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("MINIREPTILE_CACHE", "XDG_CACHE_HOME")} | {
        "HOME": str(home)}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow",
                           "tests/test_comparison.py", "-k", "refuses"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0 and " passed" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]
    assert not (home / ".cache" / "minireptile").exists(), sorted(map(str, (home / ".cache").rglob("*")))


SWALLOWS = '''
import time
from pathlib import Path

def test_swallows_ctrl_c():         # as a notebook client turns a KeyboardInterrupt into a cell's failure
    Path("started").write_text("")
    try:
        time.sleep(60)
    except KeyboardInterrupt:
        pass
    assert False, "interrupted"

def test_after():
    Path("after").write_text("")
'''


@pytest.mark.slow
def test_one_ctrl_c_ends_the_whole_suite(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    (tmp_path / "test_swallow.py").write_text(SWALLOWS)
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "conftest", "-p", "no:cacheprovider",
                                "--rootdir", str(tmp_path), "test_swallow.py"], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while not (tmp_path / "started").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)             # a terminal's Ctrl-C: every process of the group
    output, _ = process.communicate(timeout=60)
    assert not (tmp_path / "after").exists(), output
    assert process.returncode == 2 and "KeyboardInterrupt" in output, output


def test_wrote_lists_only_the_files_this_command_wrote(tmp_path):
    from minireptile._atomic import atomic_write
    from minireptile.outputs import RunFolder
    (tmp_path / "kept.txt").write_text("as it was")
    (tmp_path / "replaced.txt").write_text("old")
    folder = RunFolder(tmp_path)
    for name in ("kept.txt", "replaced.txt", "new.txt", "never.txt"):
        folder.file(name)
    with atomic_write(tmp_path / "replaced.txt", "w") as f:
        f.write("new")
    (tmp_path / "new.txt").write_text("new")
    assert folder.written() == [tmp_path / "replaced.txt", tmp_path / "new.txt"]
    assert folder.report() == f"wrote:\n  {tmp_path / 'replaced.txt'}\n  {tmp_path / 'new.txt'}"
    assert RunFolder(tmp_path).report() == "wrote no files"


def test_an_empty_out_is_refused_not_taken_for_the_current_folder(refused, tmp_path):
    assert refused(["exercises", "--out", ""]) == "error: --out: expected a folder, got an empty string"
    assert refused(["sine", "--out", " ", "--iterations", "3"]) == "error: --out: expected a folder, got an empty string"
    assert list(tmp_path.iterdir()) == []
