"""Joint training (k = 1) against Reptile with k = 2, 5, 10 inner steps (notebook 04).

With one inner step, Reptile's update is the plain gradient of a fresh task's loss: joint
training on all tasks at once. It learns the average task, which for sine waves is the flat
line y = 0 (the waves' mean) and for Omniglot, whose labels are permuted in every task, is
a network whose zero-shot predictions are pure guesses. Only k > 1 adds the term that
rewards fast adaptation.
"""
import numpy as np

from .losses import softmax_cross_entropy
from .models import omniglot_net, sine_mlp
from .tasks import fewshot, sine
from .train import TrainConfig, meta_train

SINE_K = {1: 50, 2: 25, 5: 10, 10: 5}          # k -> minibatch size: one pass over the 50 points


def sine_study(iterations=10000, ks=(1, 2, 5, 10), eps_values=(0.03, 0.1, 0.3, 1.0), seed=0,
               eval_every=None, tasks=100, progress=False):
    """Held-out MSE after 32 steps during training for each k, the zero-shot MSE and the spread
    of the zero-shot predictions, and the final MSE of k = 5 for each outer step size eps."""
    eval_every = eval_every or max(iterations // 10, 1)
    net = sine_mlp()                         # the architecture sine.train builds; layers hold no state
    adapted = lambda th: {"mse": float(sine.evaluate(net, th, tasks=tasks)["mse"][-1].mean())}
    curves, zero_shot = {}, {}
    x = sine.SineTasks().x_all[:, None]
    for k in ks:
        config = sine.SineConfig(iterations=iterations, batch_size=SINE_K[k], seed=seed)
        _, result = sine.train(config, evaluate=adapted, eval_every=eval_every, progress=progress,
                               desc=f"sine k={k}")
        curves[k] = ([i for i, _ in result.evals], [e["mse"] for _, e in result.evals])
        zero_shot[k] = {"mse": float(sine.evaluate(net, result.theta, tasks=tasks)["mse"][0].mean()),
                        "prediction spread": float(net.forward(result.theta, x)[0].std())}
    step_sizes = {}
    for eps in eps_values:
        config = sine.SineConfig(iterations=iterations, batch_size=SINE_K[5], meta_step=eps, seed=seed)
        _, result = sine.train(config, progress=progress, desc=f"sine eps={eps}")
        step_sizes[eps] = float(sine.evaluate(net, result.theta, tasks=tasks)["mse"][-1].mean())
    return {"curves": curves, "zero_shot": zero_shot, "step_sizes": step_sizes}


def omniglot_study(train_pool, test_pool, iterations=1500, ks=(1, 2, 5, 10), eval_every=None,
                   eval_tasks=50, seed=0, progress=False, workers=None, **net_args):
    """Held-out 5-way 1-shot accuracy during training for each number of inner Adam steps k,
    and the zero-shot accuracy (before fine-tuning) of the final theta."""
    eval_every = eval_every or max(iterations // 5, 1)
    net = omniglot_net(5, **net_args)
    curves, zero_shot = {}, {}
    scores = lambda th: {"accuracy": fewshot.evaluate(
        net, th, test_pool, np.random.default_rng(seed + 1), tasks=eval_tasks, ways=5, shots=1,
        inner_iters=50, progress=progress, desc="evaluating", workers=workers)["non-transductive"][0]}
    for k in ks:
        sample = fewshot.training_sampler(train_pool, ways=5, shots=10, batch_size=10, inner_iters=k,
                                          meta_batch=5)
        config = TrainConfig(iterations=iterations, lr=0.001, inner="adam", meta_step=1.0, seed=seed,
                             eval_every=eval_every)
        result = meta_train(net, net.init(np.random.default_rng(seed), dtype=np.float32), sample,
                            softmax_cross_entropy, config, evaluate=scores, progress=progress,
                            desc=f"omniglot k={k}", workers=workers)
        curves[k] = ([i for i, _ in result.evals], [e["accuracy"] for _, e in result.evals])
        zero_shot[k] = zero_shot_accuracy(net, result.theta, test_pool, np.random.default_rng(seed + 1),
                                          eval_tasks)
    return {"curves": curves, "zero_shot": zero_shot}


def zero_shot_accuracy(net, theta, pool, rng, tasks=50, ways=5):
    """Accuracy of theta on 5-way tasks without any fine-tuning (chance is 1 / ways: the
    labels are permuted in every task)."""
    x, labels = pool.sample(rng, tasks, ways, 2)
    support, _ = fewshot.flatten_task(x[:, :, 1:], labels[:, :, 1:])
    thetas = np.broadcast_to(theta, (tasks, theta.shape[-1]))
    logits = fewshot.predict(net, thetas, support, x[:, :, 0], transductive=False)
    return float((logits.argmax(axis=-1) == labels[:, :, 0]).mean())


#: the files run writes into its folder
OUTPUTS = ("joint_vs_reptile.png", "joint_vs_reptile.json")


def run(out, pools=None, smoke=False, progress=True, workers=None):
    """Notebook 04's comparison at full (or smoke) budget: joint_vs_reptile.png and .json in
    the folder ``out``. ``pools``: (train, test) Omniglot pools, or None to skip Omniglot."""
    from . import plots
    from .outputs import as_folder, jsonable, write_json
    out = as_folder(out)
    sine_part = sine_study(iterations=200 if smoke else 10000, tasks=20 if smoke else 100, progress=progress)
    omni_part = None
    if pools is not None:
        omni_part = omniglot_study(*pools, iterations=10 if smoke else 1500, eval_tasks=4 if smoke else 50,
                                   eval_every=10 if smoke else None, progress=progress, workers=workers)
    plots.joint_vs_reptile(sine_part, omni_part, out.file("joint_vs_reptile.png"))
    write_json(out.file("joint_vs_reptile.json"), {"sine": jsonable(sine_part), "omniglot": jsonable(omni_part)})
    return sine_part, omni_part
