"""Joint training against Reptile: the study's pieces on tiny budgets."""
import numpy as np

import minireptile as mr
from minireptile import joint
from minireptile.tasks import fewshot


def test_zero_shot_accuracy_of_a_random_network_is_near_chance():
    rng = np.random.default_rng(0)
    pool = fewshot.ClassPool(rng.uniform(0, 1, (10, 4, 8, 8)))
    net = mr.omniglot_net(ways=5, width=4, blocks=2, image_size=8)
    accuracy = joint.zero_shot_accuracy(net, net.init(rng), pool, rng, tasks=200)
    assert 0.12 < accuracy < 0.28                         # labels are permuted: chance is 0.2


def test_sine_study_reports_every_k_and_step_size():
    result = joint.sine_study(iterations=20, ks=(1, 5), eps_values=(0.1, 1.0), tasks=5, eval_every=10)
    assert set(result["curves"]) == {1, 5} and result["curves"][5][0] == [10, 20]
    assert set(result["step_sizes"]) == {0.1, 1.0}


def test_sine_k_uses_one_pass_over_the_points():
    assert all(k * size == 50 for k, size in joint.SINE_K.items())
