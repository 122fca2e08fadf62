"""The compare command: Reptile, FOMAML (both tails) and exact MAML on one footing."""
import dataclasses
import json

import numpy as np
import pytest

import minireptile as mr
from minireptile import comparison
from minireptile.seeds import stream
from minireptile.cli import main
from minireptile.tasks import fewshot
from omniglot_tree import layout, write_zip

TINY = ["--test-alphabets", "C", "--ways", "3", "--shots", "1", "2", "--iterations", "4", "--eval-every", "2",
        "--eval-tasks", "6", "--eval-tasks-during", "4", "--variance-tasks", "3", "--train-shots", "3",
        "--inner-batch", "3", "--inner-iters", "2", "--meta-batch", "2", "--eval-iters", "2", "--workers", "1",
        "--quiet"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    data = tmp_path_factory.mktemp("omniglot")
    write_zip(data / "images_background.zip", layout("images_background", ["A", "B", "C"], 4, 4))
    return data


@pytest.mark.slow
def test_compare_end_to_end_scores_every_method_on_the_same_tasks(data, tmp_path, monkeypatch):
    final_tasks = []
    original = fewshot.score_tasks

    def spy(net, thetas, pool, plan, **adapt):                 # the final evaluations draw 6 tasks at once
        if len(plan["classes"]) == 6:
            final_tasks.append((plan["classes"].copy(), plan["drawings"].copy()))
        return original(net, thetas, pool, plan, **adapt)

    monkeypatch.setattr(fewshot, "score_tasks", spy)
    out = tmp_path / "cmp"
    argv = ["compare", "--data", str(data), "--out", str(out), *TINY]
    assert main(argv) == 0
    saved = json.loads((out / "method_comparison.json").read_text())
    assert list(saved["methods"]) == list(comparison.METHODS)
    first = saved["methods"]["reptile"]["curve"][0]
    for method, r in saved["methods"].items():
        assert [p["iteration"] for p in r["curve"]] == [0, 2, 4]
        assert r["curve"][0] == first                           # the same theta0, the same test tasks
        assert [v["iteration"] for v in r["variance"]] == [2, 4]
        assert set(r["variance"][0]["statistics"]) == set(comparison.METHODS)
        assert set(r["final"]) == {"1-shot", "2-shot"} and r["test_tasks"] == 6
        assert 0 <= r["final"]["2-shot"]["transductive"]["accuracy"] <= 1
        assert 0 < r["curve"][1]["train_seconds"] < r["curve"][2]["train_seconds"]
    assert saved["variance_at_init"]["maml"]["cosine"] == pytest.approx(1.0)
    assert set(saved["paired"]["1-shot"]["transductive"]) == {"reptile - maml", "fomaml-shared - maml",
                                                              "fomaml-separate - maml"}
    assert list(saved["claims"]) == ["Reptile and MAML yield similar performance", "Reptile's update has lower variance",
                                     "Reptile converges faster (at equal training seconds)"]
    assert (out / "method_comparison.png").is_file()
    assert len(final_tasks) == 2 * 4                           # 1-shot and 2-shot of each method
    for shot in range(2):
        tasks = final_tasks[shot::2]
        assert all(np.array_equal(a[0], tasks[0][0]) and np.array_equal(a[1], tasks[0][1]) for a in tasks)
    assert main(argv) == 2                                     # refuses to mix runs
    assert main(argv + ["--resume"]) == 0                      # every method finished: only re-scored
    assert main(argv + ["--resume", "--inner-lr", "0.2"]) == 2
    assert main(argv + ["--overwrite", "--methods", "reptile", "maml"]) == 0
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["maml.npz", "reptile.npz"]
    both = json.loads((out / "method_comparison.json").read_text())
    assert main(argv + ["--resume", "--methods", "reptile"]) == 0         # MAML's results stay
    after = json.loads((out / "method_comparison.json").read_text())
    assert list(after["methods"]) == ["reptile", "maml"]
    assert after["methods"]["maml"] == both["methods"]["maml"]
    assert after["paired"] == both["paired"]                               # re-scored on the same tasks


@pytest.mark.parametrize("flags, message", [
    (["--methods", "reptile", "mamal"],
     "--methods must be one of reptile, fomaml-shared, fomaml-separate, maml, got mamal"),
    (["--methods", "maml", "maml"], "--methods must be distinct names, got maml maml"),
    (["--train-shots", "1"], "--train-shots must be an integer of at least 2"),
    (["--train-shots", "5"], "--train-shots must be an integer from 2 to 4 (the training data has 4 images per class)"),
    (["--inner-iters", "1"], "--inner-iters must be an integer of at least 2"),
    (["--ways", "9"], "--ways must be an integer from 2 to"),
    (["--shots", "4"], "--shots must be an integer from 1 to 3"),
    (["--outer", "rmsprop"], "--outer: invalid choice"),
    (["--meta-step", "2"], "--meta-step must be a number above 0 and at most 1, got 2.0"),
    (["--variance-tasks", "1"], "--variance-tasks must be an integer of at least 2, got 1"),
])
def test_compare_refuses_bad_values_in_one_line_before_any_work(data, tmp_path, capsys, flags, message):
    out = tmp_path / "cmp"
    argv = ["compare", "--data", str(data), "--out", str(out), "--test-alphabets", "C", "--ways", "3", "--shots", "1", "2",
            *flags]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not out.exists()


def test_update_variance_measures_every_method_on_the_same_tasks():
    images = np.random.default_rng(0).uniform(0, 1, (6, 5, 8, 8))
    pool = fewshot.ClassPool(images)
    net = mr.omniglot_net(ways=3, width=4, blocks=2, image_size=8)
    config = comparison.CompareConfig(ways=3, train_shots=4, inner_batch=3, inner_iters=3, variance_tasks=5)
    theta = net.init(np.random.default_rng(1))
    stats = comparison.update_variance(net, theta, pool, config)
    assert stats == comparison.update_variance(net, theta, pool, config)     # the same tasks at every call
    assert stats["maml"]["cosine"] == pytest.approx(1.0)
    assert stats["fomaml-shared"]["trace"] != stats["fomaml-separate"]["trace"]
    # Reptile's update lr (g1 + g2 + g3) against a direct computation on task 0
    batches = config.sampler(pool, "reptile", 5)(stream(config.seed, "variance tasks"))
    phi = mr.inner_sgd(net, theta, [(x[0], y[0]) for x, y in batches], 0.05, mr.softmax_cross_entropy)[0]
    grads = comparison.variance.task_gradients(net, theta, batches, 0.05, mr.softmax_cross_entropy,
                                               {"reptile": "reptile"})["reptile"]
    np.testing.assert_allclose(0.05 * grads[0], theta - phi, rtol=1e-8, atol=1e-12)


def test_compare_methods_reptile_maml_computes_no_fomaml_statistic(data, tmp_path, monkeypatch):
    rules = []
    real = comparison.variance.meta_gradient

    def spy(net, thetas, batches, lr, loss, method):
        rules.append(method)
        return real(net, thetas, batches, lr, loss, method)
    monkeypatch.setattr(comparison.variance, "meta_gradient", spy)
    monkeypatch.setenv("MINIREPTILE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "cmp"
    assert main(["compare", "--data", str(data), "--out", str(out), *TINY, "--methods", "reptile", "maml"]) == 0
    assert rules and set(rules) == {"reptile", "maml"}
    saved = json.loads((out / "method_comparison.json").read_text())
    assert set(saved["variance_at_init"]) == {"reptile", "maml"}
    for r in saved["methods"].values():
        assert all(set(v["statistics"]) == {"reptile", "maml"} for v in r["variance"])
    assert main(["compare", "--data", str(data), "--out", str(tmp_path / "one"), *TINY, "--methods", "fomaml-shared"]) == 0
    saved = json.loads((tmp_path / "one" / "method_comparison.json").read_text())
    assert set(saved["variance_at_init"]) == {"fomaml-shared"} and "Reptile's update has lower variance" not in saved["claims"]


def test_a_short_comparison_gets_a_short_evaluation_unless_told_otherwise():
    full = comparison.CompareConfig()
    assert (full.eval_tasks, full.eval_tasks_during, full.variance_tasks) == (1000, 100, 100)   # the defaults
    short = comparison.CompareConfig(iterations=30)
    assert (short.eval_tasks, short.eval_tasks_during, short.variance_tasks) == (30, 30, 30)
    assert comparison.CompareConfig(iterations=1).variance_tasks == 2
    given = comparison.CompareConfig(iterations=30, eval_tasks=500, variance_tasks=50)
    assert (given.eval_tasks, given.eval_tasks_during, given.variance_tasks) == (500, 100, 50)


def test_variance_in_chunks_of_the_budget_equals_all_tasks_at_once():
    images = np.random.default_rng(0).uniform(0, 1, (6, 5, 8, 8))
    pool = fewshot.ClassPool(images)
    net = mr.omniglot_net(ways=3, width=4, blocks=2, image_size=8)
    config = comparison.CompareConfig(ways=3, train_shots=4, inner_batch=3, inner_iters=3, variance_tasks=7)
    theta = net.init(np.random.default_rng(1), dtype=np.float32)
    batches = config.sampler(pool, "reptile", 7)(stream(config.seed, "variance tasks"))
    rules = {m: m for m in ("reptile", "fomaml", "maml")}
    whole = comparison.variance.task_gradients(net, theta, batches, 0.05, mr.softmax_cross_entropy, rules, memory=2 ** 30)
    assert comparison.variance.tasks_at_once(net, batches, "maml", memory=2 ** 30) >= 7
    assert comparison.variance.tasks_at_once(net, batches, "reptile", memory=150_000) in range(2, 7)
    for budget in (1, 150_000, 200_000):             # one task at a time; a few
        parts = comparison.variance.task_gradients(net, theta, batches, 0.05, mr.softmax_cross_entropy, rules,
                                                   memory=budget)
        for m in rules:
            np.testing.assert_array_equal(parts[m], whole[m])


def results_for(differences, relative, curves):
    """A Comparison with the given paired differences (reptile - maml), relative variances
    {method: value} and 1-shot curves {method: [(seconds, accuracy, ci)]}."""
    stats = {m: {"relative_variance_corrected": v} for m, v in relative.items()}
    held = lambda a, c: {"1-shot": comparison.HeldOut(a, c, a, c)}
    methods = {m: comparison.MethodResult(m, 10, 0.0, 0.0, 10, {}, tuple(
        comparison.CurvePoint(i, t, held(a, c)) for i, (t, a, c) in enumerate(curves[m])),
        ({"iteration": 10, "statistics": stats},)) for m in ("reptile", "maml")}
    paired = {"1-shot": {"non-transductive": {"reptile - maml": {"mean": differences[0], "ci95": differences[1]}}}}
    return comparison.Comparison({"variance_tasks": 100}, "", {}, stats, methods, paired, {})


def test_claims_hold_fail_or_stay_undecided():
    curves = {"reptile": [(0, 0.2, 0.01), (10, 0.6, 0.02)], "maml": [(0, 0.2, 0.01), (20, 0.6, 0.02)]}
    claims = comparison.claims(results_for((0.001, 0.01), {"reptile": 1.0, "maml": 2.0}, curves))
    assert [c["verdict"] for c in claims.values()] == ["holds", "holds", "holds"]   # maml at 10 s: 0.4
    claims = comparison.claims(results_for((0.05, 0.01), {"reptile": 3.0, "maml": 2.0},
                                           {"reptile": curves["reptile"], "maml": [(0, 0.2, 0.01), (5, 0.7, 0.01)]}))
    assert [c["verdict"] for c in claims.values()] == ["does not hold", "does not hold", "does not hold"]
    claims = comparison.claims(results_for((0.01, 0.02), {"reptile": 1.0, "maml": 2.0},
                                           {"reptile": curves["reptile"], "maml": [(0, 0.2, 0.01), (10, 0.59, 0.05)]}))
    verdicts = [c["verdict"] for c in claims.values()]
    assert verdicts[0] == verdicts[2] == "undecided at this budget"
    # where noise hides MAML's expected update (corrected relative variance inf), a visible one is lower
    claims = comparison.claims(results_for((0.0, 0.01), {"reptile": 5.0, "maml": np.inf}, curves))
    assert claims["Reptile's update has lower variance"]["verdict"] == "holds"
    claims = comparison.claims(results_for((0.0, 0.01), {"reptile": np.inf, "maml": np.inf}, curves))
    verdict = claims["Reptile's update has lower variance"]["verdict"]      # noise hides both: no verdict
    assert verdict.startswith("undecided: at 3 of 3 points") and "--variance-tasks" in verdict
    claims = comparison.claims(results_for((0.0, 0.01), {"reptile": 3.0, "maml": 2.0}, curves))
    assert claims["Reptile's update has lower variance"]["verdict"] == "does not hold"


def test_a_point_reads_back_from_its_dict_and_from_the_flat_keys_of_older_checkpoints():
    point = comparison.Point({"1-shot": comparison.HeldOut(0.5, 0.1, 0.6, 0.2)},
                             {"maml": {"norm": 2.0}, "reptile": {"norm": 1.0}})
    assert comparison.Point.from_dict(json.loads(json.dumps(point.to_dict()))) == point
    flat = {"1-shot": 0.5, "1-shot ci95": 0.1, "1-shot transductive": 0.6, "1-shot transductive ci95": 0.2,
            "variance/maml/norm": 2.0, "variance/reptile/norm": 1.0}
    assert comparison.Point.from_dict(flat) == point


def test_a_comparison_reads_back_from_its_json():
    results = results_for((0.001, 0.01), {"reptile": 1.0, "maml": 2.0},
                          {"reptile": [(0, 0.2, 0.01), (10, 0.6, 0.02)], "maml": [(0, 0.2, 0.01), (20, 0.6, 0.02)]})
    results = dataclasses.replace(results, claims=comparison.claims(results))
    again = comparison.Comparison.from_dict(json.loads(json.dumps(results.to_dict())))
    assert again == results and str(again) == comparison.report(results)
    assert "holds: Reptile and MAML yield similar performance" in str(again)
