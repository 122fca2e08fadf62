"""The miniimagenet and miniimagenet-eval commands end to end on a generated dataset: what they write,
and the one-line refusals before any work."""
import json
import os
import re

import numpy as np
import pytest

from miniimagenet_tree import dataset, write_csv, write_folders
from test_cli import one_line_error, run


TINY = ["--ways", 2, "--iterations", 4, "--train-shots", 3, "--meta-batch", 2, "--inner-iters", 2,
        "--inner-batch", 4, "--eval-every", 2, "--eval-tasks", 4, "--eval-tasks-during", 2, "--eval-iters", 2,
        "--quiet"]


@pytest.fixture
def env(tmp_path):
    return os.environ | {"MINIREPTILE_CACHE": str(tmp_path / "cache"), "PYTHONWARNINGS": "default"}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Folders layout: 4 training, 2 validation, 3 test classes of 6 images."""
    return write_folders(tmp_path_factory.mktemp("mini") / "data", dataset())


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data):
    tmp = tmp_path_factory.mktemp("run")
    environment = os.environ | {"MINIREPTILE_CACHE": str(tmp / "cache"), "PYTHONWARNINGS": "default"}
    out = tmp / "out"
    result = run(["miniimagenet", "--data", data, "--out", out, *TINY, "--final-shots", 1, 3, "--workers", 1],
                 tmp, environment)
    assert result.returncode == 0, result.stderr
    return out, result, environment


@pytest.mark.slow                 # a subprocess, or the trained run
def test_training_writes_the_run_and_evaluates_each_final_shot(trained):
    out, result, _ = trained
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.npz", "learning_curve.png", "results.json",
                                                      "theta.npz"]
    results = json.loads((out / "results.json").read_text())
    assert [(f["shots"], f["state"]) for f in results["final"]] == [
        (k, f"{s} Adam state") for k in (1, 3) for s in ("carried-over", "fresh")]
    assert [row["iteration"] for row in results["curve"]] == [0, 2, 4]      # from the initial theta
    assert results["config"]["train_shots"] == 3 and results["config"]["inner_iters"] == 2
    assert "Mini-ImageNet (train: 4 classes, 24 images from the folders; val: 2 classes" in result.stdout
    assert "3-shot, fresh Adam state" in result.stdout


def test_the_defaults_are_the_papers():
    from minireptile.tasks.miniimagenet import MiniImageNetConfig, MiniImageNetEvalConfig
    config = MiniImageNetConfig()
    assert (config.inner, config.inner_lr, config.inner_batch, config.inner_iters, config.train_shots,
            config.meta_batch, config.meta_step, config.meta_step_final, config.iterations, config.eval_iters,
            config.eval_batch, config.final_shots) == ("adam", 0.001, 10, 8, 15, 5, 1.0, 0.0, 100000, 50, 5, (1, 5))
    assert MiniImageNetEvalConfig().shots == (1, 5)


@pytest.mark.slow                 # a subprocess, or the trained run
def test_eval_scores_a_trained_theta_on_test_or_validation_classes(trained, data, tmp_path):
    out, _, environment = trained
    result = run(["miniimagenet-eval", "--data", data, "--checkpoint", out / "checkpoint.npz", "--shots", 1, 2,
                  "--eval-tasks", 3, "--eval-iters", 2, "--split", "val", "--json", tmp_path / "s.json", "--quiet"],
                 tmp_path, environment)
    assert result.returncode == 0, result.stderr
    assert "evaluating on val" in result.stdout
    scores = json.loads((tmp_path / "s.json").read_text())
    assert [(f["shots"], f["state"]) for f in scores["final"]] == [
        (k, f"{s} Adam state") for k in (1, 2) for s in ("carried-over", "fresh")]


@pytest.mark.slow                 # a subprocess, or the trained run
def test_a_csv_layout_trains_too(tmp_path, env):
    root = write_csv(tmp_path / "csv", dataset(splits=(("train", 3), ("test", 2))))
    result = run(["miniimagenet", "--data", root, "--out", tmp_path / "out", *TINY, "--iterations", 2,
                  "--eval-every", 0, "--workers", 1], tmp_path, env)
    assert result.returncode == 0, result.stderr
    assert "test: 2 classes, 12 images from the csv" in result.stdout
    curve = json.loads((tmp_path / "out" / "results.json").read_text())["curve"]
    assert curve == []                                                     # --eval-every 0: none during training


@pytest.mark.parametrize("args,match", [
    (["--final-shots", 1, 6], r"--final-shots must be an integer from 1 to 5 \(class n00000006 of the test "
                              r"data has 6 images and one is the query\), got 6"),
    (["--train-shots", 7], r"--train-shots must be an integer from 1 to 6 \(class n00000000 of the training "
                           r"data has 6 images\), got 7"),
    (["--ways", 3], r"--ways must be an integer from 2 to 2 \(the validation data has 2 classes\), got 3"),
    (["--final-shots", 0], r"--final-shots must be an integer of at least 1, got 0"),
    (["--final-shots", "five"], r"argument --final-shots: invalid int value: 'five'"),
    (["--inner-lr", -1], r"--inner-lr must be a number above 0, got -1.0"),
])
def test_bad_values_are_refused_in_one_line_and_nothing_is_written(tmp_path, refused, data, args, match):
    out = tmp_path / "out"
    message = refused(["miniimagenet", "--data", data, "--out", out, *TINY, *args])
    assert re.search(match, message), message
    assert not out.exists()


def test_missing_and_foreign_data_are_refused(tmp_path, refused):
    message = refused(["miniimagenet", "--data", tmp_path / "nowhere", "--quiet"])
    assert message == f"error: --data {tmp_path / 'nowhere'}: data folder {tmp_path / 'nowhere'} does not exist"
    (tmp_path / "a-file").write_text("hello")
    message = refused(["miniimagenet", "--data", tmp_path / "a-file", "--quiet"])
    assert message.endswith(f"data folder {tmp_path / 'a-file'} is a file, not a folder")
    (tmp_path / "foreign" / "train").mkdir(parents=True)
    (tmp_path / "foreign" / "notes.txt").write_text("hello")
    message = refused(["miniimagenet", "--data", tmp_path / "foreign", "--quiet"])
    assert "holds no Mini-ImageNet train and test split" in message
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow                 # a subprocess, or the trained run
def test_eval_refuses_a_checkpoint_of_another_net_and_a_missing_split(tmp_path, env, trained):
    import minireptile as mr
    from minireptile.train import save_checkpoint
    save_checkpoint(tmp_path / "omniglot.npz", theta=mr.omniglot_net(5).init(np.random.default_rng(0)))
    root = write_folders(tmp_path / "noval", dataset(splits=(("train", 3), ("test", 2))))
    message = one_line_error(run(["miniimagenet-eval", "--data", root, "--checkpoint", tmp_path / "omniglot.npz",
                                  "--quiet"], tmp_path, env))
    assert "records no configuration (a bare theta): give --ways" in message
    message = one_line_error(run(["miniimagenet-eval", "--data", root, "--checkpoint", trained[0] / "theta.npz",
                                  "--split", "val", "--quiet"], tmp_path, env))
    assert "--split must be one of the splits" in message and message.endswith("has (train, test), got val")
    message = one_line_error(run(["miniimagenet-eval", "--data", root, "--checkpoint", trained[0] / "theta.npz",
                                  "--shots", 1, 6, "--quiet"], tmp_path, env))
    assert "--shots must be an integer from 1 to 5" in message


@pytest.mark.slow                 # a subprocess, or the trained run
def test_a_corrupt_image_is_one_line_naming_it_and_leaves_no_cache(tmp_path, env):
    root = write_folders(tmp_path / "data", dataset(splits=(("train", 3), ("test", 2))))
    bad = root / "test" / "n00000004" / "n00000004_0002.JPEG"
    bad.write_bytes(b"\xff\xd8 truncated")
    message = one_line_error(run(["miniimagenet", "--data", root, "--quiet"], tmp_path, env))
    assert message.endswith(f"{bad}: not a readable image (an unknown format, or corrupt)")
    cache = env["MINIREPTILE_CACHE"]
    assert not os.path.exists(cache) or os.listdir(cache) == []
    assert not (tmp_path / "runs").exists()
