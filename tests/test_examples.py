"""The recipes in examples/ run as a student runs them, at a tiny budget, writing only under tmp_path."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run(script, *args, cwd, timeout=300):
    env = os.environ | {"MINIREPTILE_CACHE": str(cwd / "cache"), "MPLBACKEND": "Agg"}
    result = subprocess.run([sys.executable, str(EXAMPLES / script), *map(str, args)], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.slow
def test_custom_layer_passes_its_property_test_and_trains_exact_maml(tmp_path):
    out = run("custom_layer.py", 20, cwd=tmp_path)
    assert "PReLU passes check_layer; the net passes check_net" in out
    assert "exact MAML through PReLU, 20 iterations" in out


def test_custom_layer_is_what_the_kit_proves():
    """The example's layer through the kit, in this process (and its np.abs twin refused)."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        import custom_layer
    finally:
        sys.path.remove(str(EXAMPLES))
    import numpy as np

    from minireptile import testing as mrt
    rng = np.random.default_rng(0)
    assert max(mrt.check_layer(custom_layer.PReLU(4), rng.standard_normal((5, 4)), rng=rng).values()) <= mrt.TOL

    class AbsPReLU(custom_layer.PReLU):
        def forward(self, params, x):
            a = params["a"][..., None, :]
            return 0.5 * (1 + a) * x + 0.5 * (1 - a) * np.abs(x), (x, x.real <= 0)
    with pytest.raises(AssertionError, match="is not complex-safe"):
        mrt.check_layer(AbsPReLU(4), rng.standard_normal((5, 4)), rng=rng)


@pytest.mark.slow
def test_sine_k_draws_both_learning_curves_from_iteration_0(tmp_path):
    out = run("sine_k.py", 200, tmp_path / "curves.png", cwd=tmp_path)
    assert "k = 1: held-out MSE" in out and "k = 5: held-out MSE" in out and "at iteration 0" in out
    assert (tmp_path / "curves.png").stat().st_size > 10_000


@pytest.mark.slow
def test_reptile_on_omniglot_in_a_few_lines(tmp_path):
    if not os.environ.get("MINIREPTILE_OMNIGLOT"):
        pytest.skip("no Omniglot: set MINIREPTILE_OMNIGLOT or put the subsets in ../shared/omniglot")
    out = run("omniglot.py", 2, 4, tmp_path / "omniglot.png", cwd=tmp_path)
    assert "accuracy over 4 tasks" in out and "learning curve from iteration 0" in out
    assert (tmp_path / "omniglot.png").stat().st_size > 10_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "omniglot.png"]      # nothing else written
