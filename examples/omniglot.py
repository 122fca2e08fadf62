"""Reptile on 5-way 1-shot Omniglot from a script: the pools, training with a learning curve, evaluation.

The paper's hyperparameters (inner Adam, k = 5 steps on minibatches of 10, meta-batch 5) at a budget
of your choosing; ``python -m minireptile omniglot`` runs the same with checkpoints and workers.

    python -m minireptile download --data DIR --subsets; export MINIREPTILE_OMNIGLOT=DIR
    python examples/omniglot.py [ITERATIONS] [TEST_TASKS] [OUT.png]
"""
import sys

import minireptile as mr
from minireptile import plots
from minireptile.tasks import experiment, omniglot

args = sys.argv[1:] + [None] * 3
iterations, tasks, out = int(args[0] or 1000), int(args[1] or 200), args[2] or "omniglot.png"

pools = omniglot.pools(omniglot.locate(download_missing=False))      # train / test characters, by alphabet
config = omniglot.OmniglotConfig(iterations=iterations, eval_every=max(iterations // 5, 1), eval_tasks=tasks)
net = mr.omniglot_net(config.ways)
result = experiment.train(net, config, pools.train, pools.test, progress=False)   # a TrainResult
final = experiment.final_evaluation(net, result.theta, pools.test, config, inner_state=result.inner_state,
                                    progress=False)                     # (Final, ...): shots, state, scores
print(pools.description)
print(experiment.report_finals(final))
curve = ([e.iteration for e in result.evals], [e.value[0].accuracy for e in result.evals])   # non-transductive
plots.learning_curves({"Reptile": curve}, ylabel="held-out 1-shot accuracy", hlines={"chance": 1 / config.ways},
                      title=f"5-way 1-shot Omniglot, {iterations} iterations").savefig(out)
print(f"{result.seconds:.0f} s of training (the evaluations not counted); learning curve from iteration 0 in {out}")
