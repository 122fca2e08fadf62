"""Randomness by name: each purpose's stream is fixed, distinct where purposes must not share draws,
and the same streams the committed figures were made with."""
import numpy as np
import pytest

from minireptile import seeds


def test_a_stream_is_the_same_at_every_call_and_differs_by_seed():
    draw = lambda seed: seeds.stream(seed, "final test tasks").integers(0, 2**31, 8)
    np.testing.assert_array_equal(draw(4), draw(4))
    assert not np.array_equal(draw(4), draw(5))


def test_the_task_purposes_never_share_draws():
    tasks = ["training tasks", "evaluation tasks", "final test tasks", "variance tasks"]
    draws = {p: tuple(seeds.stream(7, p).integers(0, 2**31, 8)) for p in tasks}
    assert len(set(draws.values())) == len(tasks)


def test_naming_the_streams_kept_the_numbers_the_figures_were_made_with():
    """Before the names, the files used seed, seed + 1 (evaluation), + 2 (final test), + 3 (variance)."""
    before = {"initialization": 0, "training tasks": 0, "evaluation tasks": 1, "final test tasks": 2,
              "variance tasks": 3}
    for purpose, offset in before.items():
        np.testing.assert_array_equal(seeds.stream(10, purpose).random(4), np.random.default_rng(10 + offset).random(4))


def test_an_unknown_purpose_is_refused_with_the_names():
    with pytest.raises(ValueError, match="purpose must be one of initialization, .*variance tasks, got 'test'"):
        seeds.stream(0, "test")
