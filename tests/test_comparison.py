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
    monkeypatch.setenv("MINIREPTILE_MEMORY", "1G")               # each final evaluation's 6 tasks in one chunk
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
    assert [p["iteration"] for p in [saved["at_init"]]] == [0]          # one theta0, the same test tasks
    for method, r in saved["methods"].items():
        assert [p["iteration"] for p in r["curve"]] == [2, 4]
        assert set(r["curve"][0]["variance"]) == set(comparison.METHODS)
        assert set(r["final"]) == {"1", "2"} and r["final"]["2"][0]["tasks"] == 6
        assert 0 <= r["final"]["2"][1]["accuracy"] <= 1 and r["final"]["2"][1]["mode"] == "transductive"
        assert 0 < r["curve"][0]["train_seconds"] < r["curve"][1]["train_seconds"]
    assert saved["at_init"]["variance"]["maml"]["cosine"] == pytest.approx(1.0)
    assert {p["method"] for p in saved["paired"] if p["shots"] == 1 and p["mode"] == "transductive"} == {
        "reptile", "fomaml-shared", "fomaml-separate"}
    assert [c["id"] for c in saved["claims"]] == ["similar", "lower-variance", "faster"]
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
    assert stats["maml"].cosine == pytest.approx(1.0)
    assert stats["fomaml-shared"].trace != stats["fomaml-separate"].trace
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
    assert set(saved["at_init"]["variance"]) == {"reptile", "maml"}
    for r in saved["methods"].values():
        assert all(set(p["variance"]) == {"reptile", "maml"} for p in r["curve"])
    assert main(["compare", "--data", str(data), "--out", str(tmp_path / "one"), *TINY, "--methods", "fomaml-shared"]) == 0
    saved = json.loads((tmp_path / "one" / "method_comparison.json").read_text())
    assert set(saved["at_init"]["variance"]) == {"fomaml-shared"} and saved["claims"] == []


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


def spread(relative):
    """A Spread whose only telling number is the bias-corrected relative variance."""
    return comparison.Spread(10, 5, 1.0, 1.0, relative, 1.0, 1.0, relative, 1.0, 1.0)


def results_for(differences, relative, curves):
    """A Comparison with the given paired differences (reptile - maml), relative variances
    {method: value} and 1-shot curves {method: [(seconds, accuracy, ci)]} (the first point at init)."""
    stats = {m: spread(v) for m, v in relative.items()}
    held = lambda a, c: {1: (fewshot.Score("non-transductive", a, c, 10), fewshot.Score("transductive", a, c, 10))}
    at_init = comparison.Point(held(*curves["reptile"][0][1:]), stats)
    methods = {m: comparison.MethodResult(m, 10.0, 0.0, {}, tuple(
        comparison.Point(held(a, c), stats, 10 * i, t) for i, (t, a, c) in enumerate(curves[m]) if i)) for m in ("reptile", "maml")}
    paired = (comparison.Paired("reptile", "maml", 1, "non-transductive", *differences),)
    return comparison.Comparison(comparison.CompareConfig(variance_tasks=100), "", at_init, methods, paired)


def by_id(results):
    return {c.id: c for c in comparison.claims(results)}


def test_claims_hold_fail_or_stay_undecided():
    curves = {"reptile": [(0, 0.2, 0.01), (10, 0.6, 0.02)], "maml": [(0, 0.2, 0.01), (20, 0.6, 0.02)]}
    claims = comparison.claims(results_for((0.001, 0.01), {"reptile": 1.0, "maml": 2.0}, curves))
    assert [c.id for c in claims] == ["similar", "lower-variance", "faster"]
    assert [c.verdict for c in claims] == ["holds", "holds", "holds"]   # maml at 10 s: 0.4
    claims = comparison.claims(results_for((0.05, 0.01), {"reptile": 3.0, "maml": 2.0},
                                           {"reptile": curves["reptile"], "maml": [(0, 0.2, 0.01), (5, 0.7, 0.01)]}))
    assert [c.verdict for c in claims] == ["does not hold", "does not hold", "does not hold"]
    claims = comparison.claims(results_for((0.01, 0.02), {"reptile": 1.0, "maml": 2.0},
                                           {"reptile": curves["reptile"], "maml": [(0, 0.2, 0.01), (10, 0.59, 0.05)]}))
    verdicts = [c.verdict for c in claims]
    assert verdicts[0] == verdicts[2] == "undecided at this budget"
    # where noise hides MAML's expected update (corrected relative variance inf), a visible one is lower
    assert by_id(results_for((0.0, 0.01), {"reptile": 5.0, "maml": np.inf}, curves))["lower-variance"].verdict == "holds"
    verdict = by_id(results_for((0.0, 0.01), {"reptile": np.inf, "maml": np.inf}, curves))["lower-variance"].verdict
    assert verdict.startswith("undecided: at 3 of 3 points") and "--variance-tasks" in verdict   # noise hides both
    claim = by_id(results_for((0.0, 0.01), {"reptile": 3.0, "maml": 2.0}, curves))["lower-variance"]
    assert claim.verdict == "does not hold" and claim.numbers["init"] == pytest.approx(1.5)


def test_a_point_reads_back_from_its_dict():
    point = comparison.Point({1: (fewshot.Score("non-transductive", 0.5, 0.1, 4), fewshot.Score("transductive", 0.6, 0.2, 4))},
                             {"maml": spread(2.0), "reptile": spread(np.inf)}, 20, 1.5)
    assert comparison.Point.from_dict(json.loads(json.dumps(point.to_dict()))) == point


def test_a_comparison_reads_back_from_its_json():
    results = results_for((0.001, 0.01), {"reptile": 1.0, "maml": 2.0},
                          {"reptile": [(0, 0.2, 0.01), (10, 0.6, 0.02)], "maml": [(0, 0.2, 0.01), (20, 0.6, 0.02)]})
    results = dataclasses.replace(results, claims=comparison.claims(results))
    again = comparison.Comparison.from_dict(json.loads(json.dumps(results.to_dict())))
    assert again == results and again.report() == comparison.report(results)
    assert "holds: Reptile and MAML yield similar performance" in again.report()
