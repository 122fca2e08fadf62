"""The meta-training loop: exact resume, Ctrl-C, divergence, bad configuration, and that it learns."""
import os
import signal

from dataclasses import dataclass

import numpy as np
import pytest

import minireptile as mr
from minireptile.tasks.sine import SineTasks, evaluate
from minireptile.train import Diverged, Scoring, TrainConfig, meta_train

FAMILY = SineTasks()


def sampler(T=1):
    return lambda rng: FAMILY.training_batches(rng, T)


LOOP = ("checkpoint", "resume", "evaluate", "callback", "experiment")


def train(iterations, hidden=16, **kwargs):
    net = mr.sine_mlp(hidden=hidden)
    theta = net.init(np.random.default_rng(0))
    args = dict(iterations=iterations, lr=0.02, meta_step=0.1, seed=1) | kwargs
    sample = args.pop("sample", sampler(args.pop("meta_batch", 1)))
    loop = {k: args.pop(k) for k in LOOP if k in args}
    return net, meta_train(net, theta, sample, mr.mse, TrainConfig(**args), progress=False, **loop)


def interrupt_at(n):
    def callback(iteration, theta):
        if iteration == n:
            os.kill(os.getpid(), signal.SIGINT)      # what Ctrl-C sends
    return callback


@pytest.mark.parametrize("outer,inner,method,meta_batch", [
    ("sgd", "sgd", "reptile", 1), ("adam", "adam", "fomaml", 3), ("sgd", "sgd", "maml", 2)])
def test_stop_and_resume_is_bitwise_identical(tmp_path, outer, inner, method, meta_batch):
    N = 30
    kwargs = dict(outer=outer, inner=inner, method=method, meta_batch=meta_batch,
                  meta_step=0.01 if outer == "adam" else 0.1, lr=0.001 if inner == "adam" else 0.02)
    _, whole = train(2 * N, **kwargs)
    ckpt = tmp_path / "ckpt.npz"
    with pytest.raises(KeyboardInterrupt, match=f"stopped at iteration {N}"):
        train(2 * N, checkpoint=ckpt, checkpoint_every=7, callback=interrupt_at(N), **kwargs)
    with np.load(ckpt) as saved:                      # Ctrl-C wrote the state after iteration N
        assert int(saved["iteration"]) == N
    _, resumed = train(2 * N, checkpoint=ckpt, resume=True, **kwargs)
    np.testing.assert_array_equal(resumed.theta, whole.theta)
    np.testing.assert_array_equal(resumed.history, whole.history)


def test_checkpoint_of_a_finished_run_holds_theta(tmp_path):
    ckpt = tmp_path / "run" / "ckpt.npz"
    _, result = train(20, checkpoint=ckpt, checkpoint_every=5)
    np.testing.assert_array_equal(mr.load_theta(ckpt), result.theta)
    assert not [p for p in os.listdir(ckpt.parent) if ".tmp" in p]   # no temporary files left


def test_resume_refuses_a_different_configuration(tmp_path):
    ckpt = tmp_path / "ckpt.npz"
    train(10, checkpoint=ckpt)
    with pytest.raises(ValueError, match="different configuration.*'lr': \\(0.02, 0.03\\)"):
        train(10, checkpoint=ckpt, resume=True, lr=0.03)


def test_divergence_names_the_iteration_and_keeps_the_last_good_checkpoint(tmp_path):
    ckpt = tmp_path / "ckpt.npz"
    good = FAMILY.training_batches(np.random.default_rng(0), 1)

    def sample(rng):
        x, y = good[0]
        return [(x, y * 1e200)] if sample.calls > 12 else good    # the loss overflows to inf
    sample.calls = 0

    def count(iteration, theta):
        sample.calls = iteration
    with pytest.raises(Diverged, match=r"diverged at iteration 14 .*checkpoint .*ckpt.npz \(iteration 10\) is kept"):
        train(50, sample=sample, checkpoint=ckpt, checkpoint_every=5, callback=count)
    with np.load(ckpt) as saved:
        assert int(saved["iteration"]) == 10 and np.isfinite(saved["theta"]).all()


def test_divergence_before_any_checkpoint_says_none_was_written(tmp_path, recwarn):
    good = FAMILY.training_batches(np.random.default_rng(0), 1)
    with pytest.raises(Diverged, match="iteration 1 .*no checkpoint was written yet"):
        train(50, sample=lambda rng: [(good[0][0], good[0][1] * 1e200)], checkpoint=tmp_path / "c.npz")
    assert not (tmp_path / "c.npz").exists()
    assert not [w for w in recwarn if "overflow" in str(w.message)]      # no stream of warnings first


