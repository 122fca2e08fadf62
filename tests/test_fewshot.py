"""N-way K-shot tasks: sampling, the authors' minibatches, prediction modes and evaluation."""
import json

import numpy as np
import pytest

import minireptile as mr
from minireptile.cli import main
from minireptile.tasks import fewshot
from omniglot_tree import layout, write_zip


def pool_of_patterns(classes=8, drawings=6, size=8, noise=0.05, seed=0, rotations=False):
    """Classes that are distinct random patterns, each drawing a noisy copy."""
    rng = np.random.default_rng(seed)
    patterns = rng.uniform(0, 1, (classes, 1, size, size))
    images = patterns + noise * rng.standard_normal((classes, drawings, size, size))
    return fewshot.ClassPool(images, rotations=rotations), patterns[:, 0]


def test_sample_shapes_distinct_drawings_and_random_labels():
    pool, patterns = pool_of_patterns()
    rng = np.random.default_rng(1)
    x, labels = pool.sample(rng, T=40, ways=3, shots=4)
    assert x.shape == (40, 3, 4, 1, 8, 8) and labels.shape == (40, 3, 4)
    np.testing.assert_array_equal(labels[:, :, 0], np.broadcast_to(np.arange(3), (40, 3)))
    # each drawing of a class appears at most once in a task (support and queries disjoint)
    flat = x.reshape(40, 3, 4, -1)
    for t in range(40):
        for n in range(3):
            assert len({row.tobytes() for row in flat[t, n]}) == 4
    # which class gets label 0 varies from task to task: no zero-shot answer exists
    label0 = [np.argmin(((patterns - x[t, 0, 0, 0]) ** 2).sum(axis=(1, 2))) for t in range(40)]
    assert len(set(label0)) > 3


def test_rotations_are_separate_classes():
    pool, patterns = pool_of_patterns(classes=2, noise=0.0, rotations=True)
    assert pool.num_classes == 8
    x, _ = pool.sample(np.random.default_rng(0), T=30, ways=8, shots=1)
    seen = {x[t, n, 0, 0].tobytes() for t in range(30) for n in range(8)}
    expected = {np.rot90(p.astype(np.float32), r).tobytes() for p in patterns for r in range(4)}
    assert seen == expected


def test_sample_rejects_impossible_tasks():
    pool, _ = pool_of_patterns(classes=4, drawings=3)
    with pytest.raises(ValueError, match=r"ways must lie in \[1, 4\] .* got 5"):
        pool.sample(np.random.default_rng(0), 2, 5, 1)
    with pytest.raises(ValueError, match=r"shots must lie in \[1, 3\] .* got 4"):
        pool.sample(np.random.default_rng(0), 2, 2, 4)
    with pytest.raises(ValueError, match="number of tasks must be a positive integer"):
        pool.sample(np.random.default_rng(0), 0, 2, 1)


def test_cycle_batches_use_every_sample_once_per_pass():
    x = np.arange(2 * 12).reshape(2, 12)[..., None] * 1.0     # (T, n, 1)
    labels = np.arange(2 * 12).reshape(2, 12)
    batches = fewshot.cycle_batches(np.random.default_rng(0), x, labels, batch_size=4, num_batches=6)
    assert len(batches) == 6 and batches[0][0].shape == (2, 4, 1)
    for t in range(2):
        first_pass = np.concatenate([b[1][t] for b in batches[:3]])
        second_pass = np.concatenate([b[1][t] for b in batches[3:]])
        assert sorted(first_pass) == sorted(second_pass) == list(range(12 * t, 12 * t + 12))
        assert not np.array_equal(first_pass, second_pass)     # reshuffled
        np.testing.assert_array_equal(batches[0][0][t, :, 0], batches[0][1][t])   # pairs stay paired


def test_training_sampler_tail_is_unseen_data():
    pool, _ = pool_of_patterns(drawings=6)
    sample = fewshot.training_sampler(pool, ways=3, shots=5, batch_size=4, inner_iters=4,
                                      meta_batch=2, tail_shots=1)
    batches = sample(np.random.default_rng(0))
    assert len(batches) == 4 and batches[-1][0].shape == (2, 3, 1, 8, 8)
    for t in range(2):
        head = {img.tobytes() for x, _ in batches[:-1] for img in x[t]}
        assert not head & {img.tobytes() for img in batches[-1][0][t]}


