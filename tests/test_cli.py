"""The command line, end to end on tiny budgets."""
import json

import numpy as np

from minireptile.cli import main
from minireptile.train import load_theta


def test_sine_command_writes_theta_results_and_figure(tmp_path, capsys):
    out = tmp_path / "sine"
    assert main(["sine", "--iterations", "60", "--meta-batch", "2", "--out", str(out), "--quiet"]) == 0
    theta = load_theta(out / "theta.npz")
    assert theta.shape == (4353,) and np.isfinite(theta).all()
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["iterations"] == 60 and results["train_seconds"] > 0
    for key in ("evaluation", "random_init", "joint"):
        assert results[key]["steps"] == [0, 1, 8, 16, 32] and len(results[key]["mean"]) == 5
    assert (out / "sine.png").stat().st_size > 10_000
    assert "held-out MSE" in capsys.readouterr().out


def test_sine_command_resumes(tmp_path):
    out = str(tmp_path / "sine")
    assert main(["sine", "--iterations", "30", "--method", "joint", "--out", out, "--quiet"]) == 0
    first = load_theta(f"{out}/theta.npz")
    assert main(["sine", "--iterations", "30", "--method", "joint", "--out", out, "--quiet",
                 "--resume"]) == 0                      # already finished: nothing more to do
    np.testing.assert_array_equal(load_theta(f"{out}/theta.npz"), first)


def test_bad_arguments_give_a_message_and_exit_code_2(tmp_path, capsys):
    assert main(["sine", "--meta-batch", "0", "--out", str(tmp_path), "--quiet"]) == 2
    assert "meta_batch (tasks per meta-iteration) must be a positive integer, got 0" in capsys.readouterr().err
