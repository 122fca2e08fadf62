"""What the notebooks lean on: the budget they run at, the pools they train on, live curves."""
import numpy as np
import pytest
from matplotlib.figure import Figure

from minireptile import course, plots
from minireptile.tasks import omniglot


def test_the_notebook_budget_is_smoke_only_under_the_suite(monkeypatch):
    monkeypatch.setenv("MINIREPTILE_SMOKE", "1")
    assert course.notebook_budget() == "smoke"
    for value in ("0", ""):
        monkeypatch.setenv("MINIREPTILE_SMOKE", value)
        assert course.notebook_budget() == "class"
    monkeypatch.delenv("MINIREPTILE_SMOKE")
    assert course.notebook_budget() == "class"


def test_synthetic_pools_stand_in_only_in_smoke_mode_and_say_so(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIREPTILE_OMNIGLOT", str(tmp_path))
    monkeypatch.setenv("MINIREPTILE_OMNIGLOT_URL", "http://127.0.0.1:9/")     # nothing listens there
    pools = omniglot.notebook_pools(smoke=True)
    assert "synthetic" in pools.description and "mean nothing" in pools.description
    assert pools.train.num_classes == 10 and pools.test.num_classes == 6
    with pytest.raises(omniglot.DataMissing, match="python -m minireptile download"):
        omniglot.notebook_pools(smoke=False)
    assert list(tmp_path.iterdir()) == []


def test_live_curves_collect_every_point_and_redraw_outside_a_notebook():
    live = plots.LiveCurves(ylabel="accuracy", hlines={"chance": 0.2})
    for it, (a, b) in enumerate([(0.3, 0.4), (0.35, 0.6)], start=1):
        live.update("k = 1", 100 * it, a)
        live.update("k = 5", 100 * it, b)
    assert live.points == {"k = 1": ([100, 200], [0.3, 0.35]), "k = 5": ([100, 200], [0.4, 0.6])}
    assert isinstance(live.figure, Figure)
    lines = {line.get_label(): line for line in live.ax.get_lines()}
    np.testing.assert_array_equal(lines["k = 5"].get_ydata(), [0.4, 0.6])
    assert "chance" in lines and live.ax.get_ylabel() == "accuracy"
