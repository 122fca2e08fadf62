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
