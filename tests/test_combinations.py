"""The ten gradient-combination runs, each through meta_train, on the same tasks."""
import numpy as np
import pytest

import minireptile as mr
from minireptile import combinations
from minireptile.seeds import stream
from minireptile.tasks import fewshot


def pool(seed=0, classes=8, drawings=20, size=8):
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 1, (classes, 1, size, size)) + 0.1 * rng.standard_normal((classes, drawings, size, size))
    return fewshot.ClassPool(images)


def test_minibatches_of_one_task_do_not_overlap():
    batches = combinations.shared_minibatches(pool(), np.random.default_rng(0))
    assert len(batches) == 4 and batches[0][0].shape == (1, 25, 1, 8, 8)
    for x, y in batches:
        assert sorted(np.bincount(y[0])) == [5] * 5
    seen = [{img.tobytes() for img in x[0]} for x, _ in batches]
    assert all(not seen[i] & seen[j] for i in range(4) for j in range(i))


def pools():
    return fewshot.Pools(pool(0), pool(1), "two generated pools")


def small(**changes):
    return combinations.CombinationsConfig(**dict(inner_lr=0.03, iterations=1, eval_every=1, eval_tasks=2) | changes)


def test_one_iteration_is_each_runs_weighted_meta_gradient_step():
    net = mr.omniglot_net(ways=5, width=4, blocks=2, image_size=8)
    train_pool, test_pool = pool(0), pool(1)
    result = combinations.train(net, small(seed=5), fewshot.Pools(train_pool, test_pool, ""), progress=False)
    theta0 = net.init(stream(5, "initialization"), dtype=np.float32)       # replay the run's random streams
    batches = combinations.shared_minibatches(train_pool, stream(5, "training tasks"))
    for r, (name, weights, eps) in enumerate(combinations.RUNS):
        task = [(x[0], y[0]) for x, y in batches]          # every run sees the same task
        g = mr.meta_gradient(net, theta0, task, 0.03, mr.softmax_cross_entropy, list(weights))
        np.testing.assert_allclose(result.thetas[name], theta0 - eps * 0.03 * g, rtol=1e-5, atol=1e-6)
    assert len(result.runs) == 10 and result.iterations == (1,) and 0 <= result.random_init <= 1


def claims_for(final, tasks=400, noise=0.0, seed=0):
    """paper_claims for per-task scores around the given final accuracies of the runs named there
    (paired: a shared task difficulty, plus ``noise`` of each run's own)."""
    rng = np.random.default_rng(seed)
    names = [name for name, *_ in combinations.RUNS if name in final]
    difficulty = rng.normal(0, 0.2, tasks)
    claims = combinations.paper_claims({n: final[n] + difficulty + noise * rng.normal(size=tasks) for n in names})
    return {c.statement: c for c in claims}


FINAL = {"g1": 0.5, "g2": 0.7, "g3": 0.72, "g4": 0.73, "g1+g2": 0.75, "g1+g2+g3": 0.8,
         "g1+g2+g3+g4": 0.85, "avg(g1,g2)": 0.7, "avg(g1..g3)": 0.75, "avg(g1..g4)": 0.8}


def test_paper_claims_hold_fail_or_stay_undecided_on_paired_intervals():
    claims = claims_for(FINAL)
    assert {c.verdict for c in claims.values()} == {"holds"}
    assert [c.id for c in claims.values()] == ["g1-least", "sums-rise", "sum-beats-last"]
    sums = claims["a sum over g1..gk beats the single last gradient g_k"].numbers
    assert sums["g1+g2 - g2"]["mean"] == pytest.approx(0.05)
    assert sums["g1+g2 - g2"]["ci95"] == pytest.approx(0.0, abs=1e-12)    # shared difficulty cancels
    worse = claims_for(FINAL | {"g1": 0.9})["g1 gains less than every multi-gradient run"]
    assert worse.verdict == "does not hold"
    noisy = claims_for(FINAL | {"g1+g2+g3+g4": 0.805}, noise=0.3)["the sums rise with the number of gradients"]
    assert noisy.verdict == "undecided at this budget"


