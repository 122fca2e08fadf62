"""Joint training (k = 1) against Reptile (k = 5) on sine waves: learning curves in one figure.

k is the number of inner SGD steps per task, each on 10 of the wave's 50 points; with k = 1, Reptile's
step theta - phi is lr g_1, the joint-training gradient. Each curve is the held-out MSE after 32 SGD
steps on 10 points of 20 new waves, from the initial theta (iteration 0) on.

    python examples/sine_k.py [ITERATIONS] [OUT.png]
"""
import sys

import minireptile as mr
from minireptile import plots
from minireptile.tasks import sine

iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
out = sys.argv[2] if len(sys.argv) > 2 else "sine_k.png"
net = mr.sine_mlp()                                   # the net sine.train builds; layers hold no state
adapted = lambda theta: float(sine.evaluate(net, theta, tasks=20)["mse"][-1].mean())   # after 32 steps

curves = {}
for k in (1, 5):
    config = sine.SineConfig(iterations=iterations, inner_steps=k)
    _, result = sine.train(config, eval_every=max(iterations // 10, 1), evaluate=adapted, progress=False)
    # result.evals: meta_train's Evaluations (iteration, train_seconds, value), from iteration 0
    curves[f"k = {k}" + (" (joint training)" if k == 1 else "")] = (
        [e.iteration for e in result.evals], [e.value for e in result.evals])
    print(f"k = {k}: held-out MSE {result.evals[0].value:.3f} at iteration 0, {result.evals[-1].value:.3f} "
          f"after {iterations} ({result.seconds:.1f} s of training)")
fig = plots.learning_curves(curves, ylabel="held-out MSE after 32 steps", logy=True,
                            title="sine waves: joint training (k = 1) against Reptile (k = 5)")
fig.savefig(out)
print(f"wrote {out}")