def test_shared_and_separate_tail_differ_in_the_last_minibatch_only():
    """FOMAML's two tails draw the same tasks and the same first k - 1 minibatches; the shared
    tail's last minibatch comes from the cycle of the training images (here it wraps around and
    reuses some), the separate tail's is the held-out image of each class."""
    pool, _ = pool_of_patterns(drawings=6)
    kinds = {shared: fewshot.training_sampler(pool, ways=3, shots=5, batch_size=4, inner_iters=4, meta_batch=2,
                                              tail_shots=1, shared_tail=shared) for shared in (False, True)}
    separate, shared = (kinds[s](np.random.default_rng(7)) for s in (False, True))
    assert len(separate) == len(shared) == 4
    for (xa, ya), (xb, yb) in zip(separate[:-1], shared[:-1]):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    tasks = pool.sample(np.random.default_rng(7), 2, 3, 5)[0]                 # the same draw: (2, 3, 5, 1, 8, 8)
    for t in range(2):
        training = {img.tobytes() for img in tasks[t, :, 1:].reshape(-1, 1, 8, 8)}   # all but the held-out one
        head = {img.tobytes() for x, _ in shared[:-1] for img in x[t]}
        last_shared = {img.tobytes() for img in shared[-1][0][t]}
        last_separate = {img.tobytes() for img in separate[-1][0][t]}
        assert last_shared <= training
        assert last_shared & head                       # 16 draws from 12 images: the cycle wrapped
        assert not last_separate & head and not last_separate & last_shared
    with pytest.raises(ValueError, match="shared_tail needs tail_shots"):
        fewshot.training_sampler(pool, 3, 5, 4, 4, 2, shared_tail=True)


def test_non_transductive_prediction_is_one_query_at_a_time():
    net = mr.omniglot_net(ways=3, width=4, blocks=2, image_size=8)
    rng = np.random.default_rng(2)
    phi = np.stack([net.init(rng) for _ in range(2)])
    support, queries = rng.uniform(0, 1, (2, 6, 1, 8, 8)), rng.uniform(0, 1, (2, 3, 1, 8, 8))
    logits = fewshot.predict(net, phi, support, queries, transductive=False)
    for t in range(2):
        for q in range(3):
            alone = net.forward(phi[t], np.concatenate([support[t], queries[t, q:q + 1]]))[0][-1]
            np.testing.assert_allclose(logits[t, q], alone, rtol=1e-10)
    together = fewshot.predict(net, phi, support, queries, transductive=True)
    np.testing.assert_allclose(together, net.forward(phi, queries)[0])


def test_evaluation_fine_tunes_to_well_above_chance():
    pool, _ = pool_of_patterns(classes=10, drawings=4)
    net = mr.omniglot_net(ways=5, width=8, blocks=2, image_size=8)
    theta = net.init(np.random.default_rng(0))
    protocol = fewshot.Protocol(ways=5, shots=1, lr=0.01, inner_iters=20, batch_size=5)
    scores = fewshot.evaluate(net, theta, pool, np.random.default_rng(3), protocol, 40, chunk=20)
    assert [s.mode for s in scores] == ["non-transductive", "transductive"]
    for score in scores:
        assert score.accuracy > 0.6 and 0 <= score.ci95 < 0.2 and score.tasks == 40, score


