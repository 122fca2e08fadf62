"""Memory by bytes: the budget, the measured bytes per image, chunks that follow them, the same
scores whatever the chunking, and a Mini-ImageNet-shaped evaluation within 1.5 GB."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import minireptile as mr
from minireptile import memory
from minireptile.tasks import fewshot

ROOT = Path(__file__).resolve().parent.parent


def test_the_budget_reads_sizes_with_units(monkeypatch):
    monkeypatch.delenv(memory.ENV, raising=False)
    assert memory.budget() == 64 * 2 ** 20
    for text, value in [("1000", 1000), ("64M", 64 * 2 ** 20), ("1.5G", int(1.5 * 2 ** 30)), ("2k", 2048),
                        ("300MB", 300 * 2 ** 20)]:
        monkeypatch.setenv(memory.ENV, text)
        assert memory.budget() == value, text
    for bad in ("lots", "-1G", "0", "1T"):
        monkeypatch.setenv(memory.ENV, bad)
        with pytest.raises(ValueError, match="MINIREPTILE_MEMORY must be a size in bytes such as 512M"):
            memory.budget()


def test_bytes_per_image_grow_with_the_image_and_the_net():
    small, large = mr.omniglot_net(5), mr.miniimagenet_net(5)
    omniglot, mini = memory.image_bytes(small, (1, 28, 28)), memory.image_bytes(large, (3, 84, 84))
    # the first conv's im2col alone: 84 x 84 positions x 27 values x 4 bytes
    assert mini > 84 * 84 * 27 * 4 and mini > 10 * omniglot
    assert memory.image_bytes(large, (3, 84, 84), np.float64) == pytest.approx(2 * mini, rel=0.1)   # bool, uint8 stay
    assert memory.images_at_once(large, (3, 84, 84), memory=10 * 2 ** 30) > \
        memory.images_at_once(large, (3, 84, 84), memory=2 ** 30) > \
        memory.images_at_once(large, (3, 84, 84), backward=True, memory=2 ** 28) >= 1
    assert memory.images_at_once(large, (3, 84, 84), memory=1) == 1       # never nothing


def image_pool(classes=6, per_class=7, size=16, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (classes * per_class, size, size, 3), dtype=np.uint8)
    return fewshot.ImagePool(images, [per_class] * classes)


def test_scores_do_not_depend_on_the_chunks_the_budget_makes(monkeypatch):
    pool = image_pool()
    net = mr.miniimagenet_net(3, width=4, blocks=2, image_size=16)
    thetas = np.stack([net.init(np.random.default_rng(s), dtype=np.float32) for s in range(2)])
    protocol = fewshot.Protocol(ways=3, shots=2, lr=0.01, inner_iters=3, batch_size=3)
    sizes, real = [], fewshot.score_tasks

    def spy(net, thetas, pool, plan, **adapt):
        sizes.append(len(plan["classes"]))
        return real(net, thetas, pool, plan, **adapt)
    monkeypatch.setattr(fewshot, "score_tasks", spy)
    scores = {}
    for budget in ("1G", "2M", "1"):                    # all 7 at once; a few at a time; one at a time
        monkeypatch.setenv(memory.ENV, budget)
        sizes.clear()
        scores[budget] = fewshot.task_scores(net, thetas, pool, np.random.default_rng(5), protocol, 7)
        scores[budget, "sizes"] = list(sizes)
    assert scores["1G", "sizes"] == [7] and scores["1", "sizes"] == [1] * 7
    assert 1 < len(scores["2M", "sizes"]) < 7
    for mode in fewshot.MODES:
        assert scores["1G"].of(mode).shape == (2, 7)
        np.testing.assert_array_equal(scores["1G"].of(mode), scores["2M"].of(mode))
        np.testing.assert_array_equal(scores["1G"].of(mode), scores["1"].of(mode))


def test_non_transductive_predictions_in_pieces_equal_one_piece():
    net = mr.miniimagenet_net(3, width=4, blocks=2, image_size=16)
    rng = np.random.default_rng(1)
    phi = np.stack([net.init(rng, dtype=np.float32) for _ in range(2)])
    support = rng.random((2, 6, 3, 16, 16), dtype=np.float32)
    queries = rng.random((2, 3, 3, 16, 16), dtype=np.float32)
    whole = fewshot.predict(net, phi, support, queries, transductive=False, memory=2 ** 30)
    for budget in (1, 50_000):                          # one query batch per piece; two or three
        np.testing.assert_array_equal(fewshot.predict(net, phi, support, queries, False, memory=budget), whole)


def test_a_larger_image_gets_fewer_tasks_at_once():
    protocol = fewshot.Protocol(ways=5, shots=5)
    omniglot = fewshot.ClassPool(np.zeros((6, 7, 28, 28)))
    mini = fewshot.ImagePool(np.zeros((42, 84, 84, 3), np.uint8), [7] * 6)
    budget = 512 * 2 ** 20
    at_once = {name: fewshot.tasks_at_once(net, pool, protocol, memory=budget)
               for name, net, pool in [("omniglot", mr.omniglot_net(5), omniglot),
                                       ("mini", mr.miniimagenet_net(5), mini)]}
    assert at_once["omniglot"] >= 2 * at_once["mini"] >= 5
    assert fewshot.tasks_at_once(mr.miniimagenet_net(5), mini, protocol, models=4, memory=budget) == \
        at_once["mini"] // 4


EVALUATION = """
import json, resource, sys
import numpy as np
sys.path.insert(0, {tests!r})
import minireptile as mr
from minireptile.tasks import fewshot
from miniimagenet_tree import class_images
images = class_images(np.random.default_rng(0), 0, 5, 7, 84).reshape(35, 84, 84, 3)
pool = fewshot.ImagePool(images, [7] * 5)
net = mr.miniimagenet_net(5)
theta = net.init(np.random.default_rng(0), dtype=np.float32)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
scores = fewshot.evaluate(net, theta, pool, np.random.default_rng(1), fewshot.Protocol(ways=5, shots=5, inner_iters=2), 12)
print(json.dumps({{"before": before, "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "scores": [s.accuracy for s in scores]}}))
"""


@pytest.mark.slow
def test_a_miniimagenet_evaluation_stays_under_1_5_gb():
    """Twelve 5-way 5-shot tasks of 84 x 84 images: drawn in one chunk, whose non-transductive predictions
    alone would hold 12 x 130 images' caches (about 10 GB) at once without the budget."""
    env = {k: v for k, v in os.environ.items() if k != memory.ENV} | {"OPENBLAS_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(EVALUATION.format(tests=str(ROOT / "tests")))],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    peak = result["peak"] * 1024                          # ru_maxrss: kilobytes on Linux
    assert peak <= 1.5 * 2 ** 30, f"peak resident memory {peak / 2 ** 30:.2f} GB"
    assert len(result["scores"]) == 2 and all(0 <= accuracy <= 1 for accuracy in result["scores"])


@pytest.mark.parametrize("method, inner", [("reptile", "adam"), ("maml", "sgd")])
def test_training_on_the_task_axis_in_pieces_of_the_budget_gives_the_same_theta(monkeypatch, method, inner):
    from minireptile.train import TrainConfig, meta_train
    pool = image_pool(classes=8)
    net = mr.miniimagenet_net(3, width=4, blocks=2, image_size=16)
    sampler = fewshot.training_sampler(pool, 3, 4, 3, 3, 5)            # 5 tasks a meta-iteration
    config = TrainConfig(iterations=3, lr=0.01, method=method, inner=inner, meta_step=0.5)
    import minireptile.train
    calls, real = [], minireptile.train.meta_direction

    def spy(net, thetas, *args):
        calls.append(len(thetas))
        return real(net, thetas, *args)
    monkeypatch.setattr(minireptile.train, "meta_direction", spy)
    runs = {}
    for budget in ("1G", "1"):                          # all 5 tasks at once; one at a time
        monkeypatch.setenv(memory.ENV, budget)
        theta = net.init(np.random.default_rng(0), dtype=np.float32)
        runs[budget] = meta_train(net, theta, sampler, mr.softmax_cross_entropy, config, progress=False)
    assert calls == [5] * 3 + [1] * 15
    np.testing.assert_array_equal(runs["1G"].theta, runs["1"].theta)
    if inner == "adam":
        np.testing.assert_array_equal(runs["1G"].inner_state.m, runs["1"].inner_state.m)
        np.testing.assert_array_equal(runs["1G"].inner_state.v, runs["1"].inner_state.v)