@pytest.mark.parametrize("kwargs,match", [
    (dict(meta_step=1.5), r"meta_step must be a number above 0 and at most 1, got 1.5"),
    (dict(meta_step_final=-0.1), r"meta_step_final must be a number at least 0 and at most 1, got -0.1"),
    (dict(lr=0), r"lr must be a number above 0, got 0"),
    (dict(lr=float("nan")), r"lr must be a number above 0, got nan"),
    (dict(iterations=0), "iterations must be an integer of at least 1, got 0"),
    (dict(outer="rmsprop"), "outer must be one of sgd, adam, got rmsprop"),
    (dict(inner="rmsprop"), "inner must be one of sgd, adam, got rmsprop"),
    (dict(meta_batch=0), r"meta_batch \(tasks per meta-iteration\) must be a positive integer, got 0"),
    (dict(method=[1, 1]), "method weights must have length k = 5"),
    (dict(method="maml", inner="adam"), "maml.*use inner='sgd'"),
])
def test_bad_training_configuration(kwargs, match):
    kwargs = dict(iterations=3) | kwargs
    with pytest.raises(ValueError, match=match):
        train(**kwargs)


def test_training_time_and_history_cover_the_whole_run_across_a_resume(tmp_path):
    ckpt = tmp_path / "ckpt.npz"
    with pytest.raises(KeyboardInterrupt):
        train(40, checkpoint=ckpt, callback=interrupt_at(25))
    with np.load(ckpt) as saved:
        before = float(saved["seconds"])
    assert before > 0
    _, resumed = train(40, checkpoint=ckpt, resume=True)
    assert resumed.resumed_at == 25 and resumed.seconds > before
    assert np.isfinite(resumed.history).all()                # all 40 iterations, not the last 15


def test_short_meta_training_beats_random_initialization():
    net, result = train(300, hidden=64, meta_batch=8, meta_step=1.0)
    trained = evaluate(net, result.theta, tasks=50)["mse"][-1]
    random = evaluate(net, net.init(np.random.default_rng(0)), tasks=50)["mse"][-1]
    assert np.mean(trained) < 0.8 * np.mean(random)


def test_annealed_meta_step_reaches_the_final_value():
    assert mr.meta.linear_schedule(0.1, 0.0, 0, 100) == 0.1
    np.testing.assert_allclose(mr.meta.linear_schedule(0.1, 0.0, 99, 100), 0.001)


def test_atomic_write_keeps_the_old_file_when_the_block_fails(tmp_path):
    from minireptile._atomic import atomic_write
    path = tmp_path / "results.json"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(path, "w") as f:
            f.write("half of the new")
            raise RuntimeError("crash in the middle")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["results.json"]
    with atomic_write(path, "w") as f:
        f.write("new")
    assert path.read_text() == "new" and os.listdir(tmp_path) == ["results.json"]


def test_inner_state_from_a_checkpoint_with_and_without_the_first_moment(tmp_path):
    from minireptile.train import load_inner_state, save_checkpoint
    v = np.arange(4.0)
    save_checkpoint(tmp_path / "full.npz", theta=v, inner_m=v + 1, inner_v=v, inner_t=np.array(7))
    save_checkpoint(tmp_path / "no_m.npz", theta=v, inner_v=v, inner_t=np.array(7))
    save_checkpoint(tmp_path / "none.npz", theta=v)
    full, no_m = load_inner_state(tmp_path / "full.npz"), load_inner_state(tmp_path / "no_m.npz")
    assert np.array_equal(full.m, v + 1) and np.array_equal(full.v, v) and full.t == 7
    assert np.array_equal(no_m.m, np.zeros(4)) and np.array_equal(no_m.v, v) and no_m.t == 7
    assert load_inner_state(tmp_path / "none.npz") is None


def test_each_evaluation_records_the_training_seconds_without_the_evaluations(tmp_path):
    import time

    def evaluate(theta):
        time.sleep(0.1)
        return {"norm": float(np.linalg.norm(theta))}
    ckpt = tmp_path / "ckpt.npz"
    with pytest.raises(KeyboardInterrupt):
        train(40, checkpoint=ckpt, evaluate=evaluate, eval_every=10, callback=interrupt_at(25))
    _, result = train(40, checkpoint=ckpt, resume=True, evaluate=evaluate, eval_every=10)
    seconds = [e.train_seconds for e in result.evals]
    assert [e.iteration for e in result.evals] == [0, 10, 20, 30, 40]       # the curve starts at the initial theta
    assert all(0 <= a < b for a, b in zip(seconds, seconds[1:]))
    assert result.eval_seconds > 0.45                          # the five evaluations' sleeps are not training
    assert seconds[-1] <= result.seconds < seconds[-1] + 0.1 <= seconds[-1] + 0.45   # one training time: no sleep in it