def test_every_run_is_scored_on_the_same_test_tasks():
    net = mr.omniglot_net(ways=5, width=4, blocks=2, image_size=8)
    train_pool, test_pool = pool(0), pool(1)
    result = combinations.train(net, small(iterations=2, eval_every=2, eval_tasks=6, seed=5),
                                fewshot.Pools(train_pool, test_pool, ""), progress=False)
    for name in ("g1", "g1+g2+g3+g4"):                 # one run alone scores what it scored among all ten
        alone = fewshot.task_scores(net, result.thetas[name], test_pool, stream(5, "evaluation tasks"),
                                    fewshot.Protocol(5, 5, 0.03, inner_iters=5, batch_size=25, inner="sgd"), 6)
        np.testing.assert_allclose(alone.non_transductive[0], result.hits[name], atol=1e-12)
        assert result.runs[name].accuracy()[-1] == pytest.approx(result.hits[name].mean())


@pytest.mark.slow
def test_gradient_combos_and_figures_commands_end_to_end(tmp_path):
    import json
    from minireptile.cli import main
    from omniglot_tree import layout, write_zip
    data = tmp_path / "data"
    data.mkdir()
    write_zip(data / "images_background.zip", layout("images_background", ["A", "B", "C"], 6, 21))
    out = tmp_path / "figs"
    assert main(["gradient-combos", "--data", str(data), "--test-alphabets", "C", "--iterations", "2",
                 "--eval-every", "1", "--eval-tasks", "2", "--out", str(out), "--quiet"]) == 0
    saved = json.loads((out / "gradient_combinations.json").read_text())
    assert saved["iterations"] == [1, 2] and len(saved["runs"]) == 10
    assert [c["id"] for c in saved["claims"]] == ["g1-least", "sums-rise", "sum-beats-last"]
    for claim in saved["claims"]:                              # every claim says what it was read from
        assert claim["numbers"] and all(np.isfinite([d["mean"], d["ci95"]]).all() for d in claim["numbers"].values())
    assert saved["config"]["eval_tasks"] == 2 and saved["runs"]["g1"]["scores"][-1][0]["tasks"] == 2
    assert (out / "gradient_combinations.png").is_file()
    assert len(list((out / "checkpoints").glob("*.npz"))) == 10 and (out / "checkpoints" / "avg-g1-g2.npz").is_file()
    assert sorted(p.stem for p in (out / "checkpoints").glob("avg-*")) == ["avg-g1-g2", "avg-g1-g3", "avg-g1-g4"]
    argv = ["gradient-combos", "--data", str(data), "--test-alphabets", "C", "--iterations", "2", "--eval-every", "1",
            "--eval-tasks", "2", "--out", str(out), "--quiet"]
    assert main(argv) == 2                                     # a finished study: --resume or --overwrite
    assert main(argv + ["--resume", "--inner-lr", "0.1"]) == 2  # not with other training arguments
    assert main(argv + ["--resume"]) == 0                      # every run finished: read back, the same curves
    assert json.loads((out / "gradient_combinations.json").read_text())["runs"] == saved["runs"]
    figures = ["figures", "--smoke", "--data", str(data), "--test-alphabets", "C", "--out", str(out)]
    assert main(figures) == 2                                  # gradient_combinations.* are there already
    assert main(figures + ["--overwrite"]) == 0
    for name in ("sine", "taylor_residuals", "inner_product", "joint_vs_reptile", "gradient_combinations",
                 "method_comparison"):
        assert (out / f"{name}.png").is_file(), name


def test_train_uses_the_update_it_is_given():
    """A notebook's own update trains the runs: one that never moves theta leaves theta at its start."""
    net = mr.omniglot_net(ways=5, width=4, blocks=2, image_size=8)
    seen = []

    def frozen(net, theta, batches, lr, loss, weights):
        seen.append((theta.shape, len(batches), batches[0][0].shape, tuple(weights)))
        return np.zeros_like(theta), np.ones(len(batches))
    result = combinations.train(net, small(iterations=3, eval_every=3, runs=("g1", "g1+g2"), seed=1), pools(),
                                progress=False, update=frozen)
    start = net.init(stream(1, "initialization"), dtype=np.float32)
    assert seen == [((net.num_params,), 4, (25, 1, 8, 8), (1, 0, 0, 0))] * 3 + \
        [((net.num_params,), 4, (25, 1, 8, 8), (1, 1, 0, 0))] * 3
    np.testing.assert_array_equal(np.stack(list(result.thetas.values())), np.stack([start, start]))


