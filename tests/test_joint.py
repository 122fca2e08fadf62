"""Joint training against Reptile: the study's pieces on tiny budgets."""
import json
from pathlib import Path

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


def test_sine_study_reports_every_k_and_step_size_as_they_come():
    heard = []
    config = joint.JointConfig(sine_iterations=25, ks=(1, 5), eps_values=(0.1, 1.0), sine_tasks=5)
    result = joint.sine_study(config, report=lambda k, it, mse: heard.append((k, it, mse)))
    assert set(result.curves) == {1, 5} and result.curves[5].iterations == (0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22,
                                                                           24, 25)
    assert heard == [(k, it, v) for k in (1, 5) for it, v in zip(result.curves[k].iterations, result.curves[k].values)]
    assert set(result.step_sizes) == {0.1, 1.0}


def test_the_study_round_trips_through_its_json_format():
    sine_part = joint.SineStudy({1: joint.Curve((10, 20), (1.5, 1.25))}, {1: 3.5}, {1: 0.04}, {0.1: 0.3})
    omni_part = joint.OmniglotStudy({5: joint.Curve((300,), (0.6,))}, {5: 0.2})
    result = joint.JointResult(joint.JointConfig(), sine_part, omni_part, joint.joint_claims(sine_part, omni_part))
    again = joint.JointResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert again == result and again.sine.curves[1].values == (1.5, 1.25) and again.claims == ()   # one k: no claim


def test_the_committed_figure_reads_back_into_the_study():
    saved = json.loads((Path(__file__).parent.parent / "figures" / "joint_vs_reptile.json").read_text())
    result = joint.JointResult.from_dict(saved)
    assert result.to_dict() == saved and set(result.sine.curves) == {1, 2, 5, 10}
    assert [c.id for c in result.claims] == ["joint-worse-sine", "joint-worse-omniglot"]


def test_joint_training_adapts_worst_is_read_from_the_final_points():
    curves = lambda finals: {k: joint.Curve((10,), (v,)) for k, v in finals.items()}
    sine_part = joint.SineStudy(curves({1: 2.0, 5: 0.1}), {}, {}, {})
    omni_part = joint.OmniglotStudy(curves({1: 0.5, 2: 0.6, 5: 0.4}), {})
    sine_claim, omni_claim = joint.joint_claims(sine_part, omni_part)
    assert sine_claim.verdict == "holds" and sine_claim.numbers == {"k=1": 2.0, "k=5": 0.1}
    assert omni_claim.verdict == "does not hold"                # k = 5 is below k = 1


def test_sine_k_uses_one_pass_over_the_points():
    assert all(k * size == 50 for k, size in joint.SINE_K.items())


def test_the_budgets_make_valid_configurations_that_grow_from_grading_to_full():
    order = ["grading", "smoke", "class", "full"]
    assert set(joint.BUDGETS) == set(order)
    configs = [joint.JointConfig(**joint.BUDGETS[b]) for b in order]
    for part in ("sine_iterations", "omniglot_iterations"):
        sizes = [getattr(c, part) for c in configs]
        assert sizes == sorted(sizes) and len(set(sizes)) == 4, part