@dataclass(frozen=True)
class Norms:
    """An evaluation of one's own: a typed value with to_dict / from_dict."""
    norm: float
    largest: np.ndarray

    def to_dict(self):
        return {"norm": self.norm, "largest": self.largest.tolist()}

    @classmethod
    def from_dict(cls, d):
        return cls(d["norm"], np.array(d["largest"]))


def test_an_evaluation_may_return_any_object_and_resume_reads_it_back(tmp_path):
    evaluate = lambda theta: Norms(float(np.linalg.norm(theta)), np.sort(np.abs(theta))[-2:])
    _, whole = train(30, evaluate=evaluate, eval_every=10)
    ckpt = tmp_path / "ckpt.npz"
    with pytest.raises(KeyboardInterrupt):
        train(30, checkpoint=ckpt, evaluate=evaluate, eval_every=10, callback=interrupt_at(15))
    heard = []
    _, resumed = train(30, checkpoint=ckpt, resume=True, evaluate=Scoring(evaluate, Norms.from_dict, heard.append),
                       eval_every=10)
    assert [e.iteration for e in heard] == [20, 30]                         # the new ones, as they are made
    assert [e.iteration for e in resumed.evals] == [0, 10, 20, 30]
    for a, b in zip(whole.evals, resumed.evals):
        assert isinstance(b.value, Norms) and b.value.norm == a.value.norm
        np.testing.assert_array_equal(b.value.largest, a.value.largest)
    _, stored = train(30, checkpoint=ckpt, resume=True, evaluate=evaluate, eval_every=10)
    assert stored.evals[0].value == whole.evals[0].value.to_dict()         # without a reader: as stored


def test_a_learning_curve_starts_at_iteration_0_unless_told():
    evaluate = lambda theta: float(np.linalg.norm(theta))
    net, result = train(4, evaluate=evaluate, eval_every=2)
    assert [e.iteration for e in result.evals] == [0, 2, 4] and result.evals[0].train_seconds < 0.05
    theta0 = net.init(np.random.default_rng(0))
    assert result.evals[0].value == pytest.approx(evaluate(theta0))          # the initial theta, untrained
    _, later = train(4, evaluate=Scoring(evaluate, at_start=False), eval_every=2)
    assert [e.iteration for e in later.evals] == [2, 4]
    _, once = train(4, evaluate=evaluate)                                      # eval_every 0: once, at the end
    assert [e.iteration for e in once.evals] == [4]


def test_an_evaluation_that_is_not_json_is_refused_when_the_checkpoint_is_written(tmp_path):
    with pytest.raises(TypeError, match=r"JSON .* or have to_dict\(\); Object of type object is not JSON"):
        train(4, checkpoint=tmp_path / "ckpt.npz", evaluate=lambda theta: object(), eval_every=2)
    assert not (tmp_path / "ckpt.npz").exists()


def test_train_config_refuses_a_meta_step_that_never_moves_theta():
    with pytest.raises(ValueError, match="meta_step must be a number above 0"):
        TrainConfig(iterations=10, lr=0.02, meta_step=0)
    TrainConfig(iterations=10, lr=0.02, meta_step=0.1, meta_step_final=0)   # annealing to 0 is the default


def test_k_is_the_number_of_inner_steps_and_joint_training_is_k_1():
    from minireptile.config import ConfigError
    from minireptile.tasks.sine import SineConfig, train as sine_train
    assert SineConfig().inner_steps == 5 and SineConfig(batch_size=25).inner_steps == 2   # one pass by default
    assert SineConfig(method="joint").inner_steps == 1
    with pytest.raises(ConfigError, match=r"inner_steps must be 1 with --method joint"):
        SineConfig(method="joint", inner_steps=5)
    _, joint = sine_train(SineConfig(iterations=20, method="joint"), progress=False)
    _, k1 = sine_train(SineConfig(iterations=20, inner_steps=1), progress=False)
    np.testing.assert_allclose(joint.theta, k1.theta, rtol=1e-12, atol=1e-14)   # the same training (lr g_1 = theta - phi)


def test_k_minibatches_come_from_passes_over_fresh_permutations():
    rng = np.random.default_rng(0)
    one_pass = FAMILY.training_batches(np.random.default_rng(0), 2, 10)
    assert len(one_pass) == 5 and one_pass[0][0].shape == (2, 10, 1)
    batches = FAMILY.training_batches(rng, 2, 10, k=12)                    # two passes and a bit
    assert len(batches) == 12 and all(x.shape == (2, 10, 1) for x, _ in batches)
    np.testing.assert_array_equal(batches[0][0], one_pass[0][0])          # the first pass is the one-pass draw
    for first in (0, 5):
        points = np.concatenate([x for x, _ in batches[first:first + 5]], axis=1)    # (2, 50, 1)
        np.testing.assert_array_equal(np.sort(points[..., 0], axis=1), np.broadcast_to(FAMILY.x_all, (2, 50)))