def test_a_diverging_run_stops_with_the_loops_error_and_an_interrupted_study_resumes(tmp_path):
    from minireptile.train import Diverged
    net = mr.omniglot_net(ways=5, width=4, blocks=2, image_size=8)
    config = small(iterations=4, eval_every=2, runs=("g1", "g1+g2+g3+g4"), seed=3)
    with pytest.raises(Diverged, match="diverged at iteration 1"):
        combinations.train(net, config, pools(), progress=False,
                           update=lambda net, theta, batches, lr, loss, w: (theta * np.nan, np.full(4, np.nan)))
    whole = combinations.train(net, config, pools(), progress=False)
    calls = []

    def stop_in_the_second_run(net, theta, batches, lr, loss, weights):
        calls.append(1)
        if len(calls) == 6:                        # iteration 2 of the second run
            raise KeyboardInterrupt
        return mr.meta.weighted(net, theta, batches, lr, loss, weights=weights)[:2]
    with pytest.raises(KeyboardInterrupt):
        combinations.train(net, config, pools(), progress=False, update=stop_in_the_second_run,
                           checkpoints=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g1.npz"]          # the first run finished
    resumed = combinations.train(net, config, pools(), progress=False, checkpoints=tmp_path, resume=True)
    np.testing.assert_array_equal(resumed.thetas["g1"], whole.thetas["g1"])          # read back, not retrained
    np.testing.assert_allclose(resumed.thetas["g1+g2+g3+g4"], whole.thetas["g1+g2+g3+g4"], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(resumed.hits["g1"], whole.hits["g1"])


def test_claims_whose_runs_were_not_trained_are_left_out():
    claims = claims_for({"g1": 0.5, "g2": 0.8, "g1+g2": 0.9})
    assert list(claims) == ["g1 gains less than every multi-gradient run"]
    assert list(claims[next(iter(claims))].numbers) == ["g2 - g1", "g1+g2 - g1"]


def test_the_budgets_make_valid_configurations_and_the_class_one_keeps_every_claim():
    assert set(combinations.BUDGETS) == {"smoke", "grading", "class", "full"}
    configs = {name: combinations.CombinationsConfig(**b) for name, b in combinations.BUDGETS.items()}
    assert configs["full"] == combinations.CombinationsConfig()
    needed = {"g1", "g2", "g3", "g4", "g1+g2", "g1+g2+g3", "g1+g2+g3+g4"}
    assert needed <= set(configs["class"].runs)
    with pytest.raises(ValueError, match="runs must be one of"):
        combinations.CombinationsConfig(runs=("g1", "g9"))
    with pytest.raises(ValueError, match="runs must be at least one name, got none"):
        combinations.CombinationsConfig(runs=())


@pytest.mark.slow
def test_an_update_of_your_own_trains_here_while_workers_score_the_same_tasks():
    from minireptile.workers import Workers
    net = mr.omniglot_net(ways=5, width=4, blocks=2, image_size=8)
    config = small(iterations=2, eval_every=2, eval_tasks=3, seed=2, runs=("g1", "g1+g2+g3+g4"))
    mine = lambda net, theta, batches, lr, loss, w: mr.meta.weighted(net, theta, batches, lr, loss, weights=w)[:2]
    alone = combinations.train(net, config, pools(), progress=False, update=mine)
    with Workers.local(2) as workers:
        spread = combinations.train(net, config, pools(), progress=False, update=mine, workers=workers)
    for name in config.runs:
        np.testing.assert_array_equal(spread.thetas[name], alone.thetas[name])
        np.testing.assert_array_equal(spread.hits[name], alone.hits[name])