@pytest.mark.slow
def test_omniglot_command_end_to_end(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    write_zip(data / "images_background.zip", layout("images_background", ["A", "B", "C"], 4, 4))
    out = tmp_path / "run"
    argv = ["omniglot", "--data", str(data), "--test-alphabets", "C", "--ways", "3",
            "--iterations", "6", "--train-shots", "3", "--meta-batch", "2", "--eval-every", "3",
            "--eval-tasks", "6", "--eval-tasks-during", "4", "--eval-iters", "3", "--out", str(out),
            "--quiet"]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert [p["iteration"] for p in results["curve"]] == [0, 3, 6]
    assert [f["state"] for f in results["final"]] == ["carried-over Adam state", "fresh Adam state"]
    assert all(0 <= s["accuracy"] <= 1 for f in results["final"] for s in f["scores"])
    assert mr.load_theta(out / "theta.npz").dtype == np.float32
    assert (out / "learning_curve.png").is_file()
    assert main(argv + ["--resume"]) == 0                      # resumes a finished run
    assert main(argv[:3] + ["--test-alphabets", "Z", "--out", str(out), "--quiet"]) == 2
    scores = tmp_path / "scores.json"
    evaluate = ["omniglot-eval", "--data", str(data), "--test-alphabets", "C", "--ways", "3",
                "--shots", "2", "--eval-tasks", "4", "--eval-iters", "2"]
    assert main(evaluate + ["--checkpoint", str(out / "checkpoint.npz"), "--json", str(scores)]) == 0
    assert [f["state"] for f in json.loads(scores.read_text())["final"]] == ["carried-over Adam state", "fresh Adam state"]
    np.savez(tmp_path / "wrong.npz", theta=np.zeros(10))
    assert main(evaluate + ["--checkpoint", str(tmp_path / "wrong.npz")]) == 2


def test_evaluating_several_models_at_once_equals_one_at_a_time():
    pool, _ = pool_of_patterns(classes=10, drawings=4)
    net = mr.omniglot_net(ways=5, width=4, blocks=2, image_size=8)
    thetas = np.stack([net.init(np.random.default_rng(s)) for s in range(3)])
    protocol = fewshot.Protocol(ways=5, shots=1, lr=0.01, inner_iters=3, batch_size=5, inner="sgd")
    together = fewshot.task_scores(net, thetas, pool, np.random.default_rng(4), protocol, 6, chunk=6)
    for r in range(3):
        alone = fewshot.evaluate(net, thetas[r], pool, np.random.default_rng(4), protocol, 6, chunk=6)   # the same tasks
        assert together.scores(r) == alone


def test_evaluation_chunks_shrink_with_ways_and_shots_so_20_way_5_shot_fits_in_memory(monkeypatch):
    sizes = []
    real = fewshot.score_tasks

    def spy(net, thetas, pool, plan, **adapt):
        sizes.append(len(plan["classes"]))
        return real(net, thetas, pool, plan, **adapt)
    monkeypatch.setattr(fewshot, "score_tasks", spy)
    pool = fewshot.ClassPool(np.random.default_rng(0).random((20, 6, 8, 8)))
    net = mr.omniglot_net(20, width=2, blocks=2, image_size=8)
    theta = net.init(np.random.default_rng(0))
    fewshot.evaluate(net, theta, pool, np.random.default_rng(0), fewshot.Protocol(ways=20, shots=5, inner_iters=1), 7)
    assert sizes == [3, 3, 1]                     # 6,500 // (20 x 101) = 3 tasks per chunk
    sizes.clear()
    fewshot.evaluate(net, theta, pool, np.random.default_rng(0), fewshot.Protocol(ways=5, shots=5, inner_iters=1), 60)
    assert sizes == [50, 10]                      # 5-way 5-shot: 50, as before


def test_a_protocol_refuses_an_unknown_inner_optimizer():
    with pytest.raises(ValueError, match="inner must be 'adam' or 'sgd', got 'rmsprop'"):
        fewshot.Protocol(inner="rmsprop")


@pytest.fixture
def tiny_omniglot(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIREPTILE_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "data"
    data.mkdir()
    write_zip(data / "images_background.zip", layout("images_background", ["A", "B", "C"], 4, 4))
    return data


def scored_calls(monkeypatch):
    """[(desc, tasks)] of every evaluation a command makes, in order."""
    calls, real = [], fewshot.task_scores

    def spy(net, theta, pool, rng, protocol, tasks, **kwargs):
        calls.append((kwargs.get("desc"), tasks, protocol.shots))
        return real(net, theta, pool, rng, protocol, tasks, **kwargs)
    monkeypatch.setattr(fewshot, "task_scores", spy)
    return calls


def test_eval_tasks_3_draws_3_tasks_in_every_evaluation_and_eval_every_0_none_during_training(
        tiny_omniglot, tmp_path, monkeypatch):
    calls = scored_calls(monkeypatch)
    drawn, real_draw = [], fewshot.ClassPool.draw
    monkeypatch.setattr(fewshot.ClassPool, "draw", lambda self, rng, T, *a: drawn.append(T) or real_draw(self, rng, T, *a))
    base = ["omniglot", "--data", tiny_omniglot, "--test-alphabets", "C", "--ways", "3", "--iterations", "2",
            "--train-shots", "3", "--meta-batch", "2", "--eval-iters", "2", "--eval-tasks", "3", "--quiet",
            "--workers", "1"]
    assert main([str(a) for a in base + ["--eval-every", "1", "--out", tmp_path / "a"]]) == 0
    during = [tasks for desc, tasks, _ in calls if desc == "evaluating"]
    assert during == [3, 3, 3]                               # iterations 0, 1 and 2: 3 tasks, not 100
    assert [tasks for desc, tasks, _ in calls if desc.startswith("final")] == [3, 3]   # carried-over, fresh
    assert sum(drawn) - 2 * 2 == 3 * 5                       # every test task drawn: 5 evaluations of 3
    calls.clear()
    assert main([str(a) for a in base + ["--eval-every", "0", "--out", tmp_path / "b"]]) == 0
    assert [desc for desc, *_ in calls] == ["final evaluation, 1-shot, carried-over Adam state",
                                            "final evaluation, 1-shot, fresh Adam state"]
    results = json.loads((tmp_path / "b" / "results.json").read_text())
    assert results["curve"] == [] and not (tmp_path / "b" / "learning_curve.png").exists()
    assert results["config"]["eval_tasks_during"] == 3
