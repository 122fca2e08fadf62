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


def test_sine_study_reports_every_k_and_step_size_as_they_come():
    heard = []
    result = joint.sine_study(iterations=25, ks=(1, 5), eps_values=(0.1, 1.0), tasks=5, eval_every=10,
                              report=lambda k, it, mse: heard.append((k, it, mse)))
    assert set(result.curves) == {1, 5} and result.curves[5].iterations == (0, 10, 20, 25)
    assert heard == [(k, it, v) for k in (1, 5) for it, v in zip(result.curves[k].iterations, result.curves[k].values)]
    assert set(result.step_sizes) == {0.1, 1.0}


def test_the_studies_round_trip_through_their_json_format():
    sine_part = joint.SineStudy({1: joint.Curve((10, 20), (1.5, 1.25))}, {1: 3.5}, {1: 0.04}, {0.1: 0.3})
    as_json = sine_part.to_dict()
    assert as_json == {"curves": {"1": [[10, 20], [1.5, 1.25]]}, "zero_shot": {"1": {"mse": 3.5, "prediction spread": 0.04}},
                       "step_sizes": {"0.1": 0.3}}                 # the committed figure's format
    assert joint.SineStudy.from_dict(as_json) == sine_part
    omni_part = joint.OmniglotStudy({5: joint.Curve((300,), (0.6,))}, {5: 0.2})
    assert joint.OmniglotStudy.from_dict(omni_part.to_dict()) == omni_part


def test_the_committed_figure_reads_back_into_the_studies():
    import json
    from pathlib import Path
    saved = json.loads((Path(__file__).parent.parent / "figures" / "joint_vs_reptile.json").read_text())
    sine_part = joint.SineStudy.from_dict(saved["sine"])
    assert sine_part.to_dict() == saved["sine"] and set(sine_part.curves) == {1, 2, 5, 10}
    assert joint.OmniglotStudy.from_dict(saved["omniglot"]).to_dict() == saved["omniglot"]


def test_sine_k_uses_one_pass_over_the_points():
    assert all(k * size == 50 for k, size in joint.SINE_K.items())


def test_the_budgets_name_the_same_parts_and_grow_from_grading_to_full():
    order = ["grading", "smoke", "class", "full"]
    assert set(joint.BUDGETS) == set(order)
    for part in ("sine", "omniglot"):
        sizes = [joint.BUDGETS[b][part]["iterations"] for b in order]
        assert sizes == sorted(sizes) and len(set(sizes)) == 4, part
