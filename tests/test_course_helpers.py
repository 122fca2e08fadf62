"""What the notebooks lean on: the budget they run at, the pools they train on, live curves."""
import numpy as np
import pytest
from matplotlib.figure import Figure

from minireptile import course, plots
from minireptile.tasks import omniglot


def test_the_notebook_budget_is_grading_while_graded_smoke_under_the_suite_else_class(monkeypatch):
    monkeypatch.delenv("MINIREPTILE_GRADING", raising=False)
    monkeypatch.setenv("MINIREPTILE_SMOKE", "1")
    assert course.notebook_budget() == "smoke"
    for value in ("0", ""):
        monkeypatch.setenv("MINIREPTILE_SMOKE", value)
        assert course.notebook_budget() == "class"
    monkeypatch.delenv("MINIREPTILE_SMOKE")
    assert course.notebook_budget() == "class"
    monkeypatch.setenv("MINIREPTILE_GRADING", "1")
    assert course.notebook_budget() == "grading"


def test_every_study_a_notebook_drives_has_every_course_budget():
    from minireptile import analysis, combinations, comparison, joint
    from minireptile.tasks import sine
    for study in (analysis, combinations, comparison, joint, sine):
        assert {"smoke", "grading", "class"} <= set(study.BUDGETS), study.__name__


def test_no_workers_are_started_while_grading(monkeypatch):
    monkeypatch.setenv("MINIREPTILE_GRADING", "1")
    with course.notebook_workers() as workers:
        assert workers is None


def test_synthetic_pools_stand_in_only_below_the_class_budget_and_say_how_to_get_the_data(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIREPTILE_OMNIGLOT", str(tmp_path))
    monkeypatch.setenv("MINIREPTILE_OMNIGLOT_URL", "http://127.0.0.1:9/")     # nothing listens there
    for budget in ("smoke", "grading"):
        pools = omniglot.notebook_pools(budget)
        assert pools.synthetic and "synthetic" in pools.description and "no number below is a result" in pools.description
        assert "MINIREPTILE_OMNIGLOT" in pools.description
        assert "python -m minireptile download --data DIR --subsets" in pools.description
        assert pools.train.num_classes == 10 and pools.test.num_classes == 6
        assert course.caveat(budget, pools).startswith("These numbers are no results: synthetic")
    with pytest.raises(omniglot.DataMissing, match="python -m minireptile download"):
        omniglot.notebook_pools("class")
    with pytest.raises(ValueError, match="budget must be"):
        omniglot.notebook_pools(True)
    assert list(tmp_path.iterdir()) == []
    assert course.caveat("class") is None and "smoke budget" in course.caveat("smoke")


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


def test_live_curves_in_a_notebook_redraw_at_most_once_a_second_and_once_more_when_the_cell_ends():
    class Handle:
        shown = 0

        def update(self, figure):
            self.shown += 1

    class Events:
        registered = []

        def unregister(self, event, callback):
            self.registered.remove((event, callback))

    live = plots.LiveCurves(ylabel="accuracy", every=3600)
    live._handle, live._shell = Handle(), type("Shell", (), {"events": Events()})()
    Events.registered.append(("post_run_cell", live._cell_done))
    for it in range(10):
        live.update("k = 1", it, 0.1 * it)
    assert live._handle.shown == 1 and live.points["k = 1"][0] == list(range(10))
    live._cell_done()
    assert live._handle.shown == 2 and Events.registered == []
    np.testing.assert_allclose(live.ax.get_lines()[0].get_ydata(), 0.1 * np.arange(10))
